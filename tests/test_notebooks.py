"""The training notebook's parameter cell: every parameter must be visible to papermill."""

import inspect
from pathlib import Path

import papermill

from hfcore.experiments import run_avmnist

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "avmnist_train.ipynb"


def test_papermill_infers_every_training_parameter():
    # papermill skips a parameter line it cannot parse (an apostrophe in a comment, say), and
    # `papermill --help-notebook` then hides that parameter.
    inferred = set(papermill.inspect_notebook(str(NOTEBOOK)))
    accepted = set(inspect.signature(run_avmnist).parameters) - {"dataset", "checkpoint_dir"}
    assert accepted <= inferred, sorted(accepted - inferred)
