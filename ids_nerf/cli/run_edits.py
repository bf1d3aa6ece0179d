"""``ids-nerf run EDIT.yaml [...]``: scripted edits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List

import tyro

from ids_nerf.errors import UserError


@dataclass
class RunEdits:
    """Run edit files (see configs/): source training if needed, the edit, the evaluation, a summary
    line each. Files run one after another in their own run folders; a failed one does not stop the rest."""

    files: tyro.conf.Positional[List[Path]]
    """Edit files (YAML), e.g. configs/lego-gold.yaml."""

    def main(self):
        from ids_nerf.workflow import run_files

        results = run_files(self.files)
        failed = [r.name for r in results if r.error]
        if failed:
            raise UserError(f"{len(failed)} of {len(results)} edits failed: {', '.join(failed)}")
        return results
