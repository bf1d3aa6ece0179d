"""A tiny Blender-format (NeRF synthetic) scene, rendered analytically by ray casting.

The scene is a ball (sphere) and a box standing on a checkered disc (the "table"), all inside a radius of about 1
around the origin (nerfstudio's ``blender-data`` parser assumes a scene box of [-1.5, 1.5]^3 and scale factor 1).
World +Z is up. Cameras sit on the upper hemisphere at radius 4 and look at the origin; their ``transform_matrix``
is camera-to-world in the OpenGL/Blender convention (the camera looks down its -Z axis, +Y is up). Pixels outside
the objects are transparent (alpha 0); colors are anti-aliased by 2x2 supersampling.

Appearances share cameras and differ in one object (:data:`APPEARANCES` holds a caption for each,
:data:`EDITED_OBJECT` the object each one changes): the ball's color, the box's texture (yellow stripes on its sides,
a texture edit of an object that stands on the table next to the ball), or the ball's shape (the "cube" appearance
puts a cube where the ball stood: a structure-changing edit, the only appearance with geometry of its own, see
:data:`APPEARANCE_SHAPES`). :func:`trace_view` gives the per-pixel object id and z-depth;
``ids_nerf.scenes.edit_scene`` writes them with the appearances as an edit scene with ground truth.

Positions and colors are parameters (:class:`Layout`, :class:`Look`) so that ``ids_nerf.scenes.random_scenes``
can draw other scenes with the same ray tracer; their defaults (:data:`LAYOUT`, :func:`appearance_look`) are the
fixed evaluation scene, rendered exactly as before they were parameters.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Tuple

import numpy as np
from PIL import Image

CAMERA_ANGLE_X = 0.6911112070083618  # the NeRF synthetic scenes' horizontal field of view (radians)
RADIUS = 4.0
SPHERE_CENTER = np.array([0.35, -0.15, 0.4])
SPHERE_RADIUS = 0.4
BOX_MIN = np.array([-0.75, -0.35, 0.0])
BOX_MAX = np.array([-0.15, 0.35, 0.5])
DISC_RADIUS = 1.0
SPHERE_COLORS = {"source": (0.85, 0.12, 0.10), "edited": (0.10, 0.25, 0.90), "golden": (0.95, 0.72, 0.12)}
APPEARANCES = {
    "source": "a red ball and a green box on a table",
    "edited": "a blue ball and a green box on a table",
    "golden": "a golden ball and a green box on a table",
    "striped-box": "a red ball and a green box with yellow stripes on a table",
    "cube": "a red cube and a green box on a table",
}
"""Appearance name -> caption. Each changes one object (:data:`EDITED_OBJECT`); all but "cube" share geometry."""
BACKGROUND, TABLE, BALL, BOX = 0, 1, 2, 3  # object ids in masks
OBJECT_IDS = {"background": BACKGROUND, "table": TABLE, "ball": BALL, "box": BOX}
EDITED_OBJECT = {"edited": BALL, "golden": BALL, "striped-box": BOX, "cube": BALL}
"""Appearance name -> the object id it changes relative to "source" (everything else is identical)."""
STRIPED_BOX = {"striped-box"}
"""Appearances whose box sides carry horizontal yellow stripes (the ball keeps the source's red)."""
SHAPES = ("ball", "cube")
"""What can stand in the ball's place (object id 2): a sphere, or an axis-aligned cube on the table."""
APPEARANCE_SHAPES = {"cube": "cube"}
"""Appearance name -> the shape in the ball's place, for appearances whose geometry differs from the source's
("ball" for every other one); their object masks differ from the source's too."""
CUBE_HALF_SIDE = 0.8
"""A cube's half side as a share of the ball radius it replaces: its volume is then about the ball's
(1.6^3 = 4.1 against 4/3 pi = 4.19), and it stands on the table under the ball's centre."""
BOX_COLOR = np.array([0.20, 0.70, 0.25])
STRIPE_COLOR = np.array([0.95, 0.85, 0.15])
STRIPE_HEIGHT = 0.125  # world units: the 0.5-high box shows 4 bands, 2 of them yellow (about 1.5 px each at 32 px)
LIGHT = np.array([0.4, -0.5, 0.77]) / np.linalg.norm([0.4, -0.5, 0.77])
SUPERSAMPLE = 2
RGB = Tuple[float, float, float]


@dataclass(frozen=True)
class Layout:
    """Where the ball and the box stand, in world units (the table is the disc z = 0, |xy| <= DISC_RADIUS)."""

    sphere_center: Tuple[float, float, float]
    """Ball centre (x, y, z); z = sphere_radius puts it on the table."""
    sphere_radius: float
    """Ball radius (> 0)."""
    box_min: Tuple[float, float, float]
    """Axis-aligned box's lower corner; z = 0 puts it on the table (the stripes are counted from z = 0)."""
    box_max: Tuple[float, float, float]
    """Axis-aligned box's upper corner (each coordinate above box_min's)."""
    ball_shape: str = "ball"
    """What stands in the ball's place, one of :data:`SHAPES`: the ball, or a cube of half side
    :data:`CUBE_HALF_SIDE` x sphere_radius standing on the table below sphere_center."""


@dataclass(frozen=True)
class Look:
    """Object colors (linear RGB in [0, 1], before shading); the table keeps its grey checker."""

    ball: RGB
    box: RGB
    stripes: Optional[RGB] = None
    """Color of the box sides' horizontal bands (see :data:`STRIPE_HEIGHT`); None: a plain box."""


LAYOUT = Layout(tuple(SPHERE_CENTER), SPHERE_RADIUS, tuple(BOX_MIN), tuple(BOX_MAX))
"""The fixed evaluation layout: every appearance, the demo, the studies and the tests use it."""


def appearance_layout(name: str) -> Layout:
    """The evaluation layout as appearance ``name`` (a key of :data:`APPEARANCES`) has it."""
    if name not in APPEARANCES:
        raise ValueError(f"appearance must be one of {sorted(APPEARANCES)}, not {name!r}")
    return replace(LAYOUT, ball_shape=APPEARANCE_SHAPES.get(name, "ball"))


def appearance_look(name: str) -> Look:
    """The colors of appearance ``name`` (a key of :data:`APPEARANCES`)."""
    if name not in APPEARANCES:
        raise ValueError(f"appearance must be one of {sorted(APPEARANCES)}, not {name!r}")
    stripes = tuple(STRIPE_COLOR) if name in STRIPED_BOX else None
    return Look(SPHERE_COLORS.get(name, SPHERE_COLORS["source"]), tuple(BOX_COLOR), stripes)


def look_at(position: np.ndarray) -> np.ndarray:
    """Camera-to-world 4x4 matrix (OpenGL convention) for a camera at ``position`` looking at the origin."""
    forward = -position / np.linalg.norm(position)
    x_axis = np.cross(forward, [0.0, 0.0, 1.0])
    x_axis /= np.linalg.norm(x_axis)
    z_axis = -forward
    y_axis = np.cross(z_axis, x_axis)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x_axis, y_axis, z_axis, position
    return c2w


def camera_poses(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` cameras at radius 4, azimuths evenly spread with a random phase, elevations 15-60 degrees."""
    phase = rng.uniform(0.0, 2.0 * math.pi)
    poses = []
    for k in range(count):
        azimuth = phase + 2.0 * math.pi * k / count
        elevation = math.radians(rng.uniform(15.0, 60.0))
        position = RADIUS * np.array(
            [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
        )
        poses.append(look_at(position))
    return poses


def _hit_sphere(origin: np.ndarray, dirs: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each ray to the sphere (inf on a miss) and the unit normal there."""
    center, radius = np.asarray(layout.sphere_center, dtype=float), layout.sphere_radius
    oc = origin - center
    b = dirs @ oc
    disc = b**2 - (oc @ oc - radius**2)
    t = np.where(disc >= 0.0, -b - np.sqrt(np.maximum(disc, 0.0)), np.inf)
    t = np.where(t > 0.0, t, np.inf)
    normal = (origin + np.where(np.isfinite(t), t, 0.0)[:, None] * dirs - center) / radius
    return t, normal


def _hit_cube(origin: np.ndarray, dirs: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_hit_sphere` for the cube that stands in the ball's place (see ``Layout.ball_shape``)."""
    half = CUBE_HALF_SIDE * layout.sphere_radius
    x, y, _ = layout.sphere_center
    return _hit_aabb(origin, dirs, np.array([x - half, y - half, 0.0]), np.array([x + half, y + half, 2 * half]))


def _hit_box(origin: np.ndarray, dirs: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each ray to the box (inf on a miss) and the face normal."""
    return _hit_aabb(origin, dirs, np.asarray(layout.box_min, dtype=float), np.asarray(layout.box_max, dtype=float))


def _hit_aabb(
    origin: np.ndarray, dirs: np.ndarray, box_min: np.ndarray, box_max: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each ray to an axis-aligned box (slab method; inf on a miss) and the face normal."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dirs
        t0, t1 = (box_min - origin) * inv, (box_max - origin) * inv
    t_near = np.minimum(t0, t1)
    enter, exit_ = t_near.max(axis=1), np.maximum(t0, t1).min(axis=1)
    t = np.where((enter <= exit_) & (enter > 0.0), enter, np.inf)
    axis = t_near.argmax(axis=1)
    normal = np.zeros_like(dirs)
    normal[np.arange(len(dirs)), axis] = -np.sign(dirs[np.arange(len(dirs)), axis])
    return t, normal


def _hit_disc(origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each ray to the disc z = 0, |xy| <= DISC_RADIUS (inf on a miss) and the hit point."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -origin[2] / dirs[:, 2]
    t = np.where(np.isfinite(t) & (t > 0.0), t, np.inf)
    point = origin + np.where(np.isfinite(t), t, 0.0)[:, None] * dirs
    t = np.where(np.hypot(point[:, 0], point[:, 1]) <= DISC_RADIUS, t, np.inf)
    return t, point


def _trace(c2w: np.ndarray, n: int, layout: Layout = LAYOUT) -> Tuple[np.ndarray, ...]:
    """Cast one ray through each pixel centre of an ``n`` x ``n`` image (nerfstudio's pinhole model for a Blender
    scene: focal 0.5 n / tan(0.5 CAMERA_ANGLE_X), principal point at the image centre).

    Returns flat arrays: object id (uint8), z-depth (0 on a miss), shading factor, the disc's checker color, and
    whether the hit point lies on a stripe of the box's sides (see :data:`STRIPE_HEIGHT`; False off the box).
    """
    focal = 0.5 * n / math.tan(0.5 * CAMERA_ANGLE_X)
    coords = (np.arange(n) + 0.5 - 0.5 * n) / focal
    u, v = np.meshgrid(coords, coords, indexing="xy")
    dirs_cam = np.stack([u, -v, -np.ones_like(u)], axis=-1).reshape(-1, 3)
    cam_norm = np.linalg.norm(dirs_cam, axis=1)
    dirs = (dirs_cam / cam_norm[:, None]) @ c2w[:3, :3].T
    origin = c2w[:3, 3]

    if layout.ball_shape not in SHAPES:
        raise ValueError(f"ball_shape must be one of {SHAPES}, not {layout.ball_shape!r}")
    t_sphere, n_sphere = (_hit_cube if layout.ball_shape == "cube" else _hit_sphere)(origin, dirs, layout)
    t_box, n_box = _hit_box(origin, dirs, layout)
    t_disc, p_disc = _hit_disc(origin, dirs)
    t_all = np.stack([t_sphere, t_box, t_disc])
    nearest = t_all.argmin(axis=0)
    t_hit = t_all.min(axis=0)
    hit = np.isfinite(t_hit)
    ids = np.where(hit, np.array([BALL, BOX, TABLE])[nearest], BACKGROUND).astype(np.uint8)
    depth = np.where(hit, t_hit, 0.0) / cam_norm  # the camera's -Z component of a unit direction is 1 / |dirs_cam|

    p_box = origin + np.where(np.isfinite(t_box), t_box, 0.0)[:, None] * dirs
    # odd bands by height, on the sides only (the top face sits exactly on a band edge: keep it plain)
    side = p_box[:, 2] < layout.box_max[2] - 1e-6
    stripe = (ids == BOX) & side & (np.floor(p_box[:, 2] / STRIPE_HEIGHT) % 2 == 1)
    checker = (np.floor(p_disc[:, 0] * 4.0) + np.floor(p_disc[:, 1] * 4.0)) % 2
    disc_color = np.where(checker[:, None] > 0, 0.75, 0.55) * np.ones(3)
    n_disc = np.tile([0.0, 0.0, np.sign(origin[2])], (len(dirs), 1))
    normal = np.choose(nearest[:, None], [n_sphere, n_box, n_disc])
    shade = 0.35 + 0.65 * np.clip(normal @ LIGHT, 0.0, 1.0)
    return ids, depth, shade, disc_color, stripe


def trace_view(c2w: np.ndarray, size: int, layout: Layout = LAYOUT) -> Tuple[np.ndarray, np.ndarray]:
    """Object ids (``size`` x ``size`` uint8, see :data:`OBJECT_IDS`) and float32 z-depth (distance along the camera's
    -Z axis to the first hit, 0 where nothing is hit), both at pixel centres without supersampling."""
    ids, depth, _, _, _ = _trace(c2w, size, layout)
    return ids.reshape(size, size), depth.reshape(size, size).astype(np.float32)


def render_views(c2w: np.ndarray, size: int, appearances: Iterable[str]) -> Dict[str, np.ndarray]:
    """Render ``size`` x ``size`` RGBA float images in [0, 1] seen from ``c2w``, one per appearance name.

    The geometry is traced once per layout (:func:`appearance_layout`); alpha (the covered fraction of each pixel)
    is the same for every appearance of one layout, and colors are the mean over the covered subsamples (straight
    alpha; black where alpha is 0).
    """
    images: Dict[str, np.ndarray] = {}
    names = list(appearances)
    for layout in dict.fromkeys(appearance_layout(name) for name in names):
        looks = {name: appearance_look(name) for name in names if appearance_layout(name) == layout}
        images.update(render_looks(c2w, size, looks, layout))
    return {name: images[name] for name in names}


def render_looks(
    c2w: np.ndarray, size: int, looks: Mapping[str, Look], layout: Layout = LAYOUT
) -> Dict[str, np.ndarray]:
    """:func:`render_views` for any colors (``looks``: name -> :class:`Look`) and any :class:`Layout`."""
    n = size * SUPERSAMPLE
    ids, _, shade, disc_color, stripe = _trace(c2w, n, layout)
    images = {}
    for name, look in looks.items():
        palette = np.zeros((4, 3))
        palette[BALL], palette[BOX] = look.ball, look.box
        albedo = np.where((ids == TABLE)[:, None], disc_color, palette[ids])
        if look.stripes is not None:
            albedo = np.where(stripe[:, None], np.asarray(look.stripes, dtype=float), albedo)
        hit = (ids != BACKGROUND).astype(float)[:, None]
        blocks = np.concatenate([albedo * shade[:, None] * hit, hit], axis=1)
        sums = blocks.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 4).sum(axis=(1, 3))
        coverage = sums[..., 3:]
        color = sums[..., :3] / np.maximum(coverage, 1.0)  # straight (not premultiplied) alpha, as PNG means it
        images[name] = np.concatenate([color, coverage / SUPERSAMPLE**2], axis=-1)
    return images


def render_view(c2w: np.ndarray, size: int, appearance: str = "source") -> np.ndarray:
    """Render one ``size`` x ``size`` RGBA float image in [0, 1] seen from camera-to-world ``c2w``."""
    return render_views(c2w, size, [appearance])[appearance]


def save_rgba(rgba: np.ndarray, path: Path) -> None:
    """Save a float RGBA image in [0, 1] as an 8-bit RGBA PNG."""
    Image.fromarray(np.round(rgba * 255.0).astype(np.uint8), mode="RGBA").save(path)


def write_blender_scene(out: Path, size: int = 32, views: int = 8, seed: int = 0, appearance: str = "source") -> Path:
    """Write a tiny Blender-format scene to ``out`` and return ``out``.

    Writes ``transforms_{train,val,test}.json`` and RGBA PNGs under ``train/``, ``val/`` and ``test/``
    (``views`` training views; ``max(1, views // 4)`` views each for val and test). ``file_path`` entries have no
    extension, as nerfstudio's ``blender-data`` parser appends ``.png``. ``appearance`` is a key of
    :data:`APPEARANCES` (``"source"``: red ball; ``"edited"``: the same geometry and cameras with a blue ball).
    Output depends only on the arguments. See ``write_edit_scene`` for a scene with every appearance, masks and depth.
    """
    if appearance not in APPEARANCES:
        raise ValueError(f"appearance must be one of {sorted(APPEARANCES)}, not {appearance!r}")
    out = Path(out)
    rng = np.random.default_rng(seed)
    counts = {"train": views, "val": max(1, views // 4), "test": max(1, views // 4)}
    for split, count in counts.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        frames = []
        for index, c2w in enumerate(camera_poses(count, rng)):
            save_rgba(render_view(c2w, size, appearance), out / split / f"r_{index}.png")
            frames.append({"file_path": f"./{split}/r_{index}", "transform_matrix": c2w.tolist()})
        meta = {"camera_angle_x": CAMERA_ANGLE_X, "frames": frames}
        (out / f"transforms_{split}.json").write_text(json.dumps(meta, indent=2))
    return out
