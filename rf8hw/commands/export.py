"""``rf8hw export SOURCE --out DIR [--dtype bfloat16|float32]``: an rf8hw Hugging Face checkpoint
(``save_pretrained`` of a quantized model) -> a plain transformers checkpoint whose linear layers hold
the dequantized weights, loadable with no rf8hw at all.

Thin over :class:`rf8hw.nn.quant.config.ExportConfig` (every check) and
:func:`rf8hw.nn.quant.hf.export_float`.  The source's other files (tokenizer, generation config)
are copied; ``*.safetensors``, their index and ``config.json`` are written anew.
"""

from __future__ import annotations


def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.commands.options import add_config_args
    from rf8hw.nn.quant.config import ExportConfig

    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("source", help="directory written by save_pretrained of an rf8hw-quantized model")
    add_config_args(p, ExportConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from rf8hw.commands.options import config_from_args
    from rf8hw.nn.quant.config import ExportConfig

    cfg = config_from_args(ExportConfig, args)
    import transformers

    from rf8hw.nn.quant.hf import export_float
    from rf8hw.zoo import loading

    loading.offline()
    src = Path(cfg.source)
    hf_cfg = transformers.AutoConfig.from_pretrained(src)
    arch = (getattr(hf_cfg, "architectures", None) or [None])[0]
    cls = getattr(transformers, arch, None) if arch else None
    if cls is None:
        raise ValueError(f"source {str(src)!r}: config.json names no transformers architecture "
                         f"({arch!r}); export loads the model class it names")
    with loading.quiet_loading():
        model = cls.from_pretrained(src)
    extra = {p.name: p.read_bytes() for p in sorted(src.iterdir())
             if p.is_file() and p.name != "config.json" and not p.name.endswith((".safetensors",
                                                                                 ".safetensors.index.json"))}
    res = export_float(model, cfg.out, cfg.dtype, extra_files=extra)
    print(f"rf8hw export: {res['layers']} layers, {res['weights']:,} weights exact in {res['dtype']} -> "
          f"{cfg.out} ({', '.join(res['files'])})")
    return 0
