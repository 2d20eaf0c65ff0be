"""M3A: loading the release in both layouts, label matching, splits, metrics, models, runs."""

from __future__ import annotations

import shutil
from datetime import date

import numpy as np
import pytest
import torch

from hfcore.m3a import data as m3a_data
from hfcore.m3a.data import (
    MatchReport, Normalizer, call_key, folder_key, load_m3a, match_labels, read_call_csv, read_labels, read_packed,
    validation_split,
)
from hfcore.m3a.experiment import run_m3a
from hfcore.m3a.fixtures import write_m3a_fixture
from hfcore.m3a.metrics import movement_metrics, mse, trivial_movement, trivial_volatility_mse
from hfcore.m3a.models import (
    AttentionFusion, build_m3a_model, m3a_model_names, masked_mean, sinusoidal_positions,
)
from hfcore.results import ResultExistsError
from tests.conftest import SHARED_DATA

M3A = SHARED_DATA / "m3a"
needs_release = pytest.mark.skipif(not (M3A / "m3a-features.npz").is_file(), reason="../shared/data/m3a not present")


# --- matching label rows to call folders -------------------------------------------------

def test_call_key_writes_ampersand_and_apostrophe_as_underscore():
    assert call_key("A_SS&CTechnologiesHoldingsInc_DSTSystems.pdf", "1/11/2018") == \
        folder_key("A_SS_CTechnologiesHoldingsInc_DSTSystems_2018-01-11")
    assert call_key("A_People'sUnitedFinancial_X.pdf", "7/15/2019") == "A_People_sUnitedFinancial_X_2019-07-15"


def test_call_key_matches_decomposed_and_composed_unicode():
    decomposed = "M_WPCareyInc_CPAA\u030217.pdf"  # as in the label file: A + combining circumflex
    assert call_key(decomposed, "6/18/2018") == folder_key("M_WPCareyInc_CPA\u00c217_2018-06-18")


def test_call_key_pads_month_and_day():
    assert call_key("X.pdf", "1/2/2018") == "X_2018-01-02"
    assert call_key("X.pdf", date(2018, 12, 31)) == "X_2018-12-31"


def test_call_key_rejects_a_date_in_another_format():
    with pytest.raises(ValueError, match="month/day/year"):
        call_key("X.pdf", "2018-01-02")


def test_fixture_matching_reports_duplicate_and_unmatched_rows(tmp_path):
    root = write_m3a_fixture(tmp_path, n_calls=8, n_test=2)
    labels = read_labels(root)
    folders = sorted(p.name for p in (root / "Dataset").iterdir())
    mapping, report = match_labels(labels, folders)
    assert len(mapping) == 8
    assert [row for row, _, _ in report.duplicate_rows] == [8]
    assert [name for _, name, _ in report.unmatched_rows] == ["A_Nobody_NoFolder.pdf"]
    assert report.calls_without_labels == []
    assert mapping[1].startswith("A_Buyer1_Smith_Sons_")


def test_match_labels_repeated_call_with_other_labels(tmp_path):
    root = write_m3a_fixture(tmp_path, n_calls=8, n_test=2)
    labels = read_labels(root)
    labels.loc[8, "volatility_3"] += 1.0
    folders = sorted(p.name for p in (root / "Dataset").iterdir())
    with pytest.raises(ValueError, match="different labels"):
        match_labels(labels, folders)


def test_label_files_that_disagree_are_rejected(tmp_path):
    root = write_m3a_fixture(tmp_path, n_calls=6, n_test=2)
    text = (root / "Y_Movement.csv").read_text().splitlines()
    (root / "Y_Movement.csv").write_text("\n".join([text[0], *text[2:], text[1]]) + "\n")
    with pytest.raises(ValueError, match="same calls in the same order"):
        read_labels(root)


def test_load_m3a_missing_release(tmp_path):
    with pytest.raises(m3a_data.DataNotFoundError, match="midas-research/m3a-acl") as error:
        load_m3a(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "m3a") in str(error.value)


