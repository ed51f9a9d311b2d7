"""The one image reader of the project: files and compressed bytes (JPEG, PNG, PNM, BMP, TIFF,
WebP) to numpy, with every refusal a one-line :class:`~superpoint_ros.errors.ImageReadError`.

Used by the node's compressed-image path, ``extract``, ``evaluate``, ``bag`` and (through
:func:`read_gray`) the training data, so a file is accepted or refused the same way everywhere.
What it guarantees before a pixel reaches a model:

1. **The size is read from the header before decoding** (:func:`header_size`, a few bytes of
   the format's own header, no decoder involved): an image over ``max_pixels`` is refused
   without allocating it, so a 100000x100000 header costs nothing.
2. **A truncated or corrupt JPEG is refused**, never decoded into flat grey. The entropy-coded
   data is checked first (:func:`check_jpeg`: markers in order, byte stuffing, restart markers
   in sequence, the end-of-image marker present); whatever libjpeg still notices while decoding
   ("Corrupt JPEG data: ...", "Premature end of JPEG file") it prints on the process's stderr
   (file descriptor 2) and carries on. That output is captured around the decode
   (:func:`_decoder_messages`) and turned into a refusal, instead of reaching raw stderr; other
   text written meanwhile (another thread's log line) is passed on to stderr unchanged.
   Truncated PNM and PNG files are refused by their own checks.
3. Pixels come back as stored (``IMREAD_UNCHANGED``: uint8 or uint16, 1, 3 or 4 channels, BGR
   order; EXIF orientation is not applied), or, through :func:`to_frontend` / :func:`read_gray`,
   as the front-end's uint8 grey or BGR with colour made grey by ``cv2.cvtColor`` (BT.601, what
   the node and the evaluation apply).

No ROS here; file I/O only in :func:`read_image_file` and the capture of fd 2.
"""

from __future__ import annotations

import os
import re
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from superpoint_ros.errors import ImageReadError
from superpoint_ros.frontend.preprocess import to_gray as frontend_gray
from superpoint_ros.image_encodings import mono16_to_8

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "check_jpeg",
    "decode_image",
    "header_size",
    "read_gray",
    "read_image",
    "read_image_file",
    "to_frontend",
    "to_gray",
]

# Largest image a file may hold by default: 8192 x 8192 (67 MP, beyond any camera's photo;
# the node has its own, smaller ``max_image_pixels``). OpenCV's own limit is 2^30.
DEFAULT_MAX_PIXELS = 8192 * 8192
FORMATS = ("JPEG", "PNG", "PNM", "BMP", "TIFF", "WebP")

# Lines libjpeg/libpng print when the data is damaged (libjpeg's JWRN_* texts and libpng's
# errors). Other lines captured during a decode are passed through to stderr.
_DAMAGE = re.compile(
    r"^(Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|Inconsistent "
    r"progression|Huffman table|Bogus|libpng error)"
)


# ------------------------------------------------------------------------------ headers


def _be16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(height, width) from the first SOFn segment."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ImageReadError(f"corrupt JPEG header (no marker at byte {i})")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):
            i += 2
            continue
        length = _be16(data, i + 2)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(data):
                break
            return _be16(data, i + 5), _be16(data, i + 7)
        if marker in (0xD9, 0xDA) or length < 2:
            raise ImageReadError("corrupt JPEG header (no frame header before the image data)")
        i += 2 + length
    raise ImageReadError(f"truncated JPEG header ({len(data)} bytes)")


def _pnm_header(data: bytes) -> tuple[int, int, int, int]:
    """(height, width, maxval, end of header) of a P1..P6 file."""
    fields: list[int] = []
    i, want = 2, 2 if data[1:2] in (b"1", b"4") else 3
    while len(fields) < want:
        while i < len(data) and data[i : i + 1].isspace():
            i += 1
        if data[i : i + 1] == b"#":
            while i < len(data) and data[i : i + 1] not in (b"\n", b"\r"):
                i += 1
            continue
        j = i
        while j < len(data) and data[j : j + 1].isdigit():
            j += 1
        if j == i:
            raise ImageReadError("corrupt PNM header")
        fields.append(int(data[i:j]))
        i = j
    width, height = fields[0], fields[1]
    maxval = fields[2] if want == 3 else 1
    return height, width, maxval, i + 1  # one white-space byte ends the header


