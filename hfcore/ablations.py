"""Figures and tables of the AV-MNIST ablations: data efficiency, hidden size, fusion position.

They read the results files of ``experiments/avmnist_data_efficiency.yaml``,
``avmnist_hidden_dim.yaml`` and ``avmnist_positions.yaml`` and retrain nothing.

- Data efficiency (HyperFuse paper, figure 6): test accuracy against the fraction of the
  training split, for HyperFuse and the best baseline.
- Hidden size (figure 11): relative error against the bottleneck width h and against the
  number of blocks. The relative error of a setting is its mean test error over the smallest
  mean test error among the settings, so the best setting is at 1.
- Fusion position and primary modality (tables 5 and 13a): test accuracy with the block after
  each layer of the primary encoder, with the image and then the audio as primary, beside the
  unimodal models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .analysis import relative_error
from .results import read_results

# HyperFuse paper, Table 13a: accuracy (std) by fusion position, image or audio primary.
PAPER_POSITIONS = {
    ("image", 1): (71.9, 0.4), ("image", 2): (72.6, 0.3), ("image", 3): (72.4, 0.3),
    ("audio", 1): (71.5, 0.6), ("audio", 2): (71.4, 0.5), ("audio", 3): (70.7, 0.3),
    ("image", "unimodal"): (66.7, 0.6), ("audio", "unimodal"): (42.5, 0.9),
}


def runs_frame(folder) -> pd.DataFrame:
    """Return one row per results file in ``folder``: every run parameter, plus the test accuracy (%)."""
    records = read_results(folder)
    if not records:
        raise FileNotFoundError(f"no results files in {folder}; run its experiment spec first")
    return pd.DataFrame(
        [{**r["parameters"], "model": r["model"], "seed": r["seed"],
          "test_accuracy": 100 * r["metrics"]["test_accuracy"]} for r in records]
    )


def mean_std(frame: pd.DataFrame, by: list[str], value: str = "test_accuracy") -> pd.DataFrame:
    """Return the mean, sample std and number of seeds of ``value`` per group of ``by``."""
    grouped = frame.groupby(by)[value]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1), "seeds": grouped.count()}).reset_index()


def _accuracy_by_seed(runs: pd.DataFrame, setting: str) -> pd.Series:
    """Return the test accuracy of ``runs`` indexed by seed, leaving out runs without one.

    Raises ValueError when a seed has two runs, because pairing by seed would count it twice.
    ``setting`` names the runs in that message.
    """
    scored = runs[runs["test_accuracy"].notna()]
    repeated = sorted(scored.loc[scored["seed"].duplicated(), "seed"].unique().tolist())
    if repeated:
        raise ValueError(f"{setting} has more than one run with seeds {repeated}. "
                         "Keep one results file per seed and setting in the runs folder.")
    return scored.set_index("seed")["test_accuracy"]


def fraction_differences(frame: pd.DataFrame, model: str = "hyperfuse", reference: str = "gb",
                         confidence: float = 0.95) -> pd.DataFrame:
    """Return, per training fraction, the test-accuracy difference ``model - reference`` paired by seed.

    A fraction's subset of the training split depends on the seed only, so both models of one
    seed saw the same images and the difference is paired. Columns: ``train_fraction``,
    ``seeds`` (seeds run by both), ``difference`` (mean, points) and ``low``/``high`` (t
    interval, NaN with fewer than two shared seeds). Runs without a test accuracy are left out.
    Two runs of one model with the same seed and fraction raise ValueError, because pairing
    them would count that seed twice.
    """
    from .comparison import paired_difference

    present = sorted(frame["model"].unique())
    missing = [name for name in (model, reference) if name not in present]
    if missing:
        raise ValueError(f"models {missing} not found in the runs, which contain {present}. "
                         "Pass model= and reference= from those, or run the missing grid points first.")
    rows = []
    for fraction, runs in frame.groupby("train_fraction"):
        accuracy = {name: _accuracy_by_seed(runs[runs["model"] == name], f"{name} at training fraction {fraction}")
                    for name in (model, reference)}
        result = paired_difference(accuracy[model], accuracy[reference], confidence)
        rows.append({"train_fraction": fraction, "seeds": result["n"], "difference": result["mean"],
                     "low": result["low"], "high": result["high"]})
    return pd.DataFrame(rows)


def fraction_trend(frame: pd.DataFrame, model: str = "hyperfuse", reference: str = "gb",
                   confidence: float = 0.95) -> dict:
    """Summarise how the seed-paired difference ``model - reference`` changes with the training fraction.

    Only seeds that both models ran at every fraction count. The returned dict contains
    ``seeds``, ``fractions`` and two summaries:

    - ``contrast``: the difference at the smallest fraction minus that at the largest, averaged
      over seeds, with a t interval (``contrast_low``, ``contrast_high``).
    - ``slope``: the least-squares slope of the difference against log10 of the fraction, fitted
      per seed and averaged (points per tenfold more data). ``slope_t`` and ``slope_p`` come from
      a two-sided one-sample t test of the per-seed slopes against 0.
    """
    from scipy import stats

    from .comparison import paired_difference

    table = fraction_differences(frame, model, reference, confidence)  # validates models and seeds
    differences = {}
    for name in (model, reference):
        scored = frame[(frame["model"] == name) & frame["test_accuracy"].notna()]
        differences[name] = scored.pivot(index="seed", columns="train_fraction", values="test_accuracy")
    by_seed = (differences[model] - differences[reference]).dropna()
    fractions = sorted(table["train_fraction"])
    if len(fractions) < 2 or len(by_seed) < 2:
        raise ValueError(f"a trend needs at least 2 fractions and 2 seeds run by both models at every fraction, "
                         f"got fractions {fractions} and seeds {sorted(by_seed.index)}. Run the missing grid points.")
    by_seed = by_seed[fractions]
    contrast = paired_difference(by_seed[fractions[0]], by_seed[fractions[-1]], confidence)
    x = np.log10(np.asarray(fractions, dtype=float))
    slopes = np.array([np.polyfit(x, row, 1)[0] for row in by_seed.to_numpy(dtype=float)])
    test = stats.ttest_1samp(slopes, 0.0)
    return {"seeds": contrast["n"], "fractions": fractions, "contrast": contrast["mean"],
            "contrast_low": contrast["low"], "contrast_high": contrast["high"],
            "slope": float(slopes.mean()), "slope_t": float(test.statistic), "slope_p": float(test.pvalue)}


def plot_data_efficiency(frame: pd.DataFrame, labels: dict | None = None, difference: tuple[str, str] | None = None):
    """Plot mean test accuracy against the training fraction per model, with a ±1 std band.

    With ``difference=(model, reference)`` a second panel shows their seed-paired accuracy
    difference per fraction with its 95% t interval (``fraction_differences``). A fraction with
    fewer than two shared seeds has no interval and gets a hollow marker.
    """
    import matplotlib.pyplot as plt

    labels = labels or {}
    table = mean_std(frame, ["model", "train_fraction"])
    fractions = sorted(table["train_fraction"].unique())
    ticks = ([100 * f for f in fractions], [f"{100 * f:g}%" for f in fractions])
    panels = 2 if difference else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.8), squeeze=False)
    ax = axes[0, 0]
    for index, (model, rows) in enumerate(table.groupby("model")):
        rows = rows.sort_values("train_fraction")
        colour = f"C{index}"
        x = 100 * rows["train_fraction"]
        ax.plot(x, rows["mean"], marker="o", color=colour, label=labels.get(model, model))
        ax.fill_between(x, rows["mean"] - rows["std"].fillna(0), rows["mean"] + rows["std"].fillna(0),
                        color=colour, alpha=0.2)
    ax.set_xscale("log")
    ax.set_xticks(*ticks)
    ax.set_xlabel("share of the training split")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("AV-MNIST: accuracy against training data")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    if difference:
        model, reference = difference
        diffs = fraction_differences(frame, model, reference)
        ax = axes[0, 1]
        x = 100 * diffs["train_fraction"]
        below = diffs["difference"] - diffs["low"]
        above = diffs["high"] - diffs["difference"]
        ax.errorbar(x, diffs["difference"], yerr=[below, above], marker="o", capsize=3, color="C3")
        single = diffs["low"].isna()
        if single.any():
            # Fractions with fewer than two shared seeds have no interval: hollow markers, not zero-length bars.
            ax.plot(x[single], diffs["difference"][single], linestyle="none", marker="o", color="C3",
                    markerfacecolor="white", zorder=3, label="fewer than 2 seeds: no interval")
            ax.legend(frameon=False, fontsize=8)
        ax.axhline(0.0, color="0.6", linewidth=1)
        ax.set_xscale("log")
        ax.set_xticks(*ticks)
        ax.set_xlabel("share of the training split")
        ax.set_ylabel("accuracy difference (points)")
        ax.set_title(f"{labels.get(model, model)} minus {labels.get(reference, reference)}\n(paired by seed, 95% CI)",
                     fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def relative_error_table(frame: pd.DataFrame, parameter: str) -> pd.DataFrame:
    """Return per value of ``parameter`` the mean accuracy and the relative error of that mean.

    ``relative_error_std`` is the sample std of the test error over seeds divided by the best
    mean error, so it is the spread on the relative-error scale (NaN for a single seed). The
    best mean error itself is in ``table.attrs["best_error"]``.
    """
    table = mean_std(frame, [parameter]).sort_values(parameter).reset_index(drop=True)
    ratios = relative_error(table["mean"])
    best_error = float(np.min(100 - table["mean"].to_numpy(dtype=float)))
    table = table.assign(relative_error=ratios, relative_error_std=table["std"] / best_error)
    table.attrs["best_error"] = best_error
    return table


def _mean_with_spread(ax, x, mean, std, label: str, colour: str = "C0") -> None:
    """Draw means with ±1 std bars, and a hollow marker (no bar) where the std is NaN (one seed)."""
    x, mean, std = (pd.Series(np.asarray(v, dtype=float)) for v in (x, mean, std))
    ax.errorbar(x, mean, yerr=std.fillna(0), marker="o", capsize=3, color=colour, label=label)
    single = std.isna()
    if single.any():
        ax.plot(x[single], mean[single], linestyle="none", marker="o", color=colour, markerfacecolor="white",
                zorder=3, label="one seed: no spread")


def plot_hidden_size(hidden: pd.DataFrame, blocks: pd.DataFrame | None = None):
    """Plot relative error against h (and, when given, against the number of blocks).

    Each panel shows the relative error of each run's test error (dots) and of the mean over
    seeds with ±1 std bars, all divided by the best setting's mean test error.
    """
    import matplotlib.pyplot as plt

    panels = [("hidden_dim", hidden, "bottleneck width h")]
    if blocks is not None and len(blocks["num_blocks"].unique()) > 1:
        panels.append(("num_blocks", blocks, "number of HyperFuse blocks"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (parameter, frame, name) in zip(axes[0], panels):
        table = relative_error_table(frame, parameter)
        ax.plot(frame[parameter], (100 - frame["test_accuracy"]) / table.attrs["best_error"], linestyle="none",
                marker=".", color="C0", alpha=0.4, label="one run")
        _mean_with_spread(ax, table[parameter], table["relative_error"], table["relative_error_std"],
                          "mean over seeds, ±1 std")
        if parameter == "hidden_dim":
            ax.set_xscale("log", base=2)
        ax.set_xticks(table[parameter], [str(v) for v in table[parameter]])
        ax.axhline(1.0, color="0.6", linewidth=1)
        ax.set_xlabel(name)
        ax.set_ylabel("test error / best mean test error")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(frameon=False, fontsize=8)
    fig.suptitle("AV-MNIST: HyperFuse relative error")
    fig.tight_layout()
    return fig


def position_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Return accuracy by fusion position and primary modality, with the paper's Table 13a.

    ``frame`` holds HyperFuse runs (columns ``primary``, ``fusion_position``) and unimodal runs
    (``model`` ``image_only`` or ``audio_only``). Rows: ``unimodal`` and each position; columns:
    ``<primary>_ours`` (mean ± std) and ``<primary>_paper``.
    """
    rows: dict = {}
    for primary in ("image", "audio"):
        unimodal = frame[frame["model"] == f"{primary}_only"]["test_accuracy"]
        cells = {"unimodal": unimodal}
        fused = frame[(frame["model"] == "hyperfuse") & (frame["primary"] == primary)]
        for position, runs in fused.groupby("fusion_position"):
            cells[int(position)] = runs["test_accuracy"]
        for key, values in cells.items():
            row = rows.setdefault(key, {"position": key})
            row[f"{primary}_ours"] = _format(values)
            paper = PAPER_POSITIONS.get((primary, key))
            row[f"{primary}_paper"] = "" if paper is None else f"{paper[0]:.1f} ± {paper[1]:.1f}"
    order = sorted((k for k in rows if k != "unimodal"), key=int) + (["unimodal"] if "unimodal" in rows else [])
    return pd.DataFrame([rows[k] for k in order]).fillna("")