# --- both layouts give the same arrays ----------------------------------------------------

@needs_release
def test_read_call_csv_equals_packed_file():
    packed = read_packed(M3A / "m3a-features.npz")
    folders = sorted((M3A / "original-sample" / "Dataset").iterdir())
    assert len(folders) == 12
    for folder in folders:
        call = read_call_csv(folder)
        assert np.array_equal(call["text"], packed.text[folder.name])
        assert call["text"].dtype == packed.text[folder.name].dtype == np.float16
        assert np.array_equal(call["audio"], packed.audio[folder.name], equal_nan=True)
        assert np.array_equal(call["speaker"], packed.speaker[folder.name])
    assert list(call["audio_feature_names"]) == packed.audio_feature_names


@needs_release
def test_read_call_csv_empty_audio_cells():
    call = read_call_csv(M3A / "original-sample" / "Dataset" / "A_GreenPlains_FleischmannVinegar_2016-10-03")
    assert np.isnan(call["audio"]).any()
    assert not np.isnan(call["text"].astype(np.float32)).any()


def test_csv_release_is_parsed_once_and_cached(tmp_path, monkeypatch):
    root = write_m3a_fixture(tmp_path / "data", n_calls=6, n_test=2)
    first = load_m3a(tmp_path / "data", cache_dir=tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache").glob("m3a-*.npz"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the cache should have been read")

    monkeypatch.setattr(m3a_data, "read_call_csv", refuse)
    second = load_m3a(tmp_path / "data", cache_dir=tmp_path / "cache", progress=False)
    assert first.calls == second.calls
    assert all(np.array_equal(a, b) for a, b in zip(first.text, second.text))
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(first.audio, second.audio))
    assert root.name == "m3a"


def test_packed_fixture_loads_like_its_csv_layout(tmp_path):
    root = write_m3a_fixture(tmp_path / "data", n_calls=6, n_test=2)
    from_csv = load_m3a(tmp_path / "data", cache_dir=tmp_path / "cache", progress=False)
    m3a_data.pack_release(root / "Dataset", root / "m3a-features.npz", progress=False)
    shutil.rmtree(root / "Dataset")
    from_packed = load_m3a(tmp_path / "data", cache_dir=tmp_path / "cache", progress=False)
    assert from_packed.source.endswith("m3a-features.npz")
    assert from_csv.calls == from_packed.calls
    assert all(np.array_equal(a, b) for a, b in zip(from_csv.text, from_packed.text))
    assert from_csv.labels.equals(from_packed.labels)


