"""``superpoint_ros.image_io``, the one image reader: sizes from headers before decoding, damaged
JPEG/PNG/PNM refused (libjpeg's warnings turned into refusals, never printed), pixels as stored
or as the front-end takes them (colour made grey by ``cv2.cvtColor``).

Damaged copies are made in the test: of synthetic images everywhere, and of real photos from
``../shared/data`` where it exists (skipped with the reason elsewhere).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest

from superpoint_ros.errors import ImageReadError, InputError
from superpoint_ros.image_io import (
    check_jpeg,
    decode_image,
    header_size,
    read_gray,
    read_image,
    read_image_file,
)


def _photo(shape=(96, 128)) -> np.ndarray:
    """A textured BGR picture (JPEG-compresses like a photo: many non-zero coefficients)."""
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), shape[::-1])
    return cv2.add(base, rng.integers(0, 40, (*shape, 3), dtype=np.uint8))


def _encode(ext: str, image: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def _scrambled(data: bytes, count: int, seed: int = 0) -> bytes:
    """``count`` random bytes written over the middle of ``data``."""
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    start = len(out) // 2
    out[start : start + count] = rng.integers(0, 256, count, dtype=np.uint8).tobytes()
    return bytes(out)


# ------------------------------------------------------------------------------ headers


def test_header_sizes_of_every_format_without_decoding():
    image = _photo((37, 53))
    for ext, fmt in (
        (".jpg", "JPEG"), (".png", "PNG"), (".ppm", "PNM"), (".bmp", "BMP"), (".tiff", "TIFF"),
        (".webp", "WebP"),
    ):  # fmt: skip
        assert header_size(_encode(ext, image)) == (fmt, 37, 53), ext
    assert header_size(_encode(".pgm", image[..., 0]))[1:] == (37, 53)


def _png_header_claiming(height: int, width: int) -> bytes:
    """A PNG signature and IHDR chunk announcing ``height x width``, then nothing."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0"


def test_oversize_is_refused_from_the_header_before_decoding(tmp_path):
    # 100000 x 100000 would be 10 GB of pixels: refused from its 33 header bytes
    with pytest.raises(ImageReadError, match=r"100000x100000 = 10000000000 pixels, more than"):
        decode_image(_png_header_claiming(100_000, 100_000))
    # a real file over a small limit, and the same file under it
    path = tmp_path / "small.png"
    path.write_bytes(_encode(".png", _photo((30, 40))))
    with pytest.raises(ImageReadError, match=r"small.png: PNG header says 30x40 = 1200 pixels"):
        read_image_file(path, max_pixels=1199)
    assert read_image_file(path, max_pixels=1200).shape == (30, 40, 3)
    jpeg = _encode(".jpg", _photo((30, 40)))
    with pytest.raises(ImageReadError, match="JPEG header says 30x40"):
        decode_image(jpeg, max_pixels=1000)


def test_unknown_format_empty_missing_and_directory(tmp_path):
    with pytest.raises(ImageReadError, match="not an image this project reads .readable: JPEG"):
        decode_image(b"GIF89a and so on")
    with pytest.raises(ImageReadError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageReadError, match=r"cannot read image .*nothing.png: no such file"):
        read_image(tmp_path / "nothing.png")
    with pytest.raises(ImageReadError, match="it is a directory, not an image file"):
        read_image(tmp_path)
    assert issubclass(ImageReadError, InputError)  # the CLI and the node treat it as bad input


# ------------------------------------------------------------------------------ damage


