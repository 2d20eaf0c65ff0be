"""Species classification with location and date: encoding, loaders, models, recipe and runs."""

import json
import math
from datetime import date

import numpy as np
import pytest
import torch

from hfcore.geo import data as geo_data
from hfcore.geo.encoding import encode_location_time, scaled_date
from hfcore.geo.experiment import run_geo
from hfcore.geo.fixtures import write_inat2021_fixture, write_inat_2017_2018_fixture, write_yfcc_fixture
from hfcore.geo.models import GEO_FUSIONS, GeoClassifier, build_backbone, build_geo_model
from hfcore.geo.recipe import mixup, mixup_cross_entropy, topk_correct, warmup_cosine
from hfcore.geo.summary import comparison_table, geo_frame
from hfcore.results import ResultExistsError

SMALL = dict(backbone="resnet18", epochs=2, warmup_epochs=1, batch_size=8, lr=0.01, image_size=32, hidden_dim=8,
             num_workers=0, progress=False)


# --- encoding: hand-computed values --------------------------------------------------------------

def test_encoding_at_equator_and_meridian():
    features = encode_location_time(0.0, 0.0, None, parts=("geo",))
    np.testing.assert_allclose(features, [0, 0, 1, 1], atol=1e-7)


def test_encoding_at_both_poles():
    for latitude in (90.0, -90.0):
        sin_lat, sin_lon, cos_lat, cos_lon = encode_location_time(latitude, 90.0, None, parts=("geo",))
        assert sin_lat == pytest.approx(0, abs=1e-6)
        assert cos_lat == pytest.approx(-1)
        assert sin_lon == pytest.approx(1)  # 90 degrees east: x = 1/2
        assert cos_lon == pytest.approx(0, abs=1e-6)


def test_encoding_across_the_date_line():
    east, west = (encode_location_time(10.0, lon, None, parts=("geo",)) for lon in (180.0, -180.0))
    np.testing.assert_allclose(east, west, atol=1e-6)
    assert east[3] == pytest.approx(-1)


def test_first_and_last_day_of_the_year():
    assert scaled_date(date(2021, 1, 1)) == pytest.approx(2 / 365 - 1)
    assert scaled_date(date(2021, 12, 31)) == pytest.approx(1.0)
    features = encode_location_time(0.0, 0.0, "2021-12-31T08:00:00")
    assert features[2] == pytest.approx(0, abs=1e-6)  # sin(pi)
    assert features[5] == pytest.approx(-1)  # cos(pi)
    first = encode_location_time(0.0, 0.0, "2021-01-01")
    assert first[2] == pytest.approx(math.sin(math.pi * (2 / 365 - 1)), abs=1e-6)


def test_leap_years_have_366_days():
    assert scaled_date(date(2020, 12, 31)) == pytest.approx(1.0)
    assert scaled_date(date(2020, 2, 29)) == pytest.approx(2 * 60 / 366 - 1)
    assert scaled_date(date(2020, 3, 1)) == pytest.approx(2 * 61 / 366 - 1)
    assert scaled_date(date(2021, 3, 1)) == pytest.approx(2 * 60 / 365 - 1)
    assert scaled_date(date(1900, 12, 31)) == pytest.approx(1.0)  # 1900 is no leap year: day 365 of 365
    assert scaled_date(date(2000, 12, 30)) == pytest.approx(2 * 365 / 366 - 1)  # 2000 is one


def test_encoding_missing_and_invalid_values():
    np.testing.assert_array_equal(encode_location_time(None, 3.0, "2020-01-01"), np.zeros(6))
    np.testing.assert_array_equal(encode_location_time(5.0, float("nan"), "2020-01-01"), np.zeros(6))
    np.testing.assert_array_equal(encode_location_time(5.0, 3.0, None), np.zeros(6))
    assert encode_location_time(5.0, 3.0, None, parts=("geo",)).any()  # no date needed without "temporal"
    with pytest.raises(ValueError, match="latitude 91.0"):
        encode_location_time(91.0, 0.0, None, parts=("geo",))
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        encode_location_time(0.0, 0.0, "12/31/2020")
    with pytest.raises(ValueError, match="parts"):
        encode_location_time(0.0, 0.0, None, parts=("weather",))


