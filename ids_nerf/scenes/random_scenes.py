"""Random scenes for training a learned score model: the ball, the box and the table of
:mod:`ids_nerf.scenes.blender_scene`, with sizes, positions, colors, stripes and cameras drawn from a seed (and,
when asked, a cube in the ball's place), and a caption in the evaluation captions' style ("a blue ball and a green
box with yellow stripes on a table").

**Exclusion by construction.** The fixed evaluation layout (:data:`ids_nerf.scenes.blender_scene.LAYOUT`, which
the demo, the studies and the tests edit) is never drawn: a draw whose layout is within :data:`EXCLUSION_MARGIN`
of it in every size and distance of :func:`layout_descriptor` is redrawn. The descriptor ignores rotations and
mirror images about the vertical axis, because the cameras circle the table: a turned copy of the evaluation
scene would be the same scene seen from other cameras. A model trained on these scenes therefore has to
generalise to the evaluation scene, and its errors there are a learned model's, not a memorised view's.

Scene ``i`` of seed ``s`` depends on ``(s, i)`` alone, so a larger set starts with the same scenes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import List, Optional, Tuple

import numpy as np

from ids_nerf.scenes.blender_scene import DISC_RADIUS, LAYOUT, Layout, Look, camera_poses, render_looks

PALETTE = {
    "red": (0.85, 0.12, 0.10),
    "green": (0.20, 0.70, 0.25),
    "blue": (0.10, 0.25, 0.90),
    "golden": (0.95, 0.72, 0.12),
    "yellow": (0.95, 0.85, 0.15),
    "orange": (0.95, 0.45, 0.08),
    "purple": (0.50, 0.18, 0.70),
    "pink": (0.95, 0.45, 0.65),
    "cyan": (0.15, 0.75, 0.80),
    "white": (0.92, 0.92, 0.92),
}
"""Color name -> linear RGB in [0, 1]. red, green, blue, golden and yellow are the evaluation scene's own
(ball, box, edited ball, golden ball, stripes), so its captions are in the vocabulary."""
PLAIN_CAPTION = "a {ball} {shape} and a {box} box on a table"
STRIPED_CAPTION = "a {ball} {shape} and a {box} box with {stripes} stripes on a table"
TEMPLATE_WORDS = {w for t in (PLAIN_CAPTION, STRIPED_CAPTION) for w in t.split() if not w.startswith("{")}
CAPTION_WORDS = tuple(sorted(TEMPLATE_WORDS | {"an", "ball"} | set(PALETTE)))
"""Every word a caption of a scene without cubes can have: the templates', "an" (before a vowel: "an orange
box"), "ball" and the palette's (the vocabulary ``learned:default`` was trained with)."""
CUBE_WORD = "cube"
"""The one word scenes with cubes add (:func:`caption_words`)."""


def caption_words(cubes: bool) -> Tuple[str, ...]:
    """The caption encoder's vocabulary: :data:`CAPTION_WORDS`, with :data:`CUBE_WORD` at its end when the
    scenes can have cubes (appended, so that every other word keeps its index)."""
    return (*CAPTION_WORDS, CUBE_WORD) if cubes else CAPTION_WORDS


SCENE_SUFFIX = " on a table"


def single_object_captions(caption: str) -> Tuple[str, str]:
    """The ball's and the box's halves of a two-object caption, each a caption of its own: "a red ball and a
    green box on a table" gives "a red ball on a table" and "a green box on a table". Trained on, they show each
    colour word with one object only (see ``TrainingSettings.single_object_captions``)."""
    ball, box = caption.removesuffix(SCENE_SUFFIX).split(" and ", 1)
    return ball + SCENE_SUFFIX, box + SCENE_SUFFIX


STRIPE_PROBABILITY = 0.3
"""Share of boxes with stripes (the evaluation scene's striped-box appearance is a texture edit)."""
SPHERE_RADII = (0.2, 0.45)
BOX_SIDES = (0.3, 0.7)
BOX_HEIGHTS = (0.25, 0.6)
"""Ranges (world units) of the ball's radius, the box's footprint sides and its height; the evaluation scene's
0.4, 0.6 x 0.7 and 0.5 lie inside them."""
GAP = 0.05
"""Least clearance (world units) between the ball and the box, and between each and the table's rim."""
EXCLUSION_MARGIN = 0.2
"""World units (about 2 pixels at 32 px from the cameras' radius of 4): a layout whose every descriptor entry lies
within this of the evaluation layout's is redrawn."""
MAX_DRAWS = 10_000


@dataclass(frozen=True)
class RandomScene:
    """One drawn scene: where the objects stand, their colors by name, and its caption."""

    layout: Layout
    ball: str
    """Ball color, a key of :data:`PALETTE`."""
    box: str
    """Box color, a key of :data:`PALETTE`."""
    stripes: Optional[str]
    """Color of the box's stripes (a key of :data:`PALETTE`, not the box's), or None for a plain box."""

    @property
    def caption(self) -> str:
        template = STRIPED_CAPTION if self.stripes else PLAIN_CAPTION
        words = template.format(ball=self.ball, shape=self.layout.ball_shape, box=self.box, stripes=self.stripes)
        return re.sub(r"\ba (?=[aeiou])", "an ", words)

    @property
    def look(self) -> Look:
        return Look(PALETTE[self.ball], PALETTE[self.box], PALETTE[self.stripes] if self.stripes else None)