def test_truncated_and_scrambled_jpeg_are_refused_good_ones_decode():
    good = _encode(".jpg", _photo(), cv2.IMWRITE_JPEG_QUALITY, 90)
    assert decode_image(good).shape == (96, 128, 3)
    check_jpeg(good)
    check_jpeg(good + b"camera trailer after EOI")  # bytes after the end marker are allowed
    for cut in (len(good) // 3, len(good) - 2, 200):
        with pytest.raises(ImageReadError, match="truncated JPEG"):
            decode_image(good[:cut])
    with pytest.raises(ImageReadError, match="corrupt JPEG|truncated JPEG"):
        decode_image(_scrambled(good, 500))


@pytest.mark.parametrize(
    "params",
    [
        [cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
        [cv2.IMWRITE_JPEG_RST_INTERVAL, 2],
        [cv2.IMWRITE_JPEG_OPTIMIZE, 1],
    ],  # fmt: skip
    ids=["progressive", "restart markers", "optimised tables"],
)
def test_jpeg_variants_pass_the_structure_check_and_their_halves_do_not(params):
    data = _encode(".jpg", _photo(), *params)
    np.testing.assert_array_equal(
        decode_image(data), cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    )
    with pytest.raises(ImageReadError, match="truncated JPEG"):
        decode_image(data[: len(data) // 2])


def test_truncated_png_and_pnm_are_refused():
    png = _encode(".png", _photo())
    with pytest.raises(ImageReadError, match="truncated PNG"):
        decode_image(png[: len(png) // 2])
    pgm = _encode(".pgm", _photo()[..., 0])
    assert decode_image(pgm).shape == (96, 128)
    with pytest.raises(ImageReadError, match=r"truncated PNM \(6143 of 12288 pixel bytes\)"):
        decode_image(pgm[: len(pgm) - 6145])


def test_libjpeg_warnings_become_refusals_and_never_reach_stderr(tmp_path):
    """Damage the structure check cannot see (a few bytes inside the entropy-coded data) is
    refused through libjpeg's own warning, captured from file descriptor 2; a child process
    shows that nothing reaches the real stderr, and that other stderr text passes through."""
    good = _encode(".jpg", _photo((240, 320)), cv2.IMWRITE_JPEG_QUALITY, 95)
    refused_by_decoder = []
    for seed in range(40):
        damaged = _scrambled(good, 20, seed)
        try:
            check_jpeg(damaged)
        except ImageReadError:
            continue  # structurally broken: refused before decoding
        with pytest.raises(ImageReadError) as info:
            decode_image(damaged)
            continue
        refused_by_decoder.append(str(info.value))
        (tmp_path / f"damaged{seed}.jpg").write_bytes(damaged)
    if not refused_by_decoder:
        pytest.skip("no damage of this picture reached the decoder")  # never seen so far
    assert all(m.startswith("corrupt JPEG data (") for m in refused_by_decoder)
    child = (
        "import sys, glob\n"
        "from superpoint_ros.image_io import read_image\n"
        "for p in sorted(glob.glob(sys.argv[1] + '/damaged*.jpg')):\n"
        "    try: read_image(p)\n"
        "    except Exception as e: print(type(e).__name__)\n"
        "import os; os.write(2, b'other text\\n')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ImageReadError"] * len(refused_by_decoder)
    assert out.stderr == "other text\n"  # no "Corrupt JPEG data" line on the raw stderr


def test_real_photos_damaged_copies(shared_data):
    """Real JPEGs from ../shared/data: every intact file decodes; a copy cut to a third of its
    bytes, one without its last two bytes and one with 2,000 scrambled bytes are all refused
    (measured on 80 photos: all 240 damaged copies refused)."""
    photos = sorted((shared_data / "photos" / "bsds500").glob("*.jpg"))[:10]
    photos += sorted((shared_data / "photos" / "urban100").glob("*.jpg"))[:10]
    if not photos:
        pytest.skip("no JPEG photos in the shared data")
    for path in photos:
        data = path.read_bytes()
        assert read_image(path).dtype == np.uint8
        for damaged in (data[: len(data) // 3], data[:-2], _scrambled(data, 2000)):
            with pytest.raises(ImageReadError):
                decode_image(damaged)


# --------------------------------------------------------------------------- conversions


def test_pixels_as_stored_and_as_the_frontend_takes_them(tmp_path):
    bgr = np.array([[[55, 0, 71], [217, 207, 235]]], np.uint8)
    bgra = np.concatenate([bgr, np.full((1, 2, 1), 9, np.uint8)], axis=2)
    deep = np.array([[0x1234, 0xABCD]], np.uint16)
    cv2.imwrite(str(tmp_path / "c.png"), bgr)
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    assert read_image_file(tmp_path / "a.png").shape == (1, 2, 4)  # as stored
    assert read_image(tmp_path / "a.png").tolist() == bgr.tolist()  # alpha dropped
    assert read_image(tmp_path / "d.png").tolist() == [[0x12, 0xAB]]  # 16 bits >> 8
    # grey by cvtColor: 0.114 B + 0.587 G + 0.299 R = 27.499 and 216.512 -> 27, 217
    assert read_gray(tmp_path / "c.png").tolist() == [[27, 217]]
    assert read_gray(tmp_path / "a.png").tolist() == [[27, 217]]
    assert read_gray(tmp_path / "d.png").tolist() == [[0x12, 0xAB]]


def test_capture_keeps_working_when_called_from_threads():
    """The fd-2 capture is serialised: decoding from several threads gives the same images."""
    from concurrent.futures import ThreadPoolExecutor

    data = [_encode(".jpg", _photo((64 + 8 * i, 80))) for i in range(6)]
    expected = [cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_UNCHANGED) for d in data]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(decode_image, data * 3))
    for k, image in enumerate(got):
        np.testing.assert_array_equal(image, expected[k % len(data)])
    assert os.fstat(2)  # fd 2 is still open after the captures
