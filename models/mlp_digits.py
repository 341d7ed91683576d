"""mlp_digits: a two-hidden-layer ReLU MLP on scikit-learn's bundled 8x8 digits (no download).

Fixed split: 25 % of the 1797 images (stratified, ``random_state=0``) are the test set, whatever the
training seed, so test accuracies of different runs are comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SPLIT_SEED = 0          # the train/test split never changes with the training seed
TEST_FRACTION = 0.25
N_IMAGES = 1797         # scikit-learn's digits


@dataclass
class MLPConfig:
    n_in: int = 64          # 8 x 8 pixels, scaled to [0, 1]
    n_hidden: int = 128
    n_out: int = 10


class MLPDigits(nn.Module):
    """``forward(x, targets)`` returns ``(logits, loss)``, like :class:`rf8hw.zoo.tinygpt.TinyGPT`."""

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.config = cfg
        self.fc1 = nn.Linear(cfg.n_in, cfg.n_hidden)
        self.fc2 = nn.Linear(cfg.n_hidden, cfg.n_hidden)
        self.fc3 = nn.Linear(cfg.n_hidden, cfg.n_out)

    def forward(self, x, targets=None):
        h = F.relu(self.fc1(x))              # (B, hidden)
        h = F.relu(self.fc2(h))              # (B, hidden)
        logits = self.fc3(h)                 # (B, 10)
        loss = None if targets is None else F.cross_entropy(logits, targets)
        return logits, loss


RECIPE = dict(
    lr=1e-3,                 # AdamW
    weight_decay=0.0,
    batch_size=64,
    steps_per_epoch=None,    # None: one pass over the 1347 training images (22 steps)
    eval_batches=None,       # the whole test set
    xi=2.0,                  # GG-init variance gain for ReLU (He)
    metric="test_acc",       # headline metric (Data.evaluate key) of reports and estimates
    higher_is_better=True,
)


class Data:
    """The digits split as tensors; shuffled mini-batches; test loss and accuracy."""

    def __init__(self, cfg: MLPConfig | None = None):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        x = (x / 16.0).astype(np.float32)
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_FRACTION,
                                                  random_state=SPLIT_SEED, stratify=y)
        self.x_train, self.y_train = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
        self.x_test, self.y_test = torch.from_numpy(x_te), torch.from_numpy(y_te)
        self._order, self._pos = None, 0

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-len(self.x_train) // batch_size)

    def batch(self, gen: torch.Generator, batch_size: int):
        """Next mini-batch of a fresh permutation per epoch drawn with ``gen``."""
        if self._order is None or self._pos >= len(self._order):
            self._order, self._pos = torch.randperm(len(self.x_train), generator=gen), 0
        idx = self._order[self._pos:self._pos + batch_size]
        self._pos += batch_size
        return self.x_train[idx], self.y_train[idx]

    @torch.no_grad()
    def evaluate(self, model, n_batches=None, batch_size=None) -> dict:
        """Test loss and accuracy on the whole test set, or on its first ``n_batches x batch_size``
        images when both are given (:class:`~rf8hw.nn.train.TrainConfig` keeps that within
        :func:`eval_examples`)."""
        n = len(self.x_test) if n_batches is None or batch_size is None else n_batches * batch_size
        if not 1 <= n <= len(self.x_test):
            raise ValueError(f"evaluation takes 1 to {len(self.x_test)} test images, not "
                             f"{n_batches} x {batch_size} = {n}")
        x, y = self.x_test[:n], self.y_test[:n]
        model.eval()
        logits, loss = model(x, y)
        model.train()
        acc = (logits.argmax(1) == y).float().mean().item()
        return {"test_loss": loss.item(), "test_acc": acc}


CONFIG = MLPConfig


def train_examples(cfg: MLPConfig | None = None) -> int:
    """The training images a batch is drawn from (1347, without loading them): a batch takes each
    at most once, so this is the largest batch size."""
    return N_IMAGES - math.ceil(N_IMAGES * TEST_FRACTION)      # train_test_split rounds the test up


def eval_examples(cfg: MLPConfig | None = None) -> int:
    """The test images (450): ``eval_batches x batch_size`` may not exceed them (the default,
    ``eval_batches`` None, evaluates them all)."""
    return math.ceil(N_IMAGES * TEST_FRACTION)


def build(cfg: MLPConfig | None = None) -> MLPDigits:
    return MLPDigits(cfg or MLPConfig())


def example(cfg: MLPConfig, batch: int = 1) -> torch.Tensor:
    """One forward pass of ``batch`` inferences, ``[batch, n_in]``: the first ``batch`` training
    images (generator seed 0; past one epoch, the next permutation's).  One inference is one
    image."""
    data, gen, parts = Data(cfg), torch.Generator().manual_seed(0), []
    while (n := sum(len(x) for x in parts)) < batch:
        parts.append(data.batch(gen, batch - n)[0])
    return torch.cat(parts)
