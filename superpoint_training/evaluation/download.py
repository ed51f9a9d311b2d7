"""Download and unpack benchmark datasets: resumable HTTP download, size and checksum checks,
safe tar extraction.

* Resumable: bytes go to ``NAME.part``; a new attempt (after a dropped connection, or a later
  run) asks the server for the rest with an HTTP ``Range`` request and appends to it. A server
  that ignores ranges sends the whole file again and the ``.part`` file is restarted.
* Checked: the length announced by the server (``Content-Length``/``Content-Range``), an
  optional expected size, and an optional SHA-256. A file that fails its checksum is deleted
  (resuming cannot repair it). The SHA-256 is always printed so it can be pinned.
* Safe extraction: members with absolute paths, ``..`` components, links pointing outside the
  destination, or device files are refused before anything is written.
"""

from __future__ import annotations

import http.client
import os
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from superpoint_ros.errors import ConfigError, SuperPointError
from superpoint_ros.frontend.metadata import file_sha256


class DownloadError(SuperPointError):
    """A download or an archive that cannot be used (network, size, checksum, unsafe paths)."""


@dataclass(frozen=True)
class DatasetSource:
    url: str
    archive: str  # file name of the downloaded archive
    folder: str  # folder the archive unpacks to (holding the sequences)
    sha256: str | None = None  # pinned checksum, None where no trusted value is known
    size: int | None = None  # bytes, None where unknown
    description: str = ""


DATASETS: dict[str, DatasetSource] = {
    "hpatches": DatasetSource(
        url="http://icvl.ee.ic.ac.uk/vbalnt/hpatches/hpatches-sequences-release.tar.gz",
        archive="hpatches-sequences-release.tar.gz",
        folder="hpatches-sequences-release",
        description="HPatches full image sequences: 116 sequences (57 illumination i_*, "
        "59 viewpoint v_*), about 1.3 GB",
    ),
}

CHUNK = 1 << 16
USER_AGENT = "superpoint_ros-downloader/1"


