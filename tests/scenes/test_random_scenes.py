import hashlib
from dataclasses import replace

import numpy as np

from ids_nerf.scenes import random_scenes as rs
from ids_nerf.scenes.blender_scene import (
    APPEARANCES,
    DISC_RADIUS,
    LAYOUT,
    Layout,
    camera_poses,
    render_views,
    trace_view,
)

DEFAULT_SCENE_SHA256 = "6e45865d82d01f2c8e483c28df19093a2816d06808037ed93fb7be40f5eff6f7"
"""Made with blender_scene.py as it was before positions and colors became parameters (commit f63c93f)."""


SHARED_GEOMETRY = ("source", "edited", "golden", "striped-box")
"""The appearances there were then (all but "cube", which came later with a geometry of its own)."""


def test_the_evaluation_scene_renders_exactly_as_before_the_refactor():
    # what the scene's PNGs and .npy files hold: 8-bit RGBA of every appearance, object ids, float32 depth
    digest = hashlib.sha256()
    for c2w in camera_poses(3, np.random.default_rng(0)):
        for size in (16, 32):
            images = render_views(c2w, size, SHARED_GEOMETRY)
            for name in SHARED_GEOMETRY:
                digest.update(np.round(images[name] * 255.0).astype(np.uint8).tobytes())
            ids, depth = trace_view(c2w, size)
            digest.update(ids.tobytes())
            digest.update(depth.tobytes())
    assert digest.hexdigest() == DEFAULT_SCENE_SHA256


def _turned(layout: Layout, quarter_turns: int, mirror: bool) -> Layout:
    """``layout`` turned by quarter turns about the vertical axis (and mirrored in x): the box stays axis-aligned."""

    def move(x, y):
        for _ in range(quarter_turns):
            x, y = -y, x
        return (-x if mirror else x), y

    corners = [
        move(x, y) for x in (layout.box_min[0], layout.box_max[0]) for y in (layout.box_min[1], layout.box_max[1])
    ]
    lo, hi = np.min(corners, axis=0), np.max(corners, axis=0)
    ball = move(*layout.sphere_center[:2])
    return Layout(
        (*ball, layout.sphere_center[2]),
        layout.sphere_radius,
        (lo[0], lo[1], layout.box_min[2]),
        (hi[0], hi[1], layout.box_max[2]),
    )


def test_the_evaluation_layout_turned_or_mirrored_is_excluded():
    for turns in range(4):
        for mirror in (False, True):
            assert rs.is_excluded(_turned(LAYOUT, turns, mirror))
    nudged = Layout((0.4, -0.1, 0.4), 0.42, (-0.7, -0.3, 0.0), (-0.1, 0.4, 0.55))
    assert rs.is_excluded(nudged)


def test_no_drawn_scene_is_near_the_evaluation_layout():
    raw = np.random.default_rng(1)
    rejected = sum(rs.is_excluded(rs._draw_layout(raw)) for _ in range(500))
    assert rejected > 0, "the raw draws never come near the evaluation layout: the check below would be vacuous"
    distances = [
        rs.distance_to_evaluation_layout(rs.draw_scene(seed, i).layout) for seed in (0, 7) for i in range(1500)
    ]
    assert min(distances) >= rs.EXCLUSION_MARGIN


def test_objects_stand_on_the_table_apart_and_inside_its_rim():
    for i in range(300):
        layout = rs.draw_scene(3, i).layout
        center, radius = np.array(layout.sphere_center), layout.sphere_radius
        lo, hi = np.array(layout.box_min), np.array(layout.box_max)
        assert center[2] == radius and lo[2] == 0.0 and hi[2] > 0
        assert np.hypot(*center[:2]) + radius <= DISC_RADIUS
        assert all(np.hypot(x, y) <= DISC_RADIUS for x in (lo[0], hi[0]) for y in (lo[1], hi[1]))
        nearest = np.clip(center[:2], lo[:2], hi[:2])
        assert np.hypot(*(center[:2] - nearest)) >= radius + rs.GAP - 1e-9


