"""The synthetic edit scene: determinism, ground truth consistent with nerfstudio's cameras, loader errors, CLI."""

import json

import numpy as np
import pytest
import tyro
from PIL import Image

from ids_nerf.cli.make_scene import MakeScene
from ids_nerf.errors import UserError
from ids_nerf.scenes.blender_scene import (
    BOX_MAX,
    BOX_MIN,
    DISC_RADIUS,
    SPHERE_CENTER,
    SPHERE_RADIUS,
    write_blender_scene,
)
from ids_nerf.scenes.edit_scene import (
    appearance_images,
    appearance_masks,
    depth_maps,
    edit_masks,
    mask_images,
    read_masks,
    read_scene_info,
    write_edit_scene,
)

SIZE, VIEWS = 32, 8


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return write_edit_scene(tmp_path_factory.mktemp("edit") / "scene", size=SIZE, views=VIEWS, seed=3)


def files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def rgba(path):
    return np.asarray(Image.open(path)).astype(int)


def test_layout_and_scene_json(scene):
    info = read_scene_info(scene)
    assert info["path"] == scene
    assert set(info["appearances"]) >= {"source", "edited"}
    assert info["appearances"]["source"] == "a red ball and a green box on a table"
    assert info["appearances"]["edited"] == "a blue ball and a green box on a table"
    assert info["source"] == "source" and info["edited_object_id"] == 2 == info["objects"]["ball"]
    assert (info["size"], info["views"], info["seed"]) == (SIZE, VIEWS, 3)
    assert info["splits"] == {"train": VIEWS, "val": 2, "test": 2}
    for split, count in info["splits"].items():
        meta = json.loads((scene / f"transforms_{split}.json").read_text())
        assert [f["file_path"] for f in meta["frames"]] == [f"./{split}/r_{i}" for i in range(count)]
        for name in info["appearances"]:
            paths = appearance_images(scene, name, split)
            assert [p.name for p in paths] == [f"r_{i}.png" for i in range(count)]
        assert len(mask_images(scene, split)) == len(depth_maps(scene, split)) == count
        for i in range(count):  # what nerfstudio trains on is the source appearance
            assert (scene / split / f"r_{i}.png").read_bytes() == (
                scene / "appearances" / "source" / split / f"r_{i}.png"
            ).read_bytes()
    image = Image.open(scene / "train" / "r_0.png")
    assert image.mode == "RGBA" and image.size == (SIZE, SIZE)
    mask = Image.open(scene / "masks" / "train" / "r_0.png")
    assert mask.mode == "L" and set(np.unique(np.asarray(mask))) == {0, 1, 2, 3}
    depth = np.load(scene / "depth" / "train" / "r_0.npy")
    assert depth.dtype == np.float32 and depth.shape == (SIZE, SIZE)


def test_numeric_view_order(tmp_path):
    scene = write_edit_scene(tmp_path / "s", size=8, views=12)
    names = [p.name for p in appearance_images(scene, "edited", "train")]
    assert names == [f"r_{i}.png" for i in range(12)]  # r_2 before r_10


def test_deterministic_per_seed(tmp_path):
    a = files(write_edit_scene(tmp_path / "a", size=16, views=4, seed=1))
    b = files(write_edit_scene(tmp_path / "b", size=16, views=4, seed=1))
    c = files(write_edit_scene(tmp_path / "c", size=16, views=4, seed=2))
    assert a == b
    assert a.keys() == c.keys() and a != c
    assert a["transforms_test.json"] != c["transforms_test.json"]


def test_appearances_differ_only_on_the_ball(scene):
    info = read_scene_info(scene)
    for split in ("train", "test"):
        masks = [np.asarray(Image.open(p)) for p in mask_images(scene, split)]
        images = {name: [rgba(p) for p in appearance_images(scene, name, split)] for name in info["appearances"]}
        for i, mask in enumerate(masks):
            ball = mask == 2
            padded = np.pad(ball, 1)  # colors are supersampled: pixels next to the ball may blend its color
            near_ball = np.zeros_like(ball)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    near_ball |= padded[1 + dy : 1 + dy + SIZE, 1 + dx : 1 + dx + SIZE]
            source = images["source"][i]
            assert ((source[..., 3] > 0) | ~(mask > 0)).all()  # every hit pixel centre is at least partly covered
            for name in info["appearances"]:
                other = images[name][i]
                assert (other[..., 3] == source[..., 3]).all()
                changed = (other[..., :3] != source[..., :3]).any(axis=-1)
                assert not (changed & ~near_ball).any()
                if name != "source":
                    assert changed[ball].all()


