"""The fusion comparison on AV-MNIST: learning-rate selection, paired differences, table, figure.

Every model gets the same tuning budget: a few learning rates, trained on seed 0 and compared
on the validation split. The chosen rate is then run on 5 seeds. Test accuracy is compared
with HyperFuse seed by seed, since runs with the same seed share the data order and the
subsample, so the paired difference removes the variation that both share.

Everything here reads saved results files and retrains nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .results import read_results

# Test accuracy (%) in "HyperFuse: Multimodal Fusion via Hypernetworks", Table 7 (5 trials;
# LF and MBT from Table 1) and, for the block variants, Table 10. The paper gives no number
# for Block I ("other than the simple Block I, others have similar performance").
PAPER = {
    "hyperfuse": 72.4, "lf": 71.4, "lfn": 71.1, "mfm": 71.4, "gb": 68.9, "mbt": 70.3, "mfas": 72.1,
    "refnet": 70.6, "hyperfuse/II": 71.1, "hyperfuse/III": 72.5, "hyperfuse/IV": 72.5,
}
PAPER_STD = {"hyperfuse": 0.3, "lfn": 0.3, "mfm": 0.6, "gb": 0.6, "mfas": 0.3, "refnet": 0.5,
             "hyperfuse/II": 0.4, "hyperfuse/III": 0.5, "hyperfuse/IV": 0.4}
LABELS = {
    "hyperfuse": "HyperFuse", "lf": "LF", "lfn": "LFN (tensor fusion)", "lmf": "LMF", "mfm": "MFM",
    "gb": "Gradient Blending", "mbt": "MBT", "mfas": "MFAS", "refnet": "Refnet", "film": "FiLM",
    "mag": "MAG gate", "dynamic_mlp_c": "Dynamic MLP-C", "hyperfuse/I": "HyperFuse Block I",
    "hyperfuse/II": "HyperFuse Block II", "hyperfuse/III": "HyperFuse Block III",
    "hyperfuse/IV": "HyperFuse Block IV",
}
ORDER = ("hyperfuse", "lf", "lfn", "lmf", "mfm", "gb", "mbt", "mfas", "refnet", "film", "mag", "dynamic_mlp_c",
         "hyperfuse/I", "hyperfuse/II", "hyperfuse/III", "hyperfuse/IV")
REFERENCE = "hyperfuse"
TUNING_SEED = 0


def config_name(model: str, block: str | None) -> str:
    """Return ``model``, or ``hyperfuse/<block>`` for a HyperFuse block variant."""
    return model if block in (None, "base") else f"{model}/{block}"


# Parameters that may differ between the runs of one comparison; every other one must agree.
COMPARED = ("model", "block", "lr", "seed")


def check_comparable(records: list[dict], folder: str | Path = "") -> None:
    """Raise ValueError unless the runs differ only in model, block, learning rate and seed
    (paths and bookkeeping aside), with one run per configuration, rate and seed."""
    from .summary import NOT_A_VARIANT

    ignored = set(COMPARED) | set(NOT_A_VARIANT)
    names = sorted({name for r in records for name in r["parameters"]} - ignored)
    differing = {}
    for name in names:
        values = sorted({json.dumps(r["parameters"].get(name), sort_keys=True) for r in records})
        if len(values) > 1:
            differing[name] = values
    if differing:
        listed = "; ".join(f"{name}: {', '.join(values)}" for name, values in differing.items())
        raise ValueError(
            f"the runs in {folder} differ in more than model, block, learning rate and seed ({listed}), so "
            "they cannot be compared; give each comparison its own results folder"
        )
    seen: dict[tuple, str] = {}
    for record in records:
        params = record["parameters"]
        key = (config_name(record["model"], params.get("block")), params["lr"], record["seed"])
        if key in seen:
            raise ValueError(
                f"{folder} contains two runs of {key[0]} at lr {key[1]} with seed {key[2]} "
                f"({seen[key]} and {record.get('run_name')}); keep one of them"
            )
        seen[key] = record.get("run_name", "")


def comparison_frame(folder: str | Path) -> pd.DataFrame:
    """Return one row per run: configuration, learning rate, seed, accuracies (%), timing.

    Raises ValueError when the runs are not comparable (see ``check_comparable``).
    """
    records = read_results(folder)
    if not records:
        raise FileNotFoundError(f"no results files in {folder}; run experiments/avmnist_baselines.yaml first")
    check_comparable(records, folder)
    rows = []
    for record in records:
        params = record["parameters"]
        history = record["metrics"]["history"]
        rows.append(
            {
                "config": config_name(record["model"], params.get("block")),
                "lr": params["lr"],
                "seed": record["seed"],
                "test_accuracy": 100 * record["metrics"]["test_accuracy"],
                "val_accuracy": 100 * record["metrics"]["val_accuracy"],
                "parameter_count": record["parameter_count"],
                "epochs_run": len(history),
                "seconds_per_epoch": record["wall_seconds"] / max(len(history), 1),
            }
        )
    return pd.DataFrame(rows)


def select_learning_rates(frame: pd.DataFrame, seed: int = TUNING_SEED) -> dict[str, float]:
    """Return, per configuration, the learning rate with the best validation accuracy on ``seed``.

    Ties go to the smaller rate. Test accuracy plays no part in the choice.
    """
    tuning = frame[frame["seed"] == seed].sort_values(["config", "val_accuracy", "lr"], ascending=[True, False, True])
    return {config: float(runs.iloc[0]["lr"]) for config, runs in tuning.groupby("config", sort=False)}


def selected_runs(frame: pd.DataFrame, selection: dict[str, float]) -> pd.DataFrame:
    """Return the runs of each configuration at its selected learning rate."""
    chosen = frame["lr"] == frame["config"].map(selection)
    return frame[chosen].reset_index(drop=True)


def paired_difference(values: pd.Series, reference: pd.Series, confidence: float = 0.95) -> dict:
    """Return the mean seed-by-seed difference ``values - reference`` with a t confidence interval.

    Both series are indexed by seed; only seeds present in both count. With fewer than two
    shared seeds the interval is undefined (NaN).
    """
    shared = values.index.intersection(reference.index)
    diffs = (values.loc[shared] - reference.loc[shared]).to_numpy(dtype=float)
    n = len(diffs)
    mean = float(diffs.mean()) if n else float("nan")
    if n < 2:
        return {"n": n, "mean": mean, "low": float("nan"), "high": float("nan")}
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * diffs.std(ddof=1) / np.sqrt(n)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half}


def benchmark_epoch_seconds(folder: str | Path) -> dict[str, float]:
    """Return the training-epoch seconds per configuration from the newest full benchmark record
    in ``folder`` that timed the comparison's models (``benchmarks/run.py --parts models``).

    Returns an empty dict when there is none. The benchmark times every model in one run on an
    otherwise idle machine, so its times compare fairly, where the wall times of grid runs
    depend on whatever else ran beside them.
    """
    import json

    for path in sorted(Path(folder).glob("benchmark-*.json"), reverse=True):
        record = json.loads(path.read_text())
        if record.get("models") and not record.get("parameters", {}).get("quick"):
            return {row["model"]: row["seconds"] for row in record["models"]}
    return {}


def comparison_table(
    frame: pd.DataFrame, reference: str = REFERENCE, epoch_seconds: dict[str, float] | None = None
) -> pd.DataFrame:
    """Return one row per configuration at its selected learning rate.

    Columns: test accuracy mean and sample std over seeds, parameters, seconds per training
    epoch from ``epoch_seconds`` (see ``benchmark_epoch_seconds``; NaN where missing), the runs'
    wall time per epoch (validation and data loading included), the paired difference to
    ``reference`` with its 95% interval, and the number in the paper where it has one.
    """
    epoch_seconds = epoch_seconds or {}
    selection = select_learning_rates(frame)
    runs = selected_runs(frame, selection)
    reference_acc = runs[runs["config"] == reference].set_index("seed")["test_accuracy"]
    rows = []
    for config, group in runs.groupby("config"):
        accuracy = group.set_index("seed")["test_accuracy"]
        diff = paired_difference(accuracy, reference_acc) if config != reference else {}
        rows.append(
            {
                "config": config,
                "label": LABELS.get(config, config),
                "lr": selection[config],
                "seeds": len(group),
                "test_mean": accuracy.mean(),
                "test_std": accuracy.std(ddof=1) if len(group) > 1 else float("nan"),
                "parameters": int(group["parameter_count"].iloc[0]),
                "seconds_per_epoch": epoch_seconds.get(config, float("nan")),
                "wall_seconds_per_epoch": group["seconds_per_epoch"].mean(),
                "diff_mean": diff.get("mean", float("nan")),
                "diff_low": diff.get("low", float("nan")),
                "diff_high": diff.get("high", float("nan")),
                "paired_seeds": diff.get("n", 0),
                "paper": PAPER.get(config, float("nan")),
                "paper_std": PAPER_STD.get(config, float("nan")),
            }
        )
    order = {name: i for i, name in enumerate(ORDER)}
    table = pd.DataFrame(rows)
    table = table.assign(_order=table["config"].map(lambda c: (order.get(c, len(order)), c)))
    return table.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def _number(value: float, digits: int = 1) -> str:
    return "n/a" if pd.isna(value) else f"{value:.{digits}f}"


def format_comparison(table: pd.DataFrame, reference: str = REFERENCE) -> str:
    """Return the comparison as a Markdown table."""
    lines = [
        f"| Model | lr | Test accuracy (%) | Seeds | Parameters | s / epoch | Δ vs {LABELS.get(reference, reference)} "
        "(95% CI) | Paper (%) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    if reference not in set(table["config"]):
        notes.append(f"No {LABELS.get(reference, reference)} run: the paired differences need one.")
    elif table["paired_seeds"].max() < 2 and len(table) > 1:
        notes.append("The paired differences need two or more seeds shared with the reference.")
    if table["seconds_per_epoch"].isna().all():
        notes.append("No epoch times: run `.venv/bin/python benchmarks/run.py --parts models` (about 5 minutes).")
    for row in table.itertuples():
        if row.config == reference:
            diff = "reference"
        elif row.paired_seeds < 2:
            diff = "n/a"
        else:
            diff = f"{row.diff_mean:+.1f} [{row.diff_low:+.1f}, {row.diff_high:+.1f}]"
        paper = "" if pd.isna(row.paper) else _number(row.paper) + (
            "" if pd.isna(row.paper_std) else f" ± {row.paper_std:.1f}")
        lines.append(
            f"| {row.label} | {row.lr:g} | {row.test_mean:.1f} ± {_number(row.test_std)} | {row.seeds} | "
            f"{row.parameters:,} | {_number(row.seconds_per_epoch)} | {diff} | {paper} |"
        )
    return "\n".join(lines + ([""] + notes if notes else []))


def tuning_table(frame: pd.DataFrame, seed: int = TUNING_SEED) -> pd.DataFrame:
    """Return the validation accuracy of every tuning run: one row per configuration, one column per rate."""
    tuning = frame[frame["seed"] == seed]
    return tuning.pivot_table(index="config", columns="lr", values="val_accuracy").round(2)


def _interval_colour(low: float, high: float) -> str:
    # Blue: HyperFuse is better at 95%. Orange: the other model is. Grey: the interval contains 0.
    if high < 0:
        return "C0"
    if low > 0:
        return "C1"
    return "0.4"


def plot_comparison(frame: pd.DataFrame, table: pd.DataFrame, *, title: str = "AV-MNIST fusion comparison"):
    """Plot accuracy per seed with the mean and the paper's value (left), and the paired
    difference to HyperFuse with its 95% interval (right), one row per configuration."""
    import matplotlib.pyplot as plt

    runs = selected_runs(frame, dict(zip(table["config"], table["lr"])))
    positions = np.arange(len(table))[::-1]
    fig, (acc_ax, diff_ax) = plt.subplots(1, 2, figsize=(11, 0.42 * len(table) + 1.6), sharey=True)
    for y, row in zip(positions, table.itertuples()):
        seeds = runs[runs["config"] == row.config]["test_accuracy"]
        acc_ax.scatter(seeds, np.full(len(seeds), y), color="0.45", s=16, label="one seed", zorder=2)
        acc_ax.scatter(row.test_mean, y, marker="|", s=300, color="C0", linewidths=3, label="mean (ours)", zorder=3)
        if not pd.isna(row.paper):
            acc_ax.scatter(row.paper, y, marker="*", s=110, color="C3", label="paper", zorder=4)
        if row.paired_seeds >= 2:
            diff_ax.errorbar(row.diff_mean, y, xerr=[[row.diff_mean - row.diff_low], [row.diff_high - row.diff_mean]],
                             fmt="o", color=_interval_colour(row.diff_low, row.diff_high), capsize=3)
    acc_ax.set_yticks(positions, table["label"])
    acc_ax.set_xlabel("test accuracy (%)")
    handles, names = acc_ax.get_legend_handles_labels()
    unique = dict(zip(names, handles))
    fig.legend(unique.values(), unique.keys(), loc="lower left", ncol=3, frameon=False, fontsize=8)
    acc_ax.grid(axis="x", alpha=0.3)
    if not (table["paired_seeds"] >= 2).any():
        diff_ax.text(0.5, 0.5, "paired differences need two or more\nseeds shared with HyperFuse",
                     transform=diff_ax.transAxes, ha="center", va="center", color="0.4")
    diff_ax.axvline(0, color="0.3", linewidth=1)
    diff_ax.set_xlabel("accuracy minus HyperFuse, same seed (points, 95% CI)")
    diff_ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))  # room for the legend below the panels
    return fig


def is_block_variant(config: str) -> bool:
    """Return True for a HyperFuse block variant (``hyperfuse/<block>``)."""
    return config.startswith("hyperfuse/")


def split_table(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the baseline rows and the block-variant rows, each with the HyperFuse reference row."""
    variant = table["config"].map(is_block_variant)
    reference = table["config"] == REFERENCE
    return table[~variant].reset_index(drop=True), table[variant | reference].reset_index(drop=True)