def test_scenes_depend_on_seed_and_index_only():
    assert rs.draw_scene(5, 3) == rs.draw_scene(5, 3)
    assert rs.draw_scene(5, 3) != rs.draw_scene(6, 3)
    small, small_captions = rs.render_training_set(2, 2, 8, seed=4)
    large, large_captions = rs.render_training_set(3, 2, 8, seed=4)
    assert np.array_equal(small, large[:4]) and small_captions == large_captions[:4]
    assert small.shape == (4, 8, 8, 4) and small.dtype == np.uint8


def test_captions_use_the_vocabulary_and_cover_the_evaluation_captions():
    captions = {rs.draw_scene(0, i).caption for i in range(400)}
    assert {w for c in captions for w in c.split()} <= set(rs.CAPTION_WORDS)
    assert any("stripes" in c for c in captions) and any("stripes" not in c for c in captions)
    for name, caption in APPEARANCES.items():  # a model trained on these scenes understands the evaluation prompts
        words = rs.caption_words(cubes=name == "cube")
        assert set(caption.split()) <= set(words), caption


def test_cubes_change_only_the_shape_and_add_one_word_at_the_vocabularys_end():
    plain = [rs.draw_scene(2, i) for i in range(60)]
    mixed = [rs.draw_scene(2, i, cube_share=0.5) for i in range(60)]
    cubes = [m for m in mixed if m.layout.ball_shape == "cube"]
    assert 10 < len(cubes) < 50 and all(m.layout.ball_shape in ("ball", "cube") for m in mixed)
    for p, m in zip(plain, mixed):  # the share is drawn last: layout and colors stay
        assert replace(m.layout, ball_shape="ball") == p.layout and (m.ball, m.box, m.stripes) == (
            p.ball,
            p.box,
            p.stripes,
        )
        assert m.caption == p.caption.replace(" ball ", f" {m.layout.ball_shape} ", 1)
    assert all(m.layout.ball_shape == "ball" for m in (rs.draw_scene(2, i) for i in range(60)))
    assert rs.caption_words(True) == (*rs.CAPTION_WORDS, "cube") and rs.caption_words(False) == rs.CAPTION_WORDS
    assert "cube" not in rs.CAPTION_WORDS and "ball" in rs.CAPTION_WORDS
    for m in cubes:
        assert set(m.caption.split()) <= set(rs.caption_words(True)) and " cube and " in m.caption
        ball_half, _ = rs.single_object_captions(m.caption)
        assert ball_half.endswith("cube on a table")
    # a cube covers other pixels than the ball it replaces
    [as_ball] = rs.render_scene_views(plain[0], 1, 32, seed=2, index=0)
    [as_cube] = rs.render_scene_views(
        rs.RandomScene(replace(plain[0].layout, ball_shape="cube"), *(plain[0].ball, plain[0].box, plain[0].stripes)),
        1,
        32,
        seed=2,
        index=0,
    )
    assert (as_ball != as_cube).any(-1).sum() > 20


def test_a_scene_is_rendered_in_its_colors():
    scene = rs.RandomScene(rs.draw_scene(0, 0).layout, "blue", "yellow", None)
    [rgba] = rs.render_scene_views(scene, 1, 32, seed=0, index=0)
    rgb = rs.rgb_on_white(rgba)
    assert rgb.shape == (32, 32, 3) and rgb.min() >= 0 and rgb.max() <= 1
    blue = (rgb[..., 2] > 0.3) & (rgb[..., 0] < 0.5 * rgb[..., 2]) & (rgb[..., 1] < 0.5 * rgb[..., 2])
    assert blue.sum() > 5  # the ball shows


def test_a_caption_splits_into_one_caption_per_object_in_the_vocabulary():
    assert rs.single_object_captions("a red ball and an orange box on a table") == (
        "a red ball on a table",
        "an orange box on a table",
    )
    ball, box = rs.single_object_captions("a blue ball and a green box with yellow stripes on a table")
    assert (ball, box) == ("a blue ball on a table", "a green box with yellow stripes on a table")
    for scene in (rs.draw_scene(0, i) for i in range(50)):
        for half in rs.single_object_captions(scene.caption):
            assert set(half.split()) <= set(rs.CAPTION_WORDS) and half.endswith(" on a table"), half