# --- loaders on fixtures in the public formats ---------------------------------------------------

@pytest.fixture(scope="module")
def geo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("geo")
    write_inat2021_fixture(root / "inat2021")
    write_inat_2017_2018_fixture(root / "inat2018", 2018)
    write_inat_2017_2018_fixture(root / "inat2017", 2017)
    write_yfcc_fixture(root / "yfcc")
    return root


def test_inat2021_reads_coco_json_with_locations_and_dates(geo_root):
    train = geo_data.load_geo("inat2021", geo_root / "inat2021", "train_mini")
    val = geo_data.load_geo("inat2021", geo_root / "inat2021", "val", train.class_ids)
    assert (len(train), len(val), train.num_classes) == (24, 12, 3)
    assert all(p.is_file() for p in train.paths + val.paths)
    document = json.loads((geo_root / "inat2021" / "train_mini.json").read_text())
    first = document["images"][1]
    assert train.latitude[1] == first["latitude"]
    assert train.date[1] == first["date"]
    assert np.bincount(train.labels).tolist() == [8, 8, 8]
    assert train.missing_metadata() == 1
    assert val.missing_metadata() == 1
    assert train.aux_features().shape == (24, 6)


@pytest.mark.parametrize("year", [2017, 2018])
def test_inat_2017_2018_join_the_separate_locations_file(geo_root, year, caplog):
    samples = geo_data.load_geo(f"inat{year}", geo_root / f"inat{year}", "train")
    locations = json.loads((geo_root / f"inat{year}" / f"train{year}_locations.json").read_text())
    by_id = {entry["id"]: entry for entry in locations}
    assert samples.latitude[1] == by_id[1]["lat"]
    assert samples.date[1] == by_id[1]["date"]
    assert samples.latitude[0] is None  # image 0 has no entry: zeros, with a warning
    assert "have no entry" in caplog.text
    np.testing.assert_array_equal(samples.aux_features()[0], np.zeros(6))


def test_yfcc_reads_the_split_csv_with_locations_only(geo_root):
    train = geo_data.load_geo("yfcc", geo_root / "yfcc", "train")
    test = geo_data.load_geo("yfcc", geo_root / "yfcc", "test", train.class_ids)
    assert (len(train), len(test), train.num_classes) == (24, 12, 3)
    assert all(p.is_file() for p in train.paths)
    assert train.aux_features(("geo",)).shape == (24, 4)
    assert train.missing_metadata(("geo",)) == 1
    with pytest.raises(ValueError, match="splits present"):
        geo_data.load_geo("yfcc", geo_root / "yfcc", "validation")


