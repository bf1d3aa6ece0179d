"""Convert an LLFF scene (``poses_bounds.npy`` + image folders) to a nerfstudio ``transforms.json``.

LLFF layout
-----------
An LLFF scene folder (e.g. ``nerf_llff_data/fern``) holds ``poses_bounds.npy`` and image folders: ``images``
(full resolution) and usually ``images_4`` / ``images_8`` (the same views shrunk 4x / 8x, often under other file
names). ``poses_bounds.npy`` is an ``[N, 17]`` float array, one row per image. The first 15 values of a row are a
3x5 matrix in row-major order: columns 0-2 are the camera-to-world rotation, column 3 the camera centre in world
coordinates, and column 4 is ``(height, width, focal)`` in pixels of the *full-resolution* images. The last two
values are the near and far scene depths seen from that camera. Rows are matched to images by sorting the image file
names, as LLFF's own loader does.

Axis convention
---------------
The three rotation columns are the camera's own axes expressed in world coordinates. LLFF orders them
``[down, right, backwards]``; nerfstudio (like OpenGL and Blender) wants ``[right, up, backwards]``, i.e. the camera
looks down its -Z axis with +Y up. With ``L`` the LLFF columns, the nerfstudio rotation is::

    right     = L[:, 1]
    up        = -L[:, 0]       (the opposite of "down")
    backwards = L[:, 2]

equivalently ``R_opengl = R_llff @ [[0, -1, 0], [1, 0, 0], [0, 0, 1]]`` (a proper rotation, so handedness is kept).
The camera centre (column 3) and the world frame itself are left untouched, so the output ``applied_transform`` is
the identity: nerfstudio's ``nerfstudio-data`` parser then orients, centres and scales the poses itself
(``--orientation-method``, ``--center-method``, ``--auto-scale-poses``). NeRF's own LLFF loader additionally
rescales the world by ``0.75 / min(near)`` and recentres the poses; we do neither, nerfstudio does its own.

Camera model and intrinsics
---------------------------
``poses_bounds.npy`` keeps only one focal length per image: no principal point (LLFF and NeRF take the image
centre) and no lens distortion terms. The faithful nerfstudio
model is therefore ``"PINHOLE"`` with ``fl_x = fl_y`` (up to resizing), ``cx = w / 2``, ``cy = h / 2`` and no
distortion keys (``"OPENCV"`` with all-zero distortion would mean the same but suggest a calibration that LLFF
never had). Intrinsics are written for the image folder actually used: the size is read from the images with PIL
and the focal is scaled by ``w_actual / w_poses`` (``fl_x``) and ``h_actual / h_poses`` (``fl_y``).

Downscale handling
------------------
``downscale=None`` or ``1`` uses ``images/``; ``downscale=n`` uses ``images_n/``. Each frame's ``file_path`` points
straight into that folder (``"images_4/image000.png"``) and the intrinsics already match it, so nerfstudio must *not*
downscale again: train with ``nerfstudio-data --downscale-factor 1``. (Pointing at ``images/`` and letting nerfstudio
pick ``images_4/`` does not work for LLFF: nerfstudio looks for the same file *name* in ``images_4/``, while LLFF's
downscaled images are usually named differently from the originals.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ids_nerf.errors import UserError

POSES_BOUNDS = "poses_bounds.npy"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CAMERA_MODEL = "PINHOLE"
ASPECT_TOLERANCE = 0.01  # relative disagreement allowed between the x and y resize ratios

# Right-multiplying an LLFF rotation [down, right, backwards] by this gives [right, up, backwards].
LLFF_TO_OPENGL = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def read_poses_bounds(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read LLFF's ``poses_bounds.npy``.

    Returns ``(c2w, hwf, bounds)``: ``c2w`` is ``[N, 3, 4]`` camera-to-world in nerfstudio's OpenGL convention
    (columns right, up, backwards, camera centre), ``hwf`` is ``[N, 3]`` (height, width, focal) of the
    full-resolution images, ``bounds`` is ``[N, 2]`` (near, far). All float64. Raises :class:`UserError` on a
    missing or malformed file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: an LLFF scene folder needs its {POSES_BOUNDS}")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is not a readable .npy array ({err})".replace("\n", " ")) from err
    if array.ndim != 2 or array.shape[1] != 17 or array.shape[0] == 0:
        raise UserError(f"{path} has shape {tuple(array.shape)}; LLFF's poses_bounds.npy is [N, 17] with N >= 1")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise UserError(f"{path} holds NaN or infinite values")
    matrices = array[:, :15].reshape(-1, 3, 5)
    c2w = np.empty((array.shape[0], 3, 4))
    c2w[:, :, :3] = matrices[:, :, :3] @ LLFF_TO_OPENGL
    c2w[:, :, 3] = matrices[:, :, 3]
    hwf = matrices[:, :, 4].copy()
    bounds = array[:, 15:17].copy()
    return c2w, hwf, bounds


def image_folder_name(downscale: int | None) -> str:
    """The LLFF image folder for a downscale factor: ``images`` for None or 1, else ``images_<n>``."""
    if downscale is None or downscale == 1:
        return "images"
    if not isinstance(downscale, int) or isinstance(downscale, bool) or downscale < 1:
        raise UserError(f"downscale must be a positive integer or None, got {downscale!r}")
    return f"images_{downscale}"


def _list_images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _available_folders(scene_dir: Path) -> str:
    names = sorted(p.name for p in scene_dir.iterdir() if p.is_dir() and p.name.startswith("images"))
    return ", ".join(names) if names else "none"


def llff_to_transforms(scene_dir: str | os.PathLike, downscale: int | None = None) -> dict[str, Any]:
    """Build a nerfstudio ``transforms.json`` dict for an LLFF scene folder.

    ``downscale`` picks the image folder (``images`` for None/1, ``images_<n>`` otherwise); file paths in the result
    are relative to ``scene_dir`` and intrinsics match the images in that folder. See the module docstring for the
    conventions. Raises :class:`UserError` (one line) for a missing folder or file, or an image count or size that
    does not fit the poses.
    """
    scene_dir = Path(scene_dir)
    if not scene_dir.is_dir():
        raise UserError(f"LLFF scene folder {scene_dir} does not exist")
    c2w, hwf, bounds = read_poses_bounds(scene_dir / POSES_BOUNDS)
    folder_name = image_folder_name(downscale)
    folder = scene_dir / folder_name
    if not folder.is_dir():
        raise UserError(
            f"{folder} does not exist (image folders in {scene_dir}: {_available_folders(scene_dir)}); "
            "pick another downscale"
        )
    images = _list_images(folder)
    if len(images) != len(c2w):
        raise UserError(
            f"{folder} holds {len(images)} images but {scene_dir / POSES_BOUNDS} has {len(c2w)} poses; "
            "LLFF pairs them in sorted filename order, so the counts must match"
        )

    sizes = []
    for image_path in images:
        try:
            with Image.open(image_path) as image:
                sizes.append(image.size)  # (width, height)
        except OSError as err:
            raise UserError(f"cannot read image {image_path}: {err}".replace("\n", " ")) from err
    width, height = sizes[0]
    for image_path, size in zip(images, sizes):
        if size != (width, height):
            raise UserError(
                f"{image_path} is {size[0]}x{size[1]} but {images[0].name} is {width}x{height}; "
                "all images of an LLFF folder must share one size"
            )

    pose_h, pose_w, focal = hwf[:, 0], hwf[:, 1], hwf[:, 2]
    if np.any(pose_h <= 0) or np.any(pose_w <= 0) or np.any(focal <= 0):
        raise UserError(f"{scene_dir / POSES_BOUNDS} has a non-positive image height, width or focal")
    scale_x = width / pose_w
    scale_y = height / pose_h
    mismatch = np.abs(scale_x - scale_y) / np.maximum(scale_x, scale_y)
    if np.any(mismatch > ASPECT_TOLERANCE):
        bad = int(np.argmax(mismatch))
        raise UserError(
            f"images in {folder} are {width}x{height}, which is not a resize of the {int(pose_w[bad])}x"
            f"{int(pose_h[bad])} images the poses were made for (different aspect ratio)"
        )
    fl_x = focal * scale_x
    fl_y = focal * scale_y

    transforms: dict[str, Any] = {"camera_model": CAMERA_MODEL}
    uniform = np.allclose(fl_x, fl_x[0], rtol=0, atol=1e-9) and np.allclose(fl_y, fl_y[0], rtol=0, atol=1e-9)
    intrinsics = {"w": int(width), "h": int(height), "cx": width / 2.0, "cy": height / 2.0}
    if uniform:
        transforms.update(fl_x=float(fl_x[0]), fl_y=float(fl_y[0]), **intrinsics)
    else:  # per-image focal lengths: nerfstudio reads them from each frame
        transforms.update(intrinsics)

    frames = []
    for i, image_path in enumerate(images):
        matrix = np.eye(4)
        matrix[:3, :4] = c2w[i]
        frame: dict[str, Any] = {
            "file_path": f"{folder_name}/{image_path.name}",
            "transform_matrix": matrix.tolist(),
        }
        if not uniform:
            frame.update(fl_x=float(fl_x[i]), fl_y=float(fl_y[i]))
        frame["llff_bounds"] = [float(bounds[i, 0]), float(bounds[i, 1])]  # near, far; ignored by nerfstudio
        frames.append(frame)
    transforms["frames"] = frames
    # The world frame is LLFF's (COLMAP's) unchanged; nerfstudio would otherwise assume a COLMAP axis swap.
    transforms["applied_transform"] = np.eye(4)[:3].tolist()
    transforms["llff_source"] = {"poses_bounds": POSES_BOUNDS, "images": folder_name}
    return transforms


def write_transforms(
    scene_dir: str | os.PathLike,
    downscale: int | None = None,
    out_name: str = "transforms.json",
    force: bool = False,
) -> Path:
    """Write :func:`llff_to_transforms` as ``scene_dir / out_name`` and return its path.

    ``nerfstudio-data --data scene_dir`` reads ``transforms.json``; with another ``out_name`` pass the file itself
    as ``--data``. An existing file with the same content is left alone; one with different content (another
    downscale, or another tool's output) raises :class:`UserError` unless ``force`` is true.
    """
    scene_dir = Path(scene_dir)
    transforms = llff_to_transforms(scene_dir, downscale)
    out_path = scene_dir / out_name
    if out_path.exists():
        try:
            existing = json.loads(out_path.read_text())
        except (OSError, ValueError):
            existing = None
        if existing == json.loads(json.dumps(transforms)):
            return out_path
        if not force:
            raise UserError(
                f"{out_path} exists and differs from the conversion; pass --force (force=True) to replace it"
            )
    tmp_path = out_path.with_name(out_path.name + ".tmp")
    tmp_path.write_text(json.dumps(transforms, indent=2) + "\n")
    os.replace(tmp_path, out_path)
    return out_path
