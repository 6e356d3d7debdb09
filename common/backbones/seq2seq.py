"""Encoder-decoder text backbones (transformers): the T5 family, and BERT encoders warm-started as
``EncoderDecoderModel`` (bert2bert, Rothe et al. 2020).

:class:`Seq2SeqBackbone` gives a method what it needs of such a model, on any device:

* ``encode(inputs) -> (B, T, d)``: the encoder's token states (``out_features`` = d, from the config);
* ``decode_logits(h, mask, decoder_input_ids, decoder_attention_mask) -> (B, L, V)``: teacher-forced
  decoder logits over encoder states ``h`` (no second encoder pass);
* ``shift_right(targets)``: decoder inputs ``[start, t_1 … t_{L−1}]`` of targets ``[t_1 … t_L]``;
* ``generate(h, mask, num_beams, max_new_tokens) -> (B, L')``: greedy (``num_beams=1``) or beam search
  from encoder states, returning the generated tokens without the start token.

``architecture``:

* ``seq2seq``: ``AutoModelForSeq2SeqLM`` (``t5-small``, ``google/flan-t5-base``, ``google/flan-t5-large``);
  ``weights: hub`` downloads them (users with a network), ``file:<folder>`` reads a local copy,
  ``none`` with ``config: {model_type: t5, ...}`` builds a random-init model of any size (tests);
* ``bert2bert``: encoder and decoder both start from one BERT checkpoint (``offline:minilm_l6``: the
  packaged MiniLM); the decoder gets causal self-attention, new cross-attention layers and an LM head
  tied to its word embeddings. ``decoder_layers`` keeps the first N layers of the checkpoint in the
  decoder (``encoder_layers`` likewise), for a smaller, faster decoder. Start token ``[CLS]``, end ``[SEP]``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from exil.common.errors import ConfigError

ARCHITECTURES = ("seq2seq", "bert2bert")


class Seq2SeqBackbone(nn.Module):
    """A Hugging Face encoder-decoder behind the small interface of the module docstring."""

    def __init__(self, model: nn.Module, name_or_path: str):
        super().__init__()
        self.model = model
        self.name_or_path = name_or_path
        cfg = model.config
        enc_cfg = getattr(cfg, "encoder", cfg)
        self.out_features = int(getattr(enc_cfg, "d_model", None) or enc_cfg.hidden_size)
        self.pad_token_id = int(cfg.pad_token_id)
        self.decoder_start_token_id = int(cfg.decoder_start_token_id)
        self.eos_token_id = int(cfg.eos_token_id)
        accepted = inspect.signature(model.get_encoder().forward).parameters
        self._keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in accepted]
        self.train()  # from_pretrained leaves models in eval mode; Lightning would train them so (no dropout)

    def encode(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.model.get_encoder()(**{k: inputs[k] for k in self._keys if k in inputs}).last_hidden_state

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.encode(inputs)

    def decode_logits(self, h: torch.Tensor, mask: torch.Tensor, decoder_input_ids: torch.Tensor,
                      decoder_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        from transformers.modeling_outputs import BaseModelOutput

        return self.model(encoder_outputs=BaseModelOutput(last_hidden_state=h), attention_mask=mask,
                          decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_attention_mask,
                          use_cache=False).logits

    def shift_right(self, targets: torch.Tensor) -> torch.Tensor:
        start = torch.full_like(targets[..., :1], self.decoder_start_token_id)
        return torch.cat([start, targets[..., :-1]], dim=-1)

    @torch.no_grad()
    def generate(self, h: torch.Tensor, mask: torch.Tensor, num_beams: int = 1, max_new_tokens: int = 32) -> torch.Tensor:
        from transformers.modeling_outputs import BaseModelOutput

        out = self.model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=h), attention_mask=mask,
                                  num_beams=num_beams, num_return_sequences=1, do_sample=False,
                                  max_new_tokens=max_new_tokens, early_stopping=num_beams > 1,
                                  decoder_start_token_id=self.decoder_start_token_id,
                                  pad_token_id=self.pad_token_id, eos_token_id=self.eos_token_id)
        if out.shape[1] and bool((out[:, 0] == self.decoder_start_token_id).all()):
            out = out[:, 1:]
        return out


def build_seq2seq(name: str, weights: str = "hub", architecture: str = "seq2seq", data_dir: str | Path = "data",
                  config: Mapping[str, Any] | None = None, encoder_layers: int | None = None,
                  decoder_layers: int | None = None, dropout: float | None = None, input_shape: Any = None
                  ) -> Seq2SeqBackbone:
    """Build the encoder-decoder ``name`` (module docstring).

    Args:
        name: a Hugging Face model id (``google/flan-t5-large``; for bert2bert the BERT checkpoint's id).
        weights: ``hub`` | ``file:<folder>`` | ``offline:<source>`` | ``none`` (random init from ``config``).
        architecture: ``seq2seq`` | ``bert2bert``.
        data_dir: where ``exil data fetch`` puts things; relative ``file:`` folders start here.
        config: config overrides; with ``model_type`` and ``weights: none``, the whole config of a
            random-init model (bert2bert: the config of its BERT encoder and decoder).
        encoder_layers, decoder_layers: bert2bert: keep the first N layers of the checkpoint.
        dropout: override the dropout rate of the model (``dropout_rate`` / ``hidden_dropout_prob``).
        input_shape: unused (the loop passes every backbone the shape of one input).
    """
    from transformers.utils import logging as hf_logging

    if architecture not in ARCHITECTURES:
        raise ConfigError(f"unknown encoder-decoder architecture {architecture!r}; valid: {', '.join(ARCHITECTURES)}")
    kind, _, arg = str(weights).partition(":")
    if kind not in ("none", "hub", "file", "offline") or (kind in ("file", "offline")) != bool(arg):
        raise ConfigError(f"weights must be none, hub, file:<folder> or offline:<source>; got {weights!r}")
    overrides = dict(config or {})
    if dropout is not None:
        overrides.update({"dropout_rate": dropout} if architecture == "seq2seq" else
                         {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout})
    origin = _origin(name, kind, arg, data_dir)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # new cross-attention / unused pooler weights are expected here
    try:
        if architecture == "seq2seq":
            model = _seq2seq(origin, kind, overrides)
        else:
            model = _bert2bert(origin, kind, overrides, encoder_layers, decoder_layers)
    finally:
        hf_logging.set_verbosity(verbosity)
    return Seq2SeqBackbone(model, origin)


def _origin(name: str, kind: str, arg: str, data_dir: str | Path) -> str:
    if kind == "offline":
        from exil.common.backbones.weights import OFFLINE  # (importing it registers the offline weights)
        from exil.common.fetch_kit import require

        if arg not in OFFLINE or OFFLINE[arg].library != "transformers":
            raise ConfigError(f"unknown offline text weights {arg!r}; valid: "
                              + ", ".join(k for k, v in OFFLINE.items() if v.library == "transformers"))
        return str(require(arg, data_dir) / OFFLINE[arg].path)
    if kind == "file":
        folder = Path(arg).expanduser()
        folder = folder if folder.is_absolute() else Path(data_dir) / folder
        if not folder.is_dir():
            raise ConfigError(f"weights folder {folder} does not exist")
        return str(folder)
    return name


def _seq2seq(origin: str, kind: str, overrides: dict[str, Any]) -> nn.Module:
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    if kind == "none":
        cfg = AutoConfig.for_model(**overrides) if "model_type" in overrides else AutoConfig.from_pretrained(origin, **overrides)
        if not cfg.is_encoder_decoder:
            raise ConfigError(f"{origin} is not an encoder-decoder model (architecture: seq2seq needs T5-like models)")
        return AutoModelForSeq2SeqLM.from_config(cfg)
    return AutoModelForSeq2SeqLM.from_pretrained(origin, **overrides)


def _bert2bert(origin: str, kind: str, overrides: dict[str, Any], encoder_layers: int | None,
               decoder_layers: int | None) -> nn.Module:
    from transformers import AutoConfig, EncoderDecoderConfig, EncoderDecoderModel

    enc = dict(overrides, **({"num_hidden_layers": encoder_layers} if encoder_layers else {}))
    dec = dict(overrides, **({"num_hidden_layers": decoder_layers} if decoder_layers else {}))
    if kind == "none":
        enc_cfg = AutoConfig.for_model(**enc) if "model_type" in enc else AutoConfig.from_pretrained(origin, **enc)
        dec_cfg = AutoConfig.for_model(**dec) if "model_type" in dec else AutoConfig.from_pretrained(origin, **dec)
        dec_cfg.is_decoder, dec_cfg.add_cross_attention = True, True
        model = EncoderDecoderModel(config=EncoderDecoderConfig.from_encoder_decoder_configs(enc_cfg, dec_cfg))
    else:
        model = EncoderDecoderModel.from_encoder_decoder_pretrained(
            origin, origin, **{f"encoder_{k}": v for k, v in enc.items()}, **{f"decoder_{k}": v for k, v in dec.items()})
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(origin) if kind != "none" else None
    except (OSError, ValueError):
        tok = None
    cls_id = tok.cls_token_id if tok is not None and tok.cls_token_id is not None else overrides.get("cls_token_id", 101)
    sep_id = tok.sep_token_id if tok is not None and tok.sep_token_id is not None else overrides.get("sep_token_id", 102)
    pad_id = model.config.encoder.pad_token_id if model.config.encoder.pad_token_id is not None else 0
    for c in (model.config, model.generation_config):
        c.decoder_start_token_id, c.eos_token_id, c.pad_token_id = int(cls_id), int(sep_id), int(pad_id)
    return model
