"""Shared fixtures: tiny AV-MNIST sources in the real file formats."""

from pathlib import Path

import pytest

from hfcore.fixtures import write_fixture_data

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def fixture_data(tmp_path_factory) -> Path:
    """Folder with mnist/ (300 test images) and fsdd/recordings/ (160 recordings)."""
    return write_fixture_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def fixture_dataset(fixture_data, tmp_path_factory):
    from hfcore.data.avmnist import AVMNISTConfig, load_avmnist

    return load_avmnist(fixture_data, AVMNISTConfig(), cache_dir=tmp_path_factory.mktemp("cache"))