def test_read_call_csv_unequal_rows(tmp_path):
    root = write_m3a_fixture(tmp_path, n_calls=4, n_test=1)
    folder = sorted((root / "Dataset").iterdir())[0]
    lines = (folder / "Audio.csv").read_text().splitlines()
    (folder / "Audio.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="utterances but"):
        read_call_csv(folder)


# --- the real release ---------------------------------------------------------------------

@needs_release
def test_load_m3a_full_release():
    data = load_m3a(SHARED_DATA, progress=False)
    assert len(data.calls) == 812
    assert data.report.unmatched_rows == []
    assert [row for row, _, _ in data.report.duplicate_rows] == [812, 813, 814, 815]
    assert (len(data.split["train"]), len(data.split["test"])) == (693, 119)
    assert sum(len(t) for t in data.text) == 81587


@needs_release
def test_trivial_baselines_match_the_published_values():
    # Published in ../shared/data/README.md for the release's rows. The training mean scores
    # test MSE 0.815 / 0.626 / 0.504. Always "up" scores F1 0.64 / 0.65 / 0.63 and MCC 0.
    data = load_m3a(SHARED_DATA, progress=False)
    train, test = data.split["train"], data.split["test"]
    for horizon, expected in zip((3, 7, 15), (0.815, 0.626, 0.504)):
        y = data.targets("volatility", horizon)
        assert trivial_volatility_mse(y[train], y[test]) == pytest.approx(expected, abs=0.001)
    for horizon, expected in zip((3, 7, 15), (0.64, 0.65, 0.63)):
        y = data.targets("movement", horizon)
        metrics = trivial_movement(y[train], y[test])
        assert metrics["f1"] == pytest.approx(expected, abs=0.005)
        assert metrics["mcc"] == 0.0


@needs_release
def test_validation_split_takes_the_latest_training_calls():
    data = load_m3a(SHARED_DATA, progress=False)
    split = validation_split(data, 0.1)
    assert len(split["val"]) == 69
    assert data.dates[split["train"]].max() <= data.dates[split["val"]].min()
    assert set(split["train"]) | set(split["val"]) == set(data.split["train"])
    assert not set(split["val"]) & set(split["test"])


# --- normalisation and metrics --------------------------------------------------------------

def test_normalizer_training_statistics():
    text = [np.array([[1.0, 5.0], [3.0, 5.0]], dtype=np.float16)]
    audio = [np.array([[0.0, 2.0], [4.0, np.nan]], dtype=np.float32)]
    norm = Normalizer.fit(text, audio)
    assert norm.text_mean.tolist() == [2.0, 5.0]
    assert norm.text_std.tolist() == [1.0, 1.0]  # the constant second feature is only centred
    assert norm.audio_mean.tolist() == [2.0, 2.0]  # NaN ignored
    scaled = norm.audio(np.array([[6.0, np.nan]], dtype=np.float32))
    assert scaled.tolist() == [[2.0, 0.0]]  # (6 - 2) / 2; missing becomes the training mean, 0


def test_missing_counts_are_reported():
    audio = [np.array([[np.nan, np.nan], [1.0, np.nan], [1.0, 2.0]])]
    assert Normalizer.missing_counts(audio) == {"cells": 3, "utterances_with_any": 2,
                                               "utterances_all_missing": 1, "utterances": 3}


def test_movement_metrics_on_a_hand_worked_case():
    # TP=2, FP=1, FN=1, TN=2: precision = recall = 2/3, F1 = 2/3;
    # MCC = (2*2 - 1*1) / sqrt(3*3*3*3) = 3/9 = 1/3.
    metrics = movement_metrics([1, 1, 1, 0, 0, 0], [1, 1, 0, 1, 0, 0])
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["mcc"] == pytest.approx(1 / 3)
    assert metrics["accuracy"] == pytest.approx(4 / 6)


def test_mse_hand_worked():
    assert mse([1.0, 3.0], [2.0, 2.0]) == 1.0
    assert trivial_volatility_mse(np.array([1.0, 3.0]), np.array([2.0, 4.0])) == 2.0  # mean 2: (0 + 4) / 2


# --- models -------------------------------------------------------------------------------------

def _batch(lengths, seed=0, pad_to=None):
    generator = torch.Generator().manual_seed(seed)
    length = pad_to or max(lengths)
    mask = torch.zeros(len(lengths), length, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    return {
        "text": torch.randn(len(lengths), length, 768, generator=generator),
        "audio": torch.randn(len(lengths), length, 62, generator=generator),
        "speaker": torch.randint(0, 5, (len(lengths), length), generator=generator),
        "mask": mask,
    }


def _hyperfuse(primary="text", position=0, block="base"):
    return build_m3a_model("m3anet_hyperfuse", "volatility", primary=primary, fusion_position=position,
                           hidden_dim=4, block=block)


def test_sinusoidal_positions_on_hand_values():
    table = sinusoidal_positions(3, 4)
    assert table[0].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert table[1, 0].item() == pytest.approx(np.sin(1.0))
    assert table[1, 3].item() == pytest.approx(np.cos(1.0 / 10000 ** (2 / 4)))


def test_masked_mean_ignores_padding():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(x, torch.tensor([[True, True, False]])).item() == 2.0


def test_attention_fusion_weights_sum_to_one_per_feature():
    fusion = AttentionFusion(5)
    text, audio = torch.randn(3, 5), torch.randn(3, 5)
    w_t, w_a = fusion.weights(text, audio)
    torch.testing.assert_close(w_t + w_a, torch.ones(3, 5))
    torch.testing.assert_close(fusion(text, audio), text * w_t**2 + audio * w_a**2)


@pytest.mark.parametrize("name", ["m3anet", "transformer_att", "transformer_concat", "mdrm", "text_only",
                                  "audio_only", "m3anet_hyperfuse"])
def test_padding_does_not_change_a_calls_score(name):
    torch.manual_seed(0)
    model = build_m3a_model(name, "volatility").eval()
    short = _batch([5])
    padded = _batch([5], pad_to=9)
    for key in ("text", "audio", "speaker"):
        padded[key][:, :5] = short[key]
    with torch.no_grad():
        torch.testing.assert_close(model(short), model(padded), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", m3a_model_names())
def test_model_scores_and_gradients(name):
    torch.manual_seed(0)
    model = build_m3a_model(name, "movement")
    scores = model(_batch([4, 7, 2]))
    assert scores.shape == (3,)
    scores.sum().backward()
    untrained = [n for n, p in model.named_parameters() if p.grad is None]
    assert untrained == []


def test_unimodal_models_ignore_the_other_modality():
    torch.manual_seed(0)
    text_only, audio_only = build_m3a_model("text_only", "volatility").eval(), build_m3a_model("audio_only", "volatility").eval()
    batch, other = _batch([6, 3]), _batch([6, 3], seed=1)
    changed_audio = {**batch, "audio": other["audio"]}
    changed_text = {**batch, "text": other["text"]}
    with torch.no_grad():
        torch.testing.assert_close(text_only(batch), text_only(changed_audio))
        torch.testing.assert_close(audio_only(batch), audio_only(changed_text))
        assert not torch.allclose(text_only(batch), text_only(changed_text))


def test_m3anet_speaker_input():
    torch.manual_seed(0)
    m3anet, transformer = build_m3a_model("m3anet", "volatility").eval(), build_m3a_model("transformer_att", "volatility").eval()
    batch = _batch([6, 4])
    moved = {**batch, "speaker": (batch["speaker"] + 1) % 5}
    with torch.no_grad():
        assert not torch.allclose(m3anet(batch), m3anet(moved))
        torch.testing.assert_close(transformer(batch), transformer(moved))


@pytest.mark.parametrize("primary,position,width", [("text", 0, 768), ("text", 1, 62), ("audio", 0, 62), ("audio", 1, 62)])
def test_m3anet_hyperfuse_inputs(primary, position, width):
    torch.manual_seed(0)
    model = _hyperfuse(primary, position)
    assert model.hyperfuse.primary_dim == width
    assert model.hyperfuse.aux_dim == (62 if primary == "text" else 768) + 62 + 31
    seen = {}
    model.hyperfuse.register_forward_hook(lambda module, inputs, output: seen.update(z_p=inputs[0], z_a=inputs[1]))
    batch = _batch([3])
    model(batch)
    assert seen["z_p"].shape == (3, width)  # one row per real utterance
    aux_source = (batch["audio"] if primary == "text" else batch["text"])[batch["mask"]]
    torch.testing.assert_close(seen["z_a"][:, : aux_source.shape[-1]], aux_source)
    if position == 0:
        torch.testing.assert_close(seen["z_p"], batch[primary][batch["mask"]])


def test_block_one_refuses_the_768_wide_text_feature():
    with pytest.raises(ValueError, match="use fusion_position=1"):
        _hyperfuse("text", 0, block="I")
    assert _hyperfuse("text", 1, block="I").hyperfuse.block == "I"


def test_build_m3a_model_bad_names():
    with pytest.raises(ValueError, match="valid names"):
        build_m3a_model("m3anett", "volatility")
    with pytest.raises(ValueError, match="m3anet_hyperfuse only"):
        build_m3a_model("m3anet", "volatility", hidden_dim=4)


# --- a run -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixture_release(tmp_path_factory):
    root = tmp_path_factory.mktemp("m3a")
    write_m3a_fixture(root / "data")
    return load_m3a(root / "data", cache_dir=root / "cache", progress=False)


def test_run_m3a_record_and_determinism(fixture_release, tmp_path):
    options = dict(model="m3anet_hyperfuse", task="volatility", horizon=7, epochs=3, patience=None, batch_size=4,
                   hidden_dim=4, data=fixture_release, progress=False)
    first = run_m3a(**options, results_dir=tmp_path / "a", run_name="r")
    second = run_m3a(**options, results_dir=tmp_path / "b", run_name="r")
    assert first["metrics"]["test_mse"] == second["metrics"]["test_mse"]
    assert (tmp_path / "a" / "r.json").is_file()
    assert first["dataset"]["split_sizes_used"] == {"train": 16, "val": 2, "test": 6}
    assert first["dataset"]["match_report"]["duplicate_rows"][0][0] == 24
    assert first["trivial_baseline"]["test_mse"] > 0
    with pytest.raises(ResultExistsError):
        run_m3a(**options, results_dir=tmp_path / "a", run_name="r")


def test_movement_run_reports_f1_and_mcc(fixture_release, tmp_path):
    record = run_m3a(model="m3anet", task="movement", horizon=3, epochs=2, batch_size=8, data=fixture_release,
                     results_dir=tmp_path, progress=False)
    assert {"test_f1", "test_mcc", "test_accuracy", "val_bce"} <= set(record["metrics"])
    assert record["parameters"]["hidden_dim"] is None  # not a HyperFuse model: nothing recorded


@pytest.mark.parametrize("change,message", [
    ({"model": "hyperfuse"}, "valid names"),
    ({"horizon": 5}, "horizon must be one of"),
    ({"task": "price"}, "task must be one of"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"epochs": "10"}, "epochs must be a positive integer"),
    ({"fusion_position": 2}, "fusion_position must be one of"),
    ({"primary": "image"}, "primary must be one of"),
    ({"hidden_dim": 4}, "apply to model='m3anet_hyperfuse' only"),
])
def test_bad_parameters_are_rejected_before_loading(change, message, tmp_path):
    options = dict(model="m3anet", data_dir=tmp_path / "no-data", results_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=message):
        run_m3a(**{**options, **change})


@pytest.mark.parametrize("block", ["II", "III", "IV"])
def test_m3anet_hyperfuse_block_variants(block):
    torch.manual_seed(0)
    model = _hyperfuse("text", 0, block=block).eval()
    short = _batch([4])
    padded = _batch([4], pad_to=7)
    for key in ("text", "audio", "speaker"):
        padded[key][:, :4] = short[key]
    with torch.no_grad():
        torch.testing.assert_close(model(short), model(padded), atol=1e-5, rtol=1e-5)
    assert model.hyperfuse.final_skip is False


# --- summaries -------------------------------------------------------------------------------

def _summary_frame():
    import pandas as pd

    rows = []
    for hidden, block, val in ((2, "base", 0.50), (4, "base", 0.40), (8, "III", 0.40), (16, "II", 0.45)):
        rows.append({"model": "m3anet_hyperfuse", "task": "volatility", "horizon": 3, "seed": 0, "block": block,
                     "hidden_dim": hidden, "primary": "text", "fusion_position": 0, "val_mse": val,
                     "test_mse": 0.7 + hidden / 100, "trivial_test_mse": 0.815})
    for seed, mse_value in enumerate((0.6, 0.8)):
        rows.append({"model": "m3anet", "task": "volatility", "horizon": 3, "seed": seed, "block": None,
                     "hidden_dim": None, "primary": None, "fusion_position": None, "val_mse": 0.5,
                     "test_mse": mse_value, "trivial_test_mse": 0.815})
    return pd.DataFrame(rows)


def test_select_hyperfuse_lowest_validation_loss_ties_to_smaller_h():
    from hfcore.m3a.summary import hyperfuse_seed_grids, select_hyperfuse

    frame = _summary_frame()
    assert select_hyperfuse(frame, "volatility") == {3: ("base", 4)}  # 0.40 at h=4 and h=8: the smaller
    grids = hyperfuse_seed_grids(frame, "volatility", seeds=(1,))
    assert grids == [{"model": ["m3anet_hyperfuse"], "horizon": [3], "block": ["base"], "hidden_dim": [4],
                      "seed": [1]}]


def test_comparison_table_mean_std_and_trivial_row():
    from hfcore.m3a.summary import comparison_table

    table = comparison_table(_summary_frame(), "volatility").set_index("model")
    # M3ANet over two seeds: mean 0.7, sample std sqrt(0.02) = 0.141.
    assert table.loc["M3ANet", "MSE_3"] == "0.700 ± 0.141"
    assert table.loc["M3ANet", "paper MSE_3"] == "0.77"
    assert table.loc["M3ANet + HyperFuse", "MSE_3"] == "0.740 (1 seed)"  # the selected h=4 run only
    assert table.loc["training mean", "MSE_3"] == "0.815"


def test_difference_table_pairs_seeds_by_hand():
    import pandas as pd

    from hfcore.m3a.summary import difference_table

    frame = _summary_frame()
    # HyperFuse at the selected h=4 on seeds 0 and 1 (0.74 and 0.66 against M3ANet's 0.6 and 0.8).
    frame = pd.concat([frame, frame.iloc[[1]].assign(seed=1, test_mse=0.66)], ignore_index=True)
    row = difference_table(frame, "volatility").set_index("metric").loc["MSE_3"]
    # Differences +0.14 and -0.14: mean 0, std 0.198, half-width t(0.975, 1) * 0.198 / sqrt(2) = 1.779.
    assert row["seeds"] == 2
    assert row["difference"] == 0.0
    assert row["95% low"] == -1.779
    assert row["95% high"] == 1.779
    assert row["paper difference"] == -0.02  # 0.75 - 0.77


def test_blocks_table_takes_each_blocks_best_validation_run():
    from hfcore.m3a.summary import blocks_table

    table = blocks_table(_summary_frame()).set_index("block")
    assert list(table.index) == ["base", "II", "III"]  # base first
    assert table.loc["base", "MSE_3"] == "0.740 (h=4)"  # val 0.40 beats h=2's 0.50
    assert table.loc["III", "MSE_3"] == "0.780 (h=8)"
    assert table.loc["II", "paper MSE_3"] == "0.742"
    assert table.loc["base", "MSE_7"] == ""  # no runs at 7 days


def test_hidden_size_frame_relative_error():
    from hfcore.m3a.summary import hidden_size_frame

    hidden = hidden_size_frame(_summary_frame())  # base block only: h=2 (0.72) and h=4 (0.74)
    assert list(hidden["hidden_dim"]) == [2, 4]
    assert list(hidden["relative_error"].round(4)) == [1.0, round(0.74 / 0.72, 4)]


def test_plot_hidden_size_task_labels():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from hfcore.m3a.summary import hidden_size_frame, plot_hidden_size

    hidden = hidden_size_frame(_summary_frame())
    movement = plot_hidden_size(hidden, "movement")
    ax = movement.axes[0]
    assert ax.get_ylabel() == "relative error (test error rate / best)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "4"]
    volatility = plot_hidden_size(hidden)
    assert volatility.axes[0].get_ylabel() == "relative error (test MSE / best)"
    plt.close(movement)
    plt.close(volatility)
    with pytest.raises(ValueError, match="'price'"):
        plot_hidden_size(hidden, "price")


def test_positions_table_uses_the_selected_configuration():
    import pandas as pd

    from hfcore.m3a.summary import positions_table

    base = {"task": "volatility", "horizon": 7, "val_mse": 0.5, "trivial_test_mse": 0.63}
    rows = [
        # Selected at 7 days: block II, h=8 (lowest validation MSE on seed 0).
        {**base, "model": "m3anet_hyperfuse", "seed": 0, "block": "II", "hidden_dim": 8, "primary": "text",
         "fusion_position": 0, "val_mse": 0.40, "test_mse": 0.55},
        {**base, "model": "m3anet_hyperfuse", "seed": 0, "block": "base", "hidden_dim": 4, "primary": "text",
         "fusion_position": 0, "val_mse": 0.45, "test_mse": 0.50},
        {**base, "model": "m3anet_hyperfuse", "seed": 1, "block": "II", "hidden_dim": 8, "primary": "text",
         "fusion_position": 0, "test_mse": 0.57},
        {**base, "model": "m3anet_hyperfuse", "seed": 0, "block": "II", "hidden_dim": 8, "primary": "audio",
         "fusion_position": 1, "test_mse": 0.60},
        {**base, "model": "m3anet_hyperfuse", "seed": 0, "block": "base", "hidden_dim": 8, "primary": "audio",
         "fusion_position": 1, "test_mse": 0.90},  # another block: left out
        {**base, "model": "text_only", "seed": 0, "block": None, "hidden_dim": None, "primary": None,
         "fusion_position": None, "test_mse": 0.62},
    ]
    table = positions_table(pd.DataFrame(rows)).set_index("fusion position")
    assert table.loc[0, "text primary"] == "0.560 ± 0.014"  # 0.55 and 0.57
    assert table.loc[1, "audio primary"] == "0.600 (1 seed)"
    assert table.loc[1, "text primary"] == ""
    assert table.loc["unimodal", "text primary"] == "0.620 (1 seed)"
    assert table.loc[0, "paper (text)"] == "0.53 (0.04)"


# --- bad input ---------------------------------------------------------------------------------

def test_read_call_csv_empty_text_cell(tmp_path):
    root = write_m3a_fixture(tmp_path, n_calls=4, n_test=1)
    folder = sorted((root / "Dataset").iterdir())[0]
    lines = (folder / "Text.csv").read_text().splitlines()
    cells = lines[2].split(",")
    cells[5] = ""
    lines[2] = ",".join(cells)
    (folder / "Text.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"utterances \[1\] have empty text embedding cells"):
        read_call_csv(folder)


def test_read_labels_empty_label_cell(tmp_path):
    root = write_m3a_fixture(tmp_path, n_calls=4, n_test=1)
    lines = (root / "Y_Volatility.csv").read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ","
    (root / "Y_Volatility.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"column vFuture15 is empty in rows \[2\]"):
        read_labels(root)


def test_read_labels_missing_column(tmp_path):
    root = write_m3a_fixture(tmp_path, n_calls=4, n_test=1)
    text = (root / "Y_Movement.csv").read_text().replace("YT15", "YT30")
    (root / "Y_Movement.csv").write_text(text)
    with pytest.raises(ValueError, match=r"lacks the columns \['YT15'\]"):
        read_labels(root)


def test_read_indices_row_outside_labels(tmp_path):
    root = write_m3a_fixture(tmp_path, n_calls=4, n_test=1)
    (root / "Test_index.csv").write_text("index\n3\n99\n")
    with pytest.raises(ValueError, match="holds row 99, outside the 6 label rows"):
        load_m3a(tmp_path, cache_dir=tmp_path / "cache", progress=False)


def test_read_packed_missing_audio_array(tmp_path):
    call = "A_X_Y_2018-01-02"
    np.savez(tmp_path / "packed.npz", **{f"{call}/text": np.zeros((2, 768), np.float16),
                                          f"{call}/speaker": np.zeros(2, np.int16),
                                          "audio_feature_names": np.array(["f"] * 62)})
    with pytest.raises(ValueError, match="lacks its audio or speaker array"):
        read_packed(tmp_path / "packed.npz")


def test_run_m3a_same_run_twice_at_once(fixture_release, tmp_path):
    from hfcore.locks import BusyError, exclusive_lock

    result_file = tmp_path / "r.json"
    with exclusive_lock(result_file):  # another process is running this run
        with pytest.raises(BusyError, match="r.json is being computed by pid"):
            run_m3a(model="m3anet", epochs=1, data=fixture_release, results_dir=tmp_path, run_name="r", progress=False)
    assert not result_file.exists()
