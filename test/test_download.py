"""Dataset download against a real HTTP server on 127.0.0.1 (Range support, cut-short
responses), checksum and size checks, and safe tar extraction."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import tarfile
import threading

import numpy as np
import pytest

from superpoint_training.cli.main import main as cli_main
from superpoint_training.evaluation.datasets import find_sequences
from superpoint_training.evaluation.download import (
    DownloadError,
    download,
    download_dataset,
    safe_extract,
)


def _tarball() -> bytes:
    """A miniature HPatches release: two sequences with incompressible image bytes."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for seq in ("i_tiny", "v_tiny"):
            for name in ("1.ppm", "2.ppm", "H_1_2"):
                if name.endswith(".ppm"):
                    px = rng.integers(0, 256, (24, 32), dtype=np.uint8)
                    data = b"P5\n32 24\n255\n" + px.tobytes()
                else:
                    data = b"1 0 2\n0 1 3\n0 0 1\n"
                info = tarfile.TarInfo(f"hpatches-sequences-release/{seq}/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Server:
    """Serves one byte string on 127.0.0.1 with HTTP Range support. ``cut_next`` makes the
    next response stop after that many bytes (announcing the full length);
    ``ignore_range`` answers 200 with the whole file."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.cut_next: int | None = None
        self.ignore_range = False
        self.requests: list[str | None] = []  # the Range header of every request
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append(rng)
                data, start, total = server.payload, 0, len(server.payload)
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if m and not server.ignore_range:
                    start = int(m.group(1))
                    if start >= total:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{total}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if server.cut_next is not None:
                    body, server.cut_next = body[: server.cut_next], None
                self.wfile.write(body)
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/release.tar.gz"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    payload = _tarball()
    srv = _Server(payload)
    yield srv
    srv.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_and_unpack(server, tmp_path):
    folder = download_dataset(
        "hpatches", tmp_path, url=server.url, sha256=_sha(server.payload), progress=False
    )
    assert folder == tmp_path / "hpatches-sequences-release"
    seqs = find_sequences(folder)
    assert [(s.name, s.kind) for s in seqs] == [
        ("i_tiny", "illumination"),
        ("v_tiny", "viewpoint"),
    ]
    np.testing.assert_allclose(seqs[0].homography(2), [[1, 0, 2], [0, 1, 3], [0, 0, 1]])
    assert not (tmp_path / "hpatches-sequences-release.tar.gz").exists()  # not kept
    assert server.requests == [None]
    # A second run finds the finished dataset and does not download again.
    assert download_dataset("hpatches", tmp_path, url=server.url, progress=False) == folder
    assert server.requests == [None]


def test_resume_after_a_cut_short_download(server, tmp_path):
    dest = tmp_path / "release.tar.gz"
    server.cut_next = 1000
    with pytest.raises(DownloadError, match="resume"):
        download(server.url, dest, sha256=_sha(server.payload), retries=0, progress=False)
    part = tmp_path / "release.tar.gz.part"
    assert part.stat().st_size == 1000 and not dest.exists()
    # Running again asks only for the rest.
    download(server.url, dest, sha256=_sha(server.payload), retries=0, progress=False)
    assert server.requests == [None, "bytes=1000-"]
    assert dest.read_bytes() == server.payload and not part.exists()


def test_retries_resume_within_one_call(server, tmp_path):
    server.cut_next = 777
    dest = download(
        server.url, tmp_path / "a.tgz", size=len(server.payload), retries=2, progress=False
    )
    assert dest.read_bytes() == server.payload
    assert server.requests == [None, "bytes=777-"]


def test_server_ignoring_ranges_restarts_the_file(server, tmp_path):
    part = tmp_path / "a.tgz.part"
    part.write_bytes(b"stale bytes")
    server.ignore_range = True
    dest = download(server.url, tmp_path / "a.tgz", sha256=_sha(server.payload), progress=False)
    assert server.requests == ["bytes=11-"]
    assert dest.read_bytes() == server.payload


def test_complete_part_file_is_recognised(server, tmp_path):
    (tmp_path / "a.tgz.part").write_bytes(server.payload)
    dest = download(server.url, tmp_path / "a.tgz", sha256=_sha(server.payload), progress=False)
    assert dest.read_bytes() == server.payload
    assert server.requests == [f"bytes={len(server.payload)}-"]  # answered 416


def test_checksum_mismatch_is_an_error_and_deletes_the_file(server, tmp_path):
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download_dataset("hpatches", tmp_path, url=server.url, sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing kept, nothing unpacked


def test_size_mismatch_and_bad_arguments(server, tmp_path):
    with pytest.raises(DownloadError, match="expected 5 bytes"):
        download(server.url, tmp_path / "a.tgz", size=5, progress=False)
    assert list(tmp_path.iterdir()) == []
    from superpoint_ros.errors import ConfigError

    with pytest.raises(ConfigError, match="64 hex"):
        download(server.url, tmp_path / "a.tgz", sha256="abc", progress=False)


def test_unreachable_server(tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("no_proxy", "127.0.0.1")
    s = socket.socket()  # a loopback port where nothing listens
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    url = f"http://127.0.0.1:{port}/x.tar.gz"
    with pytest.raises(DownloadError, match="cannot download"):
        download(url, tmp_path / "b", retries=1, timeout=5, progress=False)
    assert not (tmp_path / "b.part").exists()


@pytest.mark.parametrize(
    "evil",
    ["../escape.txt", "/tmp/absolute.txt", "sub/../../escape.txt", "link"],
)
def test_unsafe_archives_are_refused(tmp_path, evil):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        ok = tarfile.TarInfo("fine/a.txt")
        ok.size = 1
        tar.addfile(ok, io.BytesIO(b"a"))
        info = tarfile.TarInfo(evil)
        if evil == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "../../outside"
            tar.addfile(info)
        else:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match="unsafe"):
        safe_extract(archive, dest, progress=False)
    assert not (dest / "fine").exists()  # refused before writing anything
    assert not (tmp_path / "escape.txt").exists()


def test_cli_download(server, tmp_path, capsys):
    rc = cli_main(
        [
            "data",
            "download",
            "hpatches",
            str(tmp_path),
            "--url",
            server.url,
            "--sha256",
            _sha(server.payload),
            "--keep-archive",
            "--quiet",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "2 sequences (1 illumination, 1 viewpoint)" in out
    assert (tmp_path / "hpatches-sequences-release.tar.gz").read_bytes() == server.payload
    rc = cli_main(
        [
            "data",
            "download",
            "hpatches",
            str(tmp_path / "other"),
            "--url",
            server.url,
            "--sha256",
            "f" * 64,
            "--quiet",
        ]
    )
    assert rc == 1
    assert "SHA-256 mismatch" in capsys.readouterr().err