def test_loaders_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train_mini\.json not found.*inat_comp"):
        geo_data.load_geo("inat2021", tmp_path, "train_mini")
    (tmp_path / "train2018.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(FileNotFoundError, match="train2018_locations.json not found"):
        geo_data.load_geo("inat2018", tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="train_test_split.csv not found.*make_YFCC_dataset"):
        geo_data.load_geo("yfcc", tmp_path, "train")
    (tmp_path / "train_test_split.csv").write_text("lat,lon,split\n1,2,train\n")
    with pytest.raises(ValueError, match=r"lacks the columns \['path', 'class'\]"):
        geo_data.load_geo("yfcc", tmp_path, "train")
    with pytest.raises(ValueError, match="unknown dataset"):
        geo_data.load_geo("imagenet", tmp_path, "train")


def test_annotations_that_disagree_are_reported(tmp_path):
    document = {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 0}], "categories": [{"id": 0}]}
    (tmp_path / "val.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="1 images have no annotation, for example image id 2"):
        geo_data.load_inat2021(tmp_path, "val")
    document["annotations"].append({"id": 2, "image_id": 2, "category_id": 7})
    (tmp_path / "val.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"category ids \[7\]"):
        geo_data.load_inat2021(tmp_path, "val")


def test_dataset_items_and_unreadable_images(geo_root, tmp_path):
    samples = geo_data.load_geo("inat2021", geo_root / "inat2021", "val")
    dataset = geo_data.GeoDataset(samples, geo_data.image_transforms(32, train=False))
    image, label, aux = dataset[3]
    assert image.shape == (3, 32, 32)
    assert label == samples.labels[3]
    assert aux.shape == (6,)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    samples.paths[3] = broken
    with pytest.raises(ValueError, match="broken.jpg is not a readable image"):
        dataset[3]
    samples.paths[3] = tmp_path / "gone.jpg"
    with pytest.raises(FileNotFoundError, match="gone.jpg listed in the annotations is missing"):
        dataset[3]
    with pytest.raises(FileNotFoundError, match=r"1 of 12 images of split 'val' are missing, for example .*gone.jpg"):
        samples.check_files("val")


def test_missing_image_fails_before_training(geo_root, tmp_path):
    import shutil

    root = tmp_path / "inat"
    shutil.copytree(geo_root / "inat2021", root)
    document = json.loads((root / "val.json").read_text())
    (root / document["images"][5]["file_name"]).unlink()
    with pytest.raises(FileNotFoundError, match="1 of 12 images of split 'val' are missing"):
        run_geo(dataset="inat2021", data_dir=str(root), model="concat", **SMALL, results_dir=str(tmp_path / "r"),
                checkpoint_dir=str(tmp_path / "c"))
    assert not (tmp_path / "c").exists()  # no epoch ran


def test_batch_larger_than_training_set_is_rejected(geo_root, tmp_path):
    with pytest.raises(ValueError, match="batch_size 64 is larger than the 24 training images"):
        run_geo(dataset="yfcc", data_dir=str(geo_root / "yfcc"), model="concat", **{**SMALL, "batch_size": 64},
                results_dir=str(tmp_path), checkpoint_dir=str(tmp_path / "c"))


# --- models --------------------------------------------------------------------------------------

class TinyBackbone(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


@pytest.mark.parametrize("fusion", GEO_FUSIONS)
def test_every_fusion_trains_every_parameter(fusion):
    torch.manual_seed(0)
    model = GeoClassifier(TinyBackbone(), 8, num_classes=4, aux_dim=6, fusion=fusion, aux_width=16,
                          hidden_dim=4)
    images, aux = torch.randn(5, 3, 12, 12), torch.randn(5, 6)
    logits = model(images, aux)
    assert logits.shape == (5, 4)
    # Two steps: FiLM starts at the identity (zero gamma and beta weights), so the auxiliary MLP
    # receives its first gradient only after one update.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    reached = set()
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images, aux), torch.arange(5) % 4).backward()
        reached |= {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        optimizer.step()
    untrained = sorted({name for name, _ in model.named_parameters()} - reached)
    assert not untrained, untrained
    if fusion != "image_only":
        assert not torch.allclose(model(images, torch.zeros_like(aux)), model(images, aux))


def test_prior_multiplies_probabilities_and_ensemble_averages_logits():
    torch.manual_seed(0)
    images, aux = torch.randn(3, 3, 12, 12), torch.randn(3, 6)
    for fusion in ("geonet_prior", "ensemble"):
        model = GeoClassifier(TinyBackbone(), 8, 4, 6, fusion, aux_width=16).eval()
        image_logits = model.classifier(model.backbone(images))
        location_logits = model.location_classifier(model.aux_net(aux))
        if fusion == "geonet_prior":
            expected = torch.softmax(image_logits, 1) * torch.softmax(location_logits, 1)
            torch.testing.assert_close(torch.softmax(model(images, aux), 1), expected / expected.sum(1, keepdim=True))
        else:
            torch.testing.assert_close(model(images, aux), (image_logits + location_logits) / 2)


def test_torchvision_backbones_by_name_with_local_weights(tmp_path):
    import torchvision

    network, width = build_backbone("resnet18")
    assert width == 512
    assert isinstance(network.fc, torch.nn.Identity)
    torch.manual_seed(1)
    source = torchvision.models.resnet18()
    weights_file = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), weights_file)
    loaded, _ = build_backbone("resnet18", weights_file)
    source.fc = torch.nn.Identity()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded.eval()(x), source.eval()(x))
    for name, expected in (("mobilenet_v3_small", 576), ("vgg11", 25088)):  # MLP classifiers
        network, width = build_backbone(name)
        assert width == expected
        assert network.eval()(torch.randn(1, 3, 32, 32)).shape == (1, width)
    model = build_geo_model("hyperfuse", backbone="mobilenet_v3_small", num_classes=3, hidden_dim=4)
    assert model.eval()(torch.randn(2, 3, 32, 32), torch.randn(2, 6)).shape == (2, 3)
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet5'"):
        build_backbone("resnet5")
    with pytest.raises(FileNotFoundError, match="weights file .*missing.pth not found"):
        build_backbone("resnet18", tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="fusion must be one of"):
        build_geo_model("film", backbone="resnet18", num_classes=3)


