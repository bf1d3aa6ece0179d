"""LLFF -> nerfstudio conversion: round trip from known OpenGL cameras, bad input, nerfstudio parsing, the scripts."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ids_nerf.data.llff import llff_to_transforms, read_poses_bounds, write_transforms
from ids_nerf.errors import UserError

REPO = Path(__file__).resolve().parents[2]
FULL_W, FULL_H, FOCAL = 64, 48, 55.0
SMALL_W, SMALL_H = FULL_W // 4, FULL_H // 4
BOUNDS = np.array([[1.5, 9.0], [1.7, 8.5], [1.4, 10.0], [2.0, 7.5]])


def opengl_look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """4x4 camera-to-world, OpenGL convention: columns right, up, backwards (camera looks down -Z), centre."""
    eye, target, up = (np.asarray(v, dtype=float) for v in (eye, target, up))
    backwards = (eye - target) / np.linalg.norm(eye - target)
    right = np.cross(up, backwards)
    right /= np.linalg.norm(right)
    true_up = np.cross(backwards, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, backwards, eye
    return c2w


KNOWN_C2W = np.stack(
    [
        opengl_look_at((0.0, 0.0, 4.0), (0.0, 0.0, 0.0)),
        opengl_look_at((0.6, 0.2, 3.9), (0.0, 0.1, 0.0)),
        opengl_look_at((-0.5, -0.3, 4.1), (0.1, 0.0, -0.2)),
        opengl_look_at((0.3, 0.5, 3.5), (0.0, 0.0, 0.5), up=(0.1, 1.0, 0.0)),
    ]
)


def to_llff_row(c2w: np.ndarray, height: float, width: float, focal: float, near: float, far: float) -> np.ndarray:
    """The test's own inverse: an OpenGL c2w + intrinsics + bounds as one 17-value poses_bounds.npy row.

    LLFF's columns are [down, right, backwards]: down is minus the OpenGL up, right and backwards are shared.
    """
    right, up, backwards, centre = c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3]
    matrix = np.zeros((3, 5))
    matrix[:, 0] = -up
    matrix[:, 1] = right
    matrix[:, 2] = backwards
    matrix[:, 3] = centre
    matrix[:, 4] = (height, width, focal)
    return np.concatenate([matrix.reshape(-1), [near, far]])


def _save_image(path: Path, width: int, height: int, shade: int) -> None:
    pixels = np.full((height, width, 3), shade, dtype=np.uint8)
    pixels[: height // 2, : width // 2] = (200, 40, 40)
    Image.fromarray(pixels).save(path)


def make_scene(root: Path) -> Path:
    """An LLFF scene: poses_bounds.npy, images/ (full size, LLFF-style camera names), images_4/ (renamed, 1/4)."""
    scene = root / "toy"
    (scene / "images").mkdir(parents=True)
    (scene / "images_4").mkdir()
    rows = [to_llff_row(c2w, FULL_H, FULL_W, FOCAL, *bounds) for c2w, bounds in zip(KNOWN_C2W, BOUNDS)]
    np.save(scene / "poses_bounds.npy", np.stack(rows))
    for i in range(len(KNOWN_C2W)):
        _save_image(scene / "images" / f"IMG_{i + 1:04d}.png", FULL_W, FULL_H, 30 * i)
        _save_image(scene / "images_4" / f"image{i:03d}.png", SMALL_W, SMALL_H, 30 * i)
    (scene / "images" / "notes.txt").write_text("not an image")  # ignored: only .png/.jpg/.jpeg count
    return scene


@pytest.fixture
def scene(tmp_path) -> Path:
    return make_scene(tmp_path)


def _assert_one_line_user_error(excinfo, *fragments: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message and message
    for fragment in fragments:
        assert fragment in message, message


def test_read_poses_bounds_hand_checked(tmp_path):
    """An LLFF camera with down = -Y, right = +X, backwards = +Z is the OpenGL identity pose."""
    row = np.array([0, 1, 0, 2.0, 480, -1, 0, 0, 3.0, 640, 0, 0, 1, 4.0, 500, 0.5, 20.0])
    np.save(tmp_path / "poses_bounds.npy", row[None])
    c2w, hwf, bounds = read_poses_bounds(tmp_path / "poses_bounds.npy")
    expected = np.array([[1.0, 0, 0, 2.0], [0, 1.0, 0, 3.0], [0, 0, 1.0, 4.0]])
    np.testing.assert_allclose(c2w[0], expected, atol=0)
    np.testing.assert_allclose(hwf[0], [480, 640, 500])
    np.testing.assert_allclose(bounds[0], [0.5, 20.0])


def test_read_poses_bounds_round_trip(scene):
    c2w, hwf, bounds = read_poses_bounds(scene / "poses_bounds.npy")
    assert c2w.shape == (4, 3, 4) and hwf.shape == (4, 3) and bounds.shape == (4, 2)
    np.testing.assert_allclose(c2w, KNOWN_C2W[:, :3, :4], atol=1e-6)
    np.testing.assert_allclose(hwf, np.tile([FULL_H, FULL_W, FOCAL], (4, 1)))
    np.testing.assert_allclose(bounds, BOUNDS)
    # proper rotations: orthonormal with determinant +1 (no handedness flip)
    rotations = c2w[:, :, :3]
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), np.tile(np.eye(3), (4, 1, 1)), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-9)


@pytest.mark.parametrize("downscale", [None, 1])
def test_full_resolution_transforms(scene, downscale):
    transforms = llff_to_transforms(scene, downscale)
    assert transforms["camera_model"] == "PINHOLE"
    assert (transforms["w"], transforms["h"]) == (FULL_W, FULL_H)
    np.testing.assert_allclose(
        [transforms["fl_x"], transforms["fl_y"], transforms["cx"], transforms["cy"]],
        [FOCAL, FOCAL, FULL_W / 2, FULL_H / 2],
        atol=1e-6,
    )
    frames = transforms["frames"]
    assert [f["file_path"] for f in frames] == [f"images/IMG_{i:04d}.png" for i in range(1, 5)]
    np.testing.assert_allclose(np.array([f["transform_matrix"] for f in frames]), KNOWN_C2W, atol=1e-6)
    np.testing.assert_allclose(np.array([f["llff_bounds"] for f in frames]), BOUNDS)
    np.testing.assert_allclose(np.array(transforms["applied_transform"]), np.eye(4)[:3])


def test_downscaled_transforms(scene):
    transforms = llff_to_transforms(scene, 4)
    assert (transforms["w"], transforms["h"]) == (SMALL_W, SMALL_H)
    np.testing.assert_allclose(
        [transforms["fl_x"], transforms["fl_y"], transforms["cx"], transforms["cy"]],
        [FOCAL / 4, FOCAL / 4, SMALL_W / 2, SMALL_H / 2],
        atol=1e-6,
    )
    frames = transforms["frames"]
    assert [f["file_path"] for f in frames] == [f"images_4/image{i:03d}.png" for i in range(4)]
    np.testing.assert_allclose(np.array([f["transform_matrix"] for f in frames]), KNOWN_C2W, atol=1e-6)


def test_per_frame_focal_when_poses_disagree(tmp_path):
    scene = make_scene(tmp_path)
    array = np.load(scene / "poses_bounds.npy")
    array[2, 14] = 60.0  # focal of the third camera (row-major 3x5: element [2, 4])
    np.save(scene / "poses_bounds.npy", array)
    transforms = llff_to_transforms(scene, 4)
    assert "fl_x" not in transforms
    focals = [f["fl_x"] for f in transforms["frames"]]
    np.testing.assert_allclose(focals, [FOCAL / 4, FOCAL / 4, 15.0, FOCAL / 4])


def test_write_transforms(scene):
    path = write_transforms(scene, downscale=4)
    assert path == scene / "transforms.json"
    written = json.loads(path.read_text())
    assert written["frames"][0]["file_path"] == "images_4/image000.png"
    mtime = path.stat().st_mtime_ns
    assert write_transforms(scene, downscale=4) == path  # same content: left alone
    assert path.stat().st_mtime_ns == mtime
    with pytest.raises(UserError) as excinfo:
        write_transforms(scene, downscale=1)
    _assert_one_line_user_error(excinfo, "transforms.json", "--force")
    write_transforms(scene, downscale=1, force=True)
    assert json.loads(path.read_text())["frames"][0]["file_path"] == "images/IMG_0001.png"
    other = write_transforms(scene, downscale=4, out_name="transforms_4.json")
    assert other == scene / "transforms_4.json" and other.exists()


def test_missing_poses_bounds(scene):
    (scene / "poses_bounds.npy").unlink()
    with pytest.raises(UserError) as excinfo:
        llff_to_transforms(scene, 4)
    _assert_one_line_user_error(excinfo, "poses_bounds.npy")


def test_missing_scene_folder(tmp_path):
    with pytest.raises(UserError) as excinfo:
        llff_to_transforms(tmp_path / "nowhere")
    _assert_one_line_user_error(excinfo, "nowhere")


def test_malformed_poses_bounds(scene):
    np.save(scene / "poses_bounds.npy", np.zeros((4, 15)))
    with pytest.raises(UserError) as excinfo:
        llff_to_transforms(scene)
    _assert_one_line_user_error(excinfo, "(4, 15)", "[N, 17]")


def test_image_count_mismatch(scene):
    (scene / "images_4" / "image003.png").unlink()
    with pytest.raises(UserError) as excinfo:
        llff_to_transforms(scene, 4)
    _assert_one_line_user_error(excinfo, "3 images", "4 poses")


def test_missing_downscale_folder(scene):
    with pytest.raises(UserError) as excinfo:
        llff_to_transforms(scene, 8)
    _assert_one_line_user_error(excinfo, "images_8", "images, images_4")


def test_wrong_aspect_ratio(scene):
    for path in (scene / "images_4").iterdir():
        Image.new("RGB", (SMALL_W, SMALL_W)).save(path)
    with pytest.raises(UserError) as excinfo:
        llff_to_transforms(scene, 4)
    _assert_one_line_user_error(excinfo, "aspect ratio")


def test_nerfstudio_parses_written_transforms(scene):
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    write_transforms(scene, downscale=4)
    parser = NerfstudioDataParserConfig(data=scene, downscale_factor=1, eval_mode="all").setup()
    outputs = parser.get_dataparser_outputs(split="train")
    cameras = outputs.cameras
    assert len(cameras) == len(KNOWN_C2W)
    assert [Path(p).relative_to(scene).as_posix() for p in outputs.image_filenames] == [
        f"images_4/image{i:03d}.png" for i in range(4)
    ]
    assert cameras.width.flatten().tolist() == [SMALL_W] * 4
    assert cameras.height.flatten().tolist() == [SMALL_H] * 4
    np.testing.assert_allclose(cameras.fx.flatten().numpy(), FOCAL / 4, rtol=1e-6)
    np.testing.assert_allclose(cameras.cx.flatten().numpy(), SMALL_W / 2, rtol=1e-6)
    # nerfstudio re-orients and rescales, but relative rotations between cameras are preserved
    rotations = cameras.camera_to_worlds[:, :3, :3].double().numpy()
    relative = rotations[0].T @ rotations[1]
    expected = KNOWN_C2W[0, :3, :3].T @ KNOWN_C2W[1, :3, :3]
    np.testing.assert_allclose(relative, expected, atol=1e-5)


def _run_script(name: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "data_scripts" / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_llff_to_nerfstudio_script(scene):
    done = _run_script("llff_to_nerfstudio.py", str(scene))
    assert done.returncode == 0, done.stderr
    assert json.loads((scene / "transforms.json").read_text())["w"] == SMALL_W
    (scene / "poses_bounds.npy").unlink()
    done = _run_script("llff_to_nerfstudio.py", str(scene))
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1


def test_download_llff_from_local_zip(tmp_path):
    make_scene(tmp_path / "src" / "nerf_llff_data")
    archive = tmp_path / "nerf_llff_data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "src").rglob("*")):
            zf.write(path, path.relative_to(tmp_path / "src").as_posix())
    out = tmp_path / "llff"
    done = _run_script("download_llff.py", "--zip", str(archive), "--out", str(out))
    assert done.returncode == 0, done.stderr
    transforms = json.loads((out / "toy" / "transforms.json").read_text())
    assert transforms["frames"][0]["file_path"] == "images_4/image000.png"
    assert sorted(p.name for p in out.iterdir()) == ["toy"]  # no leftovers from unpacking


def test_download_llff_fails_cleanly_offline(tmp_path):
    # port 9 (discard) on localhost: refused at once, like any unreachable URL here
    done = _run_script("download_llff.py", "--url", "http://127.0.0.1:9/nerf_llff_data.zip", "--out", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith("error: could not download") and done.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # no partial archive left behind


def test_download_llff_rejects_non_zip(tmp_path):
    page = tmp_path / "page.zip"
    page.write_text("<html>Google Drive can't scan this file for viruses</html>")
    done = _run_script("download_llff.py", "--zip", str(page), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "not a zip archive" in done.stderr and done.stderr.count("\n") == 1