def write_comparison(table: pd.DataFrame, tuning: pd.DataFrame, output_dir: str | Path) -> list[Path]:
    """Write ``comparison.csv``, ``comparison.md`` (baselines, then block variants) and ``tuning.csv``
    to ``output_dir``, each atomically; return the paths."""
    from .atomic import atomic_path

    baselines, blocks = split_table(table)
    markdown = (
        "## Fusion baselines\n\n" + format_comparison(baselines)
        + "\n\n## HyperFuse block variants\n\n" + format_comparison(blocks) + "\n"
    )
    written = []
    for name, text in (("comparison.csv", table.to_csv(index=False)), ("comparison.md", markdown),
                       ("tuning.csv", tuning.to_csv())):
        path = Path(output_dir) / name
        with atomic_path(path) as temporary:
            temporary.write_text(text)
        written.append(path)
    return written


def seed_grids(selection: dict[str, float], seeds: tuple[int, ...] = (1, 2, 3, 4)) -> list[dict[str, list]]:
    """Return the spec ``grids`` entries that run ``seeds`` at each configuration's chosen rate.

    Entries are ordered seed first, so that a grid cut short leaves every model with the same
    number of seeds. Paste them under ``grids:`` in ``experiments/avmnist_baselines.yaml``.
    """
    order = {name: i for i, name in enumerate(ORDER)}
    configs = sorted(selection, key=lambda c: (order.get(c, len(order)), c))
    entries = []
    for seed in seeds:
        for config in configs:
            model, _, block = config.partition("/")
            entries.append({"model": [model], "block": [block or "base"], "lr": [selection[config]], "seed": [seed]})
    return entries


def best_baseline(frame: pd.DataFrame) -> str | None:
    """Return the non-HyperFuse configuration with the best mean validation accuracy over seeds at
    its chosen learning rate (test accuracy plays no part), or None when there is none."""
    runs = selected_runs(frame, select_learning_rates(frame))
    runs = runs[~runs["config"].str.startswith("hyperfuse")]
    if runs.empty:
        return None
    return str(runs.groupby("config")["val_accuracy"].mean().idxmax())
