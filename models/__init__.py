"""rf8hw's model zoo: one flat file per model family (nanoGPT style).

Each model module provides ``CONFIG`` (a dataclass with commented defaults), ``build(cfg)`` (an
``nn.Module`` whose ``forward(x, targets)`` returns ``(logits, loss)``), ``Data(cfg)`` (``batch(gen,
batch_size)`` and ``evaluate(model, n_batches, batch_size) -> dict``) and ``RECIPE`` (training
defaults, including the headline metric ``metric`` and whether ``higher_is_better``).
"""

from importlib import import_module

#: model name -> module
MODELS = {"tinygpt": "models.tinygpt", "mlp_digits": "models.mlp_digits"}


def get(name: str):
    """The module of model ``name``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return import_module(MODELS[name])
