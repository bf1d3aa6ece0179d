#!/usr/bin/env python
"""Fetch NeRF's LLFF scenes (``nerf_llff_data``: fern, flower, fortress, horns, leaves, orchids, room, trex) and
write a nerfstudio ``transforms.json`` into each scene.

nerfstudio has no downloader for these scenes, and the official archive ``nerf_llff_data.zip`` is only published on
Google Drive (linked from the NeRF project page, https://www.matthewtancik.com/nerf), which has no stable direct
download URL; so this script takes either

- ``--url URL``: a direct link to a copy of ``nerf_llff_data.zip`` (fetched with urllib, 10 s network timeout), or
- ``--zip PATH``: the archive already downloaded (e.g. in a browser, or with ``gdown``).

It unpacks every scene folder (a folder holding ``poses_bounds.npy``) to ``--out/<scene>`` (default ``data/llff``)
and runs ``ids_nerf.data.llff.write_transforms`` on it with ``--downscale`` (default 4: frames point into
``images_4/``). Train with ``ns-train nerfacto --data data/llff/fern nerfstudio-data --downscale-factor 1``: the
images are already downscaled, see data_scripts/README.md.

Usage:
    python data_scripts/download_llff.py --url https://example.org/nerf_llff_data.zip [--out data/llff]
    python data_scripts/download_llff.py --zip ~/Downloads/nerf_llff_data.zip [--scenes fern flower] [--downscale 8]

On failure it prints one ``error:`` line and exits with status 2.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

TIMEOUT_S = 10
CHUNK = 1 << 20


class ScriptError(Exception):
    """A failure reported as one line."""


def download(url: str, destination: Path) -> None:
    """Stream ``url`` to ``destination``; raise ScriptError on any network failure."""
    next_report = 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, destination.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                if done >= next_report:
                    size = f" of {total / 1e6:.0f} MB" if total else ""
                    print(f"\rdownloaded {done / 1e6:.0f} MB{size}", end="", file=sys.stderr, flush=True)
                    next_report = done + 50 * CHUNK
        print(file=sys.stderr)
    except (urllib.error.URLError, OSError, ValueError) as err:
        if next_report:  # end the progress line first
            print(file=sys.stderr)
        reason = getattr(err, "reason", None) or err
        raise ScriptError(f"could not download {url}: {reason}") from err


def extract_scenes(archive: Path, out_dir: Path, scenes: list[str] | None) -> list[Path]:
    """Unpack the scene folders of an LLFF archive to ``out_dir/<scene>``; return their paths."""
    if not zipfile.is_zipfile(archive):
        raise ScriptError(
            f"{archive} is not a zip archive (a Google Drive link returns a web page, not the file: "
            "download it in a browser or with gdown and pass --zip)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".unpack-") as tmp:
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)  # zipfile drops absolute paths and ".." components
        except (zipfile.BadZipFile, OSError) as err:
            raise ScriptError(f"could not unpack {archive}: {err}") from err
        found = {
            p.parent.name: p.parent for p in sorted(Path(tmp).rglob("poses_bounds.npy")) if "__MACOSX" not in p.parts
        }
        if not found:
            raise ScriptError(f"{archive} holds no LLFF scene (no folder with poses_bounds.npy)")
        wanted = scenes or sorted(found)
        missing = [name for name in wanted if name not in found]
        if missing:
            raise ScriptError(f"scenes {', '.join(missing)} not in {archive} (it has: {', '.join(sorted(found))})")
        placed = []
        for name in wanted:
            target = out_dir / name
            if target.exists():
                shutil.rmtree(target)
            shutil.move(str(found[name]), str(target))
            placed.append(target)
    return placed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="direct download URL of nerf_llff_data.zip (no stable public default exists)")
    source.add_argument("--zip", type=Path, help="an already downloaded nerf_llff_data.zip")
    parser.add_argument("--out", type=Path, default=Path("data/llff"), help="where the scenes go (default: data/llff)")
    parser.add_argument("--scenes", nargs="+", help="only these scenes (default: every scene in the archive)")
    parser.add_argument("--downscale", type=int, default=4, help="image folder: 1 = images/, n = images_n/ (default 4)")
    parser.add_argument("--force", action="store_true", help="replace an existing, different transforms.json")
    parser.add_argument("--keep-zip", action="store_true", help="keep the downloaded archive in --out")
    args = parser.parse_args(argv)

    from ids_nerf.data.llff import write_transforms  # after argument parsing: --help works without the package
    from ids_nerf.errors import UserError

    try:
        if args.downscale < 1:
            raise ScriptError(f"--downscale must be >= 1, got {args.downscale}")
        if args.zip is not None:
            if not args.zip.is_file():
                raise ScriptError(f"{args.zip} not found")
            archive = args.zip
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            archive = args.out / "nerf_llff_data.zip"
            partial = archive.with_name(archive.name + ".part")
            try:
                download(args.url, partial)
                partial.replace(archive)
            finally:
                partial.unlink(missing_ok=True)
        try:
            scene_dirs = extract_scenes(archive, args.out, args.scenes)
        finally:
            if args.zip is None and not args.keep_zip:
                archive.unlink(missing_ok=True)
        for scene_dir in scene_dirs:
            path = write_transforms(scene_dir, downscale=args.downscale, force=args.force)
            print(f"{scene_dir.name}: {path}")
    except (ScriptError, UserError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
