"""Data for the PyTorch side, written from the task definitions (not ported from
trainer/src/data.rs, which is what the harness checks).

MQAR follows Zoology's `_mqar` (HazyResearch/zoology, zoology/data/associative_recall.py):
  keys   : num_kv_pairs distinct tokens from 1 .. vocab//2 - 1
  values : num_kv_pairs distinct tokens from vocab//2 .. vocab - 1
  context: k1 v1 k2 v2 ...   (2 * pairs tokens)
  gaps   : `pairs` distinct slot indices from 0 .. space-1, space = (T - 2*pairs) // 2,
           drawn without replacement with p(slot s) proportional to a * (s+1)^(a-1)
           (successive sampling, same distribution as numpy's choice(replace=False, p=p))
  query i: key_i alone at position context + 2 * gap_i (its value is NOT written after it)
  label  : value_i at that query position (the prediction made there); nothing else scored
  filler : every other position (that would be 0) gets a uniform random token in [0, vocab)

Text: bytes of the files concatenated; split by byte range [0, 90%) / [90%, 95%) / [95%, 100%)
(integer arithmetic n*90//100, n*95//100); random windows of T+1 bytes, start uniform in
[0, len - T - 1); every position scored.
"""

from __future__ import annotations

import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402


def mqar_batch(gen: torch.Generator, batch: int, vocab: int, seq_len: int, pairs: int,
               power_a: float = 0.01):
    """Returns (inputs [B,T] long, targets [B,T] long, mask [B,T] float)."""
    assert seq_len % 2 == 0, "input_seq_len must be even (Zoology)"
    assert vocab > seq_len, "Zoology asserts vocab_size > input_seq_len"
    assert 4 * pairs <= seq_len, "Zoology asserts num_kv_pairs * 4 <= input_seq_len"
    half = vocab // 2
    context = 2 * pairs
    space = (seq_len - context) // 2
    p = power_a * torch.arange(1, space + 1, dtype=torch.float64) ** (power_a - 1.0)
    p = p / p.sum()
    inputs = torch.zeros(batch, seq_len, dtype=torch.long)
    targets = torch.zeros(batch, seq_len, dtype=torch.long)
    mask = torch.zeros(batch, seq_len, dtype=torch.float32)
    filled = torch.zeros(batch, seq_len, dtype=torch.bool)
    for b in range(batch):
        keys = 1 + torch.randperm(half - 1, generator=gen)[:pairs]
        values = half + torch.randperm(vocab - half, generator=gen)[:pairs]
        gaps = torch.multinomial(p, pairs, replacement=False, generator=gen)
        inputs[b, 0:context:2] = keys
        inputs[b, 1:context:2] = values
        filled[b, :context] = True
        pos = context + 2 * gaps
        inputs[b, pos] = keys
        targets[b, pos] = values
        mask[b, pos] = 1.0
        filled[b, pos] = True
    noise = torch.randint(0, vocab, (batch, seq_len), generator=gen)
    inputs = torch.where(filled, inputs, noise)
    return inputs, targets, mask


def read_text(paths) -> bytes:
    return b"".join(Path(p).read_bytes() for p in paths)


def split_bytes(data: bytes, split: str) -> bytes:
    n = len(data)
    a, b = n * 90 // 100, n * 95 // 100
    return {"train": data[:a], "val": data[a:b], "test": data[b:]}[split]


def text_batch(gen: torch.Generator, data: torch.Tensor, batch: int, seq_len: int):
    """data: uint8/long tensor of the split's bytes."""
    starts = torch.randint(0, data.numel() - seq_len - 1, (batch,), generator=gen)
    idx = starts[:, None] + torch.arange(seq_len + 1)[None, :]
    window = data[idx].long()
    return window[:, :-1], window[:, 1:], torch.ones(batch, seq_len)


class Stream:
    """Batches of one task for one split, from its own seed."""

    def __init__(self, setting: dict, split: str, seed: int, text_paths=None):
        self.setting = setting
        # Disjoint seeds per (seed, split); never shared with the model init seed.
        offset = {"train": 1, "val": 2, "test": 3}[split]
        self.gen = torch.Generator().manual_seed(1_000_003 * (seed + 1) + 7919 * offset)
        if setting["task"] == "text":
            raw = split_bytes(read_text(text_paths), split)
            self.data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)

    def batch(self, batch_size: int):
        s = self.setting
        if s["task"] == "mqar":
            return mqar_batch(self.gen, batch_size, s["vocab"], s["seq_len"], s["pairs"],
                              s.get("power_a", 0.01))
        return text_batch(self.gen, self.data, batch_size, s["seq_len"])
