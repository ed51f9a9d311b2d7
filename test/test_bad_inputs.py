"""The standing bad-input suite: what a careless or hostile user can hand the real console scripts
(``superpoint ...`` and ``superpoint_node``), one row each, and the exact outcome promised in the
README ("Bad input"):

* the exit status (``superpoint``: 1 input, 2 usage, 3 system, 4 bug; ``superpoint_node``: 1);
* exactly one line on stderr, ``superpoint COMMAND: error: ...`` holding the row's text (for
  the node: exactly one ``[FATAL] ... cannot start: ...`` line), never a traceback;
* no file outside the row's requested outputs created, changed or removed: every row runs in a
  fresh copy of the inputs (its working directory, also ``$HOME``), compared file by file before
  and after.

Adding a case is adding a :class:`Row` to :data:`ROWS` (inputs come from :func:`_make_inputs`;
add a file there if a row needs a new one). Message-level bad input to the running node (bad
encodings, damaged compressed frames...) is in ``test/test_node.py``. The training rows refuse
before anything is written; ``--resume`` falling back from a truncated ``checkpoint_last.pt`` to
an older step checkpoint that loads (which trains, so is no row here) is in
``test/test_training_workflow.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

BIN = Path(sys.executable).parent
TIMEOUT = 300  # seconds per command: generous, the machine may be loaded


@dataclass(frozen=True)
class Row:
    """One bad input: ``argv`` runs in a copy of the inputs; ``outputs`` may change."""

    id: str
    argv: tuple[str, ...]
    status: int
    text: str  # must appear in the one stderr line
    outputs: tuple[str, ...] = ()  # paths (relative) the command may create or change
    program: str = "superpoint"
    absent: str = "will likely succeed"  # must NOT appear anywhere in stderr


ONNX = ("--weights", "model.onnx", "--backend", "onnxruntime")
NODE_ONNX = ("-p", "weights:=model.onnx", "-p", "backend:=onnxruntime")

ROWS: tuple[Row, ...] = (
    # ---- extract: images
    Row("extract missing image", ("extract", *ONNX, "nope.jpg", "-o", "f.npz"), 1,
        "image not found: nope.jpg"),
    Row("extract a directory", ("extract", *ONNX, "folder", "-o", "f.npz"), 1,
        "a directory is not an image: folder"),
    Row("extract truncated jpeg", ("extract", *ONNX, "truncated.jpg", "-o", "f.npz"), 1,
        "cannot read image truncated.jpg: truncated JPEG"),
    Row("extract corrupt jpeg", ("extract", *ONNX, "scrambled.jpg", "-o", "f.npz"), 1,
        "cannot read image scrambled.jpg: corrupt JPEG data"),
    Row("extract 100000x100000 header", ("extract", *ONNX, "huge.png", "-o", "f.npz"), 1,
        "PNG header says 100000x100000 = 10000000000 pixels, more than the limit"),
    Row("extract text named .png", ("extract", *ONNX, "text.png", "-o", "f.npz"), 1,
        "not an image this project reads"),
    Row("extract empty file", ("extract", *ONNX, "empty.png", "-o", "f.npz"), 1,
        "cannot read image empty.png: empty"),
    Row("extract truncated png", ("extract", *ONNX, "truncated.png", "-o", "f.npz"), 1,
        "truncated PNG"),
    # ---- extract: weights and options
    Row("extract weights missing", ("extract", "--weights", "no.pt", "photo.jpg", "-o", "f.npz"),
        1, "weights file not found: no.pt"),
    Row("extract wrong-shape state dict",
        ("extract", "--weights", "shape.pt", "--backend", "torch", "photo.jpg", "-o", "f.npz"),
        1, "weights do not fit the vgg model: size mismatch"),
    Row("extract pickle with objects",
        ("extract", "--weights", "objects.pt", "--backend", "torch", "photo.jpg", "-o", "f.npz"),
        1, "could run code when loaded, so it is refused"),
    Row("extract truncated weights",
        ("extract", "--weights", "truncated.pt", "--backend", "torch", "photo.jpg", "-o", "f.npz"),
        1, "cannot read weights truncated.pt"),
    Row("extract metadata on another graph",
        ("extract", "--weights", "grafted.onnx", "--backend", "onnxruntime", "photo.jpg", "-o",
         "f.npz"),
        1, "its graph is not a front-end export"),
    Row("extract onnx that is not onnx",
        ("extract", "--weights", "text.onnx", "--backend", "onnxruntime", "photo.jpg", "-o",
         "f.npz"),
        1, "ONNX Runtime cannot load text.onnx"),
    Row("extract unknown backend", ("extract", "--backend", "nope", "photo.jpg", "-o", "f.npz"),
        1, "nope"),
    Row("extract max-keypoints 0", ("extract", *ONNX, "--max-keypoints", "0", "photo.jpg", "-o",
                                    "f.npz"), 1, "max_keypoints must be in [1, 3840]"),
    Row("extract negative nms radius", ("extract", *ONNX, "--nms-radius", "-3", "photo.jpg", "-o",
                                        "f.npz"), 1, "nms_radius must be >= 0"),
    Row("extract threshold 2", ("extract", *ONNX, "--threshold", "2", "photo.jpg", "-o", "f.npz"),
        1, "detection_threshold must be in [0, 1)"),
    Row("extract bad resize", ("extract", *ONNX, "--resize", "10xab", "photo.jpg", "-o", "f.npz"),
        1, "bad size '10xab'"),
    Row("extract output under a file", ("extract", *ONNX, "photo.jpg", "-o", "notes.txt/f.npz"),
        1, "notes.txt is a file, not a folder"),
    Row("extract several into one npz",
        ("extract", *ONNX, "photo.jpg", "photo2.jpg", "-o", "f.npz"), 1,
        "2 images need a directory as output"),
    Row("extract several into a file", ("extract", *ONNX, "photo.jpg", "photo2.jpg", "-o",
                                        "notes.txt"), 1, "it is a file, not a folder"),
    Row("extract same stems", ("extract", *ONNX, "photo.jpg", "folder/photo.jpg", "-o", "out"), 1,
        "share a file name stem"),
    Row("extract unknown option", ("extract", "--nope", "photo.jpg", "-o", "f.npz"), 2,
        "unrecognized arguments: --nope"),
    # ---- export-onnx
    Row("export-onnx output under a file", ("export-onnx", "-o", "notes.txt/m.onnx"), 1,
        "notes.txt is a file, not a folder"),
    Row("export-onnx onto a directory", ("export-onnx", "-o", "dir.onnx"), 1,
        "cannot write dir.onnx: it is a directory"),
    Row("export-onnx not .onnx", ("export-onnx", "-o", "m.txt"), 1, "output must end with .onnx"),
    Row("export-onnx resize", ("export-onnx", "-o", "m.onnx", "--resize", "240x320"), 1,
        "--resize is applied on the host"),
    Row("export-onnx truncated weights",
        ("export-onnx", "--weights", "truncated.pt", "-o", "m.onnx"), 1,
        "cannot read weights truncated.pt"),
    # ---- evaluate
    Row("evaluate singular homography",
        ("evaluate", "--dataset", "singular", "--method", "sift", "-o", "report", "--no-plots",
         "--quiet"),
        1, "degenerate homography, singular (rank 2)", outputs=("report",)),
    Row("evaluate 100000x100000 image",
        ("evaluate", "--dataset", "hugeseq", "--method", "sift", "-o", "report", "--no-plots",
         "--quiet"),
        1, "100000x100000", outputs=("report",)),
    Row("evaluate missing dataset",
        ("evaluate", "--dataset", "nope", "--method", "sift", "-o", "report"), 1,
        "dataset folder nope does not exist"),
    Row("evaluate no method", ("evaluate", "--dataset", "good", "-o", "report"), 1,
        "evaluate needs --method"),
    Row("evaluate unknown protocol field",
        ("evaluate", "--dataset", "good", "--method", "sift", "-o", "report", "--set", "foo=1"),
        1, "unknown config key 'foo'; valid keys: border"),
    Row("evaluate unknown method",
        ("evaluate", "--dataset", "good", "--method", "surf", "-o", "report"), 1, "surf"),
    Row("evaluate report onto a file",
        ("evaluate", "--dataset", "good", "--method", "sift", "-o", "notes.txt"), 1,
        "it is a file, not a folder"),
    # ---- deployment: quantize, build-engine, benchmark --matrix
    Row("quantize missing model", ("quantize", "--onnx", "no.onnx", "--calib", "folder", "-o",
        "m.onnx"), 1, "model not found: no.onnx"),
    Row("build-engine missing onnx", ("build-engine", "--onnx", "no.onnx", "-o", "m.engine"), 1,
        "ONNX file not found: no.onnx"),
    Row("build-engine not an onnx", ("build-engine", "--onnx", "text.onnx", "-o", "m.engine"), 1,
        "text.onnx is not a readable ONNX file"),
    Row("benchmark matrix missing model", ("benchmark", "--matrix", "--models", "no.pt",
        "--sizes", "240x320", "-o", "report"), 1, "--models: model file not found: no.pt"),
    # ---- bag
    Row("bag overwrite an ordinary file",
        ("bag", "hpatches", "good", "-o", "notes.txt", "--overwrite", "--no-progress"), 1,
        "notes.txt is a file, not a bag folder; --overwrite replaces only a bag"),
    Row("bag overwrite a folder that is not a bag",
        ("bag", "hpatches", "good", "-o", "folder", "--overwrite", "--no-progress"), 1,
        "exists and is not a bag"),
    Row("bag existing bag without overwrite",
        ("bag", "hpatches", "good", "-o", "bag", "--no-progress"), 1,
        "pass --overwrite to replace it"),
    Row("bag output under a file",
        ("bag", "hpatches", "good", "-o", "notes.txt/bag", "--no-progress"), 1,
        "notes.txt is a file, not a folder"),
    Row("bag singular homography",
        ("bag", "hpatches", "singular", "-o", "new_bag", "--no-progress"), 1,
        "degenerate homography, singular (rank 2)"),
    Row("bag 100000x100000 image",
        ("bag", "hpatches", "hugeseq", "-o", "new_bag", "--no-progress"), 1, "100000x100000"),
    Row("bag corrupt jpeg frame",
        ("bag", "images", "badframes", "-o", "new_bag", "--no-progress"), 1,
        "corrupt JPEG data"),
    Row("bag images from an empty folder",
        ("bag", "images", "empty_dir", "-o", "new_bag", "--no-progress"), 1, "no image files"),
    Row("bag rate 0", ("bag", "hpatches", "good", "-o", "new_bag", "--rate", "0",
                       "--no-progress"), 1, "--rate must be > 0"),
    Row("bag missing dataset", ("bag", "hpatches", "nope", "-o", "new_bag", "--no-progress"), 1,
        "does not exist"),
    # ---- data download
    Row("data download not a url",
        ("data", "download", "hpatches", "dest", "--url", "notaurl", "--quiet"), 1,
        "cannot download 'notaurl': not an http:// or https:// URL"),
    Row("data download unknown dataset", ("data", "download", "nope", "dest"), 2,
        "invalid choice: 'nope'"),
    # ---- train (refused before anything is written: the run folders stay as they were)
    Row("train negative steps", ("train", "magicpoint", "--steps", "-5", "--output", "newrun"),
        1, "train.steps must be > 0, got -5"),
    Row("train resume all checkpoints truncated",
        ("train", "magicpoint", "--output", "cutrun", "--resume"), 1,
        "cannot resume cutrun: no checkpoint loads (checkpoint_last.pt: cannot be read"),
    Row("train resume a weights file", ("train", "magicpoint", "--output", "weightsrun",
        "--resume"), 1, "is a weights file without training state; cannot resume"),
    Row("train existing run without resume",
        ("train", "magicpoint", "--output", "weightsrun", "--steps", "2"), 1,
        "weightsrun already holds a run (checkpoints); pass --resume"),
    # ---- benchmark
    Row("benchmark network of an onnx", ("benchmark", *ONNX, "--network", "--runs", "2"), 1,
        "model.onnx is a whole front-end graph"),
    # ---- superpoint_node: start-up
    Row("node weights missing", ("-p", "weights:=no.onnx"), 1, "weights file not found",
        program="superpoint_node"),
    Row("node metadata on another graph",
        ("-p", "weights:=grafted.onnx", "-p", "backend:=onnxruntime"), 1,
        "its graph is not a front-end export", program="superpoint_node"),
    Row("node pickle with objects", ("-p", "weights:=objects.pt", "-p", "backend:=torch"), 1,
        "could run code when loaded", program="superpoint_node"),
    Row("node wrong-shape state dict", ("-p", "weights:=shape.pt", "-p", "backend:=torch"), 1,
        "weights do not fit", program="superpoint_node"),
    Row("node max_keypoints 0", (*NODE_ONNX, "-p", "max_keypoints:=0"), 1, "max_keypoints",
        program="superpoint_node"),
    Row("node int for a double", (*NODE_ONNX, "-p", "match_ratio:=1"), 1, "match_ratio",
        program="superpoint_node"),
    Row("node bad resize", (*NODE_ONNX, "-p", "resize:=abc"), 1, "parameter resize",
        program="superpoint_node"),
)  # fmt: skip


# ------------------------------------------------------------------------------ inputs


def _png_header_claiming(height: int, width: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + bytes(4)


def _write_sequence(folder: Path, photo: np.ndarray, H_last: np.ndarray | None = None) -> None:
    """An HPatches sequence of three small PNGs and H_1_2, H_1_3 (``H_last`` for H_1_3)."""
    folder.mkdir(parents=True)
    for n in (1, 2, 3):
        cv2.imwrite(str(folder / f"{n}.png"), np.roll(photo, 3 * n, axis=1))
    shift = np.array([[1, 0, 3], [0, 1, 0], [0, 0, 1]], float)
    np.savetxt(folder / "H_1_2", shift)
    np.savetxt(folder / "H_1_3", shift if H_last is None else H_last)


def _make_inputs(root: Path) -> None:
    """Every input file a row refers to (relative to the row's working directory)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from superpoint_ros.frontend import DEFAULT_WEIGHTS, FrontendConfig
    from superpoint_ros.model.weights import load_weights
    from superpoint_ros.onnx_export import export_onnx

    skimage = pytest.importorskip("skimage.data")
    photo = cv2.resize(skimage.camera(), (160, 120), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(skimage.camera(), (320, 240)),
                            [cv2.IMWRITE_JPEG_QUALITY, 90])  # fmt: skip
    assert ok
    jpeg = jpeg.tobytes()
    (root / "photo.jpg").write_bytes(jpeg)
    (root / "photo2.jpg").write_bytes(jpeg)
    (root / "folder").mkdir()
    (root / "folder" / "photo.jpg").write_bytes(jpeg)
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    scrambled = bytearray(jpeg)
    middle = len(jpeg) // 2
    scrambled[middle : middle + 2000] = (
        np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    )
    (root / "scrambled.jpg").write_bytes(bytes(scrambled))
    (root / "huge.png").write_bytes(_png_header_claiming(100_000, 100_000))
    (root / "text.png").write_text("this is not an image\n")
    (root / "text.onnx").write_text("this is not a model\n")
    (root / "empty.png").write_bytes(b"")
    ok, png = cv2.imencode(".png", photo)
    (root / "truncated.png").write_bytes(png.tobytes()[: len(png) // 2])
    (root / "notes.txt").write_text("a file the user cares about\n")
    (root / "dir.onnx").mkdir()
    (root / "empty_dir").mkdir()
    (root / "home").mkdir()

    # weights: the packaged model exported, truncated, with a wrong shape, with objects
    weights = load_weights(DEFAULT_WEIGHTS)
    export_onnx(weights, root / "model.onnx", FrontendConfig())
    data = DEFAULT_WEIGHTS.read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 2])
    checkpoint = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    state = dict(checkpoint["model"])
    first = next(k for k, v in state.items() if v.ndim == 4)
    state[first] = torch.zeros(3, 3, 3, 3)
    torch.save({**checkpoint, "model": state}, root / "shape.pt")
    torch.save({"model": state, "extra": argparse.Namespace(x=1)}, root / "objects.pt")
    # training runs: every checkpoint cut short (a full disk); a weights file as a checkpoint
    (root / "cutrun").mkdir()
    (root / "cutrun" / "checkpoint_last.pt").write_bytes(data[: len(data) // 2])
    (root / "cutrun" / "checkpoint_step_000002.pt").write_bytes(data[: len(data) // 3])
    (root / "weightsrun").mkdir()
    shutil.copyfile(DEFAULT_WEIGHTS, root / "weightsrun" / "checkpoint_last.pt")

    # an ONNX graph that is not a front-end, carrying a front-end's metadata
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["out"])], "other",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, "h", "w"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, "h", "w"])],
    )  # fmt: skip
    other = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    other.ir_version = onnx.load(str(root / "model.onnx")).ir_version
    for prop in onnx.load(str(root / "model.onnx")).metadata_props:
        other.metadata_props.add(key=prop.key, value=prop.value)
    onnx.save(other, str(root / "grafted.onnx"))

    # datasets
    _write_sequence(root / "good" / "v_good", photo)
    rank2 = np.array([[1, 2, 0], [2, 4, 0], [0, 0, 1]], float)  # rows 1 and 2 dependent
    _write_sequence(root / "singular" / "v_singular", photo, rank2)
    _write_sequence(root / "hugeseq" / "v_huge", photo)
    (root / "hugeseq" / "v_huge" / "2.png").write_bytes(_png_header_claiming(100_000, 100_000))
    (root / "badframes").mkdir()
    (root / "badframes" / "000001.jpg").write_bytes(jpeg)
    (root / "badframes" / "000002.jpg").write_bytes(bytes(scrambled))
    from superpoint_training.bags.writer import find_sequences, write_hpatches_bag

    write_hpatches_bag(find_sequences(root / "good"), root / "bag")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_input_files")
    _make_inputs(root)
    return root