# --- recipe --------------------------------------------------------------------------------------

def test_warmup_then_cosine_by_hand():
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(4, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.5)  # halfway through the 90 decay steps
    assert warmup_cosine(100, 100, 10) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(0, 10, 0) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        warmup_cosine(0, 0, 0)


def test_mixup_shares_lambda_and_permutation():
    images, aux, labels = torch.randn(6, 3, 4, 4), torch.randn(6, 6), torch.arange(6)
    rng, generator = np.random.default_rng(3), torch.Generator().manual_seed(3)
    mixed_images, mixed_aux, labels_a, labels_b, lam = mixup(images, aux, labels, 0.4, rng, generator)
    expected_lam = float(np.random.default_rng(3).beta(0.4, 0.4))
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(3))
    assert lam == pytest.approx(expected_lam)
    torch.testing.assert_close(mixed_images, lam * images + (1 - lam) * images[perm])
    torch.testing.assert_close(mixed_aux, lam * aux + (1 - lam) * aux[perm])
    assert labels_a.tolist() == labels.tolist()
    assert labels_b.tolist() == labels[perm].tolist()
    unchanged = mixup(images, aux, labels, 0.0, rng)
    assert unchanged[0] is images
    assert unchanged[4] == 1.0
    with pytest.raises(ValueError, match="alpha"):
        mixup(images, aux, labels, -1.0, rng)


def test_label_smoothed_mixup_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0]])
    log_p = torch.log_softmax(logits, 1)[0]
    smoothed_0 = -(0.95 * log_p[0] + 0.05 * log_p[1])  # smoothing 0.1 over 2 classes: 0.95 / 0.05
    smoothed_1 = -(0.05 * log_p[0] + 0.95 * log_p[1])
    loss = mixup_cross_entropy(logits, torch.tensor([0]), torch.tensor([1]), 0.7, label_smoothing=0.1)
    assert float(loss) == pytest.approx(float(0.7 * smoothed_0 + 0.3 * smoothed_1), rel=1e-6)


def test_topk_by_hand():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    labels = torch.tensor([2, 0, 0])
    assert topk_correct(logits, labels, (1, 2, 5)) == {1: 1, 2: 2, 5: 3}


# --- runs ----------------------------------------------------------------------------------------

def test_run_geo_record_and_determinism(geo_root, tmp_path):
    kwargs = dict(dataset="inat2021", data_dir=str(geo_root / "inat2021"), model="hyperfuse", **SMALL)
    first = run_geo(**kwargs, results_dir=str(tmp_path / "a"), checkpoint_dir=str(tmp_path / "ca"), run_name="r")
    second = run_geo(**kwargs, results_dir=str(tmp_path / "b"), checkpoint_dir=str(tmp_path / "cb"), run_name="r")
    assert first["metrics"]["eval_top1"] == second["metrics"]["eval_top1"]
    assert first["metrics"]["history"] == second["metrics"]["history"]
    saved = json.loads((tmp_path / "a" / "r.json").read_text())
    assert saved["data"]["eval_samples"] == 12
    assert saved["metrics"]["eval_samples"] == 12
    assert {"provenance", "wall_seconds", "parameters", "seed"} <= set(saved)
    assert saved["parameters"]["parts"] == ["geo", "temporal"]
    assert saved["parameters"]["train_split"] == "train_mini"
    with pytest.raises(ResultExistsError, match="already exists.*--overwrite on the command line"):
        run_geo(**kwargs, results_dir=str(tmp_path / "a"), checkpoint_dir=str(tmp_path / "ca"), run_name="r")
    assert sorted(p.name for p in (tmp_path / "ca").iterdir()) == ["r.final.pt"]  # the resumable checkpoint is gone


