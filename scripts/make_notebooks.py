"""Write the notebooks in notebooks/ from the cell sources below (run after editing them).

Keeping the sources here lets a reviewer read a notebook's code in one diff; the .ipynb files
are what JupyterLab, papermill and nbval use.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def notebook(cells):
    # Fixed cell ids keep a rerun of this script from rewriting unchanged notebooks.
    for index, cell in enumerate(cells):
        cell.id = f"cell-{index}"
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def parameters(source):
    cell = new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    return cell


TRAIN = notebook([
    new_markdown_cell(
        "# AV-MNIST: train and test one model\n\n"
        "Trains one model on AV-MNIST built from real MNIST digits and real FSDD recordings, selects "
        "the epoch with the best validation accuracy, tests it once, and writes one results file. "
        "Papermill sets the parameters below; in JupyterLab, edit them and run all cells."
    ),
    parameters(
        "model = \"hyperfuse\"        # a name from hfcore.model_names(): hyperfuse, lf, lfn, lmf, mfm, gb, mbt, mfas, ...\n"
        "seed = 0\n"
        "epochs = 15\n"
        "batch_size = 64\n"
        "lr = 1e-3\n"
        "weight_decay = 0.0\n"
        "patience = None              # early stopping after this many epochs without improvement\n"
        "hidden_dim = 64              # HyperFuse bottleneck width h\n"
        "num_blocks = 1               # stacked HyperFuse blocks\n"
        "fusion_position = None       # primary-encoder layers before the fusion (None: after the encoder)\n"
        "primary = \"image\"           # primary modality: image or audio\n"
        "aux_mlp = False              # Linear + ReLU on the auxiliary path between blocks\n"
        "generator = \"full\"          # HyperFuse generator: full (as in the paper) or factorized\n"
        "rank = None                  # rank r of the factorized generator (None: h)\n"
        "block = \"base\"              # HyperFuse block design: base, or the appendix variants I, II, III, IV\n"
        "precision = \"float32\"       # float32, or bfloat16 autocast (fast on CPUs with AMX or AVX512-BF16)\n"
        "train_fraction = 1.0         # stratified fraction of the training split to use\n"
        "noise = \"babble\"            # audio noise: babble, white, esc50 (needs esc50/ in the data folder) or none\n"
        "snr_db = None                # audio noise level in dB (None: the calibrated default)\n"
        "pca_energy = None            # image PCA variance kept (None: the calibrated default)\n"
        "data_dir = None              # folder with mnist/ and fsdd/ (None: HYPERFUSE_DATA or ../shared/data)\n"
        "multibench_dir = None        # prepared MultiBench AV-MNIST folder, used instead of data_dir\n"
        "cache_dir = None             # built datasets (None: HYPERFUSE_CACHE or cache/)\n"
        "results_dir = None           # None: results/avmnist/interactive in the repository\n"
        "run_name = None              # results file name (None: MODEL-HASH-seedSEED)\n"
        "overwrite = False            # replace an existing results file\n"
        "progress = True"
    ),
    new_code_cell(
        "import logging\n\n"
        "from hfcore.data.avmnist import AVMNISTConfig\n"
        "from hfcore.experiments import run_avmnist\n\n"
        "logging.basicConfig(level=logging.INFO, format=\"%(name)s: %(message)s\", force=True)"
    ),
    new_code_cell(
        "record = run_avmnist(\n"
        "    model=model, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,\n"
        "    patience=patience,\n"
        "    hidden_dim=hidden_dim, num_blocks=num_blocks, fusion_position=fusion_position, primary=primary,\n"
        "    aux_mlp=aux_mlp, generator=generator, rank=rank, block=block, precision=precision,\n"
        "    train_fraction=train_fraction, noise=noise,\n"
        "    snr_db=AVMNISTConfig.snr_db if snr_db is None else snr_db,\n"
        "    pca_energy=AVMNISTConfig.pca_energy if pca_energy is None else pca_energy,\n"
        "    data_dir=data_dir, multibench_dir=multibench_dir, cache_dir=cache_dir, results_dir=results_dir,\n"
        "    run_name=run_name, overwrite=overwrite, progress=progress,\n"
        ")"
    ),
    new_markdown_cell("## Result\n\nTest accuracy of the selected epoch, and the data the model saw."),
    new_code_cell(
        "metrics = record[\"metrics\"]\n"
        "print(f\"{record['run_name']}: test accuracy {metrics['test_accuracy']:.3f} \"\n"
        "      f\"(best validation epoch {metrics['best_epoch']} of {len(metrics['history'])})\")\n"
        "print(\"dataset sizes:\", record[\"dataset\"][\"sizes\"], \"training samples used:\", record[\"dataset\"][\"train_size_used\"])\n"
        "print(\"parameters:\", f\"{record['parameter_count']:,}\")"
    ),
    new_code_cell(
        "from hfcore.summary import plot_history\n\n"
        "plot_history(record);"
    ),
])

SUMMARY = notebook([
    new_markdown_cell(
        "# AV-MNIST: results over seeds\n\n"
        "Reads the results files of the training runs and shows test accuracy as mean ± standard "
        "deviation over seeds next to the paper's numbers (Table 1: LF 71.4, HyperFuse 72.4; "
        "Table 5: image only 66.7, audio only 42.5). Nothing is retrained here."
    ),
    parameters(
        "results_dir = None    # folder of results files (None: results/avmnist/default/runs)\n"
        "output_dir = None     # where summary.md and summary.csv go (None: results/avmnist/default)\n"
        "figure_path = None    # None: figures/avmnist_default.png\n"
        "x_parameter = None    # a grid parameter to plot accuracy against, such as hidden_dim (None: per model)"
    ),
    new_code_cell(
        "from pathlib import Path\n\n"
        "from hfcore.data.paths import REPO_ROOT\n"
        "from hfcore.summary import (\n"
        "    format_table, plot_accuracy, plot_accuracy_against, results_frame, save_figure, summary_table, write_summary,\n"
        ")\n\n"
        "output_dir = Path(output_dir or REPO_ROOT / \"results\" / \"avmnist\" / \"default\")\n"
        "results_dir = Path(results_dir or output_dir / \"runs\")\n"
        "figure_path = Path(figure_path or REPO_ROOT / \"figures\" / \"avmnist_default.png\")\n"
        "frame = results_frame(results_dir)\n"
        "table = summary_table(frame)\n"
        "print(format_table(table))"
    ),
    new_code_cell(
        "write_summary(table, output_dir)\n"
        "title = f\"AV-MNIST test accuracy ({frame['train_size'].max():,} training samples)\"\n"
        "if x_parameter:\n"
        "    fig = plot_accuracy_against(frame, x_parameter, title=title)\n"
        "else:\n"
        "    fig = plot_accuracy(frame, title=title)\n"
        "save_figure(fig, figure_path);"
    ),
    new_markdown_cell("Per-run numbers, for a closer look:"),
    new_code_cell("frame.sort_values([\"model\", \"seed\"]).round(2)"),
])

COMPARISON = notebook([
    new_markdown_cell(
        "# AV-MNIST: fusion baselines and HyperFuse block variants\n\n"
        "Reads the results of `experiments/avmnist_baselines.yaml`. Every model had the same tuning "
        "budget: three learning rates on seed 0, chosen by validation accuracy. The chosen rate was "
        "then run on 5 seeds. Each model is compared with HyperFuse seed by seed (same data order and "
        "initialisation seed), with a 95% t interval of the mean difference. The seconds per training "
        "epoch come from `benchmarks/run.py --parts models`, which times every model in one run. The "
        "paper's numbers are from its Tables 1, 7 and 10. Nothing is retrained here."
    ),
    parameters(
        "results_dir = None          # folder of results files (None: results/avmnist/baselines/runs)\n"
        "output_dir = None           # where comparison.md, comparison.csv and tuning.csv go\n"
        "figure_path = None          # baselines figure (None: figures/avmnist_baselines.png)\n"
        "blocks_figure_path = None   # block variants figure (None: figures/avmnist_blocks.png)\n"
        "benchmarks_dir = None       # epoch times from benchmarks/run.py --parts models (None: benchmarks/results)"
    ),
    new_code_cell(
        "from pathlib import Path\n\n"
        "from hfcore.comparison import (\n"
        "    benchmark_epoch_seconds, comparison_frame, comparison_table, format_comparison, plot_comparison, split_table,\n"
        "    tuning_table, write_comparison,\n"
        ")\n"
        "from hfcore.data.paths import REPO_ROOT\n"
        "from hfcore.summary import save_figure\n\n"
        "output_dir = Path(output_dir or REPO_ROOT / \"results\" / \"avmnist\" / \"baselines\")\n"
        "results_dir = Path(results_dir or output_dir / \"runs\")\n"
        "figures = REPO_ROOT / \"figures\"\n"
        "figure_path = Path(figure_path or figures / \"avmnist_baselines.png\")\n"
        "blocks_figure_path = Path(blocks_figure_path or figures / \"avmnist_blocks.png\")\n"
        "benchmarks_dir = Path(benchmarks_dir or REPO_ROOT / \"benchmarks\" / \"results\")\n"
        "frame = comparison_frame(results_dir)\n"
        "table = comparison_table(frame, epoch_seconds=benchmark_epoch_seconds(benchmarks_dir))\n"
        "baselines, blocks = split_table(table)\n"
        "write_comparison(table, tuning_table(frame), output_dir)\n"
        "print(format_comparison(baselines))"
    ),
    new_code_cell(
        "save_figure(plot_comparison(frame, baselines, title=\"AV-MNIST: fusion baselines\"), figure_path);"
    ),
    new_markdown_cell("The block variants of the paper's appendix E.1, against the base block:"),
    new_code_cell(
        "print(format_comparison(blocks))\n"
        "save_figure(plot_comparison(frame, blocks, title=\"AV-MNIST: HyperFuse block variants\"), blocks_figure_path);"
    ),
    new_markdown_cell("Validation accuracy (%) of every tuning run (seed 0), by learning rate:"),
    new_code_cell("tuning_table(frame)"),
])

ANALYSIS = notebook([
    new_markdown_cell(
        "# AV-MNIST: cross-modal interaction, corruption sensitivity, class distances\n\n"
        "Loads the trained runs of a grid (by default the baseline comparison, at each model's chosen "
        "learning rate) from their checkpoints and analyses them on the test split:\n\n"
        "- **EMAP** (Hessel and Lee, 2020): accuracy of the model minus accuracy of its best additive "
        "projection. A larger gap means more cross-modal interaction (paper Table 9: HyperFuse 1.9, "
        "best baseline 1.3).\n"
        "- **Corruption sensitivity** (paper appendix E.2, figures 8 and 9): the accuracy lost when the "
        "auxiliary input comes from a sample of another class, or carries Gaussian noise.\n"
        "- **Class distances** (paper figures 4 and 10): the mean distance between the embeddings that "
        "the head receives, per pair of classes, raw and divided by the mean within-class distance. "
        "The separation ratio (between over within) is scale-free, so models of different scales "
        "compare fairly.\n\n"
        "Each run's analysis is saved, so rerunning redraws the figures without recomputing."
    ),
    parameters(
        "runs_dir = None             # results files of the trained runs (None: results/avmnist/baselines/runs)\n"
        "configs = None              # list of configurations, \"all\" (every one in runs_dir), or None for hyperfuse, lf, mfm and the best baseline\n"
        "checkpoint_dir = None       # weights of the runs (None: checkpoints/)\n"
        "output_dir = None           # saved analyses (None: results/avmnist/analysis)\n"
        "data_dir = None             # folder with mnist/ and fsdd/ (None: HYPERFUSE_DATA or ../shared/data)\n"
        "cache_dir = None            # built datasets (None: HYPERFUSE_CACHE or cache/)\n"
        "pair_samples = 500          # test samples for EMAP (pair_samples squared pairs)\n"
        "noise_stds = [0.5, 1.0, 2.0]  # Gaussian noise levels on the standardised auxiliary input\n"
        "corruption_figure = None    # None: figures/avmnist_corruption.png\n"
        "distance_figure = None      # None: figures/avmnist_distances.png\n"
        "skip_missing_weights = False  # True: leave out runs whose weights are not on this machine\n"
        "progress = True"
    ),
    new_code_cell(
        "from pathlib import Path\n\n"
        "import pandas as pd\n\n"
        "from hfcore.analysis import analyse_runs, analysis_frame, emap_table, plot_corruption, plot_distance_heatmaps\n"
        "from hfcore.comparison import LABELS, best_baseline, comparison_frame\n"
        "from hfcore.data.avmnist import load_avmnist\n"
        "from hfcore.data.paths import REPO_ROOT\n"
        "from hfcore.summary import save_figure\n\n"
        "runs_dir = Path(runs_dir or REPO_ROOT / \"results\" / \"avmnist\" / \"analysis\" / \"models\" / \"runs\")\n"
        "output_dir = Path(output_dir or REPO_ROOT / \"results\" / \"avmnist\" / \"analysis\")\n"
        "figures = REPO_ROOT / \"figures\"\n"
        "corruption_figure = Path(corruption_figure or figures / \"avmnist_corruption.png\")\n"
        "distance_figure = Path(distance_figure or figures / \"avmnist_distances.png\")\n"
        "frame = comparison_frame(runs_dir)\n"
        "available = set(frame[\"config\"])\n"
        "baseline = best_baseline(frame)\n"
        "if configs is None:\n"
        "    configs = [c for c in dict.fromkeys([\"hyperfuse\", \"lf\", \"mfm\", baseline]) if c in available]\n"
        "elif configs == \"all\":\n"
        "    configs = [c for c in dict.fromkeys([\"hyperfuse\", \"lf\", \"mfm\", baseline, *sorted(available)]) if c in available]\n"
        "print(\"configurations:\", configs, \"| best baseline on validation:\", baseline)"
    ),
    new_code_cell(
        "dataset = load_avmnist(data_dir, cache_dir=cache_dir)\n"
        "records = analyse_runs(runs_dir, output_dir / \"runs\", dataset, configs=configs, checkpoint_dir=checkpoint_dir,\n"
        "                       pair_samples=pair_samples, noise_stds=noise_stds, progress=progress,\n"
        "                       skip_missing_weights=skip_missing_weights)\n"
        "results = analysis_frame(records)\n"
        "results.to_csv(output_dir / \"analysis.csv\", index=False)"
    ),
    new_markdown_cell("EMAP: accuracy of the model and of its additive projection on the matched test pairs (%)."),
    new_code_cell(
        "table = emap_table(results).round(2)\n"
        "table.index = [LABELS.get(c, c) for c in table.index]\n"
        "table"
    ),
    new_code_cell(
        "fig = plot_corruption(results, configs, LABELS)\n"
        "save_figure(fig, corruption_figure);"
    ),
    new_code_cell(
        "heatmap_configs = [c for c in (\"hyperfuse\", \"mfm\", \"lf\") if c in set(results[\"config\"])]\n"
        "fig = plot_distance_heatmaps(records, heatmap_configs, LABELS)\n"
        "save_figure(fig, distance_figure);"
    ),
])

WEIGHTS = notebook([
    new_markdown_cell(
        "# What the hypernetwork generates\n\n"
        "HyperFuse conditions the primary pathway by generating, from the auxiliary input, the weight "
        "matrix W of a layer. This notebook loads a trained HyperFuse model and shows W for the test "
        "spectrograms: the mean W of each spoken digit, how much of W's variation the digit explains, "
        "and, interactively, W for any single test sample."
    ),
    parameters(
        "run_name = None             # a HyperFuse run in runs_dir (None: seed 0 at the chosen learning rate)\n"
        "runs_dir = None             # results files (None: results/avmnist/analysis/models/runs)\n"
        "checkpoint_dir = None       # weights of the runs (None: checkpoints/)\n"
        "data_dir = None             # folder with mnist/ and fsdd/ (None: HYPERFUSE_DATA or ../shared/data)\n"
        "cache_dir = None            # built datasets (None: HYPERFUSE_CACHE or cache/)\n"
        "figure_path = None          # None: figures/avmnist_generated_weights.png"
    ),
    new_code_cell(
        "from pathlib import Path\n\n"
        "import torch\n\n"
        "from hfcore.analysis import (\n"
        "    explained_by_class, generated_matrices, load_trained_model, mean_matrix_per_class, plot_class_matrices,\n"
        "    split_inputs,\n"
        ")\n"
        "from hfcore.comparison import comparison_frame, select_learning_rates\n"
        "from hfcore.data.avmnist import load_avmnist\n"
        "from hfcore.data.paths import REPO_ROOT\n"
        "from hfcore.results import read_results\n"
        "from hfcore.summary import save_figure\n\n"
        "runs_dir = Path(runs_dir or REPO_ROOT / \"results\" / \"avmnist\" / \"analysis\" / \"models\" / \"runs\")\n"
        "figure_path = Path(figure_path or REPO_ROOT / \"figures\" / \"avmnist_generated_weights.png\")\n"
        "records = {r[\"run_name\"]: r for r in read_results(runs_dir)}\n"
        "if run_name is None:\n"
        "    lr = select_learning_rates(comparison_frame(runs_dir))[\"hyperfuse\"]\n"
        "    run_name = next(name for name, r in records.items() if r[\"model\"] == \"hyperfuse\" and r[\"seed\"] == 0\n"
        "                    and r[\"parameters\"].get(\"block\", \"base\") == \"base\" and r[\"parameters\"][\"lr\"] == lr)\n"
        "record = records[run_name]\n"
        "model = load_trained_model(record, checkpoint_dir)\n"
        "x_p, x_a, labels = split_inputs(load_avmnist(data_dir, cache_dir=cache_dir)[\"test\"], model)\n"
        "matrices = generated_matrices(model, x_a)\n"
        "means = mean_matrix_per_class(matrices, labels)\n"
        "print(f\"{run_name}: test accuracy {100 * record['metrics']['test_accuracy']:.1f}%, W is {tuple(matrices.shape[1:])}\")\n"
        "print(f\"the spoken digit explains {100 * explained_by_class(matrices, labels):.1f}% of the variance of W\")"
    ),
    new_code_cell(
        "fig = plot_class_matrices(means)\n"
        "save_figure(fig, figure_path);"
    ),
    new_markdown_cell(
        "Move the slider to see W for one test sample (in JupyterLab; a batch run shows the first sample)."
    ),
    new_code_cell(
        "import ipywidgets\n"
        "import matplotlib.pyplot as plt\n\n\n"
        "def show(index=0):\n"
        "    limit = float(matrices.abs().max())\n"
        "    fig, (ax_w, ax_d) = plt.subplots(1, 2, figsize=(8, 3.6))\n"
        "    ax_w.imshow(matrices[index].numpy(), cmap=\"RdBu_r\", vmin=-limit, vmax=limit)\n"
        "    ax_w.set_title(f\"W of test sample {index} (digit {int(labels[index])})\")\n"
        "    delta = matrices[index] - means[labels[index]]\n"
        "    ax_d.imshow(delta.numpy(), cmap=\"RdBu_r\", vmin=-limit, vmax=limit)\n"
        "    ax_d.set_title(\"minus the mean W of its digit\")\n"
        "    plt.show()\n\n\n"
        "ipywidgets.interact(show, index=ipywidgets.IntSlider(0, 0, len(labels) - 1));"
    ),
])

ABLATIONS = notebook([
    new_markdown_cell(
        "# AV-MNIST ablations: data efficiency, hidden size, fusion position\n\n"
        "Reads the results of one ablation grid and draws its figure or table beside the paper's: "
        "`kind = \"data_efficiency\"` (`experiments/avmnist_data_efficiency.yaml`, paper figure 6), "
        "`\"hidden_dim\"` (`avmnist_hidden_dim.yaml`, figure 11: relative error, the mean test error of "
        "a setting over the best setting's) or `\"positions\"` (`avmnist_positions.yaml`, tables 5 and "
        "13a: accuracy by position beside the unimodal models, and each position's gain over its unimodal "
        "model paired by seed). Nothing is retrained here."
    ),
    parameters(
        "kind = \"hidden_dim\"         # data_efficiency, hidden_dim or positions\n"
        "results_dir = None          # results files of the grid (None: results/avmnist/KIND/runs)\n"
        "output_dir = None           # where the table goes (None: results/avmnist/KIND)\n"
        "figure_path = None          # None: figures/avmnist_KIND.png"
    ),
    new_code_cell(
        "from pathlib import Path\n\n"
        "import pandas as pd\n\n"
        "from hfcore.ablations import (\n"
        "    fraction_differences, fraction_trend, markdown_table, mean_std, plot_data_efficiency, plot_hidden_size,\n"
        "    plot_positions, position_gains, position_table, relative_error_table, runs_frame,\n"
        ")\n"
        "from hfcore.atomic import atomic_path\n"
        "from hfcore.comparison import LABELS\n"
        "from hfcore.data.paths import REPO_ROOT\n"
        "from hfcore.summary import save_figure\n\n"
        "KINDS = (\"data_efficiency\", \"hidden_dim\", \"positions\")\n"
        "if kind not in KINDS:\n"
        "    raise ValueError(f\"kind must be one of {KINDS}, got {kind!r}\")\n"
        "output_dir = Path(output_dir or REPO_ROOT / \"results\" / \"avmnist\" / kind)\n"
        "results_dir = Path(results_dir or output_dir / \"runs\")\n"
        "figure_path = Path(figure_path or REPO_ROOT / \"figures\" / f\"avmnist_{kind}.png\")\n"
        "frame = runs_frame(results_dir)\n\n\n"
        "def write_table(table, name):\n"
        "    with atomic_path(output_dir / name) as temporary:\n"
        "        temporary.write_text(markdown_table(table) + \"\\n\")\n"
        "    return table"
    ),
    new_code_cell(
        "if kind == \"data_efficiency\":\n"
        "    table = write_table(mean_std(frame, [\"model\", \"train_fraction\"]).round(2), \"data_efficiency.md\")\n"
        "    pair = (\"hyperfuse\", \"gb\") if {\"hyperfuse\", \"gb\"} <= set(frame[\"model\"]) else None\n"
        "    if pair:\n"
        "        write_table(fraction_differences(frame, *pair).round(2), \"data_efficiency_difference.md\")\n"
        "        if frame[\"seed\"].nunique() > 1 and frame[\"train_fraction\"].nunique() > 1:\n"
        "            trend = fraction_trend(frame, *pair)\n"
        "            shares = \", \".join(f\"{f:g}\" for f in trend[\"fractions\"])\n"
        "            write_table(pd.DataFrame([{**trend, \"fractions\": shares}]).round(3), \"data_efficiency_trend.md\")\n"
        "            print(f\"{pair[0]} minus {pair[1]}: at the smallest minus at the largest share \"\n"
        "                  f\"{trend['contrast']:+.1f} [{trend['contrast_low']:+.1f}, {trend['contrast_high']:+.1f}] points, \"\n"
        "                  f\"slope {trend['slope']:+.1f} points per tenfold data (t = {trend['slope_t']:.2f}, \"\n"
        "                  f\"p = {trend['slope_p']:.3f}, {trend['seeds']} seeds)\")\n"
        "    save_figure(plot_data_efficiency(frame, LABELS, difference=pair), figure_path)\n"
        "elif kind == \"hidden_dim\":\n"
        "    single = frame[frame[\"num_blocks\"] == 1]\n"
        "    at_64 = frame[frame[\"hidden_dim\"] == 64]\n"
        "    table = write_table(relative_error_table(single, \"hidden_dim\").round(3), \"hidden_dim.md\")\n"
        "    if at_64[\"num_blocks\"].nunique() > 1:\n"
        "        write_table(relative_error_table(at_64, \"num_blocks\").round(3), \"num_blocks.md\")\n"
        "    save_figure(plot_hidden_size(single, at_64), figure_path)\n"
        "else:\n"
        "    gains = position_gains(frame)\n"
        "    if gains.empty:\n"
        "        print(\"No image_only or audio_only runs yet, so no gains over the unimodal models: \"\n"
        "              \"run the rest of experiments/avmnist_positions.yaml.\")\n"
        "    else:\n"
        "        write_table(gains.round(2), \"positions_gain.md\")\n"
        "    save_figure(plot_positions(frame), figure_path)\n"
        "    table = write_table(position_table(frame), \"positions.md\")\n"
        "table"
    ),
])

M3A_TRAIN = notebook([
    new_markdown_cell(
        "# M3A: train and test one model\n\n"
        "Trains one model on the real M3A release (M&A conference calls: BERT text embeddings, eGeMAPS "
        "audio features and speaker numbers per utterance) for one task and horizon. It keeps the epoch "
        "with the lowest validation loss (the latest 10% of the release's training calls), tests it "
        "once on the release's test calls, and writes one results file. Papermill sets the parameters "
        "below; in JupyterLab, edit them and run all cells."
    ),
    parameters(
        "model = \"m3anet_hyperfuse\"  # mdrm, transformer_concat, transformer_att, m3anet, m3anet_hyperfuse, text_only, audio_only\n"
        "task = \"volatility\"         # volatility (MSE) or movement (F1, MCC)\n"
        "horizon = 3                 # days: 3, 7 or 15\n"
        "seed = 0\n"
        "epochs = 150                # the most epochs\n"
        "patience = 20               # stop after this many epochs without a lower validation loss\n"
        "batch_size = 64\n"
        "lr = 1e-3                   # the release: 1e-3 for volatility, 1e-4 for movement\n"
        "weight_decay = 0.0\n"
        "hidden_dim = 8              # HyperFuse bottleneck width h (m3anet_hyperfuse only)\n"
        "num_blocks = 1              # stacked HyperFuse blocks (m3anet_hyperfuse only)\n"
        "block = \"base\"             # HyperFuse block design: base, I, II, III, IV (m3anet_hyperfuse only)\n"
        "fusion_position = 0         # 0: on the released primary feature; 1: after its projection\n"
        "primary = \"text\"           # primary modality of m3anet_hyperfuse: text or audio\n"
        "val_fraction = 0.1          # the latest share of the training calls used for validation\n"
        "data_dir = None             # folder holding m3a/ (None: HYPERFUSE_DATA or ../shared/data)\n"
        "cache_dir = None            # parsed CSV release (None: HYPERFUSE_CACHE or cache/)\n"
        "results_dir = None          # None: results/m3a/interactive in the repository\n"
        "run_name = None             # results file name (None: MODEL-TASKHORIZON-HASH-seedSEED)\n"
        "overwrite = False           # replace an existing results file\n"
        "progress = True"
    ),
    new_code_cell(
        "import logging\n\n"
        "from hfcore.m3a.experiment import run_m3a\n\n"
        "logging.basicConfig(level=logging.INFO, format=\"%(name)s: %(message)s\", force=True)"
    ),
    new_code_cell(
        "record = run_m3a(\n"
        "    model=model, task=task, horizon=horizon, seed=seed, epochs=epochs, patience=patience,\n"
        "    batch_size=batch_size, lr=lr, weight_decay=weight_decay, hidden_dim=hidden_dim, num_blocks=num_blocks,\n"
        "    block=block, fusion_position=fusion_position, primary=primary, val_fraction=val_fraction,\n"
        "    data_dir=data_dir, cache_dir=cache_dir, results_dir=results_dir, run_name=run_name,\n"
        "    overwrite=overwrite, progress=progress,\n"
        ")"
    ),
    new_markdown_cell("## Result\n\nTest metrics of the selected epoch, beside the trivial predictor."),
    new_code_cell(
        "metrics = record[\"metrics\"]\n"
        "tested = {k: round(v, 4) for k, v in metrics.items() if k.startswith(\"test_\")}\n"
        "print(f\"{record['run_name']}: {tested}\")\n"
        "print(\"trivial predictor:\", {k: round(v, 4) for k, v in record[\"trivial_baseline\"].items()})\n"
        "print(f\"best validation epoch {metrics['best_epoch']} of {metrics['epochs_run']}; \"\n"
        "      f\"{record['parameter_count']:,} parameters; calls used: {record['dataset']['split_sizes_used']}\")"
    ),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "import pandas as pd\n\n"
        "history = pd.DataFrame(metrics[\"history\"]).set_index(\"epoch\")\n"
        "ax = history.plot(figsize=(6, 3.2), secondary_y=[c for c in history.columns if c not in (\"train_loss\", \"val_mse\", \"val_bce\")])\n"
        "ax.axvline(metrics[\"best_epoch\"], color=\"k\", linestyle=\":\", linewidth=1)\n"
        "ax.set_title(\"training loss and validation metrics per epoch (dotted: selected epoch)\")\n"
        "plt.show()"
    ),
])

M3A_COMPARISON = notebook([
    new_markdown_cell(
        "# M3A comparison: paper Tables 4, 6, 12 and 13b\n\n"
        "Reads the results files of an M3A grid (`experiments/m3a_volatility.yaml` or "
        "`m3a_movement.yaml`) and writes the tables and figures, with the paper's numbers and the "
        "trivial predictors beside ours. M3ANet + HyperFuse is shown at the block design and hidden "
        "size with the lowest validation loss on seed 0. Nothing is retrained here."
    ),
    parameters(
        "task = \"volatility\"         # volatility or movement\n"
        "results_dir = None          # results files (None: results/m3a/TASK/runs)\n"
        "output_dir = None           # where the tables go (None: results/m3a/TASK)\n"
        "figure_path = None          # None: figures/m3a_TASK.png\n"
        "hidden_figure_path = None   # None: figures/m3a_TASK_hidden_size.png"
    ),
    new_code_cell(
        "from pathlib import Path\n\n"
        "from hfcore.atomic import atomic_path\n"
        "from hfcore.data.paths import REPO_ROOT\n"
        "from hfcore.m3a.summary import (\n"
        "    blocks_table, comparison_table, difference_table, hidden_size_frame, m3a_frame, markdown_table,\n"
        "    plot_comparison, plot_hidden_size, positions_table, select_hyperfuse,\n"
        ")\n"
        "from hfcore.summary import save_figure\n\n"
        "if task not in (\"volatility\", \"movement\"):\n"
        "    raise ValueError(f\"task must be 'volatility' or 'movement', got {task!r}\")\n"
        "output_dir = Path(output_dir or REPO_ROOT / \"results\" / \"m3a\" / task)\n"
        "results_dir = Path(results_dir or output_dir / \"runs\")\n"
        "figure_path = Path(figure_path or REPO_ROOT / \"figures\" / f\"m3a_{task}.png\")\n"
        "hidden_figure_path = Path(hidden_figure_path or REPO_ROOT / \"figures\" / f\"m3a_{task}_hidden_size.png\")\n"
        "frame = m3a_frame(results_dir)\n"
        "frame = frame[frame[\"task\"] == task]\n\n\n"
        "def write_table(table, name):\n"
        "    with atomic_path(output_dir / name) as temporary:\n"
        "        temporary.write_text(markdown_table(table) + \"\\n\")\n"
        "    return table\n\n\n"
        "print(\"HyperFuse configuration per horizon (block, h), chosen on validation:\", select_hyperfuse(frame, task))"
    ),
    new_markdown_cell("## Table 4: models over seeds, on the release's test calls"),
    new_code_cell(
        "save_figure(plot_comparison(frame, task), figure_path)\n"
        "write_table(comparison_table(frame, task), \"comparison.md\")"
    ),
    new_markdown_cell(
        "M3ANet + HyperFuse minus M3ANet, paired by seed, with a 95% t interval. An interval that "
        "contains 0 means the seeds cannot tell the two apart. For MSE a negative difference favours "
        "HyperFuse; for F1 and MCC a positive one does."
    ),
    new_code_cell("write_table(difference_table(frame, task), \"difference.md\")"),
    new_markdown_cell(
        "## Figure 11a and Table 12: hidden sizes and block designs (seed 0)\n\n"
        "The base block's test error at each hidden size, relative to the best size, for either task. "
        "The block designs are compared for volatility only, as in the paper."
    ),
    new_code_cell(
        "if (frame[\"model\"] == \"m3anet_hyperfuse\").any():\n"
        "    hidden = hidden_size_frame(frame, task)\n"
        "    if hidden[\"hidden_dim\"].nunique() > 1:\n"
        "        save_figure(plot_hidden_size(hidden, task), hidden_figure_path)\n"
        "    if task == \"volatility\":\n"
        "        display(write_table(blocks_table(frame), \"blocks.md\"))"
    ),
    new_markdown_cell("## Table 13b: fusion position and primary modality (MSE at 7 days)"),
    new_code_cell(
        "if task == \"volatility\":\n"
        "    display(write_table(positions_table(frame), \"positions.md\"))"
    ),
])

SENTIMENT_TRAIN = notebook([
    new_markdown_cell(
        "# CMU-MOSI / CMU-MOSEI: train and test one sentiment model\n\n"
        "Fine-tunes a pretrained transformer (a local `transformers` checkpoint: BERT, XLNet, ...) for "
        "sentiment regression on MAG-BERT's aligned features. `fusion` adds the visual and acoustic "
        "features at encoder layer `layer`: `\"mag\"` (MAG-BERT's gate), `\"hyperfuse\"` or `\"none\"`. "
        "The epoch with the lowest dev MAE is tested once."
    ),
    parameters(
        "data_path = \"mosi.pkl\"      # MAG-BERT's mosi.pkl or mosei.pkl\n"
        "checkpoint = \"bert-base-uncased\"  # local folder of a transformers checkpoint\n"
        "fusion = \"hyperfuse\"        # none, mag or hyperfuse\n"
        "layer = 0                   # encoder layer whose input is fused (0: after the embeddings)\n"
        "seed = 0\n"
        "epochs = 40\n"
        "batch_size = 48\n"
        "lr = 1e-5\n"
        "max_seq_length = 50\n"
        "hidden_dim = 64             # HyperFuse bottleneck width h\n"
        "num_blocks = 1\n"
        "block = \"base\"\n"
        "beta_shift = 1.0            # MAG's bound on the shift\n"
        "dropout = 0.5               # MAG's dropout\n"
        "train_fraction = 1.0\n"
        "model_label = None          # name in tables (None: checkpoint folder + fusion)\n"
        "results_dir = None          # None: results/sentiment/interactive\n"
        "run_name = None\n"
        "overwrite = False\n"
        "progress = True"
    ),
    new_code_cell(
        "import logging\n\n"
        "from hfcore.sentiment.experiment import run_sentiment\n\n"
        "logging.basicConfig(level=logging.INFO, format=\"%(name)s: %(message)s\", force=True)\n"
        "record = run_sentiment(\n"
        "    data_path=data_path, checkpoint=checkpoint, fusion=fusion, layer=layer, seed=seed, epochs=epochs,\n"
        "    batch_size=batch_size, lr=lr, max_seq_length=max_seq_length, hidden_dim=hidden_dim,\n"
        "    num_blocks=num_blocks, block=block, beta_shift=beta_shift, dropout=dropout,\n"
        "    train_fraction=train_fraction, model_label=model_label, results_dir=results_dir, run_name=run_name,\n"
        "    overwrite=overwrite, progress=progress,\n"
        ")"
    ),
    new_code_cell(
        "metrics = record[\"metrics\"]\n"
        "print(record[\"run_name\"], {k: round(v, 4) for k, v in metrics.items() if k.startswith(\"test_\")})\n"
        "print(f\"best dev epoch {metrics['best_epoch']}; {record['parameter_count']:,} parameters\")"
    ),
])

SENTIMENT_COMPARISON = notebook([
    new_markdown_cell(
        "# Paper Table 3: BERT and XLNet with MAG or HyperFuse on CMU-MOSI / CMU-MOSEI\n\n"
        "For each backbone with a local checkpoint, trains the text-only model, MAG and HyperFuse at "
        "the same layer over the seeds, then tabulates test metrics beside the paper's. Runs whose "
        "results file exists are skipped, so an interrupted comparison resumes. See the README for "
        "the data and checkpoints to download."
    ),
    parameters(
        "data_path = \"mosi.pkl\"      # MAG-BERT's mosi.pkl or mosei.pkl\n"
        "dataset = \"mosi\"            # mosi or mosei: which paper table to show\n"
        "bert_checkpoint = None      # local folder of bert-base-uncased (None: skip BERT)\n"
        "xlnet_checkpoint = None     # local folder of xlnet-base-cased (None: skip XLNet)\n"
        "seeds = [0, 1, 2, 3, 4]\n"
        "epochs = 40\n"
        "batch_size = 48\n"
        "lr = 1e-5\n"
        "max_seq_length = 50\n"
        "layer = 0\n"
        "hidden_dim = 64\n"
        "results_dir = None          # None: results/sentiment/DATASET/runs\n"
        "output_dir = None           # None: results/sentiment/DATASET\n"
        "figure_path = None          # None: figures/sentiment_DATASET.png\n"
        "progress = True"
    ),
    new_code_cell(
        "import logging\n"
        "import re\n"
        "from pathlib import Path\n\n"
        "from hfcore.ablations import markdown_table\n"
        "from hfcore.atomic import atomic_path\n"
        "from hfcore.data.paths import REPO_ROOT\n"
        "from hfcore.sentiment.experiment import run_sentiment\n"
        "from hfcore.sentiment.summary import comparison_configs, comparison_table, plot_comparison, sentiment_frame\n"
        "from hfcore.summary import save_figure\n\n"
        "logging.basicConfig(level=logging.INFO, format=\"%(name)s: %(message)s\", force=True)\n"
        "output_dir = Path(output_dir or REPO_ROOT / \"results\" / \"sentiment\" / dataset)\n"
        "results_dir = Path(results_dir or output_dir / \"runs\")\n"
        "figure_path = Path(figure_path or REPO_ROOT / \"figures\" / f\"sentiment_{dataset}.png\")\n"
        "configs = comparison_configs({\"BERT\": bert_checkpoint, \"XLNet\": xlnet_checkpoint})\n"
        "if not configs:\n"
        "    raise ValueError(\"set bert_checkpoint or xlnet_checkpoint to a local transformers checkpoint folder\")\n"
        "for seed in seeds:\n"
        "    for config in configs:\n"
        "        run_name = re.sub(r\"[^A-Za-z0-9]+\", \"-\", config[\"model_label\"]).strip(\"-\").lower() + f\"-seed{seed}\"\n"
        "        if (results_dir / f\"{run_name}.json\").exists():\n"
        "            continue\n"
        "        run_sentiment(data_path=data_path, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,\n"
        "                      max_seq_length=max_seq_length, layer=layer, hidden_dim=hidden_dim,\n"
        "                      results_dir=str(results_dir), run_name=run_name, progress=progress, **config)"
    ),
    new_code_cell(
        "frame = sentiment_frame(results_dir)\n"
        "table = comparison_table(frame, dataset)\n"
        "with atomic_path(output_dir / \"comparison.md\") as temporary:\n"
        "    temporary.write_text(markdown_table(table) + \"\\n\")\n"
        "save_figure(plot_comparison(frame, dataset), figure_path)\n"
        "table"
    ),
])

GEO_TRAIN = notebook([
    new_markdown_cell(
        "# iNaturalist / YFCC100M-GEO100: train and evaluate one Table 2 model\n\n"
        "A torchvision backbone embeds the photo (primary); where and when it was taken is the "
        "auxiliary input, encoded as in Dynamic MLP. `model` names the fusion at the penultimate "
        "layer: `image_only`, `concat`, `dynamic_mlp_c`, `geonet_modulation`, `geonet_prior`, "
        "`ensemble` or `hyperfuse`. Training follows the paper's recipe (random crops and flips, "
        "mixup, label smoothing, SGD with momentum, warm-up then cosine decay); the final weights "
        "are evaluated once. For several GPUs, run the same training with "
        "`torchrun --nproc_per_node N -m hfcore geo-train ...` (see the README)."
    ),
    parameters(
        "dataset = \"inat2021\"        # inat2017, inat2018, inat2021 or yfcc\n"
        "data_dir = None             # folder holding the dataset's annotation files and images (required)\n"
        "model = \"hyperfuse\"         # image_only, concat, dynamic_mlp_c, geonet_modulation, geonet_prior, ensemble, hyperfuse\n"
        "train_split = None          # None: train_mini (iNat 2021), train (others)\n"
        "eval_split = None           # None: val (iNaturalist), test (YFCC)\n"
        "parts = None                # auxiliary features, from [\"geo\", \"temporal\"] (None: both; geo only for YFCC)\n"
        "backbone = \"resnet50\"       # any torchvision classification model\n"
        "weights = None              # local state-dict file of the backbone (None: random weights)\n"
        "epochs = 90\n"
        "batch_size = 128            # the global batch, split over processes under torchrun\n"
        "lr = 0.04                   # the paper's peak learning rate\n"
        "momentum = 0.9\n"
        "weight_decay = 1e-4         # the paper searched 1e-5 to 1e-3\n"
        "warmup_epochs = 5\n"
        "mixup_alpha = 0.2           # 0 turns mixup off\n"
        "label_smoothing = 0.1\n"
        "image_size = 224\n"
        "aux_width = 256             # units of the ReLU layer on the location and date features\n"
        "hidden_dim = 64             # HyperFuse bottleneck width h (hyperfuse, dynamic_mlp_c)\n"
        "num_blocks = 1              # stacked HyperFuse blocks (hyperfuse only)\n"
        "block = \"base\"             # HyperFuse block design: base, I, II, III, IV (hyperfuse only)\n"
        "precision = \"float32\"       # float32 or bfloat16\n"
        "num_workers = 4             # image-decoding processes\n"
        "seed = 0\n"
        "results_dir = None          # None: results/geo/interactive\n"
        "checkpoint_dir = None       # None: checkpoints/geo (a rerun resumes from the last epoch)\n"
        "run_name = None\n"
        "overwrite = False\n"
        "progress = True"
    ),
    new_code_cell(
        "import logging\n\n"
        "from hfcore.geo.experiment import run_geo\n\n"
        "logging.basicConfig(level=logging.INFO, format=\"%(name)s: %(message)s\", force=True)\n"
        "record = run_geo(\n"
        "    dataset=dataset, data_dir=data_dir, model=model, train_split=train_split, eval_split=eval_split,\n"
        "    parts=parts, backbone=backbone, weights=weights, epochs=epochs, aux_width=aux_width, block=block,\n"
        "    batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay, warmup_epochs=warmup_epochs,\n"
        "    mixup_alpha=mixup_alpha, label_smoothing=label_smoothing, image_size=image_size, hidden_dim=hidden_dim,\n"
        "    num_blocks=num_blocks, precision=precision, num_workers=num_workers, seed=seed, results_dir=results_dir,\n"
        "    checkpoint_dir=checkpoint_dir, run_name=run_name, overwrite=overwrite, progress=progress,\n"
        ")"
    ),
    new_code_cell(
        "metrics = record[\"metrics\"]\n"
        "print(f\"{record['run_name']}: top-1 {metrics['eval_top1']:.4f}, top-5 {metrics['eval_top5']:.4f} \"\n"
        "      f\"on {record['data']['eval_samples']} images; {record['parameter_count']:,} parameters\")\n"
        "print(\"samples without location or date:\", record[\"data\"][\"train_missing_metadata\"], \"(train),\",\n"
        "      record[\"data\"][\"eval_missing_metadata\"], \"(evaluation)\")"
    ),
])

GEO_COMPARISON = notebook([
    new_markdown_cell(
        "# Paper Table 2: HyperFuse against the geo-aware baselines\n\n"
        "Trains every model of Table 2 on one dataset over the seeds, then tabulates top-1 and top-5 "
        "beside the paper's values (its baseline rows are quoted from the literature). Runs whose "
        "results file exists are skipped, so an interrupted comparison resumes; the run in progress "
        "resumes from its last epoch's checkpoint. See the README for the data and weights to download."
    ),
    parameters(
        "dataset = \"inat2021\"        # inat2017, inat2018, inat2021 or yfcc\n"
        "data_dir = None             # required\n"
        "models = [\"image_only\", \"concat\", \"dynamic_mlp_c\", \"geonet_modulation\", \"geonet_prior\", \"ensemble\", \"hyperfuse\"]\n"
        "seeds = [0, 1]              # the paper averages two runs\n"
        "backbone = \"resnet50\"\n"
        "weights = None              # local ImageNet state-dict file of the backbone\n"
        "epochs = 90\n"
        "batch_size = 128\n"
        "lr = 0.04\n"
        "weight_decay = 1e-4\n"
        "warmup_epochs = 5\n"
        "image_size = 224\n"
        "hidden_dim = 64\n"
        "num_workers = 4\n"
        "results_dir = None          # None: results/geo/DATASET/runs\n"
        "checkpoint_dir = None       # None: checkpoints/geo (final weights of every run)\n"
        "output_dir = None           # None: results/geo/DATASET\n"
        "figure_path = None          # None: figures/geo_DATASET.png\n"
        "progress = True"
    ),
    new_code_cell(
        "import logging\n"
        "from pathlib import Path\n\n"
        "from hfcore.ablations import markdown_table\n"
        "from hfcore.atomic import atomic_path\n"
        "from hfcore.data.paths import REPO_ROOT\n"
        "from hfcore.geo.experiment import run_geo\n"
        "from hfcore.geo.summary import comparison_table, geo_frame, plot_comparison\n"
        "from hfcore.results import ResultExistsError\n"
        "from hfcore.summary import save_figure\n\n"
        "logging.basicConfig(level=logging.INFO, format=\"%(name)s: %(message)s\", force=True)\n"
        "output_dir = Path(output_dir or REPO_ROOT / \"results\" / \"geo\" / dataset)\n"
        "results_dir = Path(results_dir or output_dir / \"runs\")\n"
        "figure_path = Path(figure_path or REPO_ROOT / \"figures\" / f\"geo_{dataset}.png\")\n\n"
        "settings = dict(dataset=dataset, backbone=backbone, weights=weights, epochs=epochs, batch_size=batch_size, lr=lr,\n"
        "                weight_decay=weight_decay, warmup_epochs=warmup_epochs, image_size=image_size,\n"
        "                hidden_dim=hidden_dim)\n"
        "for seed in seeds:\n"
        "    for model in models:\n"
        "        try:  # run names hash the settings, so a finished run of the same settings is skipped\n"
        "            run_geo(model=model, seed=seed, data_dir=data_dir, num_workers=num_workers, results_dir=str(results_dir),\n"
        "                    checkpoint_dir=checkpoint_dir, progress=progress, **settings)\n"
        "        except ResultExistsError:\n"
        "            print(f\"{model}, seed {seed}: finished earlier, skipped\")"
    ),
    new_code_cell(
        "frame = geo_frame(results_dir, settings)  # runs of other settings in the folder are left out\n"
        "table = comparison_table(frame)\n"
        "with atomic_path(output_dir / \"comparison.md\") as temporary:\n"
        "    temporary.write_text(markdown_table(table) + \"\\n\")\n"
        "save_figure(plot_comparison(frame), figure_path)\n"
        "table"
    ),
])

if __name__ == "__main__":
    nbformat.write(TRAIN, NOTEBOOKS / "avmnist_train.ipynb")
    nbformat.write(SUMMARY, NOTEBOOKS / "avmnist_summary.ipynb")
    nbformat.write(COMPARISON, NOTEBOOKS / "avmnist_comparison.ipynb")
    nbformat.write(ANALYSIS, NOTEBOOKS / "avmnist_analysis.ipynb")
    nbformat.write(WEIGHTS, NOTEBOOKS / "avmnist_generated_weights.ipynb")
    nbformat.write(ABLATIONS, NOTEBOOKS / "avmnist_ablations.ipynb")
    nbformat.write(M3A_TRAIN, NOTEBOOKS / "m3a_train.ipynb")
    nbformat.write(M3A_COMPARISON, NOTEBOOKS / "m3a_comparison.ipynb")
    nbformat.write(SENTIMENT_TRAIN, NOTEBOOKS / "sentiment_train.ipynb")
    nbformat.write(SENTIMENT_COMPARISON, NOTEBOOKS / "sentiment_comparison.ipynb")
    nbformat.write(GEO_TRAIN, NOTEBOOKS / "geo_train.ipynb")
    nbformat.write(GEO_COMPARISON, NOTEBOOKS / "geo_comparison.ipynb")
