"""Sentiment: MAG-BERT's pickle format, subword alignment, metrics, layer injection and a run."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from hfcore.results import ResultExistsError  # noqa: E402
from hfcore.sentiment.data import (  # noqa: E402
    Example, SentimentFormatError, align_to_tokens, load_mag_pickle, tensor_batch, write_mag_pickle,
)
from hfcore.sentiment.experiment import build_sentiment_model, run_sentiment  # noqa: E402
from hfcore.sentiment.fixtures import write_sentiment_pickle, write_tiny_checkpoint  # noqa: E402
from hfcore.sentiment.injection import FusionAtLayer, HyperFuseInjection, MAGInjection, find_layers  # noqa: E402
from hfcore.sentiment.metrics import sentiment_metrics  # noqa: E402


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    return {kind: write_tiny_checkpoint(root / kind, kind) for kind in ("bert", "xlnet")}


@pytest.fixture(scope="module")
def mosi_file(tmp_path_factory):
    return write_sentiment_pickle(tmp_path_factory.mktemp("mosi") / "mosi.pkl")


def _tokenizer(checkpoints, kind):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(checkpoints[kind])


def _example():
    visual = np.array([[1.0, 1.0], [2.0, 2.0]], dtype=np.float32)
    acoustic = np.array([[10.0], [20.0]], dtype=np.float32)
    return Example(["acting", "good"], visual, acoustic, 1.5, "clip")


# --- the pickle format ------------------------------------------------------------------------

def test_load_mag_pickle_round_trip(tmp_path):
    path = write_mag_pickle(tmp_path / "mosi.pkl", {"train": [_example()], "dev": [_example()], "test": []})
    data = load_mag_pickle(path)
    assert [len(data[s]) for s in ("train", "dev", "test")] == [1, 1, 0]
    example = data["train"][0]
    assert example.words == ["acting", "good"]
    assert example.label == 1.5
    assert np.array_equal(example.acoustic, _example().acoustic)


def test_load_mag_pickle_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="mosi.pkl not found.*BERT_multimodal_transformer"):
        load_mag_pickle(tmp_path / "mosi.pkl")


def test_load_mag_pickle_missing_split(tmp_path):
    (tmp_path / "mosi.pkl").write_bytes(pickle.dumps({"train": [], "test": []}))
    with pytest.raises(SentimentFormatError, match=r"expected a dict with the splits.*found \['test', 'train'\]"):
        load_mag_pickle(tmp_path / "mosi.pkl")


def test_load_mag_pickle_not_a_pickle(tmp_path):
    (tmp_path / "mosi.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(SentimentFormatError, match="not a readable pickle"):
        load_mag_pickle(tmp_path / "mosi.pkl")


def test_load_mag_pickle_rows_per_word(tmp_path):
    bad = ((["a", "b"], np.zeros((3, 47)), np.zeros((2, 74))), np.array([[0.0]]), "clip")
    (tmp_path / "mosi.pkl").write_bytes(pickle.dumps({"train": [bad], "dev": [], "test": []}))
    with pytest.raises(SentimentFormatError, match=r"\[train\]\[0\]: 2 words need .* got shapes \(3, 47\)"):
        load_mag_pickle(tmp_path / "mosi.pkl")


def test_load_mag_pickle_infinite_features_become_zero(tmp_path):
    entry = ((["a"], np.array([[np.inf, 1.0]]), np.array([[np.nan]])), np.array([[2.0]]), "clip")
    (tmp_path / "mosi.pkl").write_bytes(pickle.dumps({"train": [entry], "dev": [], "test": []}))
    example = load_mag_pickle(tmp_path / "mosi.pkl")["train"][0]
    assert example.visual[0, 1] == 1.0
    assert np.isfinite(example.visual).all()
    assert example.acoustic[0, 0] == 0.0


# --- alignment to subword tokens ------------------------------------------------------------------

def test_align_to_tokens_bert_repeats_word_features(checkpoints):
    tokenizer = _tokenizer(checkpoints, "bert")
    aligned = align_to_tokens(_example(), tokenizer, max_seq_length=7)
    tokens = tokenizer.convert_ids_to_tokens(aligned.input_ids)
    assert tokens == ["[CLS]", "acting", "good", "[SEP]", "[PAD]", "[PAD]", "[PAD]"]
    assert aligned.attention_mask == [1, 1, 1, 1, 0, 0, 0]
    assert aligned.acoustic[:, 0].tolist() == [0.0, 10.0, 20.0, 0.0, 0.0, 0.0, 0.0]


def test_align_to_tokens_bert_subwords_and_truncation(checkpoints):
    tokenizer = _tokenizer(checkpoints, "bert")
    example = Example(["movies", "loved"], np.ones((2, 2), np.float32), np.array([[1.0], [2.0]], np.float32), 0.0, "c")
    aligned = align_to_tokens(example, tokenizer, max_seq_length=4)
    tokens = tokenizer.convert_ids_to_tokens(aligned.input_ids)
    assert tokens == ["[CLS]", "movie", "##s", "[SEP]"]  # "movies" is two subwords; "loved" is cut
    assert aligned.acoustic[:, 0].tolist() == [0.0, 1.0, 1.0, 0.0]


def test_align_to_tokens_xlnet_layout(checkpoints):
    tokenizer = _tokenizer(checkpoints, "xlnet")
    aligned = align_to_tokens(_example(), tokenizer, max_seq_length=8)
    tokens = tokenizer.convert_ids_to_tokens(aligned.input_ids)
    n_pad = aligned.attention_mask.count(0)
    assert tokens[:n_pad] == ["<pad>"] * n_pad  # padded on the left
    assert tokens[-2:] == ["<sep>", "<cls>"]
    real = aligned.acoustic[n_pad:-2, 0].tolist()
    assert real == sorted(real)
    assert set(real) == {10.0, 20.0}
    assert aligned.acoustic[-2:, 0].tolist() == [0.0, 0.0]
    assert aligned.token_type_ids[-1] == 2  # XLNet's segment id of <cls>


def test_align_to_tokens_short_length():
    with pytest.raises(ValueError, match="max_seq_length must be at least 3"):
        align_to_tokens(_example(), tokenizer=None, max_seq_length=2)


# --- metrics ------------------------------------------------------------------------------------

def test_sentiment_metrics_hand_worked():
    prediction = np.array([2.6, -0.4, 0.3, -2.0])
    label = np.array([3.0, 0.0, -1.0, -1.6])
    metrics = sentiment_metrics(prediction, label)
    # acc7: rounded classes 3, -0, 0, -2 against 3, 0, -1, -2: three of four agree.
    assert metrics["acc7"] == 0.75
    # acc2, zero as positive: predictions >= 0 are T, F, T, F; labels T, T, F, F: two of four.
    assert metrics["acc2_nonnegative"] == 0.5
    # acc2, zeros dropped: clips 0, 2, 3 with > 0 predictions T, T, F and labels T, F, F: two of three.
    assert metrics["acc2_nonzero"] == pytest.approx(2 / 3)
    assert metrics["mae"] == pytest.approx((0.4 + 0.4 + 1.3 + 0.4) / 4)
    assert metrics["corr"] == pytest.approx(np.corrcoef(prediction, label)[0, 1])


def test_sentiment_metrics_weighted_f1_hand_worked():
    # Zeros dropped: labels T, F, F with predictions T, T, F. Class T: precision 1/2, recall 1,
    # F1 2/3; class F: precision 1, recall 1/2, F1 2/3. Weighted by support (1 and 2): 2/3.
    metrics = sentiment_metrics([2.6, 0.3, -2.0], [3.0, -1.0, -1.6])
    assert metrics["f1_nonzero"] == pytest.approx(2 / 3)


def test_sentiment_metrics_length_mismatch():
    with pytest.raises(ValueError, match="same non-zero length"):
        sentiment_metrics([1.0], [1.0, 2.0])


# --- injection at a layer -------------------------------------------------------------------------

class Recorder(torch.nn.Module):
    """A fusion that records its input and returns it unchanged (or shifted by the aux sum)."""

    def __init__(self, shift: bool = False):
        super().__init__()
        self.shift = shift
        self.seen = None

    def forward(self, hidden, aux, mask):
        self.seen = hidden.detach().clone()
        return hidden + aux.sum(dim=-1, keepdim=True) if self.shift else hidden


def _model(checkpoints, kind):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(checkpoints[kind], num_labels=1).eval()


def _inputs(checkpoints, kind, n=2, length=6):
    tokenizer = _tokenizer(checkpoints, kind)
    examples = [Example(["good", "movie", "acting"][: i + 2], np.random.default_rng(i).normal(size=(i + 2, 47)),
                        np.random.default_rng(i + 9).normal(size=(i + 2, 74)), 1.0, f"c{i}") for i in range(n)]
    batch = tensor_batch([align_to_tokens(e, tokenizer, length) for e in examples])
    aux = torch.cat([batch["visual"], batch["acoustic"]], dim=-1)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    return inputs, aux


@pytest.mark.parametrize("kind", ["bert", "xlnet"])
@pytest.mark.parametrize("layer", [0, 1])
def test_fusion_at_layer_sees_that_layers_input(checkpoints, kind, layer):
    model = _model(checkpoints, kind)
    inputs, aux = _inputs(checkpoints, kind)
    with torch.no_grad():
        reference = model(**inputs, output_hidden_states=True)
        recorder = Recorder()
        wrapped = FusionAtLayer(model, recorder, layer=layer)
        output = wrapped(aux=aux, **inputs)
    expected = reference.hidden_states[layer]  # returned batch-first by both architectures
    torch.testing.assert_close(recorder.seen, expected)
    torch.testing.assert_close(output.logits, reference.logits)  # an identity fusion changes nothing


@pytest.mark.parametrize("kind", ["bert", "xlnet"])
def test_fusion_at_layer_output_follows_aux(checkpoints, kind):
    model = _model(checkpoints, kind)
    inputs, aux = _inputs(checkpoints, kind)
    wrapped = FusionAtLayer(model, Recorder(shift=True), layer=0)
    with torch.no_grad():
        first = wrapped(aux=aux, **inputs).logits
        second = wrapped(aux=aux * 2, **inputs).logits
    assert not torch.allclose(first, second)


def test_fusion_at_layer_bad_layer_and_direct_call(checkpoints):
    model = _model(checkpoints, "bert")
    assert len(find_layers(model)) == 2
    with pytest.raises(ValueError, match=r"layer must be an integer in 0\.\.1"):
        FusionAtLayer(model, Recorder(), layer=2)
    wrapped = FusionAtLayer(model, Recorder(), layer=0)
    inputs, _ = _inputs(checkpoints, "bert")
    with pytest.raises(RuntimeError, match="call the FusionAtLayer wrapper"):
        model(**inputs)
    assert wrapped.remove() is model
    model(**inputs)  # the hook is gone


def test_hyperfuse_injection_leaves_padding_alone():
    torch.manual_seed(0)
    fusion = HyperFuseInjection(8, 5, hidden_dim=4)
    hidden, aux = torch.randn(2, 4, 8), torch.randn(2, 4, 5)
    mask = torch.tensor([[True, True, False, False], [True, True, True, False]])
    fused = fusion(hidden, aux, mask)
    torch.testing.assert_close(fused[~mask], hidden[~mask])
    assert not torch.allclose(fused[mask], hidden[mask])
    changed_aux = fusion(hidden, aux + 1, mask)
    assert not torch.allclose(changed_aux[mask], fused[mask])


def test_mag_injection_shift_at_most_beta_times_hidden():
    torch.manual_seed(0)
    gate = MAGInjection(8, 3, 2, beta_shift=0.5, dropout=0.0).eval()
    hidden, aux = torch.randn(4, 6, 8), 100 * torch.randn(4, 6, 5)
    shift = gate.shift(hidden, aux)
    assert (shift.norm(dim=-1) <= 0.5 * hidden.norm(dim=-1) + 1e-4).all()
    torch.testing.assert_close(gate(hidden, aux, None), gate.norm(hidden + shift))


# --- a run ------------------------------------------------------------------------------------------

def test_build_sentiment_model_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no transformers checkpoint"):
        build_sentiment_model(tmp_path)


@pytest.mark.parametrize("kind", ["bert", "xlnet"])
def test_run_sentiment_record_and_determinism(checkpoints, mosi_file, tmp_path, kind):
    options = dict(data_path=str(mosi_file), checkpoint=str(checkpoints[kind]), fusion="hyperfuse", hidden_dim=4,
                   epochs=2, lr=1e-3, batch_size=16, progress=False)
    first = run_sentiment(**options, results_dir=str(tmp_path / "a"), run_name="r")
    second = run_sentiment(**options, results_dir=str(tmp_path / "b"), run_name="r")
    assert first["metrics"]["test_mae"] == second["metrics"]["test_mae"]
    assert first["dataset"]["sizes"] == {"train": 48, "dev": 16, "test": 16}
    assert {"test_acc7", "test_acc2_nonzero", "test_acc2_nonnegative", "test_corr"} <= set(first["metrics"])
    with pytest.raises(ResultExistsError):
        run_sentiment(**options, results_dir=str(tmp_path / "a"), run_name="r")


@pytest.mark.parametrize("change,message", [
    ({"fusion": "gate"}, "fusion must be one of"),
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"lr": "1e-5"}, "lr must be a positive number"),
    ({"block": "V"}, "block must be one of"),
    ({"train_fraction": 1.5}, r"train_fraction must be in \(0, 1\]"),
])
def test_run_sentiment_bad_parameters(change, message, tmp_path):
    options = dict(data_path=str(tmp_path / "missing.pkl"), checkpoint=str(tmp_path), results_dir=str(tmp_path))
    with pytest.raises(ValueError, match=message):
        run_sentiment(**{**options, **change})


def test_comparison_table_mean_std_and_order():
    import pandas as pd

    from hfcore.sentiment.summary import comparison_configs, comparison_table

    configs = comparison_configs({"BERT": "/ckpt/bert", "XLNet": None})
    assert [c["model_label"] for c in configs] == ["BERT", "MAG-BERT", "BERT + HyperFuse"]
    rows = [{"model": "BERT + HyperFuse", "fusion": "hyperfuse", "seed": s, "acc7": a, "acc2_nonzero": 0.8,
             "acc2_nonnegative": 0.8, "f1_nonzero": 0.8, "mae": m, "corr": 0.5}
            for s, a, m in ((0, 0.40, 1.0), (1, 0.42, 0.8))]
    rows.append({"model": "MAG-BERT", "fusion": "mag", "seed": 0, "acc7": 0.41, "acc2_nonzero": 0.8,
                 "acc2_nonnegative": 0.8, "f1_nonzero": 0.8, "mae": 0.9, "corr": 0.5})
    table = comparison_table(pd.DataFrame(rows), "mosi").set_index("model")
    assert list(table.index) == ["MAG-BERT", "BERT + HyperFuse"]
    assert table.loc["BERT + HyperFuse", "acc7"] == "41.0 ± 1.4"  # mean 41, sample std sqrt(2) = 1.41
    assert table.loc["BERT + HyperFuse", "mae"] == "0.900 ± 0.141"
    assert table.loc["MAG-BERT", "paper acc7 / acc2 / mae / corr"] == "40.2 / 83.7 / 0.79 / 0.8"
