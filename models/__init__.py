"""rf8hw's model zoo (``rf8hw.zoo``, the folder ``models/`` of the checkout): one flat file per
model family (nanoGPT style), and the adapters of the real pretrained models (:mod:`.minilm`,
:mod:`.smollm2`).

Each zoo model module provides ``CONFIG`` (a dataclass with commented defaults), ``build(cfg)`` (an
``nn.Module`` whose ``forward(x, targets)`` returns ``(logits, loss)``), ``Data(cfg)`` (``batch(gen,
batch_size)`` and ``evaluate(model, n_batches, batch_size) -> dict``), ``example(cfg, batch)`` (the
input of ``batch`` inferences: what one inference means for the cycle model), ``RECIPE``
(training defaults, including the headline metric ``metric`` and whether ``higher_is_better``),
``train_examples(cfg)`` (how many examples a training batch is drawn from: the largest batch size)
and ``eval_examples(cfg)`` (the most examples ``evaluate`` may take, ``n_batches x batch_size``;
``evaluate`` honours both), both known without loading the data.
Importing this package imports no model module (and so no torch).
"""

from importlib import import_module

from rf8hw import checks

#: Names of the zoo models (modules of this package), in the order help texts list them.
MODELS = ("tinygpt", "mlp_digits")


def get(name: str):
    """The module of zoo model ``name``."""
    return import_module(f"{__name__}.{checks.choice('model', name, MODELS)}")
