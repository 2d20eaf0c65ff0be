"""Download code against local file:// URLs: a good file, a wrong checksum, a corrupted archive."""

import hashlib
import io
import tarfile

import pytest

from hfcore.data import fetch
from hfcore.data.fetch import ChecksumError, download, fetch_fsdd, recordings_digest


def test_download_accepts_matching_md5(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"mnist bytes")
    target = download(source.as_uri(), tmp_path / "out" / "file.gz", md5=hashlib.md5(b"mnist bytes").hexdigest())
    assert target.read_bytes() == b"mnist bytes"


def test_download_rejects_wrong_md5_and_leaves_nothing(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="does not match"):
        download(source.as_uri(), tmp_path / "out" / "file.gz", md5="0" * 32)
    assert list((tmp_path / "out").iterdir()) == []


def make_fsdd_archive(path, recordings):
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in recordings.items():
            info = tarfile.TarInfo(f"free-spoken-digit-dataset-abc/recordings/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def expected_digest(recordings):
    lines = "".join(f"{n} {hashlib.sha256(p).hexdigest()}\n" for n, p in sorted(recordings.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def test_fetch_fsdd_installs_verified_recordings(tmp_path):
    recordings = {"0_a_0.wav": b"zero", "1_a_0.wav": b"one"}
    make_fsdd_archive(tmp_path / "fsdd.tar.gz", recordings)
    target = fetch_fsdd(tmp_path / "data", url=(tmp_path / "fsdd.tar.gz").as_uri(),
                        expected_digest=expected_digest(recordings))
    assert sorted(p.name for p in target.iterdir()) == ["0_a_0.wav", "1_a_0.wav"]
    assert recordings_digest(target) == expected_digest(recordings)


def test_fetch_fsdd_rejects_changed_archive_and_leaves_nothing(tmp_path):
    make_fsdd_archive(tmp_path / "fsdd.tar.gz", {"0_a_0.wav": b"changed"})
    with pytest.raises(ChecksumError, match="digest"):
        fetch_fsdd(tmp_path / "data", url=(tmp_path / "fsdd.tar.gz").as_uri(),
                   expected_digest=expected_digest({"0_a_0.wav": b"zero"}))
    assert list((tmp_path / "data" / "fsdd").iterdir()) == []


def test_fetch_fsdd_rejects_truncated_archive(tmp_path):
    make_fsdd_archive(tmp_path / "fsdd.tar.gz", {"0_a_0.wav": b"zero" * 1000})
    data = (tmp_path / "fsdd.tar.gz").read_bytes()
    (tmp_path / "fsdd.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises((tarfile.TarError, EOFError, OSError)):
        fetch_fsdd(tmp_path / "data", url=(tmp_path / "fsdd.tar.gz").as_uri(), expected_digest="0")
    assert list((tmp_path / "data" / "fsdd").iterdir()) == []


def test_published_fsdd_digest_matches_shared_copy():
    from .conftest import SHARED_DATA

    folder = SHARED_DATA / "fsdd" / "recordings"
    if not folder.is_dir():
        pytest.skip("real data folder ../shared/data not present")
    assert recordings_digest(folder) == fetch.FSDD_RECORDINGS_SHA256
