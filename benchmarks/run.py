"""Measure what HyperFuse costs on this machine and print every ratio.

Usage (from the repository root, after `bash scripts/setup.sh`):

    .venv/bin/python benchmarks/run.py                  # everything, about 3.5 minutes on 2 cores
    .venv/bin/python benchmarks/run.py --parts layers   # one part: layers, epochs, dataset, memory, emap
    .venv/bin/python benchmarks/run.py --parts models   # an epoch of every baseline, about 5 minutes
    .venv/bin/python benchmarks/run.py --quick          # a smoke run of about a minute

The report is printed. The measurements, with their parameters, the code version, package
versions and wall time, go to benchmarks/results/benchmark-UTCTIME.json. The layer-cost figure
goes to figures/benchmark_layers.png (quick runs write neither unless --output-dir is given).
See hfcore/benchmark.py for what each number means.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=None,
                        help="parts to run: layers, epochs, dataset, memory, emap, models "
                             "(default: all but models, which times every baseline)")
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"],
                        help="training precisions of the epoch benchmark (default: float32 bfloat16)")
    parser.add_argument("--data-dir", default=None, help="folder with mnist/ and fsdd/ (default: as for training)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that the benchmark runs")
    parser.add_argument("--output-dir", default=None,
                        help="folder for the JSON results and the figure (default: benchmarks/results "
                             "and figures/; none for --quick)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    if args.no_progress:
        os.environ["TQDM_DISABLE"] = "1"  # also silences the bars of the dataset build

    from hfcore.benchmark import DEFAULT_PARTS, PARTS, format_report, plot_layers, run_benchmarks
    from hfcore.results import provenance, write_json_atomic
    from hfcore.summary import save_figure
    from hfcore.training import PRECISIONS

    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    parts = tuple(args.parts or DEFAULT_PARTS)
    for name in parts:
        if name not in PARTS:
            parser.error(f"unknown part {name!r}; choose from {', '.join(PARTS)}")
    for name in args.precisions:
        if name not in PRECISIONS:
            parser.error(f"unknown precision {name!r}; choose from {', '.join(PRECISIONS)}")

    try:
        results = run_benchmarks(data_dir=args.data_dir, parts=parts, quick=args.quick,
                                 precisions=tuple(args.precisions), progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as error:  # missing data or a bad value; the message names the fix
        print(f"error: {error}", file=sys.stderr)
        return 2
    results["provenance"] = provenance()
    print(format_report(results))

    if args.quick and args.output_dir is None:
        return 0
    output = Path(args.output_dir) if args.output_dir else REPO / "benchmarks" / "results"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = write_json_atomic(output / f"benchmark-{stamp}.json", results)
    print(f"\nresults: {path}")
    if results.get("layers"):
        import matplotlib

        matplotlib.use("Agg")  # a script: draw to a file, whatever the session's backend
        figures = Path(args.output_dir) if args.output_dir else REPO / "figures"
        figure = save_figure(plot_layers(results["layers"]), figures / "benchmark_layers.png")
        print(f"figure: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
