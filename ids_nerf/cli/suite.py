"""``ids-nerf suite SUITE.yaml``: many edits from one file, run as a batch, one aggregated table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tyro

from ids_nerf.cli.run_edits import ExecutorOptions, raise_for


@dataclass
class RunSuite:
    """Expand a suite (scenes x prompt pairs x methods x settings x seeds, see suites/) into edits, run them
    here or on Ray, and write table.md / table.json (per scene, prompt, method and setting: mean and spread
    over seeds) beside the per-edit metrics. A rerun skips the edits already done."""

    file: tyro.conf.Positional[Path]
    """The suite file (YAML), e.g. suites/synthetic.yaml."""
    batch: tyro.conf.OmitArgPrefixes[ExecutorOptions] = field(default_factory=ExecutorOptions)
    """Where the edits run (--executor, --address, --gpus-per-edit, --cpus-per-edit, --workers)."""
    dry_run: bool = False
    """List the edits the suite expands into, run nothing."""

    def main(self):
        from ids_nerf.workflow.batch import BatchEdit, absolute, run_batch
        from ids_nerf.workflow.suite import check_scenes, expand, load_suite, make_scenes, write_tables

        suite = load_suite(self.file)
        edits = expand(suite)
        if self.dry_run:
            for edit in edits:
                print(f"{edit.spec.name}: {edit.spec.method} of {edit.spec.scene}, edit args {edit.spec.edit_args}")
            print(f"{len(edits)} edits; outputs in {suite.output_dir}")
            return edits
        check_scenes(suite)
        executor = self.batch.make([suite.output_dir])
        make_scenes(suite)
        summary = run_batch([BatchEdit(absolute(e.spec), e.labels) for e in edits], executor)
        print(f"Table: {write_tables(suite, summary.records)}", flush=True)
        raise_for(summary)
        return summary
