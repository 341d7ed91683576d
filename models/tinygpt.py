"""tinygpt: a small decoder-only character-level transformer (nanoGPT-style), on vendored Shakespeare.

Reads top-down: attention, MLP, block, the config dataclass, the model, then the data.
The text is ``models/data/shakespeare.txt`` (see ``models/data/PROVENANCE.md``); nothing downloads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA_FILE = Path(__file__).with_name("data") / "shakespeare.txt"
VAL_FRACTION = 0.1          # the last 10 % of the text is the validation split (never trained on)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        if cfg.n_embd % cfg.n_head:
            raise ValueError(f"n_embd={cfg.n_embd} must be a multiple of n_head={cfg.n_head}")
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)   # q, k, v in one matmul
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.n_head = cfg.n_head

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)      # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)      # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)      # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)          # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)                     # (B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


@dataclass
class GPTConfig:
    block_size: int = 64     # context length in characters (short: CPU budget)
    vocab_size: int = 76     # distinct characters of the vendored text
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128        # 4 layers x 12 x 128^2 ~ 0.8 M weights in the blocks
    bias: bool = True


class TinyGPT(nn.Module):
    """Decoder-only transformer; ``forward(idx, targets)`` returns ``(logits, loss)`` as in nanoGPT.

    The output head is a separate ``nn.Linear`` (no weight tying), so quantizing it never touches the
    token embedding.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)     # token embedding
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)     # position embedding
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)

    def forward(self, idx, targets=None):
        B, T = idx.size()
        if T > self.config.block_size:
            raise ValueError(f"cannot forward a sequence of length {T}, "
                             f"block size is only {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)                         # (B, T, C)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))                       # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


# Training recipe (rf8hw.nn.train reads these; the CLI can override epochs and seed).
RECIPE = dict(
    lr=3e-3,                 # AdamW; small model, short runs
    weight_decay=0.0,        # BackSlash is the only regulariser we compare against
    batch_size=32,
    steps_per_epoch=100,     # an "epoch" of random windows: 100 steps x 32 x 64 = 205 k characters
    eval_batches=20,         # validation loss on 20 fixed batches
    xi=1.0,                  # GG-init variance gain (GELU ~ linear near 0; LeCun)
    metric="val_ppl",        # headline metric (Data.evaluate key) of reports and estimates
    higher_is_better=False,
)


class Data:
    """Character data: random training windows, fixed validation windows, loss and perplexity."""

    def __init__(self, cfg: GPTConfig, text: str | None = None):
        text = DATA_FILE.read_text(encoding="ascii") if text is None else text
        chars = sorted(set(text))
        if len(chars) > cfg.vocab_size:
            raise ValueError(f"text has {len(chars)} distinct characters, vocab_size is {cfg.vocab_size}")
        self.stoi = {c: i for i, c in enumerate(chars)}
        ids = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        lut = np.zeros(256, dtype=np.int64)
        lut[[ord(c) for c in chars]] = np.arange(len(chars))
        ids = lut[ids]
        n_val = int(len(ids) * VAL_FRACTION)
        self.train_ids = torch.from_numpy(ids[:-n_val])
        self.val_ids = torch.from_numpy(ids[-n_val:])
        self.block_size = cfg.block_size

    def _windows(self, ids, starts):
        x = torch.stack([ids[s:s + self.block_size] for s in starts])           # (B, T)
        y = torch.stack([ids[s + 1:s + 1 + self.block_size] for s in starts])   # (B, T)
        return x, y

    def batch(self, gen: torch.Generator, batch_size: int):
        """Random training windows drawn with ``gen``."""
        starts = torch.randint(len(self.train_ids) - self.block_size - 1, (batch_size,), generator=gen)
        return self._windows(self.train_ids, starts.tolist())

    @torch.no_grad()
    def evaluate(self, model, n_batches: int, batch_size: int) -> dict:
        """Mean validation loss over fixed, evenly spaced windows, and its perplexity."""
        model.eval()
        n = n_batches * batch_size
        starts = np.linspace(0, len(self.val_ids) - self.block_size - 2, n).astype(int).tolist()
        losses = []
        for i in range(n_batches):
            x, y = self._windows(self.val_ids, starts[i * batch_size:(i + 1) * batch_size])
            losses.append(model(x, y)[1].item())
        model.train()
        val_loss = float(np.mean(losses))
        return {"val_loss": val_loss, "val_ppl": math.exp(val_loss)}


CONFIG = GPTConfig


def _split_sizes() -> tuple[int, int]:
    """(training, validation) characters of :data:`DATA_FILE` (ASCII: one byte each), as
    :class:`Data` splits it, without reading it."""
    n = DATA_FILE.stat().st_size
    return n - int(n * VAL_FRACTION), int(n * VAL_FRACTION)


def train_examples(cfg: GPTConfig | None = None) -> int:
    """The training windows a batch is drawn from (every start of a ``block_size`` window and its
    next-character targets): the largest batch size."""
    return _split_sizes()[0] - (cfg or GPTConfig()).block_size - 1


def eval_examples(cfg: GPTConfig | None = None) -> int:
    """The distinct validation windows :meth:`Data.evaluate` spreads its ``n_batches x
    batch_size`` windows over: the most it may take."""
    return _split_sizes()[1] - (cfg or GPTConfig()).block_size - 1


def build(cfg: GPTConfig | None = None) -> TinyGPT:
    return TinyGPT(cfg or GPTConfig())


def example(cfg: GPTConfig, batch: int = 1) -> torch.Tensor:
    """One forward pass of ``batch`` inferences, ``[batch, block_size]``: ``batch`` training
    windows (generator seed 0).  One inference is one forward pass over a full context of
    ``block_size`` characters."""
    return Data(cfg).batch(torch.Generator().manual_seed(0), batch)[0]
