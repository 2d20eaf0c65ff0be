"""Command-line entry points: ``python -m hfcore COMMAND --help``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hfcore", description="HyperFuse compendium commands.")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

    from .main_job import PROFILES, profile_description

    main_job = commands.add_parser("main", help="run every AV-MNIST model over several seeds, then the summary")
    main_job.add_argument("--profile", default="default", choices=sorted(PROFILES),
                          help="; ".join(f"{k}: {profile_description(k)}" for k in PROFILES))
    main_job.add_argument("--data-dir", help="folder with mnist/ and fsdd/ (default: HYPERFUSE_DATA or ../shared/data)")
    main_job.add_argument("--results-dir", help="results folder (default: results/avmnist/PROFILE)")
    main_job.add_argument("--figures-dir", help="figures folder (default: figures/)")
    main_job.add_argument("--force", action="store_true", help="rerun runs whose results exist, replacing them")
    main_job.add_argument("--workers", type=int, default=1,
                          help="parallel worker processes on a local Dask cluster (default: 1, no Dask)")
    main_job.add_argument("--scheduler", help="address of a running Dask scheduler to submit the runs to")

    build = commands.add_parser("build-data", help="build AV-MNIST into the cache and print its description")
    build.add_argument("--data-dir", help="folder with mnist/ and fsdd/ (default: HYPERFUSE_DATA or ../shared/data)")
    build.add_argument("--snr-db", type=float, help="audio noise level in dB (default: the calibrated value)")
    build.add_argument("--rebuild", action="store_true", help="build even when a cached copy exists")

    calibrate = commands.add_parser("calibrate", help="unimodal accuracies against corruption level")
    from .data.avmnist import AVMNISTConfig

    calibrate.add_argument("--snr-db", type=float, nargs="*", default=[AVMNISTConfig.snr_db],
                           help="audio SNRs in dB for audio-only runs; none skips them (default: %(default)s)")
    calibrate.add_argument("--pca-energy", type=float, nargs="*", default=[AVMNISTConfig.pca_energy],
                           help="PCA variance fractions for image-only runs; none skips them (default: %(default)s)")
    calibrate.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds (default: %(default)s)")
    calibrate.add_argument("--epochs", type=int, default=15, help="training epochs per run (default: %(default)s)")
    calibrate.add_argument("--data-dir", help="folder with mnist/ and fsdd/ (default: HYPERFUSE_DATA or ../shared/data)")

    train = commands.add_parser("train", help="train one AV-MNIST model; runs data parallel under torchrun")
    train.add_argument("--model", required=True,
                       help="model name: hyperfuse, lf, image_only, audio_only, or a baseline (lfn, lmf, mfm, gb, "
                            "mbt, mfas, refnet, film, mag, dynamic_mlp_c); an unknown name lists them all")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--epochs", type=int, default=15, help="training epochs (default: %(default)s, as the notebook)")
    train.add_argument("--batch-size", type=int, default=64, help="global batch size, split across processes")
    train.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    train.add_argument("--weight-decay", type=float, default=0.0, help="Adam weight decay (default: %(default)s)")
    train.add_argument("--hidden-dim", type=int, help="bottleneck width of HyperFuse and dynamic_mlp_c (default: 64)")
    train.add_argument("--num-blocks", type=int, help="stacked HyperFuse blocks (default: 1)")
    train.add_argument("--fusion-position", type=int,
                       help="primary-encoder layers before the HyperFuse blocks (default: after the encoder)")
    train.add_argument("--primary", default="image", help="primary modality: image or audio")
    train.add_argument("--generator", help="HyperFuse generator: full (the paper's, the default) or factorized")
    train.add_argument("--rank", type=int, help="rank of the factorized generator (default: the bottleneck width)")
    train.add_argument("--block", help="HyperFuse block: base (the default), or the appendix variants I, II, III, IV")
    train.add_argument("--precision", default="float32", help="float32, or bfloat16 autocast")
    train.add_argument("--train-fraction", type=float, default=1.0)
    train.add_argument("--data-dir", help="folder with mnist/ and fsdd/ (default: HYPERFUSE_DATA or ../shared/data)")
    train.add_argument("--cache-dir", help="folder of built datasets (default: HYPERFUSE_CACHE or cache/)")
    train.add_argument("--results-dir", help="results folder (default: results/avmnist/interactive)")
    train.add_argument("--checkpoint-dir", help="checkpoint folder (default: checkpoints/)")
    train.add_argument("--run-name", help="results file name without .json")
    train.add_argument("--overwrite", action="store_true", help="replace an existing results file")

    geo = commands.add_parser("geo-train", help="train one Table 2 model (image + location and date); "
                              "runs data parallel under torchrun")
    from .geo.data import DATASETS
    from .geo.models import GEO_FUSIONS

    geo.add_argument("--dataset", required=True, choices=DATASETS)
    geo.add_argument("--data-dir", required=True, help="folder holding the dataset's annotation files and images")
    geo.add_argument("--model", default="hyperfuse", choices=GEO_FUSIONS)
    geo.add_argument("--backbone", default="resnet50", help="torchvision model name (default: resnet50)")
    geo.add_argument("--weights", help="local state-dict file of the backbone (default: random weights)")
    for flag, kind, default in (("--epochs", int, 90), ("--batch-size", int, 128), ("--lr", float, 0.04),
                                ("--momentum", float, 0.9), ("--weight-decay", float, 1e-4),
                                ("--warmup-epochs", int, 5), ("--mixup-alpha", float, 0.2),
                                ("--label-smoothing", float, 0.1), ("--image-size", int, 224),
                                ("--hidden-dim", int, 64), ("--num-blocks", int, 1), ("--num-workers", int, 4),
                                ("--seed", int, 0)):
        geo.add_argument(flag, type=kind, default=default, help=f"default: {default}")
    geo.add_argument("--train-split", help="default: train_mini for iNat 2021, train for the others")
    geo.add_argument("--eval-split", help="default: val for iNaturalist, test for YFCC")
    geo.add_argument("--parts", nargs="+", choices=("geo", "temporal"),
                     help="auxiliary features (default: both; geo only for YFCC)")
    geo.add_argument("--aux-width", type=int, default=256, help="default: 256")
    geo.add_argument("--block", default="base", help="HyperFuse block design: base, I, II, III, IV")
    geo.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    geo.add_argument("--results-dir")
    geo.add_argument("--checkpoint-dir")
    geo.add_argument("--run-name")
    geo.add_argument("--overwrite", action="store_true")

    run = commands.add_parser("run", help="run every point of an experiment spec through papermill, then its summary")
    run.add_argument("spec", help="spec file, for example experiments/avmnist_hidden_dim.yaml")
    run.add_argument("--force", action="store_true", help="rerun points whose results exist")
    run.add_argument("--workers", type=int, default=1,
                     help="parallel worker processes on a local Dask cluster (default: 1, no Dask)")
    run.add_argument("--scheduler", help="address of a running Dask scheduler to submit the points to")
    run.add_argument("--data-dir", help="data folder passed to every point (not part of its key)")

    regenerate = commands.add_parser("regenerate", help="rebuild every table and figure from saved results, no training")
    regenerate.add_argument("specs", nargs="*", help="spec files (default: every experiments/*.yaml)")

    fetch = commands.add_parser("fetch", help="download MNIST and FSDD and verify their checksums (needs internet)")
    fetch.add_argument("--dest", required=True, help="folder to create mnist/ and fsdd/ in")
    fetch.add_argument("--no-train", action="store_true", help="skip the 60,000 MNIST training images")

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        return run_command(args)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        # Bad input (missing data, an existing result, an invalid value). The message names the fix.
        hint = " (on the command line: --overwrite)" if isinstance(error, FileExistsError) and \
            getattr(args, "command", None) == "train" else ""
        print(f"error: {error}{hint}", file=sys.stderr)
        return 2


def training_options(model: str) -> set[str]:
    """Return the model options of ``run_avmnist`` that reach the builder of ``model``.

    ``run_avmnist`` passes ``generator``, ``rank`` and ``block`` to HyperFuse only, and the
    other options to any builder that takes them. Raises ValueError for an unknown model.
    """
    from .models import model_option_names

    accepted = model_option_names(model)
    forwarded = {"hidden_dim", "num_blocks", "fusion_position"} & accepted
    if model == "hyperfuse":
        forwarded |= {"generator", "rank", "block"}
    return forwarded


def run_command(args: argparse.Namespace) -> int:
    """Run the subcommand that ``args`` names."""
    if args.command == "main":
        from .main_job import run_profile

        report = run_profile(args.profile, results_root=args.results_dir, figures_dir=args.figures_dir,
                             data_dir=args.data_dir, force=args.force, workers=args.workers,
                             scheduler=args.scheduler)
        print(f"main job ({args.profile}): {report.summary()}")
    elif args.command == "build-data":
        from .data.avmnist import AVMNISTConfig, load_avmnist

        config = AVMNISTConfig() if args.snr_db is None else AVMNISTConfig(snr_db=args.snr_db)
        dataset = load_avmnist(args.data_dir, config, rebuild=args.rebuild)
        print(dataset.info)
    elif args.command == "calibrate":
        from .calibration import calibrate as run_calibration, calibration_table

        run_calibration(snr_values=args.snr_db, pca_energies=args.pca_energy, seeds=args.seeds,
                        epochs=args.epochs, data_dir=args.data_dir)
        print(calibration_table())
    elif args.command == "train":
        from .experiments import run_avmnist

        if not args.lr > 0:
            raise ValueError(f"--lr must be positive, got {args.lr}")
        if not args.weight_decay >= 0:
            raise ValueError(f"--weight-decay must be 0 or positive, got {args.weight_decay}")
        options = {"hidden_dim": args.hidden_dim, "num_blocks": args.num_blocks, "generator": args.generator,
                   "rank": args.rank, "block": args.block, "fusion_position": args.fusion_position}
        given = {name: value for name, value in options.items() if value is not None}
        unused = sorted(set(given) - training_options(args.model))
        if unused:
            flags = ", ".join("--" + name.replace("_", "-") for name in unused)
            raise ValueError(
                f"model {args.model!r} does not use {flags}; leave {'them' if len(unused) > 1 else 'it'} out. "
                "(Method options such as LMF's rank keep the defaults of hfcore.baselines here; set them "
                "with build_model in Python.)"
            )

        record = run_avmnist(model=args.model, seed=args.seed, epochs=args.epochs, batch_size=args.batch_size,
                             lr=args.lr, weight_decay=args.weight_decay, primary=args.primary,
                             precision=args.precision, **given,
                             train_fraction=args.train_fraction, data_dir=args.data_dir,
                             cache_dir=args.cache_dir, results_dir=args.results_dir,
                             checkpoint_dir=args.checkpoint_dir, run_name=args.run_name, overwrite=args.overwrite,
                             progress=False)
        print(f"{record['run_name']}: test accuracy {record['metrics']['test_accuracy']:.4f}")
    elif args.command == "geo-train":
        from .geo.experiment import run_geo

        options = {k: v for k, v in vars(args).items() if k not in ("command", "log_level")}
        record = run_geo(**options, progress=False)
        print(f"{record['run_name']}: top-1 {record['metrics']['eval_top1']:.4f}, "
              f"top-5 {record['metrics']['eval_top5']:.4f}")
    elif args.command == "run":
        from .grid import load_spec, run_grid, run_summary

        if args.workers <= 0:
            raise ValueError(f"--workers must be a positive integer, got {args.workers}")
        spec = load_spec(args.spec)
        extra = {"data_dir": args.data_dir} if args.data_dir else None
        report = run_grid(spec, force=args.force, workers=args.workers, scheduler=args.scheduler,
                          extra_parameters=extra)
        print(f"grid {spec.name}: {report.summary()}")
        run_summary(spec)
        if report.failed or report.busy:  # busy points ran elsewhere: the grid is not complete yet
            return 1
    elif args.command == "regenerate":
        from .data.paths import REPO_ROOT
        from .grid import regenerate as regenerate_all

        specs = [Path(p) for p in args.specs] or sorted((REPO_ROOT / "experiments").glob("*.yaml"))
        for output in regenerate_all(specs):
            print(f"regenerated {output}")
    elif args.command == "fetch":
        from .data.fetch import fetch_sources

        print(fetch_sources(args.dest, include_train=not args.no_train))
    return 0


if __name__ == "__main__":
    sys.exit(main())
