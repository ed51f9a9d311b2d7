"""Offline evaluation: dataset readers, method matchers, the cached pipeline and the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from superpoint_ros.errors import ConfigError, InputError
from superpoint_training.cli.main import main as cli_main
from superpoint_training.data.sequences import load_homography
from superpoint_training.evaluation.datasets import (
    ILLUMINATION,
    VIEWPOINT,
    find_sequences,
    iter_pairs,
    load_sequence,
    make_pair,
    read_homography,
    read_image,
    sequence_kind,
    stretch,
)
from superpoint_training.evaluation.extraction import (
    cached_extraction,
    load_npz,
    method_key,
    save_npz,
)
from superpoint_training.evaluation.figures import match_figure
from superpoint_training.evaluation.methods import (
    FrontendMethod,
    OrbMethod,
    frontend_settings,
    get_method,
)
from superpoint_training.evaluation.pair_metrics import (
    evaluate_pair,
    public_record,
    sequence_records,
)
from superpoint_training.evaluation.pipeline import evaluate, evaluate_frontend
from superpoint_training.evaluation.protocol import Protocol
from superpoint_training.evaluation.report import build_report, write_report
from superpoint_training.evaluation.results import json_float, method_result, method_timing

SMALL = Protocol(
    rep_size=(96, 128), hom_size=(192, 256), rep_max_keypoints=150, hom_max_keypoints=300
)


def _write_h(path: Path, H: np.ndarray) -> None:
    path.write_text("\n".join(" ".join(f"{v:.10g}" for v in row) for row in H) + "\n")


def _write_sequence(folder: Path, layout: str, images: list[np.ndarray], Hs: list[np.ndarray]):
    folder.mkdir(parents=True)
    ext = ".pgm" if images[0].ndim == 2 and layout == "oxford" else ".ppm"
    for i, img in enumerate(images, start=1):
        name = f"img{i}{ext}" if layout == "oxford" else f"{i}.ppm"
        if img.ndim == 2 and ext == ".ppm":
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        assert cv2.imwrite(str(folder / name), img)
    for n, H in enumerate(Hs, start=2):
        _write_h(folder / (f"H1to{n}p" if layout == "oxford" else f"H_1_{n}"), H)


def _photo(size=(240, 320)) -> np.ndarray:
    from skimage import data

    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def _viewpoint_homographies(size=(240, 320)) -> list[np.ndarray]:
    h, w = size
    out = []
    for k in range(1, 6):  # growing rotation about the centre + zoom + a little perspective
        a = np.deg2rad(4 * k)
        s = 1 + 0.04 * k
        c, t = np.array([w / 2, h / 2]), np.eye(3)
        t[:2, 2] = -c
        R = np.array(
            [
                [s * np.cos(a), -s * np.sin(a), 0],
                [s * np.sin(a), s * np.cos(a), 0],
                [2e-5 * k, 1e-5 * k, 1],
            ]
        )
        back = np.eye(3)
        back[:2, 2] = c
        out.append(back @ R @ t)
    return out


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """Two generated sequences in the HPatches layout: v_astro (known warps of a real photo)
    and i_astro (the same view under changing brightness, identity homographies)."""
    root = tmp_path_factory.mktemp("hpatches")
    photo = _photo()
    Hs = _viewpoint_homographies()
    warped = [cv2.warpPerspective(photo, H, (320, 240)) for H in Hs]
    _write_sequence(root / "v_astro", "hpatches", [photo, *warped], Hs)
    lit = [
        np.clip(photo * g + b, 0, 255).astype(np.uint8)
        for g, b in ((0.6, 0), (0.8, 20), (1.2, 0), (0.5, 40), (1.4, -30))
    ]
    _write_sequence(root / "i_astro", "hpatches", [photo, *lit], [np.eye(3)] * 5)
    return root


# --- dataset readers --------------------------------------------------------------------------


def test_rescaled_homography_by_hand(tmp_path):
    img = np.zeros((60, 80), np.uint8)
    T = np.array([[1.0, 0, 10], [0, 1, 5], [0, 0, 1]])
    _write_sequence(tmp_path / "v_t", "hpatches", [img, img], [T])
    seq = load_sequence(tmp_path / "v_t")
    pair = make_pair(seq, 2, size=(120, 160))
    assert pair["image0"].shape == (120, 160) and pair["image0"].dtype == np.uint8
    assert pair["size0"] == (60, 80)
    # Twice the size (pixel centres: x' = 2x + 0.5): a 10 px shift becomes 20 px.
    np.testing.assert_allclose(pair["H_0to1"], [[1, 0, 20], [0, 1, 10], [0, 0, 1]], atol=1e-9)
    # No resize: the file's homography unchanged.
    np.testing.assert_allclose(make_pair(seq, 2)["H_0to1"], T)


def test_rescaled_homography_for_images_of_different_sizes(tmp_path):
    # Image 1 is 60x80, image 2 is 30x40, H = identity; both stretched to 120x160:
    # x' -> x = (x' + 0.5) / 2 - 0.5 -> x'' = (x + 0.5) * 4 - 0.5 = 2 x' + 0.5.
    _write_sequence(
        tmp_path / "graf",
        "oxford",
        [np.zeros((60, 80), np.uint8), np.zeros((30, 40), np.uint8)],
        [np.eye(3)],
    )
    seq = load_sequence(tmp_path / "graf")
    assert seq.layout == "oxford" and seq.kind == VIEWPOINT
    pair = make_pair(seq, 2, size=(120, 160))
    np.testing.assert_allclose(pair["H_0to1"], [[2, 0, 0.5], [0, 2, 0.5], [0, 0, 1]], atol=1e-9)
    assert pair["name1"] == "graf/img2.pgm" and pair["size1"] == (30, 40)


def test_layouts_kinds_and_discovery(tmp_path, tiny_dataset):
    img = np.zeros((32, 32), np.uint8)
    _write_sequence(tmp_path / "leuven", "oxford", [img] * 3, [np.eye(3)] * 2)
    assert load_sequence(tmp_path / "leuven").kind == ILLUMINATION
    # The rule by name (what a sequence read back from a bag gets): HPatches i_* and Oxford
    # leuven are illumination, everything else viewpoint.
    assert [sequence_kind(n) for n in ("i_ajuntament", "leuven", "Leuven")] == [ILLUMINATION] * 3
    assert [sequence_kind(n) for n in ("v_graffiti", "graf", "boat", "bikes")] == [VIEWPOINT] * 4
    assert load_sequence(tmp_path) is None  # a folder of sequences is not a sequence
    seqs = find_sequences(tiny_dataset)
    assert [(s.name, s.kind, s.layout) for s in seqs] == [
        ("i_astro", ILLUMINATION, "hpatches"),
        ("v_astro", VIEWPOINT, "hpatches"),
    ]
    assert [s.name for s in find_sequences(tiny_dataset / "v_astro")] == ["v_astro"]
    pairs = list(iter_pairs(seqs[1], size=(48, 64), targets=(2, 3, 9)))
    assert [(p["index0"], p["index1"]) for p in pairs] == [(1, 2), (1, 3)]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no sequence"):
        find_sequences(empty)
    with pytest.raises(InputError, match="does not exist"):
        find_sequences(tmp_path / "missing")


def test_sequence_folders_must_be_complete(tmp_path):
    """One folder reader for the evaluation and the bag writer: numbered images plus at least
    one ground-truth file make a sequence, which must then be complete."""
    img = np.zeros((8, 8), np.uint8)
    seq_dir = tmp_path / "v_ten"
    _write_sequence(seq_dir, "hpatches", [img] * 10, [np.eye(3)] * 9)  # two-digit indices
    seq = load_sequence(seq_dir)
    assert sorted(seq.images) == list(range(1, 11)) and seq.images[10].name == "10.ppm"
    assert sorted(seq.homographies) == list(range(2, 11))
    frames = tmp_path / "frames"  # numbered images without ground truth: not a sequence
    frames.mkdir()
    assert cv2.imwrite(str(frames / "1.png"), img) and cv2.imwrite(str(frames / "2.png"), img)
    assert load_sequence(frames) is None
    (seq_dir / "H_1_7").unlink()
    with pytest.raises(InputError, match=r"homographies missing: \['H_1_7'\]"):
        load_sequence(seq_dir)
    (seq_dir / "5.ppm").unlink()
    with pytest.raises(InputError, match="not numbered 1..K"):
        load_sequence(seq_dir)
    assert cv2.imwrite(str(seq_dir / "5.pgm"), img) and cv2.imwrite(str(seq_dir / "5.png"), img)
    with pytest.raises(InputError, match="two files for image 5"):
        load_sequence(seq_dir)
    with pytest.raises(InputError, match="no image 12"):
        seq.image(12)


def test_homography_files_raw_and_normalised(tmp_path):
    path = tmp_path / "H1to2p"
    path.write_text("2 0 4\n0 2 6\n0 0 2\n")
    assert load_homography(path).tolist() == [[2, 0, 4], [0, 2, 6], [0, 0, 2]]  # as written
    assert read_homography(path).tolist() == [[1, 0, 2], [0, 1, 3], [0, 0, 1]]  # H[2,2] = 1
    path.write_text("1 0 0 0 1 0 0 0 1")  # any white space, row-major
    assert read_homography(path).tolist() == np.eye(3).tolist()
    for text, message in (("1 2 3", "9 numbers"), ("a b c d e f g h i", "non-numeric"),
                          ("1 0 0 0 1 0 0 0 nan", "non-finite"), ("1 0 0 0 1 0 0 0 0",
                                                                   "degenerate")):  # fmt: skip
        path.write_text(text)
        with pytest.raises(InputError, match=message):
            read_homography(path)


def test_homography_from_another_reference(tiny_dataset):
    seq = load_sequence(tiny_dataset / "v_astro")
    H12, H13 = seq.homography(2), seq.homography(3)
    np.testing.assert_allclose(seq.homography(3, reference=2), H13 @ np.linalg.inv(H12))


def test_read_image_makes_colour_grey_like_cvtcolor(tmp_path):
    """Colour files become grey with ``cv2.cvtColor``'s rounding (what the node does to colour
    frames), whatever the format; grey files come back unchanged."""
    bgr = np.array([[[55, 0, 71], [217, 207, 235]]], np.uint8)
    # 0.114 B + 0.587 G + 0.299 R = 27.499 and 216.512, rounded: 27 and 217. (Decoding straight
    # to grey, cv2.IMREAD_GRAYSCALE, gives 28/217 for the PPM and 27/216 for the PNG.)
    for ext in (".ppm", ".png"):
        path = tmp_path / f"colour{ext}"
        assert cv2.imwrite(str(path), bgr)
        assert read_image(path).tolist() == [[27, 217]]
        assert read_image(path, grayscale=False).tolist() == bgr.tolist()
    grey = np.array([[0, 7, 128, 255]], np.uint8)
    assert cv2.imwrite(str(tmp_path / "grey.pgm"), grey)
    assert read_image(tmp_path / "grey.pgm").tolist() == [[0, 7, 128, 255]]
    assert read_image(tmp_path / "grey.pgm", grayscale=False).tolist() == [
        [[0] * 3, [7] * 3, [128] * 3, [255] * 3]
    ]
    with pytest.raises(InputError, match="cannot read image"):
        read_image(tmp_path / "missing.png")


# --- methods ----------------------------------------------------------------------------------


def test_orb_matcher_uses_hamming_distance():
    def bits(ones):
        b = np.zeros(256, np.float32)
        b[ones] = 1
        return b

    d0 = np.stack([bits([]), bits(slice(0, 128)), bits(slice(None))])
    d1 = np.stack([bits(slice(0, 120)), bits(slice(0, 246)), bits(slice(0, 5))])
    # Hamming distances: row 0: 120, 246, 5; row 1: 8, 118, 123; row 2: 136, 10, 251.
    orb = OrbMethod("orb", Protocol())
    matches, dist = orb.match(d0, d1)
    np.testing.assert_array_equal(matches, [[0, 2], [1, 0], [2, 1]])
    np.testing.assert_array_equal(dist, [5, 8, 10])
    # Plain nearest neighbours: d1 row 2 is the nearest of d0 row 0 even when not mutual.
    nn, nd = orb.nearest(d0[:1], d1[1:])
    np.testing.assert_array_equal(nn, [[0, 1]])
    assert nd.tolist() == [5]


def test_baselines_respect_the_point_budget():
    img = _photo()
    for name in ("sift", "orb"):
        m = get_method(name, Protocol())
        pred = m.extract(img, 50)
        assert 0 < len(pred["keypoints"]) <= 50
        assert pred["keypoints"].dtype == np.float32 and pred["descriptors"].dtype == np.float32
        assert len(pred["descriptors"]) == len(pred["keypoints"])
        assert np.all(np.diff(pred["scores"]) <= 0)  # best first
    sift = get_method("sift", Protocol()).extract(img, 50)
    np.testing.assert_allclose(np.linalg.norm(sift["descriptors"], axis=1), 1, rtol=1e-5)
    blank = get_method("orb", Protocol()).extract(np.zeros((64, 64), np.uint8), 50)
    assert blank["keypoints"].shape == (0, 2) and blank["descriptors"].shape == (0, 256)
    with pytest.raises(ConfigError, match="orb, sift"):
        get_method("surf", Protocol())


# --- pipeline ---------------------------------------------------------------------------------


def test_cache_is_reused_and_refused_when_the_data_changes(tmp_path, tiny_dataset):
    seq = load_sequence(tiny_dataset / "i_astro")
    orb = get_method("orb", SMALL)
    arrays, meta, hit = cached_extraction(orb, seq, SMALL, tmp_path)
    assert not hit and meta["protocol_key"] == SMALL.key()
    arrays2, _, hit = cached_extraction(orb, seq, SMALL, tmp_path)
    assert hit and arrays2.keys() == arrays.keys()
    np.testing.assert_array_equal(arrays2["hom_1_keypoints"], arrays["hom_1_keypoints"])
    # The cache of another protocol lives elsewhere; this one is not reused.
    other = SMALL.replace(rep_max_keypoints=100)
    _, _, hit = cached_extraction(get_method("orb", other), seq, other, tmp_path)
    assert not hit
    # A changed image invalidates the cache made from the old one.
    image = seq.images[3]
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    seq = load_sequence(seq.path)
    _, _, hit = cached_extraction(orb, seq, SMALL, tmp_path)
    assert not hit
    # A cache of an older format (v1: images made grey by imread) is not reused either.
    path = tmp_path / f"orb-{method_key(orb, SMALL)}" / "i_astro.npz"
    arrays, meta = load_npz(path)
    save_npz(path, arrays, {**meta, "format": "superpoint_ros.eval_cache.v1"})
    _, _, hit = cached_extraction(orb, seq, SMALL, tmp_path)
    assert not hit
    _, _, hit = cached_extraction(orb, seq, SMALL, tmp_path)  # and the new one is
    assert hit


def test_evaluate_cli_end_to_end(tmp_path, tiny_dataset, capsys):
    out = tmp_path / "report"
    args = [
        "evaluate",
        "--dataset",
        str(tiny_dataset),
        "--method",
        "sift",
        "--method",
        "orb",
        "-o",
        str(out),
        "--quiet",
        "--set",
        "rep_size=96x128",
        "--set",
        "hom_size=192x256",
        "--set",
        "hom_max_keypoints=300",
    ]
    assert cli_main(args) == 0
    assert "| sift |" in capsys.readouterr().out
    report = json.loads((out / "metrics.json").read_text())
    assert report["protocol"]["hom_size"] == [192, 256]
    assert report["protocol"]["rep_max_keypoints"] == 300
    assert set(report["methods"]) == {"sift", "orb"}
    for name, m in report["methods"].items():
        for key in (
            "repeatability",
            "mle",
            "homography_accuracy",
            "nn_map",
            "matching_score",
            "pairs",
            "splits",
            "sequences",
        ):
            assert key in m, (name, key)
        assert set(m["homography_accuracy"]) == {"1", "3", "5"}
        assert m["pairs"] == 10
        assert set(m["splits"]) == {"all", "illumination", "viewpoint"}
        assert m["splits"]["illumination"]["pairs"] == 5
        assert set(m["sequences"]) == {"i_astro", "v_astro"}
        assert (out / "matches" / name / "v_astro_1-4.png").is_file()
        assert m["timing"]["extracted_sequences"] == 2
    sift = report["methods"]["sift"]
    # Identity homographies under brightness changes: SIFT gets every illumination pair.
    assert sift["splits"]["illumination"]["homography_accuracy"]["3"] == 1.0
    assert sift["splits"]["viewpoint"]["homography_accuracy"]["5"] >= 0.6
    assert 0.3 < sift["splits"]["viewpoint"]["repeatability"] <= 1.0
    for png in ("accuracy_vs_threshold.png", "per_sequence.png"):
        img = cv2.imread(str(out / png))
        assert img is not None and img.shape[0] > 100
    md = (out / "report.md").read_text()
    assert "| sift |" in md and "hom_size" in md and "context only" in md and "opencv" in md
    # Second run: everything from the cache, same numbers.
    assert cli_main(args) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["methods"]["orb"]["timing"]["cached_sequences"] == 2
    assert again["methods"]["orb"]["nn_map"] == report["methods"]["orb"]["nn_map"]
    # User errors end with one line and exit 1.
    capsys.readouterr()
    base = ["evaluate", "--dataset", str(tiny_dataset), "-o", str(out), "--quiet"]
    for extra, message in (
        (["--method", "surf"], "unknown method 'surf'"),
        (["--method", "sift", "--set", "nms=2"], "unknown config key 'nms'; valid keys: border"),
    ):
        assert cli_main(base + extra) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_features_extracted_elsewhere_score_like_evaluate(tmp_path, tiny_dataset):
    """Predictions made outside ``evaluate`` (ORB called by hand, as the bench node's answers
    are) go through the public steps and give ``evaluate``'s own figures and report files."""
    p = SMALL.replace(targets=(2, 3))
    orb = get_method("orb", p)
    seqs = find_sequences(tiny_dataset)
    passes = (("rep", p.rep_size, p.rep_max_keypoints), ("hom", p.hom_size, p.hom_max_keypoints))
    records, figures = [], []
    for seq in seqs:
        preds, sizes, hom_images = {}, {}, {}
        for i in (1, 2, 3):
            full = read_image(seq.images[i])
            sizes[i] = full.shape[:2]
            hom_images[i] = stretch(full, p.hom_size)
            for name, size, k in passes:
                preds[name, i] = orb.extract(stretch(full, size), k)
        recs = sequence_records(
            orb, seq.name, seq.kind, lambda pass_, i, d=preds: d[pass_, i], seq.homography,
            sizes, p,
        )  # fmt: skip
        assert [r["pair"] for r in recs] == ["1-2", "1-3"]
        images = (hom_images[1], hom_images[2])
        keypoints = (preds["hom", 1]["keypoints"], preds["hom", 2]["keypoints"])
        figures.append(match_figure("orb", seq.name, recs[0], images, keypoints, p, tmp_path))
        records += recs
    timing = method_timing(p, len(seqs), 0, None, 0.0)
    result = method_result(orb, records, [s.name for s in seqs], p, timing)
    report = build_report(
        ["by hand"], {s.name: s.kind for s in seqs}, p, {"orb": result}, source={"n": 1}
    )
    write_report(tmp_path, report, {"orb": figures}, plots=False, title="Mine")

    offline = evaluate(
        tiny_dataset, ["orb"], tmp_path / "offline", protocol=p, cache_dir=None,
        progress=False, plots=False,
    )["methods"]["orb"]  # fmt: skip
    assert result["pair_results"] == offline["pair_results"] and len(offline["pair_results"]) == 4
    for key in ("homography_accuracy", "repeatability", "nn_map", "splits", "sequences"):
        assert result[key] == offline[key], key
    assert result["timing"]["images_per_sequence"] == 3 == offline["timing"]["images_per_sequence"]
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["source"] == {"n": 1} and written["datasets"] == ["by hand"]
    assert written["methods"]["orb"]["pairs"] == 4 and written["protocol_key"] == p.key()
    assert figures == ["matches/orb/i_astro_1-2.png", "matches/orb/v_astro_1-2.png"]
    assert all(cv2.imread(str(tmp_path / f)) is not None for f in figures)
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Mine\n") and "| orb | 4 |" in md and "v_astro_1-2" in md