def test_run_geo_resumes_after_interruption(geo_root, tmp_path, monkeypatch):
    from hfcore.geo import experiment

    kwargs = dict(dataset="yfcc", data_dir=str(geo_root / "yfcc"), model="concat", **{**SMALL, "epochs": 3})
    reference = run_geo(**kwargs, results_dir=str(tmp_path / "ref"), checkpoint_dir=str(tmp_path / "c1"),
                        run_name="r")
    real_epoch, calls = experiment._train_epoch, []

    def dies_in_epoch_two(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real_epoch(*args, **kw)

    monkeypatch.setattr(experiment, "_train_epoch", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        run_geo(**kwargs, results_dir=str(tmp_path / "cut"), checkpoint_dir=str(tmp_path / "c2"), run_name="r")
    assert not (tmp_path / "cut" / "r.json").exists()
    monkeypatch.setattr(experiment, "_train_epoch", real_epoch)
    resumed = run_geo(**kwargs, results_dir=str(tmp_path / "cut"), checkpoint_dir=str(tmp_path / "c2"), run_name="r")
    assert resumed["metrics"]["resumed_from_epoch"] == 2
    assert resumed["metrics"]["history"] == reference["metrics"]["history"]
    assert resumed["metrics"]["eval_loss"] == pytest.approx(reference["metrics"]["eval_loss"], rel=1e-6)


@pytest.mark.parametrize("change, message", [
    ({"model": "film"}, "valid names: image_only, concat"),
    ({"dataset": "inat2019"}, "unknown dataset"),
    ({"data_dir": None}, "data_dir is required"),
    ({"epochs": 0}, "epochs must be positive"),
    ({"lr": "0.1"}, "lr must be a number, got '0.1'"),
    ({"mixup_alpha": -0.5}, "mixup_alpha must be non-negative"),
    ({"warmup_epochs": 2}, r"warmup_epochs \(2\) must be smaller than epochs \(2\)"),
    ({"label_smoothing": 1.0}, "label_smoothing must lie in"),
    ({"parts": ["weather"]}, "parts must be"),
    ({"dataset": "yfcc", "parts": ["geo", "temporal"]}, "YFCC-GEO100 has no dates"),
    ({"precision": "fp8"}, "precision must be one of"),
])
def test_bad_parameters_fail_before_loading_anything(change, message):
    kwargs = {"dataset": "inat2021", "data_dir": "/nonexistent", **SMALL, **change}
    with pytest.raises(ValueError, match=message):
        run_geo(**kwargs)


def test_summary_table_beside_the_paper(geo_root, tmp_path):
    for seed in (0, 1):
        for model in ("image_only", "hyperfuse"):
            run_geo(dataset="yfcc", data_dir=str(geo_root / "yfcc"), model=model, seed=seed, **SMALL,
                    results_dir=str(tmp_path), checkpoint_dir=str(tmp_path / "ck"), run_name=f"{model}-{seed}")
    frame = geo_frame(tmp_path)
    assert set(comparison_table(frame)["paper top-1 / top-5"]) == {""}  # the paper used a ResNet-50
    frame["backbone"] = "resnet50"
    table = comparison_table(frame)
    assert table["model"].tolist() == ["Image only", "ResNet + HyperFuse"]
    assert table["paper top-1 / top-5"].tolist() == ["47.6 / 77.9", "53.2 / 84.8"]
    values = frame[frame["model"] == "hyperfuse"]["top1"]
    assert table.loc[1, "top-1"] == f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"
    with pytest.raises(FileNotFoundError, match="no geo results"):
        geo_frame(tmp_path / "ck")
    assert len(geo_frame(tmp_path, {"epochs": 2, "hidden_dim": 8})) == 4  # image_only recorded hidden_dim None
    with pytest.raises(FileNotFoundError, match="no geo results in .* match"):
        geo_frame(tmp_path, {"epochs": 3})
