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


def test_a_string_lr_through_papermill_fails_before_the_data_loads(tmp_path):
    import pytest

    # papermill injects `lr = "abc"`; the run must stop with a message naming the parameter,
    # before it looks for data (this folder has none).
    with pytest.raises(papermill.PapermillExecutionError, match="lr must be a number, got 'abc'"):
        papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   parameters={"lr": "abc", "data_dir": str(tmp_path / "no-data"),
                                               "results_dir": str(tmp_path / "results")},
                                   progress_bar=False)
    assert not (tmp_path / "results").exists()