def test_protocol_passes_and_images():
    p = Protocol(rep_size=(60, 80), rep_max_keypoints=7, targets=(3, 5))
    assert p.passes() == {"rep": ((60, 80), 7), "hom": ((480, 640), 1000)}
    assert p.image_indices(range(1, 5)) == [1, 3] and p.image_indices({5, 1, 3}) == [1, 3, 5]


def test_show_protocol_and_missing_options(capsys):
    assert cli_main(["evaluate", "--show-protocol", "--set", "eps=2"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["eps"] == [2.0] and shown["key"] == Protocol(eps=(2.0,)).key()
    assert cli_main(["evaluate", "--method", "sift"]) == 1
    assert "--dataset, -o" in capsys.readouterr().err


def test_evaluate_superpoint_weights_and_onnx(tmp_path, tiny_dataset, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # auto-export cache
    from superpoint_ros.frontend import FrontendConfig
    from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
    from superpoint_ros.model.weights import checkpoint_dict, load_weights, save_checkpoint
    from superpoint_ros.onnx_export import export_onnx

    torch.manual_seed(0)
    weights = save_checkpoint(
        tmp_path / "random.pt", checkpoint_dict(SuperPointNet(ModelConfig()))
    )
    onnx = export_onnx(
        load_weights(weights), tmp_path / "random.onnx", FrontendConfig(max_keypoints=200)
    )
    p = SMALL.replace(targets=(2, 3))
    report = evaluate(
        tiny_dataset / "v_astro",
        [str(weights), str(onnx)],
        tmp_path / "r",
        protocol=p,
        backend="auto",
        progress=False,
        plots=False,
    )
    assert list(report["methods"]) == ["random", "random-2"]
    pt, ox = report["methods"]["random"], report["methods"]["random-2"]
    assert pt["kind"] == "superpoint" and pt["pairs"] == 2
    assert ox["backend_used"] == "onnxruntime" and pt["backend_used"] in ("onnxruntime", "torch")
    # The .onnx was exported with 200 points: the report says it differs from the protocol.
    assert ox["protocol_deviations"]["max_keypoints"] == {"protocol": 300, "file": 200}
    for m in (pt, ox):
        assert m["nn_map"] is not None and 0 <= m["matching_score"] <= 1
        assert max(r["keypoints0"] for r in m["pair_results"]) <= 300


def test_a_loaded_frontend_scores_like_evaluate(tmp_path, tiny_dataset):
    """``evaluate_frontend`` (a front-end already loaded, as the benchmark matrix has one per
    backend and precision) and ``evaluate_pair`` give ``superpoint evaluate``'s figures."""
    torch = pytest.importorskip("torch")
    from superpoint_ros.loader import load_frontend
    from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
    from superpoint_ros.model.weights import checkpoint_dict, save_checkpoint

    torch.manual_seed(0)
    weights = save_checkpoint(
        tmp_path / "random.pt", checkpoint_dict(SuperPointNet(ModelConfig()))
    )
    p = SMALL.replace(targets=(2, 3))
    seq_dir = tiny_dataset / "v_astro"
    report = evaluate(seq_dir, [str(weights)], tmp_path / "r", protocol=p, backend="torch",
                      cache_dir=None, progress=False, plots=False)  # fmt: skip
    expected = report["methods"]["random"]
    fe = load_frontend(weights, backend="torch", config=frontend_settings(p))
    entry = evaluate_frontend(fe, seq_dir, p, name="loaded")
    assert entry["method"] == "loaded" and entry["kind"] == "frontend"
    assert entry["backend"] == "torch" and "protocol_deviations" not in entry
    for key in ("homography_accuracy", "nn_map", "repeatability", "mle", "matching_score",
                "splits", "sequences", "pair_results"):  # fmt: skip
        assert entry[key] == expected[key], key
    # one pair from the original images
    seq = find_sequences(seq_dir)[0]
    images = [read_image(seq.image(i), p.grayscale) for i in (1, 2)]
    record = public_record(evaluate_pair(FrontendMethod("x", p, fe), *images,
                                         seq.homography(2, 1), p))  # fmt: skip
    first = {k: v for k, v in expected["pair_results"][0].items() if k in record}
    assert first == {k: json_float(v) for k, v in record.items()}
    # settings other than the protocol's are reported
    fe8 = load_frontend(weights, backend="torch", config={**frontend_settings(p), "border": 8})
    assert FrontendMethod("b", p, fe8).describe()["protocol_deviations"] == {
        "border": {"protocol": 4, "file": 8}
    }


def test_sift_sanity_on_real_graffiti(shared_data, tmp_path):
    seq_dir = shared_data / "hpatches" / "v_graffiti"
    report = evaluate(
        seq_dir,
        ["sift"],
        tmp_path,
        protocol=Protocol(targets=(2,)),
        cache_dir=None,
        progress=False,
        plots=False,
    )
    pair = report["methods"]["sift"]["pair_results"][0]
    assert pair["pair"] == "1-2" and pair["kind"] == VIEWPOINT
    assert pair["correct"]["5"] is True
    assert 0.2 < pair["repeatability"] < 0.9
    assert pair["mle"] < 3


def test_methods_named_on_the_command_line_and_keypoints_in_the_report(tmp_path, tiny_dataset):
    """Two training runs' checkpoints are both "checkpoint_last" by their stem: ``NAME=PATH``
    names them; report.md shows the keypoints per image (through the real console script)."""
    import subprocess
    import sys

    torch = pytest.importorskip("torch")
    from superpoint_ros.model.superpoint import ModelConfig, SuperPointNet
    from superpoint_ros.model.weights import checkpoint_dict, save_checkpoint

    torch.manual_seed(0)
    net = SuperPointNet(ModelConfig(backbone_args={"channels": [8, 8, 16, 16]}, head_channels=16))
    a = save_checkpoint(tmp_path / "run_a" / "checkpoint_last.pt", checkpoint_dict(net))
    b = save_checkpoint(tmp_path / "run_b" / "checkpoint_last.pt", checkpoint_dict(net))
    out = tmp_path / "report"
    script = Path(sys.executable).parent / "superpoint"
    cmd = [str(script), "evaluate", "--dataset", str(tiny_dataset / "v_astro"),
           "--method", "sift", "--method", f"cpu_run={a}", "--method", f"gpu.run-2={b}",
           "-o", str(out), "--quiet", "--no-plots", "--backend", "torch",
           "--set", "rep_size=96x128", "--set", "hom_size=192x256",
           "--set", "hom_max_keypoints=300", "--set", "targets=2,3"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "metrics.json").read_text())
    assert list(report["methods"]) == ["sift", "cpu_run", "gpu.run-2"]
    table = (out / "report.md").read_text()
    assert "| method | pairs | keypoints | eps=1 |" in table
    sift = report["methods"]["sift"]
    counts = [r[k] for r in sift["pair_results"] for k in ("keypoints0", "keypoints1")]
    assert sift["keypoints"] == pytest.approx(sum(counts) / len(counts))
    assert f"| sift | 2 | {sift['keypoints']:.0f} |" in table
    # a name twice, or a name without a path: one line each
    twice = subprocess.run(cmd[:6] + ["--method", f"x={a}", "--method", f"x={b}", "-o",
                                      str(tmp_path / "r2")], capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert twice.returncode == 1 and not (tmp_path / "r2").exists()
    assert twice.stderr.strip() == (
        "superpoint evaluate: error: --method names must differ: x given twice"
    )


def test_keypoints_per_image_are_averaged_over_both_images_of_every_pair():
    from superpoint_training.evaluation import metrics as M

    base = {"repeatability": 0.5, "mle": 1.0, "nn_map": 0.5, "matching_score": 0.1,
            "corner_error": 1.0, "correct": {"3": True}}  # fmt: skip
    recs = [{**base, "keypoints0": 10, "keypoints1": 30}, {**base, "keypoints0": 20,
            "keypoints1": 40}]  # fmt: skip
    assert M.aggregate(recs, (3,))["keypoints"] == 25.0
    assert M.aggregate([base], (3,))["keypoints"] is None  # records without counts
