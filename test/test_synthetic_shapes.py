"""Synthetic shapes: hand-checked ground truth for every primitive, rendering exactness,
determinism, the dataset, its cache and the preview command.

Builders are fed hand-chosen geometry on a flat background (no blur) and their keypoints are
compared with coordinates computed by hand here; the image is then checked to really have the
corner there (pixel values on both sides of it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from superpoint_ros.errors import ConfigError
from superpoint_training.data.augment import AugmentConfig
from superpoint_training.data.synthetic.config import PRIMITIVES, SyntheticShapesConfig
from superpoint_training.data.synthetic.dataset import SyntheticShapesDataset, collate, worker_init
from superpoint_training.data.synthetic.primitives import SAMPLERS, render_sample, sample_cube
from superpoint_training.data.synthetic.raster import render_scene
from superpoint_training.data.synthetic.scenes import (
    checkerboard_scene,
    cube_scene,
    cube_visible_faces,
    ellipses_scene,
    lines_scene,
    polygons_scene,
    star_scene,
    stripes_scene,
)

BG = 50
SIZE = (120, 160)


def flat(value: int = BG) -> np.ndarray:
    return np.full(SIZE, value, np.uint8)


def as_set(points) -> set[tuple[float, float]]:
    return {(round(float(x), 6), round(float(y), 6)) for x, y in np.reshape(points, (-1, 2))}


# ---------------------------------------------------------------------------------------------
# rendering: sub-pixel exact coverage


def test_square_corners_cover_exactly_a_quarter_pixel():
    square = [[40, 30], [100, 30], [100, 90], [40, 90]]
    scene = polygons_scene([np.array(square, float)], [250])
    assert as_set(scene.keypoints) == as_set(square)
    im = render_scene(scene, flat(), supersample=4, blur_sigma=0.0)
    # A corner at a pixel centre covers a quarter of that pixel, an edge half of it.
    assert im[30, 40] == im[30, 100] == im[90, 100] == im[90, 40] == 50 + 200 // 4
    assert im[30, 70] == im[60, 40] == im[60, 100] == im[90, 70] == 50 + 200 // 2
    assert im[60, 70] == 250 and im[31, 41] == 250
    assert im[29, 70] == im[30, 39] == im[91, 100] == im[60, 101] == 50


@pytest.mark.parametrize("supersample", [4, 8])
def test_fractional_edge_and_area(supersample):
    # Left edge at x = 40.25: pixel 40 spans [39.5, 40.5], a quarter of it is covered.
    scene = polygons_scene([np.array([[40.25, 30], [100, 30], [100, 90], [40.25, 90]])], [250])
    im = render_scene(scene, flat(), supersample=supersample)
    assert im[60, 40] == 100 and im[60, 41] == 250
    # A slanted triangle: covered area (sum of coverage) == its area, 3800 px^2 by hand.
    tri = np.array([[20, 20], [120, 30], [60, 100]], float)
    im = render_scene(polygons_scene([tri], [250]), flat(), supersample=supersample)
    coverage = (im.astype(float) - 50) / 200
    assert abs(coverage.sum() - 3800) < 20  # within 0.1 px along the 280 px perimeter


# ---------------------------------------------------------------------------------------------
# every primitive's builder with hand-computed ground truth


def test_lines_endpoints():
    scene = lines_scene(np.array([[20, 30, 100, 30], [30, 60, 30, 100]], float), [3, 2],
                           [250, 0])  # fmt: skip
    assert as_set(scene.keypoints) == as_set([[20, 30], [100, 30], [30, 60], [30, 100]])
    im = render_scene(scene, flat(), supersample=4)
    assert im[30, 60] == 250 and im[33, 60] == 50  # a 3 px wide line centred on y = 30
    assert im[30, 20] > 150 and im[30, 16] == 50  # ends at its endpoint (round cap)
    assert im[80, 30] < 20 and im[104, 30] == 50


def test_polygon_sampled_corners_are_corners():
    for seed in range(5):
        sample = render_sample(np.random.default_rng(seed), primitive="polygon")
        kp = sample["keypoints"]
        assert 3 <= len(kp) <= 7
        im = sample["image"].astype(int)
        for x, y in np.floor(kp + 0.5).astype(int):
            patch = im[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3]
            assert patch.max() - patch.min() >= 15


def test_two_overlapping_polygons_hide_a_corner_and_add_t_junctions():
    a = np.array([[20, 20], [60, 20], [60, 60], [20, 60]], float)
    b = np.array([[40, 40], [90, 40], [90, 80], [40, 80]], float)
    scene = polygons_scene([a, b], [100, 200])
    expected = [[20, 20], [60, 20], [20, 60]]  # A's corner (60, 60) is under B
    expected += [[40, 40], [90, 40], [90, 80], [40, 80]]  # all of B (on top)
    expected += [[60, 40], [40, 60]]  # where B's edges cut A's visible edges
    assert as_set(scene.keypoints) == as_set(expected)
    im = render_scene(scene, flat(30), supersample=4)
    assert im[37, 57] == 100 and im[37, 63] == 30 and im[43, 60] == 200  # T at (60, 40)
    assert im[63, 37] == 30 and im[57, 37] == 100 and im[60, 43] == 200  # T at (40, 60)
    assert im[60, 60] == 200  # the hidden corner shows B
    assert im[40, 40] == 100 + (200 - 100) // 4  # B's corner over A


def test_a_third_polygon_hides_a_junction_and_makes_new_ones():
    a = np.array([[20, 20], [60, 20], [60, 60], [20, 60]], float)
    b = np.array([[40, 40], [90, 40], [90, 80], [40, 80]], float)
    c = np.array([[55, 35], [65, 35], [65, 45], [55, 45]], float)
    scene = polygons_scene([a, b, c], [100, 200, 0])
    expected = [[20, 20], [60, 20], [20, 60], [40, 40], [90, 40], [90, 80], [40, 80]]
    expected += [[55, 35], [65, 35], [65, 45], [55, 45]]  # C on top: all corners
    expected += [[40, 60]]  # A/B; (60, 40) is now under C
    expected += [[60, 35]]  # A/C; (60, 45) is on a part of A's edge that B hides
    expected += [[55, 40], [65, 40]]  # B/C
    assert as_set(scene.keypoints) == as_set(expected)


def test_ellipses_and_noise_have_no_keypoints():
    scene = ellipses_scene(np.array([[80, 60]]), np.array([[30, 15]]), [0.0], [220])
    assert scene.keypoints.shape == (0, 2)
    im = render_scene(scene, flat(), supersample=4)
    assert im[60, 80] == 220 and im[60, 105] == 220 and im[60, 115] == 50 and im[80, 80] == 50
    for primitive in ("ellipses", "gaussian_noise"):
        for seed in range(3):
            sample = render_sample(np.random.default_rng(seed), primitive=primitive)
            assert sample["keypoints"].shape == (0, 2)
            assert sample["keypoints"].dtype == np.float32
    noise = render_sample(np.random.default_rng(0), primitive="gaussian_noise")["image"]
    assert noise.std() > 10


def test_star_centre_and_tips():
    tips = [[120, 60], [80, 20], [50, 90]]
    scene = star_scene((80, 60), np.array(tips, float), 2.0, [200, 220, 240])
    assert as_set(scene.keypoints) == as_set([[80, 60]] + tips)
    im = render_scene(scene, flat(), supersample=4)
    assert im[60, 100] == 200 and im[40, 80] == 220  # on the branches
    assert im[60, 120] > 100 and im[60, 124] == 50  # the tip ends the branch
    assert im[20, 80] > 100 and im[16, 80] == 50
    assert im[63, 100] == 50  # beside a branch: background


def test_checkerboard_grid_points_and_junctions():
    H = np.array([[1.0, 0.0, 30.0], [0.0, 1.0, 40.0], [0.0, 0.0, 1.0]])
    colors = np.array([[0, 255, 0], [255, 0, 255]])
    scene = checkerboard_scene(2, 3, 20.0, H, colors)
    expected = [[30 + 20 * j, 40 + 20 * i] for i in range(3) for j in range(4)]
    assert as_set(scene.keypoints) == as_set(expected)
    im = render_scene(scene, flat(128), supersample=4).astype(int)
    for x, y in [(50, 60), (70, 60)]:  # inner junctions: four cells of alternating gray
        quads = [im[y - 3, x - 3], im[y - 3, x + 3], im[y + 3, x - 3], im[y + 3, x + 3]]
        assert quads[0] == quads[3] and quads[1] == quads[2] and abs(quads[0] - quads[1]) == 255
        assert abs(im[y, x] - 127.5) <= 1  # the junction pixel mixes four quarters
    assert im[37, 27] == 128 and im[43, 33] == 0  # the outer corner (30, 40)


def test_checkerboard_under_an_affine_map():
    H = np.array([[1.5, 0.2, 30.0], [0.0, 1.2, 20.0], [0.0, 0.0, 1.0]])
    scene = checkerboard_scene(2, 3, 10.0, H, np.zeros((2, 3)))
    # grid point (row 2, col 3) is board (30, 20): x = 1.5*30 + 0.2*20 + 30, y = 1.2*20 + 20
    assert np.allclose(scene.keypoints[2 * 4 + 3], [79.0, 44.0])
    assert np.allclose(scene.keypoints[0], [30.0, 20.0])
    assert np.allclose(scene.keypoints[1 * 4 + 0], [32.0, 32.0])


def test_stripes_corners():
    H = np.array([[1.0, 0.0, 30.0], [0.0, 1.0, 35.0], [0.0, 0.0, 1.0]])
    scene = stripes_scene([0, 20, 45, 70], 50.0, H, [0, 200, 100])
    expected = [[x, y] for y in (35, 85) for x in (30, 50, 75, 100)]
    assert as_set(scene.keypoints) == as_set(expected)
    im = render_scene(scene, flat(150), supersample=4)
    assert im[60, 40] == 0 and im[60, 62] == 200 and im[60, 87] == 100
    assert im[32, 40] == 150 and im[88, 62] == 150 and im[60, 103] == 150
    assert im[35, 50] == (150 * 2 + 0 + 200) // 4  # a corner pixel: half background


def test_cube_visible_vertices():
    # An orthonormal frame scaled to 30 px: (2,2,1)/3, (-2,1,2)/3, (1,-2,2)/3.
    ex, ey, ez = np.array([20, 20, 10.0]), np.array([-20, 10, 20.0]), np.array([10, -20, 20.0])
    v0 = np.array([60, 50, 0.0])
    vertices = np.array([v0 + (v & 1) * ex + (v >> 1 & 1) * ey + (v >> 2 & 1) * ez
                         for v in range(8)])  # fmt: skip
    # All three axes point towards the viewer (z > 0): faces x=1, y=1, z=1 are visible and
    # vertex 0 (at the back) is hidden.
    assert list(cube_visible_faces(vertices)) == [1, 3, 5]
    scene = cube_scene(vertices, [0, 60, 0, 140, 0, 220])
    expected = [[80, 70], [40, 60], [60, 80], [70, 30], [90, 50], [50, 40], [70, 60]]
    assert as_set(scene.keypoints) == as_set(expected)
    im = render_scene(scene, flat(30), supersample=4)
    # Around the front vertex (70, 60): the centroids of the three faces.
    assert im[65, 75] == 60 and im[60, 55] == 140 and im[45, 70] == 220
    # The hidden vertex (60, 50) projects onto the edge between faces y=1 and z=1.
    assert 140 < im[50, 60] < 220
    assert im[60, 35] == 30 and im[25, 70] == 30  # outside the silhouette


def test_sampled_boards_never_fold_through_the_horizon():
    # A perspective whose horizon crosses the board maps its far side to huge or flipped
    # coordinates and the cells to bow ties; the sampler must redraw such warps.
    cfg = SyntheticShapesConfig()
    for primitive in ("stripes", "checkerboard"):
        for seed in range(40):
            scene = SAMPLERS.get(primitive)(np.random.default_rng(seed), SIZE, 128.0, cfg)
            assert np.all(np.isfinite(scene.keypoints))
            assert np.abs(scene.keypoints).max() < 5 * max(SIZE)


def test_sampled_cube_has_seven_vertices_at_most():
    for seed in range(10):
        scene = sample_cube(np.random.default_rng(seed), SIZE, 100.0, SyntheticShapesConfig())
        assert len(scene.keypoints) == 7


# ---------------------------------------------------------------------------------------------
# sampling: every primitive, determinism, configuration


@pytest.mark.parametrize("primitive", PRIMITIVES)
def test_every_primitive_renders_with_keypoints_on_structure(primitive):
    spans = []
    for seed in range(6):
        sample = render_sample(np.random.default_rng(seed), primitive=primitive)
        image, kp = sample["image"], sample["keypoints"]
        assert image.dtype == np.uint8 and image.shape == SIZE
        assert kp.dtype == np.float32 and kp.ndim == 2 and kp.shape[1] == 2
        assert sample["primitive"] == primitive
        assert np.all(kp >= -0.5) and np.all(kp[:, 0] < 159.5) and np.all(kp[:, 1] < 119.5)
        im = image.astype(int)
        for x, y in np.floor(kp + 0.5).astype(int):
            patch = im[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3]
            spans.append(patch.max() - patch.min())
    if primitive in ("ellipses", "gaussian_noise"):
        assert not spans
    else:
        assert spans and np.mean(np.array(spans) >= 10) >= 0.97  # an intensity change there


def test_same_seed_same_sample_and_other_seed_differs():
    cfg = SyntheticShapesConfig()
    a = render_sample(np.random.default_rng(7), cfg)
    b = render_sample(np.random.default_rng(7), cfg)
    c = render_sample(np.random.default_rng(8), cfg)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(
        a["keypoints"], b["keypoints"]
    )
    assert not np.array_equal(a["image"], c["image"])


def test_configurable_size_and_supersample():
    cfg = SyntheticShapesConfig(image_size=(64, 96), supersample=2, primitives=("checkerboard",))
    sample = render_sample(np.random.default_rng(0), cfg)
    assert sample["image"].shape == (64, 96) and len(sample["keypoints"]) > 0


def test_config_from_dict_rejects_unknown_keys():
    cfg = SyntheticShapesConfig.from_dict(
        {"image_size": [240, 320], "cube": {"scale_interval": [0.5, 0.1]}, "primitives": ["cube"]}
    )
    assert cfg.image_size == (240, 320) and cfg.cube.scale_interval == (0.5, 0.1)
    assert cfg.cube.min_size_ratio == 0.2  # untouched keys keep their defaults
    with pytest.raises(ConfigError, match="supersampel"):
        SyntheticShapesConfig.from_dict({"supersampel": 2})
    with pytest.raises(ConfigError, match="cube.bogus"):
        SyntheticShapesConfig.from_dict({"cube": {"bogus": 1}})
    with pytest.raises(ConfigError, match="unknown primitive"):
        SyntheticShapesConfig.from_dict({"primitives": ["circle"]})


def test_primitive_weights_select_primitives():
    cfg = SyntheticShapesConfig(primitive_weights={"cube": 0.0, "star": 0.0},
                                primitives=("cube", "star", "lines"))  # fmt: skip
    rng = np.random.default_rng(0)
    assert {render_sample(rng, cfg)["primitive"] for _ in range(5)} == {"lines"}


# ---------------------------------------------------------------------------------------------
# dataset


def test_dataset_items_are_deterministic_and_consistent():
    ds = SyntheticShapesDataset(split="train", seed=3, length=6)
    again = SyntheticShapesDataset(split="train", seed=3, length=6)
    item = ds[2]
    assert item["image"].shape == (1, 120, 160) and item["image"].dtype == torch.float32
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert torch.equal(item["image"], again[2]["image"])
    assert not torch.equal(item["image"], ds[3]["image"])
    kp = item["keypoints"]
    kmap = item["keypoint_map"]
    assert kmap.shape == (120, 160) and torch.all(item["valid_mask"] == 1)
    ij = torch.floor(kp + 0.5).long()
    assert torch.all(kmap[ij[:, 1], ij[:, 0]] == 1)
    assert int(kmap.sum()) == len({(int(x), int(y)) for x, y in ij})
    other_split = SyntheticShapesDataset(split="val", seed=3, length=6)
    assert not torch.equal(item["image"], other_split[2]["image"])
    ds.set_epoch(1)
    assert not torch.equal(item["image"], ds[2]["image"])  # a new epoch, new train images


def test_dataset_augmentation_and_collate():
    ds = SyntheticShapesDataset(split="train", seed=0, length=4, augment=AugmentConfig())
    items = [ds[i] for i in range(4)]
    assert torch.equal(items[1]["image"], ds[1]["image"])  # augmentation is deterministic too
    assert any(float(it["valid_mask"].min()) == 0.0 for it in items)  # warped-in borders
    batch = collate(items)
    assert batch["image"].shape == (4, 1, 120, 160)
    assert batch["keypoint_map"].shape == batch["valid_mask"].shape == (4, 120, 160)
    assert batch["homography"].shape == (4, 3, 3)
    assert isinstance(batch["keypoints"], list) and len(batch["keypoints"]) == 4
    assert isinstance(batch["primitive"], list)


def test_dataloader_workers_give_the_same_batches():
    # The parent uses OpenCV's thread pool first (warps, big blurs): workers must still run.
    [SyntheticShapesDataset(augment=AugmentConfig(), length=2)[i] for i in range(2)]
    ds = SyntheticShapesDataset(split="val", seed=1, length=4)
    kwargs = dict(batch_size=2, collate_fn=collate, shuffle=False)
    ref = list(torch.utils.data.DataLoader(ds, num_workers=0, **kwargs))
    par = list(torch.utils.data.DataLoader(ds, num_workers=2, timeout=60,
                                           worker_init_fn=worker_init, **kwargs))  # fmt: skip
    for a, b in zip(ref, par):
        assert torch.equal(a["image"], b["image"])
        assert all(torch.equal(x, y) for x, y in zip(a["keypoints"], b["keypoints"]))


def test_val_cache_is_written_once_and_reused(tmp_path):
    ds = SyntheticShapesDataset(split="val", seed=5, length=5, cache_dir=tmp_path, progress=False)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz" and "val" in files[0].name
    stamp = files[0].stat().st_mtime_ns
    again = SyntheticShapesDataset(split="val", seed=5, length=5, cache_dir=tmp_path)
    assert files[0].stat().st_mtime_ns == stamp  # reused, not rewritten
    fresh = SyntheticShapesDataset(split="val", seed=5, length=5)  # no cache
    for i in range(5):
        assert torch.equal(again[i]["image"], fresh[i]["image"])
        assert torch.equal(again[i]["keypoints"], fresh[i]["keypoints"])
        assert again[i]["primitive"] == fresh[i]["primitive"] == ds[i]["primitive"]
    other = SyntheticShapesDataset(split="val", seed=6, length=5, cache_dir=tmp_path)
    assert other.cache_path != ds.cache_path and len(list(tmp_path.iterdir())) == 2
    SyntheticShapesDataset(split="train", seed=5, length=5, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # train is never cached


# ---------------------------------------------------------------------------------------------
# preview command


def test_preview_command_writes_a_grid(tmp_path):
    from superpoint_training.cli.main import main

    out = tmp_path / "grid.png"
    rc = main(["synth", "preview", "-o", str(out), "--rows", "1", "--cols", "2",
               "--primitives", "cube", "star", "--augment", "--zoom", "1"])  # fmt: skip
    assert rc == 0 and out.is_file()
    import cv2

    grid = cv2.imread(str(out))
    assert grid.shape[0] > 120 and grid.shape[1] > 2 * 160
    assert main(["synth", "preview", "-o", str(out), "--primitives", "circle"]) == 1
