"""Copy every notebook in notebooks/ into FOLDER with smoke parameters injected by papermill.

The copies read fixture data written in the real file formats into FOLDER/data and write
their results under FOLDER, so nbval can execute them in a few seconds. Prints the copies in
the order they must run. Every notebook needs an entry in smoke_parameters(): a new notebook
without one fails here instead of going untested.
"""

import sys
from pathlib import Path

import papermill

from hfcore.fixtures import write_fixture_data
from hfcore.geo.fixtures import write_inat2021_fixture
from hfcore.m3a.fixtures import write_m3a_fixture
from hfcore.sentiment.fixtures import write_sentiment_pickle, write_tiny_checkpoint

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def smoke_parameters(folder: Path) -> dict[str, dict]:
    data = str(folder / "data")
    runs = str(folder / "results" / "runs")
    m3a_runs = str(folder / "results" / "m3a_runs")
    mosi = str(folder / "data" / "mosi.pkl")
    common = {"data_dir": data, "cache_dir": str(folder / "cache")}
    return {
        "avmnist_train.ipynb": {**common, "model": "hyperfuse", "epochs": 2, "hidden_dim": 8,
                                "results_dir": runs, "run_name": "smoke-hyperfuse", "progress": False},
        "avmnist_summary.ipynb": {"results_dir": runs, "output_dir": str(folder / "results"),
                                  "figure_path": str(folder / "figures" / "avmnist_smoke.png")},
        "avmnist_comparison.ipynb": {"results_dir": runs, "output_dir": str(folder / "results"),
                                     "figure_path": str(folder / "figures" / "comparison_smoke.png"),
                                     "blocks_figure_path": str(folder / "figures" / "blocks_smoke.png")},
        "avmnist_analysis.ipynb": {**common, "runs_dir": runs, "output_dir": str(folder / "results" / "analysis"),
                                   "pair_samples": 20, "progress": False,
                                   "corruption_figure": str(folder / "figures" / "corruption_smoke.png"),
                                   "distance_figure": str(folder / "figures" / "distances_smoke.png")},
        "avmnist_generated_weights.ipynb": {**common, "runs_dir": runs,
                                            "figure_path": str(folder / "figures" / "weights_smoke.png")},
        "m3a_train.ipynb": {"data_dir": data, "cache_dir": str(folder / "cache"), "model": "m3anet_hyperfuse",
                            "epochs": 2, "batch_size": 8, "hidden_dim": 4, "results_dir": m3a_runs,
                            "run_name": "smoke-m3a", "progress": False},
        "m3a_comparison.ipynb": {"results_dir": m3a_runs, "output_dir": str(folder / "results" / "m3a"),
                                 "figure_path": str(folder / "figures" / "m3a_smoke.png"),
                                 "hidden_figure_path": str(folder / "figures" / "m3a_hidden_smoke.png")},
        "sentiment_train.ipynb": {"data_path": mosi, "checkpoint": str(folder / "data" / "tiny-bert"),
                                  "fusion": "hyperfuse", "epochs": 1, "lr": 1e-3, "hidden_dim": 4,
                                  "results_dir": str(folder / "results" / "sentiment_one"), "progress": False},
        "sentiment_comparison.ipynb": {"data_path": mosi, "bert_checkpoint": str(folder / "data" / "tiny-bert"),
                                       "xlnet_checkpoint": str(folder / "data" / "tiny-xlnet"), "seeds": [0],
                                       "epochs": 1, "lr": 1e-3, "hidden_dim": 4,
                                       "output_dir": str(folder / "results" / "sentiment"),
                                       "figure_path": str(folder / "figures" / "sentiment_smoke.png"),
                                       "progress": False},
        "geo_train.ipynb": {"dataset": "inat2021", "data_dir": str(folder / "data" / "inat2021"), "model": "hyperfuse",
                            "backbone": "resnet18", "epochs": 2, "warmup_epochs": 1, "batch_size": 8, "lr": 0.01,
                            "image_size": 32, "hidden_dim": 8, "num_workers": 0,
                            "results_dir": str(folder / "results" / "geo_one"),
                            "checkpoint_dir": str(folder / "checkpoints"), "progress": False},
        "geo_comparison.ipynb": {"dataset": "inat2021", "data_dir": str(folder / "data" / "inat2021"),
                                 "backbone": "resnet18", "seeds": [0], "epochs": 2, "warmup_epochs": 1,
                                 "batch_size": 8, "lr": 0.01, "image_size": 32, "hidden_dim": 8, "num_workers": 0,
                                 "output_dir": str(folder / "results" / "geo"),
                                 "checkpoint_dir": str(folder / "checkpoints"),
                                 "figure_path": str(folder / "figures" / "geo_smoke.png"), "progress": False},
        "avmnist_ablations.ipynb": {"kind": "hidden_dim", "results_dir": runs,
                                    "output_dir": str(folder / "results"),
                                    "figure_path": str(folder / "figures" / "hidden_size_smoke.png")},
    }


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_fixture_data(folder / "data")
    write_m3a_fixture(folder / "data")
    write_sentiment_pickle(folder / "data" / "mosi.pkl")
    for kind in ("bert", "xlnet"):
        write_tiny_checkpoint(folder / "data" / f"tiny-{kind}", kind)
    write_inat2021_fixture(folder / "data" / "inat2021")
    parameters = smoke_parameters(folder)
    notebooks = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    missing = [name for name in notebooks if name not in parameters]
    if missing:
        sys.exit(f"no smoke parameters for {', '.join(missing)}; add them to smoke_parameters() in {__file__}")
    for name in parameters:  # dict order is the execution order
        papermill.execute_notebook(str(NOTEBOOKS / name), str(folder / name), parameters=parameters[name],
                                   prepare_only=True, kernel_name="python3", progress_bar=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
