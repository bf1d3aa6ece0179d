#!/usr/bin/env python
"""Write a nerfstudio ``transforms.json`` for one LLFF scene folder (one holding ``poses_bounds.npy``).

Frames point into ``images_<downscale>/`` (``images/`` for ``--downscale 1``) with intrinsics for those images, so
train with ``nerfstudio-data --downscale-factor 1``. An existing, different ``transforms.json`` is kept unless
``--force``. Conventions: see ``ids_nerf/data/llff.py``.

Usage:
    python data_scripts/llff_to_nerfstudio.py data/llff/fern [--downscale 4] [--out-name transforms.json] [--force]

On failure it prints one ``error:`` line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scene_dir", type=Path, help="the LLFF scene folder")
    parser.add_argument("--downscale", type=int, default=4, help="image folder: 1 = images/, n = images_n/ (default 4)")
    parser.add_argument("--out-name", default="transforms.json", help="output file name inside scene_dir")
    parser.add_argument("--force", action="store_true", help="replace an existing, different output file")
    args = parser.parse_args(argv)

    from ids_nerf.data.llff import write_transforms
    from ids_nerf.errors import UserError

    try:
        path = write_transforms(args.scene_dir, downscale=args.downscale, out_name=args.out_name, force=args.force)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