def _snapshot(root: Path) -> dict[str, str]:
    """relative path -> what it is (a folder, a link target, a file's SHA-256)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _changed(before: dict[str, str], after: dict[str, str], outputs: tuple[str, ...]) -> list:
    """Paths created, changed or removed that are neither a requested output nor inside one."""
    diff = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}

    def allowed(p: str) -> bool:
        return any(p == o or p.startswith(o.rstrip("/") + "/") for o in outputs)

    return sorted(p for p in diff if not allowed(p))


# ------------------------------------------------------------------------------ the suite


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, inputs: Path, tmp_path: Path):
    exe = BIN / row.program
    if not exe.exists():
        pytest.skip(f"{exe} is not installed (pip install -e .)")
    if row.program == "superpoint_node":
        pytest.importorskip("rclpy")
    world = tmp_path / "world"
    shutil.copytree(inputs, world, symlinks=True)
    before = _snapshot(world)
    env = dict(
        os.environ,
        HOME=str(world / "home"),  # caches and dotfiles would show up as changes
        ROS_LOG_DIR=str(tmp_path / "ros_log"),  # ROS' own log files: expected, not ours
        ROS_DOMAIN_ID=str(120 + os.getpid() % 80),
        PYTHONWARNINGS="ignore::DeprecationWarning",
    )
    env.pop("SUPERPOINT_DEBUG", None)
    argv = [str(exe), *(("--ros-args",) if row.program == "superpoint_node" else ()), *row.argv]
    done = subprocess.run(
        argv, cwd=world, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    err = done.stderr
    lines = [line for line in err.splitlines() if line.strip()]
    assert done.returncode == row.status, (done.returncode, err)
    assert "Traceback" not in err and row.absent not in err, err
    if row.program == "superpoint_node":
        fatal = [line for line in (done.stdout + err).splitlines() if "[FATAL]" in line]
        assert len(fatal) == 1 and "cannot start" in fatal[0] and row.text in fatal[0], (
            done.stdout + err
        )
    else:
        if row.status == 2:  # argparse: the usage, then its own one error line
            assert lines[0].startswith("usage: superpoint"), err
            assert sum("error:" in line for line in lines) == 1, err
        else:
            assert len(lines) == 1, err  # exactly one line
            assert lines[-1].startswith(f"superpoint {row.argv[0]}: error: "), err
        assert row.text in lines[-1], err
    assert _changed(before, _snapshot(world), row.outputs) == [], err


def test_every_row_names_a_real_input(inputs: Path):
    """A row whose input file is missing by mistake would test "file not found" by accident."""
    missing_on_purpose = {"nope.jpg", "no.pt", "no.onnx", "m.onnx", "notes.txt/m.onnx", "nope",
                          "newrun"}  # fmt: skip
    folders = {"folder", "good", "singular", "hugeseq", "badframes", "empty_dir", "bag",
               "cutrun", "weightsrun"}  # fmt: skip
    for row in ROWS:
        for arg in row.argv:
            value = arg.split(":=", 1)[-1]
            if value in missing_on_purpose:
                continue
            if value.endswith((".jpg", ".png", ".pt", ".onnx")) or value in folders:
                assert (inputs / value).exists(), (row.id, value)


# ------------------------------------------------------------------- the last line of defence


@pytest.mark.parametrize(
    ("raised", "status", "text"),
    [
        (
            RuntimeError("boom\nsecond line"),
            4,
            "superpoint extract: internal error: RuntimeError: boom second line; this is a bug, "
            "please report it",
        ),
        (
            PermissionError(13, "Permission denied", "/x/y"),
            3,
            "superpoint extract: error: Permission denied: /x/y",
        ),
        (MemoryError(), 3, "superpoint extract: error: out of memory"),
        (KeyboardInterrupt(), 130, "superpoint extract: interrupted"),
    ],
)
def test_last_line_of_defence(monkeypatch, capsys, raised, status, text):
    """Whatever a command raises ends in one line naming the command (and the exception, and
    where to report a bug) and an exit status by kind; the traceback only with --debug or
    SUPERPOINT_DEBUG=1. (The command is replaced by one that raises: there is no known bug
    left to trigger it for real.)"""
    from superpoint_training.cli import extract
    from superpoint_training.cli.main import main

    def run(args):
        raise raised

    monkeypatch.setattr(extract, "run", run)
    monkeypatch.delenv("SUPERPOINT_DEBUG", raising=False)
    assert main(["extract", "x.jpg", "-o", "y.npz"]) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(text) and "Traceback" not in err, err
    if status == 4:
        assert "--debug" in err
    for debug_argv, env in ((["extract", "x.jpg", "-o", "y.npz", "--debug"], None),
                            (["extract", "x.jpg", "-o", "y.npz"], "1")):  # fmt: skip
        if env:
            monkeypatch.setenv("SUPERPOINT_DEBUG", env)
        assert main(debug_argv) == status
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and err.strip().splitlines()[
            -1
        ].startswith(text.split(";")[0]), err