def layout_descriptor(layout: Layout) -> np.ndarray:
    """Sizes and distances that do not change when the layout is turned or mirrored about the vertical axis:
    ball radius, box footprint's short and long side, box height, ball's and box's distance from the table's
    centre, and the distance between them (world units, all in the xy plane)."""
    lo, hi = np.asarray(layout.box_min), np.asarray(layout.box_max)
    ball_xy, box_xy = np.asarray(layout.sphere_center[:2]), (lo[:2] + hi[:2]) / 2
    sides = np.sort(hi[:2] - lo[:2])
    return np.array(
        [
            layout.sphere_radius,
            sides[0],
            sides[1],
            hi[2] - lo[2],
            np.hypot(*ball_xy),
            np.hypot(*box_xy),
            np.hypot(*(ball_xy - box_xy)),
        ]
    )


def distance_to_evaluation_layout(layout: Layout) -> float:
    """Largest difference (world units) between ``layout``'s descriptor and the evaluation layout's."""
    return float(np.abs(layout_descriptor(layout) - layout_descriptor(LAYOUT)).max())


def is_excluded(layout: Layout) -> bool:
    """Whether ``layout`` is too close to the evaluation layout to be drawn."""
    return distance_to_evaluation_layout(layout) < EXCLUSION_MARGIN


def _point_in_disc(rng: np.random.Generator, radius: float) -> np.ndarray:
    r, angle = radius * math.sqrt(rng.uniform()), rng.uniform(0.0, 2.0 * math.pi)
    return np.array([r * math.cos(angle), r * math.sin(angle)])


def _draw_layout(rng: np.random.Generator) -> Layout:
    """A ball and a box standing on the table, inside its rim and apart; any layout, excluded ones too."""
    for _ in range(MAX_DRAWS):
        radius = rng.uniform(*SPHERE_RADII)
        sides = rng.uniform(*BOX_SIDES, size=2)
        height = rng.uniform(*BOX_HEIGHTS)
        ball = _point_in_disc(rng, DISC_RADIUS - radius - GAP)
        box = _point_in_disc(rng, DISC_RADIUS - float(np.hypot(*sides)) / 2 - GAP)
        nearest = np.clip(ball, box - sides / 2, box + sides / 2)  # the box's footprint point nearest the ball
        if np.hypot(*(ball - nearest)) >= radius + GAP:
            return Layout(
                (float(ball[0]), float(ball[1]), float(radius)),
                float(radius),
                (float(box[0] - sides[0] / 2), float(box[1] - sides[1] / 2), 0.0),
                (float(box[0] + sides[0] / 2), float(box[1] + sides[1] / 2), float(height)),
            )
    raise RuntimeError("no layout without overlap found")  # never met: most draws fit


def draw_scene(seed: int, index: int, cube_share: float = 0.0) -> RandomScene:
    """Scene ``index`` of ``seed``: a layout (never an excluded one, see :func:`is_excluded`) and colors.

    ``cube_share`` in [0, 1]: the chance that a cube (``Layout.ball_shape``) stands in the ball's place. It is
    drawn last and only when positive, so every scene's layout and colors are those of ``cube_share`` 0.
    """
    rng = np.random.default_rng([seed, index])
    for _ in range(MAX_DRAWS):
        layout = _draw_layout(rng)
        if not is_excluded(layout):
            break
    else:
        raise RuntimeError("every layout drawn was excluded")  # never met: about 1 draw in 10 is
    names = list(PALETTE)
    ball, box = (names[k] for k in rng.integers(len(names), size=2))
    stripes = None
    if rng.uniform() < STRIPE_PROBABILITY:
        stripes = [n for n in names if n != box][rng.integers(len(names) - 1)]
    if cube_share > 0 and rng.uniform() < cube_share:
        layout = replace(layout, ball_shape=CUBE_WORD)
    return RandomScene(layout, ball, box, stripes)


def render_scene_views(scene: RandomScene, views: int, size: int, seed: int, index: int) -> List[np.ndarray]:
    """``views`` RGBA uint8 ``size`` x ``size`` renders of ``scene`` from random cameras (radius 4, elevations
    15-60 degrees, as the evaluation scene's), quantised as its PNGs are."""
    rng = np.random.default_rng([seed, index, 1])  # cameras apart from the scene's draw: same scene, any views
    images = []
    for c2w in camera_poses(views, rng):
        rgba = render_looks(c2w, size, {"scene": scene.look}, scene.layout)["scene"]
        images.append(np.round(rgba * 255.0).astype(np.uint8))
    return images


def render_training_set(
    scenes: int, views: int, size: int, seed: int, progress=None, cube_share: float = 0.0
) -> Tuple[np.ndarray, List[str]]:
    """``[scenes * views, size, size, 4]`` RGBA uint8 renders and their captions (one per image).

    ``progress(done, total)`` is called after each scene when given; ``cube_share``: see :func:`draw_scene`.
    """
    images, captions = [], []
    for index in range(scenes):
        scene = draw_scene(seed, index, cube_share)
        images += render_scene_views(scene, views, size, seed, index)
        captions += [scene.caption] * views
        if progress is not None:
            progress(index + 1, scenes)
    return np.stack(images), captions


def rgb_on_white(rgba: np.ndarray) -> np.ndarray:
    """uint8 RGBA ``[..., 4]`` to float32 RGB in [0, 1] composited on white, as
    :func:`ids_nerf.images.read_rgb_on_white` reads the evaluation scene's PNGs."""
    x = rgba.astype(np.float32) / 255.0
    return x[..., :3] * x[..., 3:] + (1 - x[..., 3:])
