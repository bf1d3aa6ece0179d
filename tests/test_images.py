import numpy as np
import torch

from ids_nerf.images import labeled_grid


def test_labeled_grid_upscales_each_image_under_a_header_of_column_names():
    red = torch.zeros(3, 8, 8)
    red[0] = 1
    blue = torch.zeros(3, 8, 8)
    blue[2] = 1
    grid = labeled_grid(
        [[red, blue], [blue, red]],
        ["source", "edited"],
        row_labels=["a", "b"],
        captions=[["1.0 dB", ""], ["", "2.0 dB"]],
        tile=64,
    )
    pixels = np.asarray(grid)
    height, width, _ = pixels.shape
    assert width > 2 * 64 and height > 2 * 64  # two 64-pixel tiles a row, plus labels and captions
    header = pixels[:10]
    assert (header < 100).any(), "column names are drawn in black in the header"
    # find the first tile: the top-left pure-red block, 64x64 pixels
    red_mask = (pixels[..., 0] == 255) & (pixels[..., 1] == 0) & (pixels[..., 2] == 0)
    ys, xs = np.nonzero(red_mask)
    top, left = ys.min(), xs.min()
    assert red_mask[top : top + 64, left : left + 64].all()
    blue_tile = pixels[top : top + 64, left + 64 : left + 128]
    assert (blue_tile == [0, 0, 255]).all()
    assert red_mask.sum() == 2 * 64 * 64


def test_a_long_column_name_wraps_inside_its_own_column():
    tile = torch.ones(3, 8, 8)
    short = np.asarray(labeled_grid([[tile, tile]], ["a", "b"], tile=64))
    grid = labeled_grid([[tile, tile]], ["IDS lambda 0.1 (CFG 1, t < 600, mask score)", "b"], tile=64)
    pixels = np.asarray(grid)
    assert pixels.shape[1] == short.shape[1] and pixels.shape[0] > short.shape[0]  # taller, not wider
    header = pixels[: pixels.shape[0] - 64]
    ink = (header < 100).any(axis=(0, 2))
    first, second = ink[:64], ink[64:]
    assert first.any() and second.any()
    # the second column's ink is its own "b" alone: the long name stays left of x = 64
    assert np.nonzero(second)[0].min() > 20 and (pixels[:, 60:68] > 100).all()
