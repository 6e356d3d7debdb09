"""Small text data and models for the XAL and text-data tests: a WordPiece tokenizer built from a generated
vocabulary, generated review files in the fetched Rotten Tomatoes format, and tiny random-init
encoder-decoders (BERT-based bert2bert and T5) of the real architectures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP = 0, 1, 2, 3
POSITIVE = ["great", "fun", "wonderful", "brilliant", "charming"]
NEGATIVE = ["boring", "dull", "awful", "mess", "bad"]
FILLER = ["the", "movie", "film", "is", "a", "and", "plot", "actors", "story", "this"]
EXPLAIN = ["fresh", "rotten", "because", "of", "positive", "negative", "words", "although", "review", "has", "no",
           "clearly", ",", "entailment", "not_entailment", "premise", "hypothesis", "."]
VOCAB = SPECIAL + sorted(set(POSITIVE + NEGATIVE + FILLER + EXPLAIN))


def tokenizer_folder(root: Path) -> Path:
    """A BERT WordPiece tokenizer over :data:`VOCAB`, saved as a Hugging Face folder."""
    from transformers import BertTokenizerFast

    folder = root / "tokenizer"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(str(folder))
    return folder


def review(rng: np.random.Generator, fresh: bool) -> str:
    words = list(rng.choice(POSITIVE if fresh else NEGATIVE, 2)) + list(rng.choice(FILLER, int(rng.integers(2, 8))))
    rng.shuffle(words)
    return " ".join(words) + "."


def rotten_tomatoes(data_dir: Path, n: int = 200, seed: int = 0) -> Path:
    """``<data_dir>/rotten_tomatoes/reviews.jsonl`` as ``exil data fetch rotten_tomatoes`` writes it."""
    rng = np.random.default_rng(seed)
    folder = data_dir / "rotten_tomatoes"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "reviews.jsonl", "w") as f:
        for i in range(n):
            fresh = bool(i % 5 < 3)
            f.write(json.dumps({"id": 1000 + i, "text": review(rng, fresh), "label": "fresh" if fresh else "rotten",
                                "movie": f"m{i % 7}"}) + "\n")
    return folder / "reviews.jsonl"


TINY_BERT = {"model_type": "bert", "vocab_size": len(VOCAB), "hidden_size": 16, "num_hidden_layers": 2,
             "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 64,
             "pad_token_id": PAD, "cls_token_id": CLS, "sep_token_id": SEP}
TINY_T5 = {"model_type": "t5", "vocab_size": len(VOCAB), "d_model": 16, "d_ff": 32, "d_kv": 8, "num_layers": 2,
           "num_heads": 2, "pad_token_id": PAD, "eos_token_id": SEP, "decoder_start_token_id": PAD}


def tiny_backbone_overrides(kind: str = "bert2bert") -> list[str]:
    """Command-line overrides that make ``backbone=minilm_bert2bert`` (or ``t5_small``) a tiny random-init model."""
    cfg = TINY_BERT if kind == "bert2bert" else TINY_T5
    body = ", ".join(f"{k}: {v}" for k, v in cfg.items())
    group = "minilm_bert2bert" if kind == "bert2bert" else "t5_small"
    return [f"backbone={group}", "backbone.weights=none", "backbone.encoder_layers=null",
            "backbone.decoder_layers=null", f"++backbone.config={{{body}}}"]
