import numpy as np
import pytest

from hfcore.data import avmnist as avmnist_module
from hfcore.data.avmnist import AVMNISTConfig, build_avmnist_arrays, cache_key, load_avmnist
from hfcore.data.idx import write_idx
from hfcore.data.multibench import load_multibench_avmnist
from hfcore.data.paths import DataNotFoundError, find_data_dir
from hfcore.fixtures import fixture_images, write_fixture_data

from .conftest import SHARED_DATA


def recording_index(name: str) -> int:
    return int(name.rsplit("_", 1)[1].split(".")[0])


def test_small_split_sizes_are_stratified(fixture_dataset):
    assert fixture_dataset.sizes() == {"train": 210, "val": 30, "test": 60}
    for name, expected in (("train", 21), ("val", 3), ("test", 6)):
        counts = np.bincount(fixture_dataset[name].label, minlength=10)
        assert (counts == expected).all(), (name, counts)


def test_splits_share_no_image_and_no_recording(fixture_dataset):
    images = {name: set(fixture_dataset[name].mnist_index) for name in ("train", "val", "test")}
    recordings = {name: set(fixture_dataset[name].recording) for name in ("train", "val", "test")}
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not images[first] & images[second]
        assert not recordings[first] & recordings[second]
    assert {recording_index(r) for r in recordings["val"]} <= set(range(35, 40))
    assert {recording_index(r) for r in recordings["test"]} <= set(range(40, 50))
    assert all(recording_index(r) < 35 for r in recordings["train"])


def test_each_recording_speaks_its_images_digit(fixture_dataset):
    for name in ("train", "val", "test"):
        split = fixture_dataset[name]
        spoken = np.array([int(r.split("_")[0]) for r in split.recording])
        np.testing.assert_array_equal(spoken, split.label)


def test_arrays_have_model_shapes_and_training_statistics(fixture_dataset):
    train = fixture_dataset["train"]
    assert train.image.shape == (210, 1, 28, 28)
    assert train.image.dtype == np.float32
    assert train.audio.shape == (210, 1, 112, 112)
    assert train.audio.dtype == np.float16
    assert abs(float(train.image.mean())) < 1e-3
    assert float(train.image.std()) == pytest.approx(1.0, rel=1e-3)
    assert float(train.audio.astype(np.float32).std()) == pytest.approx(1.0, rel=1e-2)


def test_pca_keeps_first_components_reaching_energy(fixture_dataset):
    info = fixture_dataset.info
    assert info["pca_explained_variance"] >= 0.25
    assert info["pca_components"] >= 1


def test_build_is_deterministic(fixture_data):
    first = build_avmnist_arrays(fixture_data, AVMNISTConfig())
    second = build_avmnist_arrays(fixture_data, AVMNISTConfig())
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(first[name].audio, second[name].audio)
        np.testing.assert_array_equal(first[name].recording, second[name].recording)


def test_noise_level_changes_audio_not_images(fixture_data):
    quiet = build_avmnist_arrays(fixture_data, AVMNISTConfig(noise="none"))
    noisy = build_avmnist_arrays(fixture_data, AVMNISTConfig(noise="white", snr_db=-10))
    np.testing.assert_array_equal(quiet["train"].image, noisy["train"].image)
    assert not np.array_equal(quiet["train"].audio, noisy["train"].audio)


def test_cache_is_reused_and_keyed_by_parameters(fixture_data, tmp_path, monkeypatch):
    first = load_avmnist(fixture_data, AVMNISTConfig(), cache_dir=tmp_path)
    monkeypatch.setattr(avmnist_module, "build_avmnist_arrays", lambda *a, **k: pytest.fail("rebuilt"))
    second = load_avmnist(fixture_data, AVMNISTConfig(), cache_dir=tmp_path)
    np.testing.assert_array_equal(first["test"].audio, second["test"].audio)
    assert cache_key(fixture_data, AVMNISTConfig()) != cache_key(fixture_data, AVMNISTConfig(snr_db=5.0))
    assert len(list(tmp_path.glob("*.npz"))) == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_full_mnist_uses_training_files(tmp_path):
    folder = write_fixture_data(tmp_path / "data")
    images, labels = fixture_images(40, np.random.default_rng(1))
    write_idx(folder / "mnist" / "train-images-idx3-ubyte.gz", images)
    write_idx(folder / "mnist" / "train-labels-idx1-ubyte.gz", labels)
    dataset = build_avmnist_arrays(folder, AVMNISTConfig(mnist_val_size=100))
    assert dataset.sizes() == {"train": 300, "val": 100, "test": 300}
    assert dataset.info["mnist"] == "full"
    np.testing.assert_array_equal(dataset["val"].mnist_index, np.arange(300, 400))


def test_mismatched_image_and_label_counts_are_rejected(tmp_path):
    folder = write_fixture_data(tmp_path / "data")
    write_idx(folder / "mnist" / "t10k-labels-idx1-ubyte.gz", np.zeros(5, dtype=np.uint8))
    with pytest.raises(ValueError, match="300 images but"):
        build_avmnist_arrays(folder, AVMNISTConfig())


def test_missing_data_folder_lists_searched_folders(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        find_data_dir(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(error.value)
    assert "python -m hfcore fetch" in str(error.value)


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="noise"):
        AVMNISTConfig(noise="pink")
    with pytest.raises(ValueError, match="pca_energy"):
        AVMNISTConfig(pca_energy=0.0)


def write_multibench(folder, n_train=30, n_test=10):
    rng = np.random.default_rng(0)
    (folder / "image").mkdir(parents=True)
    (folder / "audio").mkdir()
    for part, n in (("train", n_train), ("test", n_test)):
        np.save(folder / "image" / f"{part}_data.npy", rng.random((n, 784)).astype(np.float32))
        np.save(folder / "audio" / f"{part}_data.npy", rng.random((n, 112, 112)).astype(np.float32))
        np.save(folder / f"{part}_labels.npy", np.arange(n) % 10)


def test_multibench_folder_loads_with_last_samples_as_validation(tmp_path):
    write_multibench(tmp_path)
    dataset = load_multibench_avmnist(tmp_path, val_size=5)
    assert dataset.sizes() == {"train": 25, "val": 5, "test": 10}
    np.testing.assert_array_equal(dataset["val"].label, np.arange(25, 30) % 10)
    assert dataset["train"].image.shape == (25, 1, 28, 28)
    assert dataset["test"].audio.shape == (10, 1, 112, 112)


def test_multibench_missing_array_is_named(tmp_path):
    write_multibench(tmp_path)
    (tmp_path / "audio" / "test_data.npy").unlink()
    with pytest.raises(DataNotFoundError, match="audio/test_data.npy"):
        load_multibench_avmnist(tmp_path)


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="real data folder ../shared/data not present")
def test_real_sources_give_documented_split(tmp_path):
    dataset = load_avmnist(SHARED_DATA, AVMNISTConfig(), cache_dir=tmp_path)
    assert dataset.sizes() == {"train": 7000, "val": 1000, "test": 2000}
    assert dataset.info["mnist"] == "test-only"
    assert dataset.info["pca_components"] == 4  # cumulative variance 0.29, the first past 0.25
    test_counts = np.bincount(dataset["test"].label, minlength=10)
    official = np.array([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    np.testing.assert_allclose(test_counts, official * 0.2, atol=1)
    assert len(set(dataset["train"].recording)) == 6 * 35 * 10
