"""Tables and figures of the AV-MNIST ablations, on hand-made results."""

import json

import pandas as pd
import pytest

from hfcore.ablations import (
    fraction_differences,
    fraction_trend,
    mean_std,
    plot_data_efficiency,
    plot_hidden_size,
    plot_positions,
    position_gains,
    position_table,
    relative_error_table,
    runs_frame,
)


def test_relative_error_table_worked_example():
    frame = pd.DataFrame({"hidden_dim": [8, 8, 64, 64], "test_accuracy": [70.0, 72.0, 80.0, 80.0]})
    table = relative_error_table(frame, "hidden_dim")
    # Mean errors: h=8 -> 29, h=64 -> 20; relative to the best: 1.45 and 1.
    assert table["relative_error"].tolist() == pytest.approx([1.45, 1.0])
    assert table["seeds"].tolist() == [2, 2]
    # Spread: the h=8 accuracies have std sqrt(2) = 1.414, over the best mean error 20.
    assert table["relative_error_std"].tolist() == pytest.approx([2 ** 0.5 / 20, 0.0])


def test_hidden_size_figure_marks_runs_and_spread():
    frame = pd.DataFrame({"hidden_dim": [8, 8, 64, 64], "num_blocks": 1, "test_accuracy": [70.0, 72.0, 80.0, 80.0]})
    (ax,) = plot_hidden_size(frame).axes
    runs = [line for line in ax.get_lines() if line.get_label() == "one run"][0]
    assert sorted(runs.get_ydata()) == pytest.approx([1.0, 1.0, 1.4, 1.5])
    (bars,) = ax.containers
    assert list(bars.lines[0].get_ydata()) == pytest.approx([1.45, 1.0])


def test_position_table_lays_out_primaries_and_the_paper():
    rows = [
        {"model": "image_only", "primary": "image", "fusion_position": None, "test_accuracy": 64.0},
        {"model": "image_only", "primary": "image", "fusion_position": None, "test_accuracy": 66.0},
        {"model": "hyperfuse", "primary": "image", "fusion_position": 2, "test_accuracy": 72.0},
        {"model": "hyperfuse", "primary": "audio", "fusion_position": 2, "test_accuracy": 70.0},
        {"model": "hyperfuse", "primary": "audio", "fusion_position": 5, "test_accuracy": 69.0},
    ]
    table = position_table(pd.DataFrame(rows)).set_index("position")
    assert list(table.index) == [2, 5, "unimodal"]
    assert table.loc["unimodal", "image_ours"] == "65.0 ± 1.4 (n=2)"
    assert table.loc[2, "image_ours"] == "72.0 (n=1)"
    assert table.loc[2, "image_paper"] == "72.6 ± 0.3"
    assert table.loc[5, "image_ours"] == ""
    assert table.loc[5, "audio_paper"] == ""
    assert table.loc["unimodal", "audio_ours"] == ""


def test_runs_frame_and_figures(tmp_path):
    for fraction in (0.1, 1.0):
        for seed in (0, 1):
            record = {"model": "hyperfuse", "seed": seed,
                      "parameters": {"train_fraction": fraction, "hidden_dim": 8 if fraction < 1 else 64,
                                     "num_blocks": 1},
                      "metrics": {"test_accuracy": 0.5 + fraction / 4 + seed / 100}}
            (tmp_path / f"r{fraction}-{seed}.json").write_text(json.dumps(record))
    frame = runs_frame(tmp_path)
    assert mean_std(frame, ["train_fraction"])["mean"].tolist() == pytest.approx([53.0, 75.5])
    assert plot_data_efficiency(frame).axes
    assert len(plot_hidden_size(frame, frame).axes) == 1  # one number of blocks: no second panel
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no results files"):
        runs_frame(empty)


def _fraction_frame(rows):
    return pd.DataFrame(rows, columns=["model", "train_fraction", "seed", "test_accuracy"])


