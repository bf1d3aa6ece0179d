"""A synthetic edit scene with ground truth: every appearance of the same views, object masks and depth.

Layout written by :func:`write_edit_scene` (``r_i`` is the view index within its split)::

    transforms_{train,val,test}.json       Blender format; file_path "./train/r_0" (no extension)
    {train,val,test}/r_i.png               the source appearance, RGBA (alpha 0 off the objects): what nerfstudio
                                           trains on
    appearances/<name>/{train,val,test}/r_i.png
                                           every appearance, "source" included; same alpha in all of them
    masks/{train,val,test}/r_i.png         uint8 object id: 0 background, 1 table, 2 ball, 3 box
    appearance_masks/<name>/{train,val,test}/r_i.png
                                           the same for an appearance with geometry of its own ("cube": a cube
                                           in the ball's place; scene.json "own_masks" names them)
    depth/{train,val,test}/r_i.npy         float32 z-depth: distance along the camera's -Z axis to the first hit;
                                           0 where nothing is hit
    scene.json                             captions, object ids, the object each appearance changes
                                           (edited_objects), sizes and these conventions

Masks and depth are sampled at pixel centres (one ray each, no supersampling); the PNG colors are 2x2 supersampled,
so an appearance's colors can also differ from the source in pixels bordering the ball's mask.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Sequence, Union

import numpy as np
from PIL import Image

from ids_nerf.errors import UserError
from ids_nerf.scenes.blender_scene import (
    APPEARANCE_SHAPES,
    APPEARANCES,
    BALL,
    CAMERA_ANGLE_X,
    EDITED_OBJECT,
    OBJECT_IDS,
    SUPERSAMPLE,
    appearance_layout,
    camera_poses,
    render_views,
    save_rgba,
    trace_view,
)

SPLITS = ("train", "val", "test")
SCENE_FILE = "scene.json"
OWN_MASKS = "appearance_masks"
MASKS_DOC = "uint8 object id at each pixel centre (no supersampling): 0 background, 1 table, 2 ball, 3 box"
DEPTH_DOC = "z-depth along the camera axis in world units, float32 at each pixel centre; 0 where nothing is hit"

PathLike = Union[str, Path]
DEFAULT_APPEARANCES = ("source", "edited", "golden")
"""The appearances a scene has unless asked otherwise. The exact-score model's unconditional set is the union of
every appearance's views, so adding one changes every edit's guidance: scenes keep this set unless a caller
asks for more (the 3D study adds "striped-box")."""


def split_counts(views: int) -> dict:
    """Views per split: ``views`` for training, ``max(2, views // 8)`` each for val and test."""
    return {"train": views, "val": max(2, views // 8), "test": max(2, views // 8)}


def write_edit_scene(
    out: PathLike, size: int = 64, views: int = 40, seed: int = 0, appearances: Sequence[str] = DEFAULT_APPEARANCES
) -> Path:
    """Write an edit scene (layout in the module docstring) to ``out`` and return ``out``.

    ``appearances`` are names of :data:`APPEARANCES`; "source" is always written (it is what nerfstudio trains on).
    ``scene.json`` maps each other appearance to the object id it changes (``edited_objects``).

    Cameras for all splits are drawn from the same distribution (:func:`camera_poses`, one random azimuth phase per
    split, elevations 15-60 degrees). Files depend only on the arguments (byte-identical for the same arguments).
    """
    unknown = [name for name in appearances if name not in APPEARANCES]
    if unknown:
        raise UserError(f"unknown appearance(s) {', '.join(unknown)}; known: {', '.join(APPEARANCES)}")
    names = ["source", *[name for name in dict.fromkeys(appearances) if name != "source"]]
    own_masks = [name for name in names if name in APPEARANCE_SHAPES]
    out = Path(out)
    rng = np.random.default_rng(seed)
    counts = split_counts(views)
    for split, count in counts.items():
        folders = [out / split, out / "masks" / split, out / "depth" / split]
        folders += [out / "appearances" / name / split for name in names]
        folders += [out / OWN_MASKS / name / split for name in own_masks]
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        frames = []
        for index, c2w in enumerate(camera_poses(count, rng)):
            name = f"r_{index}"
            images = render_views(c2w, size, names)
            for appearance, rgba in images.items():
                save_rgba(rgba, out / "appearances" / appearance / split / f"{name}.png")
            save_rgba(images["source"], out / split / f"{name}.png")
            ids, depth = trace_view(c2w, size)
            Image.fromarray(ids, mode="L").save(out / "masks" / split / f"{name}.png")
            np.save(out / "depth" / split / f"{name}.npy", depth)
            for appearance in own_masks:
                own, _ = trace_view(c2w, size, appearance_layout(appearance))
                Image.fromarray(own, mode="L").save(out / OWN_MASKS / appearance / split / f"{name}.png")
            frames.append({"file_path": f"./{split}/{name}", "transform_matrix": c2w.tolist()})
        meta = {"camera_angle_x": CAMERA_ANGLE_X, "frames": frames}
        (out / f"transforms_{split}.json").write_text(json.dumps(meta, indent=2))
    info = {
        "appearances": {name: APPEARANCES[name] for name in names},
        "source": "source",
        "edited": "edited" if "edited" in names else names[-1],
        "objects": dict(OBJECT_IDS),
        "edited_object_id": BALL,
        "edited_objects": {name: EDITED_OBJECT[name] for name in names if name != "source"},
        "own_masks": own_masks,
        "size": size,
        "views": views,
        "seed": seed,
        "splits": counts,
        "camera_angle_x": CAMERA_ANGLE_X,
        "color_supersample": SUPERSAMPLE,
        "masks": MASKS_DOC,
        "depth": DEPTH_DOC,
    }
    (out / SCENE_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return out


def edited_object(info: dict, appearance: str) -> int:
    """The object id that ``appearance`` changes, from a scene's ``scene.json`` (``info``); scenes written before
    ``edited_objects`` existed change the ball in every appearance."""
    return int(info.get("edited_objects", {}).get(appearance, info.get("edited_object_id", BALL)))


def _view_files(root: Path, folder: str, split: str, suffix: str) -> List[Path]:
    return sorted((root / folder / split).glob(f"r_*{suffix}"), key=lambda p: int(re.sub(r"\D", "", p.stem) or -1))


def read_scene_info(path: PathLike) -> dict:
    """Check that ``path`` is a complete edit scene and return its ``scene.json`` with ``"path"`` (a Path) added.

    Raises UserError with one line naming the missing file(s) otherwise.
    """
    root = Path(path)
    fix = f"make one with `ids-nerf make-scene {root}`"
    if not root.is_dir():
        raise UserError(f"scene '{root}' does not exist or is not a folder; {fix}")
    required = [SCENE_FILE] + [f"transforms_{split}.json" for split in SPLITS]
    missing = [name for name in required if not (root / name).is_file()]
    if missing:
        raise UserError(f"scene '{root}' is missing {', '.join(missing)}; {fix}")
    try:
        info = json.loads((root / SCENE_FILE).read_text())
        frames = {split: json.loads((root / f"transforms_{split}.json").read_text())["frames"] for split in SPLITS}
        stems = {split: [frame["file_path"].rsplit("/", 1)[-1] for frame in frames[split]] for split in SPLITS}
        appearances = list(info["appearances"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise UserError(f"scene '{root}' has an unreadable scene.json or transforms file ({err!r}); {fix}") from None
    missing = []
    for split in SPLITS:
        for stem in stems[split]:
            wanted = [f"{split}/{stem}.png", f"masks/{split}/{stem}.png", f"depth/{split}/{stem}.npy"]
            wanted += [f"appearances/{name}/{split}/{stem}.png" for name in appearances]
            wanted += [f"{OWN_MASKS}/{name}/{split}/{stem}.png" for name in info.get("own_masks", [])]
            missing += [name for name in wanted if not (root / name).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise UserError(f"scene '{root}' is missing {', '.join(missing[:3])}{more}; {fix}")
    return {**info, "path": root}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")


def appearance_images(scene: PathLike, appearance: str, split: str = "train") -> List[Path]:
    """The RGBA PNGs of ``appearance`` in ``split`` of the edit scene ``scene``, sorted by view index."""
    info = read_scene_info(scene)
    if appearance not in info["appearances"]:
        known = ", ".join(info["appearances"])
        raise UserError(f"scene '{scene}' has no appearance {appearance!r}; known appearances: {known}")
    _check_split(split)
    return _view_files(Path(scene), f"appearances/{appearance}", split, ".png")


def mask_images(scene: PathLike, split: str = "train") -> List[Path]:
    """The object-id mask PNGs of ``split``, sorted by view index."""
    read_scene_info(scene)
    _check_split(split)
    return _view_files(Path(scene), "masks", split, ".png")


def read_masks(scene: PathLike, split: str = "train") -> np.ndarray:
    """``[V, H, W]`` uint8 object ids of ``split``'s views (ids in ``scene.json`` "objects")."""
    return np.stack([np.array(Image.open(p)) for p in mask_images(scene, split)])


def appearance_masks(scene: PathLike, appearance: str, split: str = "train") -> np.ndarray:
    """:func:`read_masks` as ``appearance`` has them: its own (``scene.json`` "own_masks") or the source's."""
    info = read_scene_info(scene)
    if appearance not in info.get("own_masks", []):
        return read_masks(scene, split)
    _check_split(split)
    files = _view_files(Path(scene), f"{OWN_MASKS}/{appearance}", split, ".png")
    return np.stack([np.array(Image.open(p)) for p in files])


def edit_masks(scene: PathLike, appearance: str, split: str = "train") -> np.ndarray:
    """:func:`read_masks` for judging an edit to ``appearance``: the edited object's id wherever the source or
    the target has it (the union of both masks: a cube covers pixels the ball did not, and the reverse), the
    source's ids elsewhere. The same as :func:`read_masks` for an appearance without geometry of its own."""
    edited_id = edited_object(read_scene_info(scene), appearance)
    own = appearance_masks(scene, appearance, split)
    return np.where(own == edited_id, np.uint8(edited_id), read_masks(scene, split))


def depth_maps(scene: PathLike, split: str = "train") -> List[Path]:
    """The z-depth ``.npy`` files of ``split``, sorted by view index."""
    read_scene_info(scene)
    _check_split(split)
    return _view_files(Path(scene), "depth", split, ".npy")