def test_depth_positive_exactly_on_objects(scene):
    for split in ("train", "val", "test"):
        for mask_path, depth_path in zip(mask_images(scene, split), depth_maps(scene, split)):
            mask, depth = np.asarray(Image.open(mask_path)), np.load(depth_path)
            assert np.isfinite(depth).all()
            assert ((depth > 0) == (mask > 0)).all()
            assert (depth[mask > 0] > 2.0).all() and (depth < 6.0).all()  # cameras at radius 4, objects within ~1


def first_hits(origins, dirs):
    """Independent ray casting in world coordinates: object id (0 none, 1 disc, 2 sphere, 3 box) and distance."""
    oc = origins - SPHERE_CENTER
    a = (dirs * dirs).sum(-1)
    b = (dirs * oc).sum(-1)
    disc = b * b - a * ((oc * oc).sum(-1) - SPHERE_RADIUS**2)
    t_sphere = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo, hi = (BOX_MIN - origins) / dirs, (BOX_MAX - origins) / dirs
        enter, leave = np.minimum(lo, hi).max(-1), np.maximum(lo, hi).min(-1)
        t_box = np.where((enter <= leave) & (enter > 0), enter, np.inf)
        t_plane = -origins[..., 2] / dirs[..., 2]
    on_plane = origins + t_plane[..., None] * dirs
    t_disc = np.where((t_plane > 0) & (np.hypot(on_plane[..., 0], on_plane[..., 1]) <= DISC_RADIUS), t_plane, np.inf)
    t = np.stack([np.full_like(t_disc, np.inf), t_disc, t_sphere, t_box])
    ids = t.argmin(0)
    return ids, t.min(0)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_nerfstudio_rays_match_masks_and_depth(scene, split):
    torch = pytest.importorskip("torch")
    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig

    count = read_scene_info(scene)["splits"][split]
    outputs = BlenderDataParserConfig(data=scene).setup().get_dataparser_outputs(split)
    cameras = outputs.cameras
    assert len(outputs.image_filenames) == len(cameras) == count
    assert outputs.image_filenames[0] == scene / split / "r_0.png"
    assert int(cameras.width[0]) == int(cameras.height[0]) == SIZE
    # blender-data applies no transform: scale 1 and identity; undo it anyway in case that ever changes
    assert outputs.dataparser_scale == 1.0
    transform = outputs.dataparser_transform.double().numpy()
    assert np.allclose(transform, np.eye(4)[:3])
    rotation, translation = transform[:, :3], transform[:, 3]
    meta = json.loads((scene / f"transforms_{split}.json").read_text())
    masks = [np.asarray(Image.open(p)) for p in mask_images(scene, split)]
    depths = [np.load(p) for p in depth_maps(scene, split)]
    for i in range(count):
        c2w = cameras.camera_to_worlds[i].double().numpy()
        assert np.allclose(c2w, np.array(meta["frames"][i]["transform_matrix"])[:3], atol=1e-6)
        with torch.no_grad():
            rays = cameras.generate_rays(camera_indices=i)
        origins = (rays.origins.double().numpy() / outputs.dataparser_scale - translation) @ rotation
        dirs = rays.directions.double().numpy() @ rotation
        ids, t = first_hits(origins, dirs)
        assert (ids == masks[i]).all(), f"{split} view {i}: {(ids != masks[i]).sum()} pixels disagree"
        hit = ids > 0
        t = np.where(hit, t, 0.0)
        camera_z = c2w[:, 2] @ rotation  # camera axis in world coordinates (identity rotation here)
        z_depth = ((origins + t[..., None] * dirs - c2w[:, 3]) * -camera_z).sum(-1)
        assert np.allclose(depths[i][hit], z_depth[hit], rtol=0, atol=1e-4)
        assert (depths[i][~hit] == 0).all()


def test_read_scene_info_errors(scene, tmp_path):
    with pytest.raises(UserError, match="does not exist.*ids-nerf make-scene"):
        read_scene_info(tmp_path / "nowhere")
    plain = write_blender_scene(tmp_path / "plain", size=8, views=2)
    with pytest.raises(UserError, match=r"missing scene\.json; make one with `ids-nerf make-scene"):
        read_scene_info(plain)
    broken = write_edit_scene(tmp_path / "broken", size=8, views=2)
    (broken / "masks" / "val" / "r_1.png").unlink()
    (broken / "appearances" / "edited" / "test" / "r_0.png").unlink()
    with pytest.raises(UserError) as err:
        read_scene_info(broken)
    message = str(err.value)
    assert "\n" not in message and "masks/val/r_1.png" in message and "appearances/edited/test/r_0.png" in message
    with pytest.raises(UserError, match="known appearances: source, edited"):
        appearance_images(scene, "purple", "train")
    with pytest.raises(UserError, match="unknown split"):
        appearance_images(scene, "edited", "training")