def test_fraction_differences_worked_example():
    # 10%: HyperFuse 60, 62, 64 against GB 58, 58, 58 -> differences 2, 4, 6: mean 4, std 2,
    # t(0.975, 2) = 4.302653, half width 4.302653 * 2 / sqrt(3) = 4.96828.
    # 100%: differences 1, 1, 1 -> interval [1, 1]. GB's seed 3 has no HyperFuse partner and is left out.
    # GB's rows come in another seed order, so the test fails unless runs are matched by seed.
    rows = [("hyperfuse", 0.1, s, a) for s, a in zip((0, 1, 2), (60, 62, 64))]
    rows += [("gb", 0.1, s, 58) for s in (2, 0, 1)]
    rows += [("hyperfuse", 1.0, s, 71 + s) for s in (0, 1, 2)]
    rows += [("gb", 1.0, s, 70 + s) for s in (3, 2, 1, 0)]
    table = fraction_differences(_fraction_frame(rows)).set_index("train_fraction")
    assert table.loc[0.1, "seeds"] == 3
    assert table.loc[0.1, "difference"] == pytest.approx(4.0)
    assert table.loc[0.1, "low"] == pytest.approx(4 - 4.96828, abs=1e-4)
    assert table.loc[0.1, "high"] == pytest.approx(4 + 4.96828, abs=1e-4)
    assert table.loc[1.0, "seeds"] == 3
    assert table.loc[1.0, "difference"] == pytest.approx(1.0)
    assert table.loc[1.0, "low"] == pytest.approx(1.0)
    assert table.loc[1.0, "high"] == pytest.approx(1.0)


def test_fraction_differences_missing_model():
    frame = _fraction_frame([("hyperfuse", 0.1, 0, 60.0)])
    with pytest.raises(ValueError, match=r"\['gb'\] not found.*\['hyperfuse'\]"):
        fraction_differences(frame)


def test_fraction_differences_repeated_seed():
    frame = _fraction_frame([("hyperfuse", 0.1, 0, 60.0), ("hyperfuse", 0.1, 0, 50.0), ("gb", 0.1, 0, 58.0)])
    with pytest.raises(ValueError, match=r"hyperfuse at training fraction 0.1 has more than one run with seeds \[0\]"):
        fraction_differences(frame)


def test_fraction_differences_skips_missing_accuracy():
    rows = [("hyperfuse", 0.1, 0, 60.0), ("hyperfuse", 0.1, 1, float("nan")), ("hyperfuse", 0.1, 2, 64.0)]
    rows += [("gb", 0.1, s, 58.0) for s in (0, 1, 2)]
    table = fraction_differences(_fraction_frame(rows))
    assert table.loc[0, "seeds"] == 2
    assert table.loc[0, "difference"] == pytest.approx(4.0)


def test_data_efficiency_figure_difference_panel():
    # HyperFuse leads by 1 and 3 points on seeds 0 and 1 at both fractions: mean 2, std sqrt(2),
    # t(0.975, 1) = 12.7062, half width 12.7062 * sqrt(2) / sqrt(2) = 12.7062.
    rows = [(m, f, s, 50 + 10 * f + s + ((1 + 2 * s) if m == "hyperfuse" else 0))
            for m in ("hyperfuse", "gb") for f in (0.05, 1.0) for s in (0, 1)]
    fig = plot_data_efficiency(_fraction_frame(rows), difference=("hyperfuse", "gb"))
    assert len(fig.axes) == 2
    line = fig.axes[1].lines[0]
    assert list(line.get_ydata()) == pytest.approx([2.0, 2.0])
    bar = fig.axes[1].collections[0].get_segments()[0]
    assert bar[0][1] == pytest.approx(2 - 12.7062, abs=1e-3)
    assert bar[1][1] == pytest.approx(2 + 12.7062, abs=1e-3)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_markdown_table():
    from hfcore.ablations import markdown_table

    table = pd.DataFrame({"h": [8, 64], "mean": [70.5, None]})
    assert markdown_table(table) == "| h | mean |\n| --- | --- |\n| 8 | 70.5 |\n| 64 |  |"