def _check_hex(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    sha256 = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ConfigError(f"--sha256 must be 64 hex digits, got {sha256!r}")
    return sha256


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _fetch_once(url: str, part: Path, timeout: float, bar) -> int | None:
    """One HTTP request appending to ``part``. Returns the full size the server announced
    (None if it did not say). Raises ``OSError``-family errors on network failures."""
    start = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, start, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left after `start`: complete, or too long
            m = re.search(r"/(\d+)", exc.headers.get("Content-Range", "") or "")
            total = int(m.group(1)) if m else None
            if total == start:
                return total
            part.unlink()
            raise ConnectionError("server refused the resume range; restarting") from None
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    with resp:
        if resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != start:
                part.unlink()
                raise ConnectionError("server answered another range; restarting")
            total = None if m.group(3) == "*" else int(m.group(3))
            mode = "ab"
        else:  # 200: the whole file (the server ignores ranges, or this is the first try)
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode, start = "wb", 0
        if bar is not None:
            bar.reset(total=total)
            bar.update(start)
        with open(part, mode) as f:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                f.write(block)
                if bar is not None:
                    bar.update(len(block))
    return total


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    size: int | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to the file ``dest`` (via ``dest.part``, resumable); returns ``dest``.

    ``size``/``sha256``: expected byte count and SHA-256 (hex), checked when given. ``retries``:
    further attempts (each resuming) after a dropped connection. Raises ``DownloadError``;
    after an interruption the ``.part`` file stays, and running again resumes it.
    """
    from tqdm import tqdm

    sha256 = _check_hex(sha256)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        if sha256 and file_sha256(dest) != sha256:
            raise DownloadError(
                f"{dest} exists but its SHA-256 is not {sha256}; delete it to download again"
            )
        return dest
    part = dest.with_name(dest.name + ".part")
    bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, disable=not progress)
    total = None
    try:
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                total = _fetch_once(url, part, timeout, bar)
            except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
                if last:
                    got = part.stat().st_size if part.exists() else 0
                    reason = getattr(exc, "reason", None) or exc
                    if not got:
                        raise DownloadError(f"cannot download {url}: {reason}") from None
                    raise DownloadError(
                        f"download of {url} interrupted after {got} bytes ({reason}); run the "
                        "same command again to resume"
                    ) from None
                continue
            got = part.stat().st_size
            if total is not None and got > total:
                part.unlink()
                raise DownloadError(f"{url}: received {got} bytes, more than announced {total}")
            if total is None or got == total:
                break
            if last:
                raise DownloadError(
                    f"download of {url} interrupted after {got} of {total} bytes; run the same "
                    "command again to resume"
                )
    finally:
        bar.close()
    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink()
        raise DownloadError(f"{url}: expected {size} bytes, got {got}; the file was deleted")
    digest = file_sha256(part)
    if sha256 and digest != sha256:
        part.unlink()
        raise DownloadError(
            f"{url}: SHA-256 mismatch (expected {sha256}, got {digest}); the corrupt file was "
            "deleted, run again to download it anew"
        )
    os.replace(part, dest)
    if progress:
        print(f"{dest.name}: {got} bytes, sha256 {digest}")
    return dest


def _unsafe_reason(member: tarfile.TarInfo, root: Path) -> str | None:
    name = member.name
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in pure.parts:
        return "'..' in path"
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        return "outside the destination"
    if member.isdev():  # character/block devices and FIFOs
        return "device file"
    if member.issym() or member.islnk():
        link = PurePosixPath(member.linkname)
        if link.is_absolute():
            return "link to an absolute path"
        base = target.parent if member.issym() else root
        resolved = (base / member.linkname).resolve()
        if resolved != root and root not in resolved.parents:
            return "link pointing outside the destination"
    return None


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, progress: bool = True):
    """Unpack a tar archive (any compression) into ``dest``; refuses the whole archive if any
    member would land outside ``dest``. Returns the list of top-level names."""
    from tqdm import tqdm

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            bad = [(m.name, r) for m in members if (r := _unsafe_reason(m, root))]
            if bad:
                shown = "; ".join(f"{n!r}: {r}" for n, r in bad[:5])
                raise DownloadError(f"{archive}: refusing an unsafe archive ({shown})")
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            for m in tqdm(members, desc="extracting", unit="file", disable=not progress):
                tar.extract(m, root, **kwargs)
    except (tarfile.TarError, EOFError) as exc:
        raise DownloadError(f"{archive}: not a readable tar archive ({exc})") from None
    return sorted({PurePosixPath(m.name).parts[0] for m in members if m.name not in ("", ".")})


URL_SCHEMES = ("http", "https")


def check_url(url: str) -> None:
    """Refuse a URL that cannot be downloaded (no http/https scheme or no host): one line,
    before any file is created."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in URL_SCHEMES or not parts.netloc:
        raise ConfigError(f"cannot download {url!r}: not an http:// or https:// URL with a host")


def download_dataset(
    name: str,
    dest: str | os.PathLike,
    url: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    keep_archive: bool = False,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Fetch and unpack dataset ``name`` (see ``DATASETS``) into ``dest``; returns the folder
    holding its sequences. A finished download is recognised and not repeated."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    src = DATASETS[name]
    check_url(url or src.url)  # before anything is created
    dest = Path(dest)
    folder = dest / src.folder
    marker = dest / f".{name}.complete"
    if marker.is_file() and folder.is_dir():
        if progress:
            print(f"{name} already in {folder}")
        return folder
    archive = download(
        url or src.url,
        dest / src.archive,
        sha256=sha256 if sha256 is not None else src.sha256,
        size=size if size is not None else src.size,
        retries=retries,
        timeout=timeout,
        progress=progress,
    )
    top = safe_extract(archive, dest, progress=progress)
    if not folder.is_dir():
        # An archive with another top-level name: use its single folder, else dest itself.
        dirs = [t for t in top if (dest / t).is_dir()]
        folder = dest / dirs[0] if len(dirs) == 1 else dest
    marker.write_text(f"{archive.name} {file_sha256(archive)}\n")
    if not keep_archive:
        archive.unlink()
    return folder