def _tiff_size(data: bytes) -> tuple[int, int]:
    order = "<" if data[:2] == b"II" else ">"
    if struct.unpack(order + "H", data[2:4])[0] != 42:
        raise ImageReadError("BigTIFF is not supported")
    (ifd,) = struct.unpack(order + "I", data[4:8])
    if ifd + 2 > len(data):
        raise ImageReadError("truncated TIFF header")
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    size: dict[int, int] = {}
    for k in range(count):
        at = ifd + 2 + 12 * k
        if at + 12 > len(data):
            break
        tag, kind = struct.unpack(order + "HH", data[at : at + 4])
        if tag in (256, 257):
            fmt = {3: "H", 4: "I"}.get(kind)
            if fmt is None:
                raise ImageReadError("corrupt TIFF header (size tag of unknown type)")
            (size[tag],) = struct.unpack(order + fmt, data[at + 8 : at + 8 + struct.calcsize(fmt)])
    if 256 not in size or 257 not in size:
        raise ImageReadError("corrupt TIFF header (no image width/length)")
    return size[257], size[256]


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        return 1 + int.from_bytes(data[27:30], "little"), width
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + ((bits >> 14) & 0x3FFF), 1 + (bits & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        return int.from_bytes(data[28:30], "little") & 0x3FFF, width
    raise ImageReadError("corrupt WebP header")


def header_size(data: bytes) -> tuple[str, int, int]:
    """``(format, height, width)`` read from the first bytes of an encoded image (no decoding).

    Raises :class:`ImageReadError` for an unknown format (naming the readable ones) or a header
    too short or inconsistent to give a size.
    """
    head = bytes(data[:8])
    if head[:3] == b"\xff\xd8\xff":
        return ("JPEG", *_jpeg_size(bytes(data[: 1 << 20])))
    if head == b"\x89PNG\r\n\x1a\n":
        if len(data) < 24 or bytes(data[12:16]) != b"IHDR":
            raise ImageReadError("truncated or corrupt PNG header")
        return "PNG", int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")
    if len(head) > 2 and head[:1] == b"P" and head[1:2] in b"123456":
        height, width, _, _ = _pnm_header(bytes(data[:4096]))
        return "PNM", height, width
    if head[:2] == b"BM" and len(data) >= 26:
        if int.from_bytes(data[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER
            width, height = struct.unpack("<HH", bytes(data[18:22]))
        else:
            width, height = struct.unpack("<ii", bytes(data[18:26]))
        return "BMP", abs(height), abs(width)
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return ("TIFF", *_tiff_size(bytes(data[: 1 << 20])))
    if head[:4] == b"RIFF" and bytes(data[8:12]) == b"WEBP":
        return ("WebP", *_webp_size(bytes(data[:32])))
    raise ImageReadError(f"not an image this project reads (readable: {', '.join(FORMATS)})")


# ------------------------------------------------------------------------- JPEG structure

_STANDALONE = {0x01, *range(0xD0, 0xD8)}
# Markers that may follow a scan's entropy-coded data: another scan's tables/header, EOI.
_AFTER_SCAN = {0xC4, 0xCC, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xFE, *range(0xE0, 0xF0)}


def _scan_end(data: np.ndarray, start: int) -> int:
    """Index of the marker that ends the entropy-coded data starting at ``start``; checks byte
    stuffing and the restart markers' sequence on the way. ``len(data)`` if none."""
    tail = data[start:]
    ff = np.flatnonzero(tail[:-1] == 0xFF)
    following = tail[ff + 1]
    ends = np.flatnonzero((following != 0x00) & (following != 0xFF) & ((following & 0xF8) != 0xD0))
    stop = int(ff[ends[0]]) if len(ends) else len(tail)
    restarts = following[(ff < stop) & ((following & 0xF8) == 0xD0)] & 0x07
    if len(restarts) and np.any(restarts != np.arange(len(restarts)) % 8):
        bad = int(np.flatnonzero(restarts != np.arange(len(restarts)) % 8)[0])
        raise ImageReadError(
            f"corrupt JPEG data (restart marker {int(restarts[bad])} where {bad % 8} was due)"
        )
    return start + stop if len(ends) else len(data)


def check_jpeg(data: bytes) -> None:
    """Refuse a JPEG whose structure is damaged: a marker that cannot follow image data where
    the entropy-coded data ends (random bytes in the stream), restart markers out of sequence,
    segments running past the end, or no end-of-image marker (a truncated file). Bytes after
    the end-of-image marker (camera trailers) are allowed. Raises :class:`ImageReadError`."""
    buf = np.frombuffer(data, np.uint8)
    n, i = len(buf), 2
    while True:
        if i + 2 > n:
            raise ImageReadError(f"truncated JPEG (ends after {n} bytes, no end-of-image marker)")
        if buf[i] != 0xFF:
            raise ImageReadError(f"corrupt JPEG data (byte {i} should start a marker)")
        marker = int(buf[i + 1])
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0xD9:
            return
        if marker in _STANDALONE:
            i += 2
            continue
        if i + 4 > n:
            raise ImageReadError(f"truncated JPEG (ends after {n} bytes, inside a segment)")
        end = i + 2 + (int(buf[i + 2]) << 8 | int(buf[i + 3]))
        if end > n:
            raise ImageReadError(f"truncated JPEG (ends after {n} bytes, inside a segment)")
        if marker != 0xDA:
            i = end
            continue
        i = _scan_end(buf, end)
        if i >= n - 1:
            raise ImageReadError(
                f"truncated JPEG (ends after {n} bytes inside the image data, no end-of-image "
                "marker)"
            )
        if int(buf[i + 1]) not in _AFTER_SCAN:
            raise ImageReadError(
                f"corrupt JPEG data (marker 0x{int(buf[i + 1]):02x} inside the image data at "
                f"byte {i})"
            )


def _check_pnm(data: bytes) -> None:
    """A binary PNM (P4/P5/P6) must hold all its pixels."""
    kind = bytes(data[1:2])
    if kind not in (b"4", b"5", b"6"):
        return
    height, width, maxval, start = _pnm_header(bytes(data[:4096]))
    if kind == b"4":
        need = (width + 7) // 8 * height
    else:
        need = height * width * (3 if kind == b"6" else 1) * (2 if maxval > 255 else 1)
    if len(data) - start < need:
        raise ImageReadError(f"truncated PNM ({len(data) - start} of {need} pixel bytes)")


def _check_png(data: bytes) -> None:
    """A PNG must reach its IEND chunk (bytes after it are allowed)."""
    if bytes(data).rfind(b"IEND") < 0:
        raise ImageReadError(f"truncated PNG (no IEND chunk in {len(data)} bytes)")


# --------------------------------------------------------------------- decoding, captured

_CAPTURE_LOCK = threading.Lock()


@contextmanager
def _decoder_messages() -> Iterator[list[str]]:
    """Capture what is written to file descriptor 2 (where libjpeg and libpng print) while the
    block runs; the list receives the captured lines afterwards. Lines that are not a decoder's
    complaint about damaged data are written back to stderr. Serialised by a lock (the
    descriptor is process-wide); without a usable fd 2 nothing is captured."""
    lines: list[str] = []
    with _CAPTURE_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            yield lines
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                text = sink.read().decode("utf-8", "replace")
        for line in text.splitlines():
            if _DAMAGE.match(line.strip()):
                lines.append(line.strip())
            elif line:
                os.write(2, (line + "\n").encode())


def decode_image(data: bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An encoded image (file contents or a ``CompressedImage``'s ``data``) as stored: uint8 or
    uint16, ``[H, W]`` or ``[H, W, C]`` (C = 3 BGR or 4 BGRA).

    The format and size come from the header first: an unknown format, a size of zero, or more
    than ``max_pixels`` pixels (``None``: no limit) is refused before anything is decoded. A
    damaged JPEG (see :func:`check_jpeg` and the module docstring), PNM or PNG is refused.
    Raises :class:`ImageReadError` with the reason (no source name: callers add it).
    """
    if len(data) == 0:
        raise ImageReadError("empty (0 bytes)")
    fmt, height, width = header_size(data)
    if height <= 0 or width <= 0:
        raise ImageReadError(f"{fmt} header says {height}x{width}: no pixels")
    if max_pixels is not None and height * width > max_pixels:
        raise ImageReadError(
            f"{fmt} header says {height}x{width} = {height * width} pixels, more than the limit "
            f"max_pixels={max_pixels}"
        )
    if fmt == "JPEG":
        check_jpeg(data)
    elif fmt == "PNM":
        _check_pnm(data)
    elif fmt == "PNG":
        _check_png(data)
    buffer = np.frombuffer(data, np.uint8)
    with _decoder_messages() as complaints:
        try:
            image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:
            raise ImageReadError(f"{fmt} decoder failed: {' '.join(str(exc).split())}") from None
    if complaints:
        raise ImageReadError(f"corrupt {fmt} data ({complaints[0]})")
    if image is None or image.size == 0:
        raise ImageReadError(f"the {fmt} decoder could not decode it ({len(data)} bytes)")
    if image.shape[:2] != (height, width):
        raise ImageReadError(
            f"{fmt} decoded to {image.shape[0]}x{image.shape[1]}, its header says {height}x{width}"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    channels_ok = image.ndim == 2 or image.shape[2] in (3, 4)
    if image.dtype not in (np.uint8, np.uint16) or not channels_ok:
        raise ImageReadError(
            f"{fmt} pixels of type {image.dtype}, shape {image.shape}: unsupported"
        )
    return image


def read_image_file(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS
                    ) -> np.ndarray:  # fmt: skip
    """A file's pixels as stored (see :func:`decode_image`); every refusal is one line
    ``cannot read image PATH: reason`` (missing, a directory, unreadable, damaged, too large)."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ImageReadError("it is a directory, not an image file")
        if not path.exists():
            raise ImageReadError("no such file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageReadError(exc.strerror or str(exc)) from None
        return decode_image(data, max_pixels=max_pixels)
    except ImageReadError as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None


def to_frontend(image: np.ndarray, mono16_shift: int | None = 8) -> np.ndarray:
    """What the front-end takes: uint8 grey ``[H, W]`` or BGR ``[H, W, 3]`` (alpha dropped);
    16-bit pixels become ``min(v >> mono16_shift, 255)`` (``None``: stretch min..max), one scale
    for all channels."""
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.dtype == np.uint16:
        image = mono16_to_8(image, mono16_shift)
    return image


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W]``: colour made grey by the front-end's own conversion
    (:func:`superpoint_ros.frontend.preprocess.to_gray`, ``cv2.cvtColor`` BT.601), so training
    data, labels and evaluation see the pixels the node computes from the same image (decoding
    straight to grey rounds differently); 16 bits >> 8."""
    return frontend_gray(to_frontend(image))


def read_image(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS
               ) -> np.ndarray:  # fmt: skip
    """A file as the front-end takes it: uint8 grey or BGR (see :func:`to_frontend`)."""
    return to_frontend(read_image_file(path, max_pixels=max_pixels))


def read_gray(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS
              ) -> np.ndarray:  # fmt: skip
    """A file as uint8 grey ``[H, W]`` (see :func:`to_gray`): for training data and labels."""
    return to_gray(read_image_file(path, max_pixels=max_pixels))