def test_data_efficiency_figure_single_seed():
    rows = [("hyperfuse", 0.05, 0, 55.0), ("gb", 0.05, 0, 50.0), ("hyperfuse", 1.0, 0, 70.0), ("gb", 1.0, 0, 72.0)]
    fig = plot_data_efficiency(_fraction_frame(rows), difference=("hyperfuse", "gb"))
    hollow = [line for line in fig.axes[1].lines if line.get_markerfacecolor() == "white"]
    assert len(hollow) == 1
    assert list(hollow[0].get_ydata()) == pytest.approx([5.0, -2.0])
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_fraction_trend_worked_example():
    # Differences at 10% and 100% (log10 -1 and 0): seed 0 5 and 1, seed 1 3 and 1, seed 2 4 and 1.
    # Contrasts 4, 2, 3: mean 3, std 1, half width 4.302653 / sqrt(3) = 2.48414.
    # Slopes -4, -2, -3: mean -3, t = -3 / (1 / sqrt(3)) = -5.19615, and with 2 degrees of freedom
    # the two-sided p is 1 - |t| / sqrt(t^2 + 2) = 0.035099.
    rows = []
    for seed, (low, high) in enumerate(((5, 1), (3, 1), (4, 1))):
        rows += [("gb", 0.1, seed, 50.0), ("gb", 1.0, seed, 70.0)]
        rows += [("hyperfuse", 0.1, seed, 50.0 + low), ("hyperfuse", 1.0, seed, 70.0 + high)]
    rows.append(("gb", 0.1, 3, 49.0))  # seed 3 has no HyperFuse runs and no 100% run, so it is left out
    trend = fraction_trend(_fraction_frame(rows))
    assert trend["seeds"] == 3
    assert trend["fractions"] == [0.1, 1.0]
    assert trend["contrast"] == pytest.approx(3.0)
    assert trend["contrast_low"] == pytest.approx(3 - 2.48414, abs=1e-4)
    assert trend["contrast_high"] == pytest.approx(3 + 2.48414, abs=1e-4)
    assert trend["slope"] == pytest.approx(-3.0)
    assert trend["slope_t"] == pytest.approx(-5.19615, abs=1e-4)
    assert trend["slope_p"] == pytest.approx(0.035099, abs=1e-5)


def test_fraction_trend_needs_two_seeds():
    rows = [("gb", 0.1, 0, 50.0), ("gb", 1.0, 0, 70.0), ("hyperfuse", 0.1, 0, 55.0), ("hyperfuse", 1.0, 0, 71.0)]
    with pytest.raises(ValueError, match=r"at least 2 fractions and 2 seeds.*seeds \[0\]"):
        fraction_trend(_fraction_frame(rows))


def _position_frame():
    rows = []
    for seed, (image, fused1, fused2, audio, audio1) in enumerate([(66, 70, 71, 40, 69), (67, 72, 71, 42, 70),
                                                                   (65, 71, 73, 44, 71)]):
        rows += [
            {"model": "image_only", "primary": None, "fusion_position": None, "seed": seed, "test_accuracy": image},
            {"model": "hyperfuse", "primary": "image", "fusion_position": 1, "seed": seed, "test_accuracy": fused1},
            {"model": "hyperfuse", "primary": "image", "fusion_position": 2, "seed": seed, "test_accuracy": fused2},
            {"model": "audio_only", "primary": None, "fusion_position": None, "seed": seed, "test_accuracy": audio},
            {"model": "hyperfuse", "primary": "audio", "fusion_position": 1, "seed": seed, "test_accuracy": audio1},
        ]
    return pd.DataFrame(rows)


