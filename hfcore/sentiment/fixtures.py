"""Small stand-ins for the sentiment experiment: a MOSI-format pickle and tiny random checkpoints.

The pickle has MAG-BERT's exact layout with made-up clips. The checkpoints are BERT and XLNet
models of a few thousand parameters with random weights, saved by ``transformers`` with their
tokenizers (a WordPiece vocabulary, a SentencePiece model trained on the fixture's words), so
the real loading code runs without any download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import SPLITS, Example, write_mag_pickle

POSITIVE = ["good", "great", "wonderful", "loved", "enjoyable"]
NEGATIVE = ["bad", "boring", "awful", "hated", "disappointing"]
NEUTRAL = ["the", "movie", "was", "acting", "story", "really", "i", "it", "and", "plot"]
WORDS = POSITIVE + NEGATIVE + NEUTRAL


def write_sentiment_pickle(path: str | Path, *, sizes: dict[str, int] | None = None, visual_dim: int = 47,
                           acoustic_dim: int = 74, seed: int = 0) -> Path:
    """Write clips whose score follows their positive and negative words, in MAG-BERT's format."""
    rng = np.random.default_rng(seed)
    sizes = sizes or {"train": 48, "dev": 16, "test": 16}
    data = {}
    for split in SPLITS:
        examples = []
        for index in range(sizes[split]):
            words = list(rng.choice(WORDS, size=int(rng.integers(3, 9))))
            score = float(np.clip(sum((w in POSITIVE) - (w in NEGATIVE) for w in words), -3, 3))
            if index % 7 == 0:
                score = 0.0  # zero labels, which the two Acc2 conventions treat differently
            visual = rng.normal(size=(len(words), visual_dim)).astype(np.float32)
            acoustic = rng.normal(size=(len(words), acoustic_dim)).astype(np.float32)
            acoustic[:, 0] = score  # a cue the auxiliary path can use
            examples.append(Example(words, visual, acoustic, score, f"clip{split}{index}"))
        data[split] = examples
    return write_mag_pickle(path, data)


def write_tiny_checkpoint(folder: str | Path, kind: str = "bert", *, seed: int = 0) -> Path:
    """Save a randomly initialised BERT or XLNet regression model and its tokenizer in ``folder``."""
    import torch
    from transformers import (BertConfig, BertForSequenceClassification, BertTokenizer, XLNetConfig,
                              XLNetForSequenceClassification, XLNetTokenizer)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if kind == "bert":
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ed", "##ing"]
        tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)})
        config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=32, max_position_embeddings=64, num_labels=1)
        model = BertForSequenceClassification(config)
    elif kind == "xlnet":
        import sentencepiece

        corpus = folder / "corpus.txt"
        corpus.write_text("\n".join(" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))) + "\n")
        sentencepiece.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(folder / "spiece"), vocab_size=60, model_type="unigram",
            control_symbols=["<cls>", "<sep>", "<pad>", "<mask>"], hard_vocab_limit=False, minloglevel=2,
        )
        corpus.unlink()
        tokenizer = XLNetTokenizer(vocab_file=str(folder / "spiece.model"))
        config = XLNetConfig(vocab_size=len(tokenizer), d_model=16, n_layer=2, n_head=2, d_inner=32, num_labels=1,
                             pad_token_id=tokenizer.pad_token_id)
        model = XLNetForSequenceClassification(config)
    else:
        raise ValueError(f"kind must be 'bert' or 'xlnet', got {kind!r}")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