def test_write_blender_scene_still_works(tmp_path):
    out = write_blender_scene(tmp_path / "scene", size=32, views=6)
    meta = json.loads((out / "transforms_train.json").read_text())
    assert len(meta["frames"]) == 6 and Image.open(out / "train" / "r_5.png").size == (32, 32)


def test_make_scene_command(tmp_path, capsys):
    folder = tmp_path / "made"
    config = tyro.cli(MakeScene, args=[str(folder), "--size", "16", "--views", "3", "--seed", "5"])
    assert config.main() == folder
    assert "written to" in capsys.readouterr().out
    info = read_scene_info(folder)
    assert (info["size"], info["views"], info["seed"]) == (16, 3, 5)
    assert files(folder) == files(write_edit_scene(tmp_path / "direct", size=16, views=3, seed=5))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind
    assert MakeScene(tmp_path / "x").size == 64 and MakeScene(tmp_path / "x").views == 40

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        MakeScene(busy, size=16, views=2).main()
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    with pytest.raises(UserError, match="--views"):
        MakeScene(tmp_path / "none", views=0).main()
    assert not (tmp_path / "none").exists()


def test_the_striped_box_changes_the_box_alone_and_only_when_asked(tmp_path, scene):
    striped = write_edit_scene(tmp_path / "striped", size=SIZE, views=VIEWS, seed=3, appearances=["striped-box"])
    info = read_scene_info(striped)
    assert list(info["appearances"]) == ["source", "striped-box"]
    assert info["edited_objects"] == {"striped-box": 3}
    assert "striped-box" not in read_scene_info(scene)["appearances"]  # the default set stays as it was
    # the source views are the default scene's, byte for byte: sources trained on either are the same
    assert (striped / "train" / "r_0.png").read_bytes() == (scene / "train" / "r_0.png").read_bytes()
    changed = 0
    for source, target, mask in zip(
        appearance_images(striped, "source"), appearance_images(striped, "striped-box"), mask_images(striped)
    ):
        differs = (rgba(source) != rgba(target)).any(-1)
        ids = np.asarray(Image.open(mask))
        # colours are 2x2 supersampled, masks are not: a changed pixel is a box pixel or borders one
        assert not (differs & ~grown(ids == 3)).any()
        changed += differs.sum()
    assert changed > 20  # the stripes are visible, not sub-pixel


def grown(mask):
    """``mask`` and the 8 neighbours of its pixels."""
    out = np.zeros_like(mask)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out |= np.roll(mask, (dy, dx), axis=(0, 1))
    return out


def test_the_cube_has_its_own_masks_and_is_judged_on_the_union(tmp_path, scene):
    cube = write_edit_scene(tmp_path / "cube", size=SIZE, views=VIEWS, seed=3, appearances=["cube"])
    info = read_scene_info(cube)
    assert info["edited_objects"] == {"cube": 2} and info["own_masks"] == ["cube"]
    assert read_scene_info(scene)["own_masks"] == []
    assert (cube / "train" / "r_0.png").read_bytes() == (scene / "train" / "r_0.png").read_bytes()
    source_ids = read_masks(cube)
    assert np.array_equal(source_ids, read_masks(scene))  # the source's masks are the source's geometry
    cube_ids = np.stack(
        [np.asarray(Image.open(p)) for p in sorted((cube / "appearance_masks/cube/train").glob("*.png"))]
    )
    assert np.array_equal(appearance_masks(cube, "cube"), cube_ids)
    assert np.array_equal(appearance_masks(cube, "source"), source_ids)
    union = edit_masks(cube, "cube")
    assert np.array_equal(edit_masks(cube, "source"), source_ids)
    ball, square = source_ids == 2, cube_ids == 2
    assert (square & ~ball).sum() > 10 and (ball & ~square).sum() > 10  # corners the ball lacked, and the reverse
    assert np.array_equal(union == 2, ball | square)
    assert np.array_equal(union[~(ball | square)], source_ids[~(ball | square)])
    for index, (source, target) in enumerate(zip(appearance_images(cube, "source"), appearance_images(cube, "cube"))):
        differs = (rgba(source) != rgba(target)).any(-1)
        assert not (differs & ~grown(union[index] == 2)).any()  # nothing changes outside the union
    (cube / "appearance_masks/cube/test/r_0.png").unlink()
    with pytest.raises(UserError, match="appearance_masks/cube/test/r_0.png"):
        read_scene_info(cube)


def test_an_unknown_appearance_is_one_line(tmp_path):
    with pytest.raises(UserError, match="unknown appearance.*plaid"):
        write_edit_scene(tmp_path / "x", size=SIZE, views=2, appearances=["plaid"])