def test_position_gains_worked_example():
    gains = position_gains(_position_frame()).set_index(["primary", "fusion_position"])
    # Image primary, position 1: per-seed gains 70-66, 72-67, 71-65 = 4, 5, 6; mean 5, std 1,
    # half-width t(0.975, 2) * 1 / sqrt(3) = 4.3027 / 1.7321 = 2.4841.
    row = gains.loc[("image", 1)]
    assert row["seeds"] == 3
    assert row["gain"] == pytest.approx(5.0)
    assert (row["low"], row["high"]) == pytest.approx((2.5159, 7.4841), abs=1e-4)
    # Position 2: gains 5, 4, 8, mean 17/3. Audio primary, position 1: gains 29, 28, 27, mean 28.
    assert gains.loc[("image", 2), "gain"] == pytest.approx(17 / 3)
    assert gains.loc[("audio", 1), "gain"] == pytest.approx(28.0)
    assert list(gains.index) == [("image", 1), ("image", 2), ("audio", 1)]


def test_position_gains_pairs_by_seed():
    frame = _position_frame()
    # Without HyperFuse's seed 0 at image position 1, seeds 1 and 2 pair as 72-67 and 71-65: mean 5.5.
    # Pairing by row order instead would give 72-66 and 71-67, mean 5.
    dropped = frame.drop(frame.index[(frame["seed"] == 0) & (frame["fusion_position"] == 1)
                                     & (frame["primary"] == "image")])
    gains = position_gains(dropped).set_index(["primary", "fusion_position"])
    assert gains.loc[("image", 1), "seeds"] == 2
    assert gains.loc[("image", 1), "gain"] == pytest.approx(5.5)


def test_position_gains_skip_missing_accuracy():
    frame = _position_frame()
    frame.loc[(frame["model"] == "image_only") & (frame["seed"] == 2), "test_accuracy"] = float("nan")
    gains = position_gains(frame).set_index(["primary", "fusion_position"])
    # Seed 2 has no unimodal accuracy, so image position 1 pairs seeds 0 and 1: gains 4 and 5.
    assert gains.loc[("image", 1), "seeds"] == 2
    assert gains.loc[("image", 1), "gain"] == pytest.approx(4.5)


def test_position_gains_single_seed_and_repeated_seed():
    frame = _position_frame()
    one_seed = position_gains(frame[frame["seed"] == 0])
    assert one_seed["seeds"].tolist() == [1, 1, 1]
    assert one_seed["low"].isna().all()
    repeated = pd.concat([frame, frame.iloc[[1]]])
    with pytest.raises(ValueError, match=r"position 1\).*seeds \[0\]"):
        position_gains(repeated)
    repeated_unimodal = pd.concat([frame, frame.iloc[[0]]])
    with pytest.raises(ValueError, match=r"image_only has more than one run with seeds \[0\]"):
        position_gains(repeated_unimodal)


def test_hidden_size_figure_single_seed_marker():
    frame = pd.DataFrame({"hidden_dim": [8, 64, 64], "num_blocks": 1, "test_accuracy": [70.0, 80.0, 80.0]})
    (ax,) = plot_hidden_size(frame).axes
    hollow = [line for line in ax.get_lines() if line.get_label() == "one seed: no spread"]
    assert len(hollow) == 1
    assert list(hollow[0].get_xdata()) == [8.0]


def test_positions_figure_shows_ours_and_the_paper():
    fig = plot_positions(_position_frame())
    image, audio = fig.axes
    # The error-bar line carries the means over seeds: (70+72+71)/3 = 71 and (71+71+73)/3 = 71.67.
    (bars,) = [c for c in image.containers if c.get_label() == "HyperFuse (ours)"]
    assert list(bars.lines[0].get_ydata()) == pytest.approx([71.0, 215 / 3])
    unimodal = [line for line in image.get_lines() if line.get_label() == "image only (ours)"][0]
    assert unimodal.get_ydata()[0] == pytest.approx(66.0)
    paper = [line for line in audio.get_lines() if line.get_label() == "HyperFuse (paper)"][0]
    assert list(paper.get_ydata()) == [71.5, 71.4, 70.7]
    # The ticks cover our positions and the paper's, so audio shows 1 to 3 though only 1 was run.
    assert [t.get_text() for t in audio.get_xticklabels()] == ["1", "2", "3"]