def position_gains(frame: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Return, per primary modality and fusion position, HyperFuse's gain over its unimodal model.

    The gain is HyperFuse's test accuracy minus that of the unimodal model of the same primary
    modality (``image_only`` or ``audio_only``), paired by seed, with a t interval. Columns:
    ``primary``, ``fusion_position``, ``seeds`` (seeds run by both), ``gain`` (mean, points)
    and ``low``/``high`` (NaN with fewer than two shared seeds). Raises ValueError when a seed
    has two runs of one setting, because pairing would count it twice.
    """
    from .comparison import paired_difference

    rows = []
    for primary in ("image", "audio"):
        unimodal_runs = frame[frame["model"] == f"{primary}_only"]
        if unimodal_runs.empty:
            continue
        unimodal = _accuracy_by_seed(unimodal_runs, f"{primary}_only")
        fused = frame[(frame["model"] == "hyperfuse") & (frame["primary"] == primary)]
        for position, runs in fused.groupby("fusion_position"):
            fused_accuracy = _accuracy_by_seed(runs, f"hyperfuse ({primary} primary, position {int(position)})")
            result = paired_difference(fused_accuracy, unimodal, confidence)
            rows.append({"primary": primary, "fusion_position": int(position), "seeds": result["n"],
                         "gain": result["mean"], "low": result["low"], "high": result["high"]})
    return pd.DataFrame(rows, columns=["primary", "fusion_position", "seeds", "gain", "low", "high"])


def plot_positions(frame: pd.DataFrame):
    """Plot test accuracy against the fusion position, one panel per primary modality.

    Each panel shows every run as a small dot and the mean over seeds with ±1 std bars. The
    unimodal model of that primary modality is a horizontal line with a ±1 std band. The paper's
    Table 13a values are hollow diamonds (positions 1 to 3) and a dashed line (unimodal).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, primary in zip(axes, ("image", "audio")):
        fused = frame[(frame["model"] == "hyperfuse") & (frame["primary"] == primary)]
        table = mean_std(fused, ["fusion_position"]).sort_values("fusion_position")
        if not table.empty:
            ax.plot(fused["fusion_position"], fused["test_accuracy"], linestyle="none", marker=".",
                    color="C0", alpha=0.4)
            _mean_with_spread(ax, table["fusion_position"], table["mean"], table["std"], "HyperFuse (ours)")
        unimodal = frame.loc[frame["model"] == f"{primary}_only", "test_accuracy"].dropna()
        if not unimodal.empty:
            level = unimodal.mean()
            spread = unimodal.std(ddof=1) if len(unimodal) > 1 else 0.0
            ax.axhline(level, color="C1", label=f"{primary} only (ours)")
            ax.axhspan(level - spread, level + spread, color="C1", alpha=0.15)
        paper = sorted((key, value) for (p, key), value in PAPER_POSITIONS.items() if p == primary and key != "unimodal")
        ax.plot([k for k, _ in paper], [v[0] for _, v in paper], linestyle="none", marker="D",
                markerfacecolor="white", color="0.3", label="HyperFuse (paper)")
        ticks = sorted({int(v) for v in table["fusion_position"]} | {k for k, _ in paper})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.axhline(PAPER_POSITIONS[(primary, "unimodal")][0], color="0.3", linestyle="--",
                   linewidth=1, label=f"{primary} only (paper)")
        ax.set_title(f"{primary} primary, {'audio' if primary == 'image' else 'image'} auxiliary")
        ax.set_xlabel("fusion position in the primary encoder")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    axes[0].set_ylabel("test accuracy (%)")
    fig.suptitle("AV-MNIST: HyperFuse by fusion position and primary modality")
    fig.tight_layout()
    return fig


def _format(values: pd.Series) -> str:
    if values.empty:
        return ""
    std = values.std(ddof=1) if len(values) > 1 else np.nan
    return f"{values.mean():.1f}" + ("" if np.isnan(std) else f" ± {std:.1f}") + f" (n={len(values)})"


def markdown_table(table: pd.DataFrame) -> str:
    """Return ``table`` as a Markdown table (floats as they are stored, missing cells empty)."""
    lines = ["| " + " | ".join(str(c) for c in table.columns) + " |", "| " + " | ".join("---" for _ in table.columns) + " |"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |")
    return "\n".join(lines)
