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


# --- the same checks over HTTP, from a server on the loopback interface -----------------------

@pytest.fixture
def http_server(tmp_path):
    """Serve ``tmp_path/www`` on 127.0.0.1; ``/cut/NAME`` announces NAME's full length but sends half."""
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if not self.path.startswith("/cut/"):
                return super().do_GET()
            payload = (root / self.path[len("/cut/"):]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.close_connection = True

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_http_good_file(http_server, tmp_path):
    root, url = http_server
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(b"label bytes" * 100)
    target = download(f"{url}/t10k-labels-idx1-ubyte.gz", tmp_path / "mnist" / "labels.gz",
                      md5=hashlib.md5(b"label bytes" * 100).hexdigest())
    assert target.read_bytes() == b"label bytes" * 100


def test_download_http_wrong_checksum(http_server, tmp_path):
    root, url = http_server
    (root / "file.gz").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="does not match"):
        download(f"{url}/file.gz", tmp_path / "mnist" / "file.gz", md5=hashlib.md5(b"original").hexdigest())
    assert list((tmp_path / "mnist").iterdir()) == []


def test_download_http_cut_transfer(http_server, tmp_path):
    import http.client

    root, url = http_server
    (root / "file.gz").write_bytes(b"x" * 50_000)
    with pytest.raises((ChecksumError, http.client.IncompleteRead)):
        download(f"{url}/cut/file.gz", tmp_path / "mnist" / "file.gz")
    assert list((tmp_path / "mnist").iterdir()) == []


def test_fetch_mnist_http_keeps_only_verified_files(http_server, tmp_path, monkeypatch):
    root, url = http_server
    files = {name: name.encode() * 10 for name in fetch.MNIST_MD5}
    for name, payload in files.items():
        (root / name).write_bytes(payload)
    checksums = {name: hashlib.md5(payload).hexdigest() for name, payload in files.items()}
    checksums["t10k-labels-idx1-ubyte.gz"] = "0" * 32  # this one must be rejected
    monkeypatch.setattr(fetch, "MNIST_MD5", checksums)
    with pytest.raises(ChecksumError, match="t10k-labels"):
        fetch.fetch_mnist(tmp_path / "data", base_url=f"{url}/")
    kept = sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir())
    assert kept == ["t10k-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_fetch_fsdd_http_archives(http_server, tmp_path):
    root, url = http_server
    recordings = {"0_a_0.wav": b"zero" * 500, "1_a_0.wav": b"one" * 500}
    make_fsdd_archive(root / "good.tar.gz", recordings)
    make_fsdd_archive(root / "changed.tar.gz", {**recordings, "1_a_0.wav": b"changed"})
    digest = expected_digest(recordings)

    with pytest.raises(ChecksumError, match="digest"):
        fetch_fsdd(tmp_path / "data", url=f"{url}/changed.tar.gz", expected_digest=digest)
    assert list((tmp_path / "data" / "fsdd").iterdir()) == []
    with pytest.raises(Exception) as cut:
        fetch_fsdd(tmp_path / "data", url=f"{url}/cut/good.tar.gz", expected_digest=digest)
    assert cut.type.__name__ in ("ChecksumError", "IncompleteRead")
    assert list((tmp_path / "data" / "fsdd").iterdir()) == []

    target = fetch_fsdd(tmp_path / "data", url=f"{url}/good.tar.gz", expected_digest=digest)
    assert recordings_digest(target) == digest
    assert sorted(p.name for p in (tmp_path / "data" / "fsdd").iterdir()) == ["recordings"]
