"""Download the public AV-MNIST sources and verify them.

``fetch_sources(dest)`` creates ``dest/mnist`` (the four MNIST IDX files, checked against
their published MD5 sums) and ``dest/fsdd/recordings`` (the FSDD recordings at a fixed
commit, checked against a SHA-256 digest of every file). Every file is written under a
temporary name and renamed only after its check passes, so a failed or interrupted download
leaves nothing half-written behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from ..atomic import atomic_path

logger = logging.getLogger(__name__)

MNIST_BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
# MD5 sums of the official MNIST release (the same as torchvision's).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
FSDD_URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{FSDD_COMMIT}.tar.gz"
# recordings_digest() of the 3,000 recordings at FSDD_COMMIT.
FSDD_RECORDINGS_SHA256 = "dbd573d7cafe79c4b49f65718115e1304e24e067fa39eff18a660dc6cb9c360f"
FSDD_RECORDING_COUNT = 3000


class ChecksumError(ValueError):
    """Raised when downloaded data does not match its published checksum."""


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Return the hex digest of a file's bytes."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def recordings_digest(folder: str | Path) -> str:
    """Return a SHA-256 over the sorted ``name sha256`` lines of every .wav file in ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.wav")):
        digest.update(f"{path.name} {file_digest(path)}\n".encode())
    return digest.hexdigest()


def download(url: str, path: Path, *, md5: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``path`` through a temporary file; check ``md5`` before the rename."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, leave=False) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    stream.write(chunk)
                    bar.update(len(chunk))
            if total is not None and stream.tell() != total:
                raise ChecksumError(f"{url}: received {stream.tell()} of {total} bytes; try again")
        if md5 is not None and file_digest(temporary, "md5") != md5:
            raise ChecksumError(f"{url}: MD5 {file_digest(temporary, 'md5')} does not match the published {md5}")
    return path


def fetch_mnist(dest: Path, *, include_train: bool = True, base_url: str = MNIST_BASE_URL) -> Path:
    """Download the MNIST IDX files into ``dest/mnist``; files already there are checked, not fetched."""
    folder = dest / "mnist"
    for name, md5 in MNIST_MD5.items():
        if name.startswith("train") and not include_train:
            continue
        target = folder / name
        if target.is_file() and file_digest(target, "md5") == md5:
            logger.info("%s is present and verified", target)
            continue
        logger.info("downloading %s", name)
        download(base_url + name, target, md5=md5)
    return folder


def fetch_fsdd(dest: Path, *, url: str = FSDD_URL, expected_digest: str = FSDD_RECORDINGS_SHA256) -> Path:
    """Download FSDD at ``FSDD_COMMIT`` and install its recordings in ``dest/fsdd/recordings``."""
    target = dest / "fsdd" / "recordings"
    if target.is_dir() and recordings_digest(target) == expected_digest:
        logger.info("%s is present and verified", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fsdd-") as scratch:
        archive = download(url, Path(scratch) / "fsdd.tar.gz")
        unpacked = Path(scratch) / "recordings"
        unpacked.mkdir()
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if member.isfile() and len(parts) >= 2 and parts[-2] == "recordings" and parts[-1].endswith(".wav"):
                    source = tar.extractfile(member)
                    (unpacked / parts[-1]).write_bytes(source.read())
        digest = recordings_digest(unpacked)
        if digest != expected_digest:
            raise ChecksumError(
                f"FSDD recordings from {url} have digest {digest}, expected {expected_digest}; "
                "the download is corrupted or the archive changed"
            )
        if target.exists():
            shutil.rmtree(target)
        os.replace(unpacked, target)
    return target


def fetch_sources(dest: str | Path, *, include_train: bool = True) -> dict[str, str]:
    """Download and verify MNIST and FSDD into ``dest``; return the folders created."""
    dest = Path(dest).expanduser()
    return {"mnist": str(fetch_mnist(dest, include_train=include_train)), "fsdd": str(fetch_fsdd(dest))}
