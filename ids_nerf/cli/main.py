"""The ``ids-nerf`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

import tyro

from ids_nerf.console import third_party_warnings_to
from ids_nerf.errors import UserError, report


def _subcommands() -> dict:
    from ids_nerf.cli.make_scene import MakeScene
    from ids_nerf.cli.make_tiny_sd import MakeTinySD
    from ids_nerf.cli.preview import Preview
    from ids_nerf.cli.run_edits import RunEdits
    from ids_nerf.cli.scene_bounds import SceneBounds
    from ids_nerf.cli.suite import RunSuite
    from ids_nerf.cli.train_score_model import TrainScoreModel
    from ids_nerf.demo import Demo
    from ids_nerf.evaluation.evaluate import EvalRuns
    from ids_nerf.image_editing import EditImageConfig
    from ids_nerf.nerfstudio.compare import CompareRuns
    from ids_nerf.study.identity_study import IdentityStudy
    from ids_nerf.study.latent_study import Study
    from ids_nerf.study.nerf_study import NerfStudy

    return {
        "demo": Demo,
        "run": RunEdits,
        "suite": RunSuite,
        "eval": EvalRuns,
        "compare": CompareRuns,
        "preview": Preview,
        "scene-bounds": SceneBounds,
        "edit-image": EditImageConfig,
        "study": Study,
        "study-3d": NerfStudy,
        "identity-3d": IdentityStudy,
        "make-scene": MakeScene,
        "make-tiny-sd": MakeTinySD,
        "train-score-model": TrainScoreModel,
    }


def main(args: Optional[Sequence[str]] = None) -> int:
    """Parse ``args`` (default: the command line), run the subcommand; 2 on a user error."""
    config = tyro.extras.subcommand_cli_from_dict(_subcommands(), prog="ids-nerf", args=args)
    try:
        with third_party_warnings_to(None):  # nerfstudio's and torch's known deprecations; ours still show
            config.main()
    except UserError as err:
        return report(err, "ids-nerf")
    return 0


def entrypoint() -> None:
    sys.exit(main())
