"""Bad inputs, table-driven: every command and every file reader.

CLI rows run ``rf8hw.cli.main`` in-process and must fail during argument / config / file validation,
before any synthesis, simulation or training: a guard makes any subprocess (a tool run) fail the
case.  Each must exit with status 2 and print ONE line on stderr, ``rf8hw <command>: error: ...``,
naming the offending value or option (the row's ``needle``), without a traceback.  API rows call
the file readers (``load_checkpoint``, ``load_quantized``, ``sim.load_rtl``, ``ArrayConfig.from_dict``)
and expect one ``ValueError`` (or ``FileNotFoundError``) line naming the file.  A handful of
subprocess rows check "no traceback" end to end.  Faults (killed and failing runs, concurrent runs,
tampered files) have tests of their own in ``tests/nn/test_train.py`` and ``tests/nn/test_quant_io.py``.

Placeholders in argv: ``{afile}`` a regular file, ``{dir}`` a directory, ``{ckpt}`` a good
mlp_digits checkpoint, ``{bad.<name>}`` a bad checkpoint (see ``BAD_CHECKPOINTS``), ``{rtl.<name>}``
a Verilog file with a manifest (see ``RTL``), ``{out}`` a fresh path.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from rf8hw import cli

BIG = str(10**12)
HUGE = str(2**64)


# ---------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------

def _sidecar(fn):
    def make(d, ckpt):
        meta = json.loads(ckpt.with_suffix(".json").read_text())
        (d / "model.safetensors").write_bytes(ckpt.read_bytes())
        (d / "model.json").write_text(json.dumps(fn(meta)))
    return make


def _tensors(content: bytes):
    def make(d, ckpt):
        (d / "model.safetensors").write_bytes(content)
        shutil.copy(ckpt.with_suffix(".json"), d / "model.json")
    return make


def _state(fn):
    def make(d, ckpt):
        from safetensors.torch import load_file

        state = load_file(str(ckpt))
        fn(state)
        save_file(state, str(d / "model.safetensors"))
        shutil.copy(ckpt.with_suffix(".json"), d / "model.json")
    return make


def _cfg(**kw):
    return _sidecar(lambda m: {**m, "model_config": {**m["model_config"], **kw}})


#: name -> (how to make ``<name>/model.safetensors`` (+ ``model.json``) from a good checkpoint,
#:          text the error must contain)
BAD_CHECKPOINTS = {
    "empty": (_tensors(b""), "is not a readable safetensors file"),
    "text": (_tensors(b"just some text, not tensors\n"), "is not a readable safetensors file"),
    "pickle": (_tensors(pickle.dumps({"fc1.weight": [1.0, 2.0]})), "is not a readable safetensors file"),
    "short": (_tensors(b"\x08\x00"), "is not a readable safetensors file"),
    "header_only": (_tensors(b"\x10\x00\x00\x00\x00\x00\x00\x00{}"), "is not a readable safetensors file"),
    "no_sidecar": (lambda d, c: shutil.copy(c, d / "model.safetensors"), "no such checkpoint sidecar"),
    "sidecar_not_json": (lambda d, c: (shutil.copy(c, d / "model.safetensors"),
                                       (d / "model.json").write_text("{oops")), "not JSON"),
    "sidecar_binary": (lambda d, c: (shutil.copy(c, d / "model.safetensors"),
                                     (d / "model.json").write_bytes(b"\xff\xfe\x00")), "not JSON"),
    "sidecar_list": (_sidecar(lambda m: [m]), "a JSON object is needed, not a list"),
    "sidecar_number": (_sidecar(lambda m: 3), "a JSON object is needed, not a int"),
    "sidecar_no_model": (_sidecar(lambda m: {k: v for k, v in m.items() if k != "model"}),
                         "no 'model' entry"),
    "sidecar_no_config": (_sidecar(lambda m: {k: v for k, v in m.items() if k != "model_config"}),
                          "no 'model_config' entry"),
    "unknown_model": (_sidecar(lambda m: {**m, "model": "resnet"}), "model must be one of"),
    "model_not_str": (_sidecar(lambda m: {**m, "model": ["mlp_digits"]}), "model must be one of"),
    "wrong_model": (_sidecar(lambda m: {**m, "model": "tinygpt", "model_config": {}}),
                    "does not match the model"),
    "config_list": (_sidecar(lambda m: {**m, "model_config": [128]}), "model_config must be a JSON object"),
    "config_unknown_key": (_cfg(width=3), "unknown model_config key(s) width"),
    "config_str": (_cfg(n_hidden="128"), "model_config n_hidden must be int"),
    "config_float": (_cfg(n_hidden=128.0), "model_config n_hidden must be int"),
    "config_bool": (_cfg(n_hidden=True), "model_config n_hidden must be int"),
    "config_negative": (_cfg(n_hidden=-5), "cannot build a 'mlp_digits' model"),
    "config_huge": (_cfg(n_hidden=10**7), "tensor 'fc1.weight' is torch.float32 [128, 64], the model needs "
                                          "torch.float32 [10000000, 64]"),
    "config_other_shape": (_cfg(n_hidden=64), "tensor 'fc1.weight' is torch.float32 [128, 64]"),
    "tensor_dtype": (_state(lambda s: s.update({"fc2.weight": s["fc2.weight"].double()})),
                     "tensor 'fc2.weight' is torch.float64"),
    "tensor_missing": (_state(lambda s: s.pop("fc3.bias")), "missing fc3.bias"),
    "tensor_extra": (_state(lambda s: s.update({"fc4.weight": torch.zeros(2)})), "unexpected fc4.weight"),
    "tensor_shape": (_state(lambda s: s.update({"fc3.bias": torch.zeros(11)})),
                     "tensor 'fc3.bias' is torch.float32 [11]"),
    "quantized": (_state(lambda s: s.update({"fc1.codes": s.pop("fc1.weight").to(torch.uint8)})),
                  "missing fc1.weight; unexpected fc1.codes"),
}


#: The module of rtl/'s 4x4 file, whose manifest the RTL rows below start from.
MODULE = "rf8_pipe_array_4x4_a8_acc40_wrap"


def _top(ports=None, name=MODULE):
    """Verilog text of a module ``name`` declaring the 4x4 file's ports (``ports`` overrides
    name -> (direction, width))."""
    from pathlib import Path

    real = Path(__file__).resolve().parents[1] / "rtl" / f"{MODULE}.json"
    decl = {p["name"]: (p["direction"], p["width"]) for p in json.loads(real.read_text())["ports"]}
    decl.update(ports or {})
    body = "".join(f"  {d}{f' [{w - 1}:0]' if w > 1 else ''} {n};\n" for n, (d, w) in decl.items() if d)
    return f"module {name} ({', '.join(n for n, (d, _) in decl.items() if d)});\n{body}endmodule\n"


def _rtl_pair(manifest_fn=None, text=None, name="m.v", manifest_text=None):
    def make(d):
        from pathlib import Path

        (d / name).write_text(_top() if text is None else text)
        # a whole manifest (every section the parser needs): rtl/'s 4x4 one, made to describe m.v
        real = Path(__file__).resolve().parents[1] / "rtl" / f"{MODULE}.json"
        manifest = json.loads(real.read_text())
        manifest.update(files={"verilog": name, "verilog_sha256": "0" * 64})
        if manifest_fn is not None:
            manifest = manifest_fn(manifest)
        (d / name).with_suffix(".json").write_text(
            manifest_text if manifest_text is not None else json.dumps(manifest))
        return d / name
    return make


def _params(**kw):
    return _rtl_pair(lambda m: {**m, "parameters": {**m["parameters"], **kw}})


#: name -> (make(dir) -> path of the .v, text the error must contain)
RTL = {
    "manifest_not_json": (_rtl_pair(manifest_text="{nope"), "is unreadable"),
    "manifest_list": (_rtl_pair(lambda m: [m]), "not an rf8hw manifest"),
    "manifest_no_module": (_rtl_pair(lambda m: {k: v for k, v in m.items() if k != "module"}),
                           "not an rf8hw manifest"),
    "manifest_no_params": (_rtl_pair(lambda m: {k: v for k, v in m.items() if k != "parameters"}),
                           "not an rf8hw manifest"),
    "manifest_other_file": (_rtl_pair(lambda m: {**m, "files": {**m["files"], "verilog": "other.v"}}),
                            "describes 'other.v'"),
    "manifest_no_interface": (_rtl_pair(lambda m: {k: v for k, v in m.items() if k != "interface"}),
                              "not an rf8hw manifest: it lacks interface"),
    "manifest_reset_level": (_rtl_pair(lambda m: {**m, "interface": {**m["interface"], "reset": {
        **m["interface"]["reset"], "active": "rising"}}}),
                             "interface.reset.active must be one of 'low', 'high'"),
    "params_no_lanes": (_rtl_pair(lambda m: {**m, "parameters": {
        k: v for k, v in m["parameters"].items() if k != "acc_lane_bits"}}), "parameters lack acc_lane_bits"),
    "no_module": (_rtl_pair(text="// nothing here\n"), f"declares no module '{MODULE}'"),
    "params_list": (_rtl_pair(lambda m: {**m, "parameters": [2, 2]}), "must be a JSON object"),
    "params_missing": (_rtl_pair(lambda m: {**m, "parameters": {"rows": 2}}), "lack cols"),
    "params_rows0": (_params(rows=0), "rows must be an integer in 1..64, not 0"),
    "params_cols_str": (_params(cols="2"), "cols must be an integer in 1..64, not '2'"),
    "params_acc": (_params(acc_bits=8), "acc_bits must be an integer in"),
    "params_pe": (_params(pe="tpu"), "pe must be one of"),
    "params_overflow": (_params(overflow="clip"), "overflow must be one of"),
    # hand-edited manifests whose parameters the Verilog contradicts (issue 26, item 3)
    "params_act_bits_edited": (_params(act_bits=4), "parameters.act_bits is 4, but its module "
                                                     f"'{MODULE}' was generated with act_bits=8"),
    "params_acc_bits_edited": (_params(acc_bits=48), "parameters.acc_bits is 48"),
    "params_reset_edited": (_params(reset="rst"), "parameters.reset is 'rst'"),
    "params_pe_edited": (_params(pe="rf8"), "parameters.pe is 'rf8'"),
    "params_lanes_edited": (_params(act_lane_bits=16), "parameters.act_lane_bits is 16, but"),
    "manifest_port_width": (_rtl_pair(lambda m: {**m, "ports": [
        {**p, "width": 64} if p["name"] == "s_axis_a_tdata" else p for p in m["ports"]]}),
                            "ports: s_axis_a_tdata is input 64 bits, but its parameters give input 32"),
    "manifest_reset_active": (_rtl_pair(lambda m: {**m, "interface": {**m["interface"], "reset": {
        **m["interface"]["reset"], "active": "high"}}}),
                              "interface.reset.active is 'high', but its parameters give 'low'"),
    "manifest_module_renamed": (_rtl_pair(lambda m: {**m, "module": "my_array"}),
                                "module 'my_array' is not the module of its parameters"),
    "verilog_port_width": (_rtl_pair(text=_top({"s_axis_a_tdata": ("input", 64)})),
                           "port s_axis_a_tdata is input 64 bits in the Verilog, but its manifest "
                           "m.json gives input 32 bits (rows=4 x act_lane_bits=8 for act_bits=8)"),
    "verilog_port_missing": (_rtl_pair(text=_top({"err_w_tlast": (None, 0)})),
                             "has no port 'err_w_tlast'"),
    "verilog_port_extra": (_rtl_pair(text=_top({"debug": ("output", 8)})), "has port(s) debug"),
    "verilog_submodule_top": (_rtl_pair(text=_top() + f"module shell (input clk);\n  {MODULE} u "
                                                      f"(.aclk(clk));\nendmodule\n"),
                              "is a submodule (module 'shell' instantiates it)"),
    "verilog_bom_port_width": (_rtl_pair(text="\ufeff" + _top({"s_axis_a_tdata": ("input", 64)})),
                               "port s_axis_a_tdata is input 64 bits in the Verilog"),
    "verilog_other_module": (_rtl_pair(text=_top(name="other")),
                             f"declares no module '{MODULE}', the module its manifest m.json names; "
                             "it declares 'other'"),
}


#: Adapters for ``--model {adapters}:<function>`` (rf8hw estimate / sweep), each wrong in one way.
ADAPTERS = """
import torch


def _parts():
    m = torch.nn.Linear(4, 2)
    return m, (lambda mm: mm(torch.ones(1, 4))), (lambda mm: {"score": 1.0})


def raises():
    raise RuntimeError("no weights here")


def takes_args(path):
    return _parts()


def two_items():
    return _parts()[:2]


def not_a_module():
    return ("model",) + _parts()[1:]


def example_a_string():
    m, _, metric = _parts()
    return m, "inputs", metric


def metric_nan():
    m, run, _ = _parts()
    return m, run, (lambda mm: {"score": float("nan")})


def calibrate_a_number():
    return _parts() + ({"calibrate": 3},)


def runs_no_layer():
    m, _, metric = _parts()
    return m, (lambda mm: None), metric
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from rf8hw.nn.train import TrainConfig, train

    root = tmp_path_factory.mktemp("bad_inputs")
    paths = {"afile": root / "afile", "dir": root / "adir", "ckpt": root / "good" / "model.safetensors"}
    paths["ckpt_json"] = paths["ckpt"].with_suffix(".json")
    paths["afile"].write_text("I am a regular file\n")
    paths["dir"].mkdir()
    (paths["dir"] / "notes.txt").write_text("not a run\n")
    train(TrainConfig(model="mlp_digits", epochs=0, eval_batches=1), root / "good", progress=False)
    for name, (make, _) in BAD_CHECKPOINTS.items():
        d = root / "bad" / name
        d.mkdir(parents=True)
        make(d, paths["ckpt"])
        paths[f"bad.{name}"] = d / "model.safetensors"
    for name, (make, _) in RTL.items():
        d = root / "rtl" / name
        d.mkdir(parents=True)
        paths[f"rtl.{name}"] = make(d)
    ints = root / "ints.safetensors"
    save_file({"position_ids": torch.arange(4)}, str(ints))
    paths["ints"] = ints
    docs = root / "nomarkers.md"
    docs.write_text("# no generated table here\n")
    paths["nomarkers"] = docs
    paths["adapters"] = root / "bad_adapters.py"              # rf8hw estimate / sweep: user adapters
    paths["adapters"].write_text(ADAPTERS)
    (root / "adapter_import_fails.py").write_text("raise RuntimeError('at import')\n")
    paths["adapter_import_fails"] = root / "adapter_import_fails.py"
    return root, paths


# ---------------------------------------------------------------------------------------------------
# The CLI matrix: (argv, needle)
# ---------------------------------------------------------------------------------------------------

def _c(*argv, needle, marks=()):
    return pytest.param(list(argv), needle, marks=marks, id=" ".join(argv)[:90])


def _xfail(reason):
    return pytest.mark.xfail(strict=True, reason=reason)


TRAIN = ("train", "--model", "mlp_digits", "--quiet", "--out", "{out}")
TRAIN_NUMBERS = {
    "--epochs": [("-1", "epochs"), ("-100", "epochs"), ("x", "--epochs"), ("1.5", "--epochs")],
    "--seed": [("-1", "seed"), (str(2**70), "seed must be an integer in 0..")],
    "--lr": [("-1", "lr"), ("nan", "lr"), ("inf", "lr"), ("-inf", "lr"), ("x", "--lr")],
    "--batch-size": [("0", "batch_size"), ("-4", "batch_size"), ("x", "--batch-size"),
                     ("1000000000", "batch_size must be an integer in 1..1347 (mlp_digits draws each batch "
                                    "from its 1347 training examples), not 1000000000"),
                     ("1348", "batch_size must be an integer in 1..1347")],
    "--steps-per-epoch": [("0", "steps_per_epoch"), ("-3", "steps_per_epoch")],
    "--backslash": [("-1", "backslash"), ("nan", "backslash"), ("inf", "backslash")],
    "--backslash-epochs": [("-1", "backslash_epochs")],
    "--deepshape-epochs": [("-1", "deepshape_epochs")],
    "--deepshape-grid": [("0", "deepshape_grid"), ("-1", "deepshape_grid"), ("nan", "deepshape_grid"),
                         ("inf", "deepshape_grid")],
    "--deepshape-min-count": [("0", "deepshape_min_count"), ("-5", "deepshape_min_count")],
    "--rate-step": [("0", "rate_step"), ("-1", "rate_step"), ("nan", "rate_step"), ("inf", "rate_step")],
    "--gg-shape": [("0", "gg_shape"), ("-1", "gg_shape"), ("nan", "gg_shape"), ("inf", "gg_shape")],
    "--init": [("xavier", "--init")],
    "--gg-fan": [("avg", "--gg-fan")],
    "--backslash-form": [("both", "--backslash-form")],
}

CLI = [
    # -- rf8hw table
    _c("table", "-X", "128", needle="shared exponent X"),
    _c("table", "-X", "-111", needle="shared exponent X"),
    _c("table", "-X", "x", needle="-X"),
    _c("table", "--update-docs", "{dir}", needle="adir"),
    _c("table", "--update-docs", "{afile}/x.md", needle="afile"),
    _c("table", "--update-docs", "{out}", needle="out"),
    _c("table", "--update-docs", "{nomarkers}", needle="generated-table markers"),
    _c("table", "--bogus", needle="--bogus"),
    # -- rf8hw generate
    *[_c("generate", "--rows", "2", "--cols", "2", opt, v, "-o", "{out}", needle=n) for opt, v, n in [
        ("--rows", "0", "rows"), ("--rows", "65", "rows"), ("--rows", "-1", "rows"),
        ("--rows", "x", "--rows"),
        ("--cols", "0", "cols"), ("--cols", "65", "cols"), ("--cols", "1.5", "--cols"),
        ("--act-bits", "1", "act_bits"), ("--act-bits", "17", "act_bits"), ("--act-bits", "x", "--act-bits"),
        ("--acc-bits", "4", "acc_bits"), ("--acc-bits", "100", "acc_bits"), ("--acc-bits", "26", "acc_bits"),
        ("--overflow", "clip", "--overflow"), ("--pe", "tpu", "--pe"), ("--reset", "foo", "--reset")]],
    _c("generate", "--rows", "2", "--cols", "2", "-o", "{afile}", needle="afile"),
    _c("generate", "--rows", "2", "--cols", "2", "-o", "{afile}/sub", needle="is not a directory"),
    _c("generate", "--rows", "2", "--cols", "2", needle="-o/--out-dir"),
    _c("generate", "--rows", "2", "--cols", "2", "-o", "", needle="out_dir is empty ('')"),
    # negative numbers are values (argparse said "expected one argument" for these)
    _c("generate", "--rows", "-1e3", "--cols", "2", "-o", "{out}",
       needle="argument --rows: invalid int value: '-1e3'"),
    _c("generate", "--rows", "2", "--cols", "2", "--acc-bits", "-inf", "-o", "{out}",
       needle="argument --acc-bits: invalid int value: '-inf'"),
    # -- rf8hw cosim (bounds before anything is generated)
    *[_c("cosim", "--rows", "2", "--cols", "2", "--tiles", "1", "--seed", "1", "--cache-dir", "{out}/cache",
         "--out-dir", "{out}/run", opt, v, needle=n) for opt, v, n in [
        ("--tiles", "0", "tiles"), ("--tiles", "-1", "tiles"), ("--tiles", BIG, "tiles"),
        ("--tiles", "x", "--tiles"),
        ("--seed", "-1", "seed"), ("--seed", HUGE, "seed"), ("--seed", "x", "--seed"),
        ("--m-rows", "0", "m_rows"), ("--m-rows", "-1", "m_rows"),
        ("--stall-prob", "1", "stall_prob"), ("--stall-prob", "-0.1", "stall_prob"),
        ("--stall-prob", "nan", "stall_prob"),
        ("--stall-prob", "x", "--stall-prob"), ("--sim", "modelsim", "simulator"),
        ("--stall-prob", "-inf", "stall_prob must be a number in [0, 0.99999]"),
        ("--stall-prob", "-1e-3", "stall_prob must be a number in [0, 0.99999]"),
        ("--stall-prob", "0.9999999", "at most 0.99999, where the bench's 32-bit watchdog still fits"),
        ("--backpressure-prob", "-NaN", "backpressure_prob must be a number in [0, 0.99999]"),
        ("--backpressure-prob", "0.999991", "backpressure_prob"),
        ("--backpressure-prob", "1", "backpressure_prob"),
        ("--backpressure-prob", "x", "--backpressure-prob"),
        ("--rows", "0", "rows"), ("--cols", "65", "cols"), ("--act-bits", "0", "act_bits"),
        ("--acc-bits", "1000", "acc_bits"), ("--overflow", "clamp", "--overflow"), ("--pe", "int8", "--pe")]],
    _c("cosim", "--cols", "2", "--tiles", "1", "--seed", "1", needle="--rows required"),
    _c("cosim", "--rows", "2", "--cols", "2", "--tiles", "1", "--seed", "1", "--out-dir", "",
       needle="out_dir is empty ('')"),
    _c("cosim", "--rows", "2", "--cols", "2", "--tiles", "1", "--seed", "1", "--cache-dir", "",
       needle="cache_root is empty ('')"),
    _c("cosim", "--rows", "2", "--cols", "2", "--seed", "1", needle="tiles is required"),
    _c("cosim", "--rows", "2", "--cols", "2", "--tiles", "1", "--seed", "1", "--accel",
       needle="accel runs a model layer's GEMM"),
    _c("cosim", "--rows", "2", "--cols", "2", "--tiles", "1", "--seed", "1", "--out-bits", "8",
       needle="out_bits is the accelerator's output width"),
    _c("cosim", "--rows", "2", "--cols", "2", "--layer", "fc1", "--model", "mlp_digits", "--seed", "1",
       "--accel", "--out-bits", "x", needle="--out-bits"),
    _c("cosim", "--rtl", "{out}/none.v", "--tiles", "1", "--seed", "1", needle="none.v"),
    _c("cosim", "--rtl", "{dir}", "--tiles", "1", "--seed", "1", needle="adir"),
    _c("cosim", "--rtl", "{afile}", "--tiles", "1", "--seed", "1", needle="no manifest afile.json"),
    _c("cosim", "--rtl", "{rtl.params_rows0}", "--rows", "3", "--tiles", "1", "--seed", "1", needle="rows"),
    *[_c("cosim", "--rtl", f"{{rtl.{name}}}", "--tiles", "1", "--seed", "1", needle=needle)
      for name, (_, needle) in RTL.items()],
    _c("cosim", "--rows", "2", "--cols", "2", "--tiles", "1", "--seed", "1", "--cache-dir", "{out}/c",
       "--out-dir", "{afile}", needle="afile"),
    _c("cosim", "--rows", "2", "--cols", "2", "--tiles", "1", "--seed", "1", "--cache-dir", "{out}/c",
       "--out-dir", "{afile}/sub", needle="is not a directory"),
    *[_c("cosim", "--rows", "2", "--cols", "2", "--tiles", t, "--seed", "1", "--m-rows", m, "--cache-dir",
         "{out}/c", needle="m_rows") for t, m in (("1", "0"), ("1", "1000000000"), ("1000", "60000"))],
    _c("cosim", "--rows", "2", "--cols", "2", "--tiles", "1", "--seed", "1", "--cache-dir", "{out}/c",
       "--bench", "verilog", needle="bench"),
    *[_c("cosim", "--rows", "2", "--cols", "2", "--seed", "1", "--cache-dir", "{out}/c", *more,
         needle=needle) for more, needle in [
        ((), "tiles is required"),
        (("--layer", "fc1"), "layer and model go together"),
        (("--model", "mlp_digits"), "--checkpoint is required"),      # the whole model's GEMMs
        (("--layer", "fc1", "--model", "mlp_digits", "--checkpoint", "{ckpt}", "--tiles", "3"),
         "tiles is for random tiles"),
        (("--layer", "fc1", "--model", "mlp_digits", "--checkpoint", "{ckpt}", "--m-rows", "3"),
         "m_rows is for random tiles"),
        (("--layer", "fc1", "--model", "mlp_digits"), "--checkpoint"),
        (("--layer", "fc1", "--model", "mlp_digits", "--checkpoint", "{ckpt}", "--overflow",
          "saturate"), "saturate"),
        (("--layer", "fc9", "--model", "mlp_digits", "--checkpoint", "{ckpt}"), "fc1, fc2, fc3"),
        (("--layer", "fc1", "--model", "minilm", "--checkpoint", "{ckpt}"),
         "--checkpoint is for the zoo models")]],
    _c("cosim", "--rows", "2", "--cols", "2", "--tiles", "1", "--seed", "1", "--cache-dir", "{afile}/sub",
       needle="afile"),
    # -- rf8hw synth (before any tool runs)
    *[_c("synth", "--rows", "2", "--cols", "2", "--device", "ecp5-25k", opt, v, needle=n) for opt, v, n in [
        ("--rows", "0", "rows"), ("--rows", "65", "rows"), ("--cols", "0", "cols"),
        ("--acc-bits", "0", "acc_bits"),
        ("--act-bits", "99", "act_bits"), ("--pe", "nope", "--pe"), ("--overflow", "x", "--overflow"),
        ("--device", "ecp5-12k", "--device"), ("--seed", "-1", "seed"), ("--seed", "x", "--seed"),
        ("--workdir", "{afile}", "afile"), ("--workdir", "{afile}/sub", "afile"),
        ("--act-bits", "0", "act_bits"), ("--acc-bits", "26", "acc_bits"), ("--reset", "none", "--reset"),
        ("--cols", "x", "--cols")]],
    _c("synth", "--rows", "2", "--cols", "2", "--device", "ecp5-25k", "--seed", HUGE, "--workdir", "{out}",
       needle="nextpnr's placement seed is a C int"),
    _c("synth", "--rows", "2", "--cols", "2", needle="--device"),
    _c("synth", "--rows", "2", "--cols", "2", "--device", "ecp5-25k", "--max-m", "4",
       needle="--max-m is for the accelerator: add --accel"),
    _c("synth", "--rows", "2", "--cols", "2", "--device", "ecp5-25k", "--accel", "--max-m", "0",
       needle="max_m"),
    _c("synth", "--rows", "2", "--cols", "2", "--device", "ecp5-25k", "--accel", "--out-bits", "16",
       needle="--out-bits"),
    # -- rf8hw estimate
    *[_c("estimate", "--model", "mlp_digits", "--checkpoint", "{ckpt}", "--rows", "2", "--cols", "2",
         "--no-synth", "--quiet", "--out", "{out}", opt, v, needle=n) for opt, v, n in [
        ("--rows", "0", "rows"), ("--cols", "65", "cols"), ("--act-bits", "1", "act_bits"),
        ("--acc-bits", "4", "acc_bits"), ("--overflow", "clip", "--overflow"), ("--pe", "int8", "--pe"),
        ("--batch", "0", "batch"), ("--batch", "-1", "batch"), ("--calibrate", "-1", "calibrate_batches"),
        ("--calibrate", BIG, "calibrate_batches"), ("--seed", "-1", "seed"), ("--device", "foo", "--device"),
        ("--rounding", "up", "--rounding"), ("--batch", "x", "--batch")]],
    _c("estimate", "--model", "mlp_digits", "--rows", "2", "--cols", "2", "--no-synth",
       needle="--checkpoint"),
    # an unusable --out is refused before the model is loaded, not after the whole estimate
    *[_c("estimate", "--model", m, *ck, "--rows", "2", "--cols", "2", "--no-synth", "--quiet", "--out", out,
         needle=needle) for m, ck in (("mlp_digits", ("--checkpoint", "{ckpt}")), ("minilm", ()))
      for out, needle in (("{afile}", "--out '"), ("{afile}/sub", "is not a directory"))],
    _c("estimate", "--model", "mlp_digits", "--checkpoint", "{ckpt}", "--rows", "2", "--cols", "2",
       "--seed", HUGE, "--quiet", "--out", "{out}", needle="nextpnr's placement seed is a C int"),
    _c("estimate", "--model", "minilm", "--rows", "2", "--cols", "2", "--seed", HUGE, "--quiet",
       "--out", "{out}", needle="nextpnr's placement seed is a C int"),
    _c("estimate", "--model", "resnet", "--rows", "2", "--cols", "2", "--no-synth", needle="'resnet'"),
    _c("estimate", "--model", "no_such_pkg.mod:fn", "--rows", "2", "--cols", "2", "--no-synth",
       needle="no_such_pkg"),
    _c("estimate", "--model", "minilm", "--checkpoint", "{ckpt}", "--rows", "2", "--cols", "2", "--no-synth",
       needle="--checkpoint"),
    _c("estimate", "--model", "minilm", "--batch", "2", "--rows", "2", "--cols", "2", "--no-synth",
       needle="batch is for the zoo models"),
    _c("estimate", "--model", "tinygpt", "--checkpoint", "{ckpt}", "--rows", "2", "--cols", "2", "--no-synth",
       "--quiet", "--out", "{out}", needle="'mlp_digits'"),
    _c("estimate", "--model", "mlp_digits", "--checkpoint", "{out}/none.safetensors", "--rows", "2",
       "--cols", "2", "--no-synth", needle="none.safetensors"),
    _c("estimate", "--model", "mlp_digits", "--checkpoint", "{dir}", "--rows", "2", "--cols", "2",
       "--no-synth", needle="is a directory"),
    _c("estimate", "--model", "mlp_digits", "--checkpoint", "{afile}", "--rows", "2", "--cols", "2",
       "--no-synth", needle="afile"),
    # models that are not what an adapter must be (one line naming it, never a traceback)
    *[_c("estimate", "--model", m, "--rows", "2", "--cols", "2", "--no-synth", "--quiet", "--out", "{out}",
         needle=n) for m, n in [
        (":", "not ':': no module before ':'"), (".x:y", "'.x' is not a module name"),
        ("{afile}:f", "cannot be imported as Python"), ("{out}/none.py:f", "does not exist"),
        ("{adapter_import_fails}:f", "failed to import: RuntimeError: at import"),
        ("{adapters}:nope", "has no function 'nope'"),
        ("{adapters}:raises", "raised RuntimeError: no weights here (at "),
        ("{adapters}:takes_args", "must be callable without arguments; it requires path"),
        ("{adapters}:two_items", "not a tuple of 2 items"),
        ("{adapters}:not_a_module", "model must be a torch.nn.Module, not str"),
        ("{adapters}:example_a_string", "example must be a callable example(model)"),
        ("{adapters}:metric_nan", "path fp32: metric 'score' is nan"),
        ("{adapters}:calibrate_a_number", "info['calibrate'] must be a callable run(model) or None, not int"),
        ("{adapters}:runs_no_layer", "ran no layer the array can take")]],
    # a rule between options; a bound before the allocation it protects
    _c("estimate", "--model", "mlp_digits", "--checkpoint", "{ckpt}", "--rows", "2", "--cols", "2",
       "--no-synth", "--no-gptq", "--hessian-batches", "4",
       needle="hessian_batches 4 gives the GPTQ Hessians; it needs gptq"),
    _c("estimate", "--model", "mlp_digits", "--checkpoint", "{ckpt}", "--rows", "2", "--cols", "2",
       "--no-synth", "--batch", "1000000000", needle="batch must be an integer in 1..4096"),
    _c("estimate", "--model", "mlp_digits", "--checkpoint", "{ckpt}", "--rows", "2", "--cols", "2",
       "--no-synth", "--hessian-batches", "0", "--gptq", needle="hessian_batches must be an integer in"),
    # -- rf8hw sweep (before Ray starts or any factor runs)
    *[_c("sweep", "--model", "mlp_digits", "--checkpoint", "{ckpt}", "--pe", "rf8_pipe", "--rows", "2",
         "--cols", "2", "--cache", "{out}/c", "--synth-cache", "{out}/s", "--out", "{out}/o", opt, v,
         needle=n)
      for opt, v, n in [
        ("--address", "notahost:99999", "address must be HOST:PORT with a port in 1..65535"),
        ("--address", "127.0.0.1", "address must be HOST:PORT"),
        ("--address", "127.0.0.1:1", "address '127.0.0.1:1': no Ray cluster there"),
        ("--num-cpus", "0", "num_cpus must be an integer in 1..1024"),
        ("--batch", "1000000000", "batch must be an integer in 1..4096"),
        ("--max-luts", "-1", "max_luts must be an integer >= 1"),
        ("--min-accuracy", "nan", "min_accuracy must be a number"),
        ("--pe", "rf9", "pe must be one of"), ("--rows", "0,2", "rows must be an integer in 1..64"),
        ("--acc-bits", "20", "acc_bits"), ("--act", "row", "act must be one of"),
        ("--device", "xc7", "device must be one of"), ("--seed", "-1", "seed"),
        ("--rounding", "up", "rounding must be one of"),
        ("--out", "{afile}", "exists and is not a directory")]],
    _c("sweep", "--model", "mlp_digits", "--checkpoint", "{ckpt}", "--pe", "rf8_pipe", "--rows", "2",
       "--cols", "2", "--address", "127.0.0.1:6379", "--num-cpus", "2",
       needle="num_cpus sizes the local Ray instance"),
    _c("sweep", "--model", "{adapters}:takes_args", "--pe", "rf8_pipe", "--rows", "2", "--cols", "2",
       needle="must be callable without arguments"),
    _c("sweep", "--model", ":", "--pe", "rf8_pipe", "--rows", "2", "--cols", "2", needle="no module before"),
    _c("sweep", "--model", "minilm", "--checkpoint", "{ckpt}", "--pe", "rf8_pipe", "--rows", "2", "--cols",
       "2", needle="--checkpoint is for the zoo models"),
    _c("sweep", "--model", "mlp_digits", "--pe", "rf8_pipe", "--rows", "2", "--cols", "2",
       needle="--checkpoint is required"),
    # (the sidecar of wrong_model names tinygpt: the model is resolved before the tensors are read)
    *[_c("estimate", "--model", "mlp_digits", "--checkpoint", f"{{bad.{name}}}", "--rows", "2", "--cols", "2",
         "--no-synth", "--quiet", "--out", "{out}",
         needle="holds a 'tinygpt' model, not 'mlp_digits'" if name == "wrong_model" else needle)
      for name, (_, needle) in BAD_CHECKPOINTS.items()],
    # -- rf8hw train
    *[_c(*TRAIN, opt, v, needle=n) for opt, values in TRAIN_NUMBERS.items() for v, n in values],
    _c("train", "--model", "resnet", "--out", "{out}", needle="--model"),
    _c("train", "--model", "mlp_digits", needle="--out"),
    _c("train", "--out", "{out}", needle="--model"),
    _c("train", "--model", "mlp_digits", "--quiet", "--out", "{afile}", needle="afile"),
    _c("train", "--model", "mlp_digits", "--quiet", "--out", "{afile}/sub", needle="afile"),
    _c("train", "--model", "mlp_digits", "--quiet", "--out", "{dir}", needle="holds no training run"),
    _c("train", "--model", "mlp_digits", "--quiet", "--out", "{dir}", "--overwrite",
       needle="holds no training run"),
    _c("train", "--model", "mlp_digits", "--quiet", "--out", "{ckpt}/..", needle="--overwrite"),
    _c(*TRAIN, "--init-from", "{out}/none.safetensors", needle="no such checkpoint"),
    _c(*TRAIN, "--init-from", "{dir}", needle="is a directory"),
    _c(*TRAIN, "--init-from", "{afile}", needle="afile"),
    _c("train", "--model", "tinygpt", "--quiet", "--out", "{out}", "--init-from", "{ckpt}",
       needle="'mlp_digits'"),
    *[_c(*TRAIN, "--init-from", f"{{bad.{name}}}", needle=needle)
      for name, (_, needle) in BAD_CHECKPOINTS.items()],
    _c("train", "--model", "tinygpt", "--quiet", "--out", "{out}", "--batch-size", "846144",
       needle="batch_size must be an integer in 1..846143"),
    _c("train", "--model", "tinygpt", "--quiet", "--out", "{out}", "--eval-batches", "1000000000",
       needle="eval_batches x batch_size must be at most 93958 (tinygpt's evaluation examples)"),
    _c(*TRAIN, "--gg-shape", "0.5", needle="gg_shape 0.5 is used only with init 'gg'"),
    _c(*TRAIN, "--gg-fan", "out", needle="gg_fan 'out' is used only with init 'gg'"),
    _c(*TRAIN, "--backslash-epochs", "2", needle="backslash_epochs 2 is used only with a BackSlash weight"),
    _c(*TRAIN, "--backslash-form", "loss", needle="backslash_form 'loss' is used only with a BackSlash"),
    _c(*TRAIN, "--deepshape-grid", "0.01", needle="deepshape_grid 0.01 is used only with deepshape on"),
    _c(*TRAIN, "--init", "gg", "--gg-shape", "1e-10", needle="gg_shape must be a finite number >= 0.05"),
    _c(*TRAIN, "--init-from", "/dev/null", needle="checkpoint /dev/null is not a regular file"),
    _c("train", "--model", "mlp_digits", "--quiet", "--out", "", needle="is the current directory"),
    _c("train", "--model", "mlp_digits", "--quiet", "--out", ".", needle="is the current directory"),
    # -- rf8hw fit
    _c("fit", "{out}/none.safetensors", needle="no such checkpoint"),
    _c("fit", "{dir}", needle="is a directory"),
    _c("fit", "{afile}", needle="afile"),
    _c("fit", "{ints}", needle="holds no floating-point tensor"),
    *[_c("fit", f"{{bad.{name}}}", needle="not a readable safetensors file")
      for name in ("empty", "text", "pickle", "short", "header_only")],
    _c("fit", "{ckpt}", "--by", "layer", needle="--by"),
    _c("fit", "{ckpt}", "--which", "some", needle="--which"),
    _c("fit", "{ckpt}", "--method", "mle", needle="--method"),
    _c("fit", "{ckpt}", "--plot", "{dir}", needle="--plot"),
    _c("fit", "{ckpt}", "--plot", "{afile}/x.png", needle="afile"),
    _c("fit", "{ckpt}", "--plot", "{out}/missing/x", needle="missing"),
    _c("fit", "{ckpt}", "--json", "{dir}", needle="--json"),
    _c("fit", "{ckpt}", "--json", "{afile}/x.json", needle="afile"),
    _c("fit", needle="checkpoint"),
    _c("fit", "/dev/null", needle="checkpoint /dev/null is not a regular file"),
    _c("fit", "{ckpt}", "--plot", "{out}.png", "--json", "{out}.png", needle="is the plot's file too"),
    _c("fit", "{ckpt}", "--plot", "{out}", "--json", "{out}.png", needle="is the plot's file too"),
    _c("fit", "{ckpt}", "--plot", "", needle="--plot . is a directory"),
    _c("fit", "{ckpt}", "--json", "", needle="--json . is a directory"),
    # -- the top level
    _c("nope", needle="COMMAND"),
    _c(needle="COMMAND"),
    _c("--bogus", needle="COMMAND"),
    _c("--bogus", "table", needle="--bogus"),
]


@pytest.fixture
def no_tools(monkeypatch):
    """Any subprocess (a synthesis, simulation or generation tool) fails the case: every row must be
    refused before such work starts."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a bad input reached a tool run: {args[0] if args else kwargs}")
    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def _fill(argv, paths, out):
    table = {**{k: str(v) for k, v in paths.items()}, "out": str(out)}
    return [re.sub(r"\{([\w.]+)\}", lambda m: table[m.group(1)], a) for a in argv]


@pytest.mark.parametrize("argv, needle", CLI)
def test_cli_bad_input_is_one_line_exit_2(argv, needle, files, tmp_path, capsys, no_tools, monkeypatch):
    monkeypatch.chdir(tmp_path)                      # default outputs (plots, build/) land here
    argv = _fill(argv, files[1], tmp_path / "out")
    try:
        rc = cli.main(argv)
    except SystemExit as exc:                        # argparse: usage errors
        rc = exc.code
    err = capsys.readouterr().err
    command = argv[0] if argv and not argv[0].startswith("-") and argv[0] in cli.COMMANDS else None
    assert rc == 2, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    top = command is None or "unrecognized arguments" in err     # argparse reports these at the top level
    assert err.startswith("rf8hw: error: " if top else f"rf8hw {command}: error: "), err
    assert needle in err, err
    assert not list((tmp_path / "out").parent.glob(".out.*.partial")), \
        "a refused run left a partial directory"


@pytest.mark.parametrize("command", ["generate", "cosim"])
def test_a_full_disk_is_one_line_and_leaves_no_folder(command, files, tmp_path, capsys, monkeypatch):
    """generate and cosim on a full disk (every write of a file's bytes fails with ENOSPC): one
    line naming the path, exit 2, no folder and no file left behind (tests/hdl/test_generate.py
    and tests/sim/test_cosim.py check the old files are kept)."""
    import errno
    from pathlib import Path

    from rf8hw import sim
    from rf8hw.arch import ArrayConfig

    monkeypatch.chdir(tmp_path)
    if command == "cosim":               # rtl/'s design stands in for the build; no simulator runs
        design = sim.load_rtl(Path(__file__).resolve().parents[1] / "rtl" / f"{MODULE}.v")
        monkeypatch.setattr("rf8hw.sim.run.prepare", lambda cfg, options, progress=None: sim.Build(
            "icarus", "hdl", False, tmp_path / "build", design))
        monkeypatch.setattr(subprocess, "Popen", None)
    for name in ("write_text", "write_bytes"):
        def full(self, data, *args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(Path, name, full)
    out = tmp_path / "out"
    argv = (["generate", "--rows", "2", "--cols", "2", "-o", str(out / "rtl")] if command == "generate"
            else ["cosim", "--rtl", str(design.verilog), "--tiles", "1", "--seed", "1", "--sim", "icarus",
                  "--out-dir", str(out / "run")])
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rf8hw {command}: error: No space left on device; ") and err.count("\n") == 1, err
    assert str(out) in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.iterdir()), sorted(tmp_path.rglob("*"))
    assert ArrayConfig(2, 2).module_name in err if command == "generate" else "job.json" in err


# ---------------------------------------------------------------------------------------------------
# The file readers, through the API
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(BAD_CHECKPOINTS))
def test_load_checkpoint_bad_files(name, files):
    from rf8hw.nn.checkpoint import load_checkpoint

    path = files[1][f"bad.{name}"]
    kind = FileNotFoundError if name == "no_sidecar" else ValueError
    with pytest.raises(kind) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert BAD_CHECKPOINTS[name][1] in msg and str(path.parent) in msg and "\n" not in msg


@pytest.mark.parametrize("path, kind, needle", [
    ("{out}/none.safetensors", FileNotFoundError, "no such checkpoint: "),
    ("{dir}", ValueError, "is a directory, not a .safetensors file"),
    ("{afile}", ValueError, "is not a readable safetensors file"),
    ("{ckpt_json}", ValueError, "is not a readable safetensors file"),
])
def test_load_checkpoint_bad_paths(path, kind, needle, files, tmp_path):
    from rf8hw.nn.checkpoint import load_checkpoint

    with pytest.raises(kind, match=needle.replace(".", r"\.")):
        load_checkpoint(_fill([path], files[1], tmp_path / "out")[0])


def test_a_huge_size_in_a_sidecar_is_refused_before_allocation(files, monkeypatch):
    """``n_hidden: 10**7`` (400 TB of fc2 weights) never reaches a real allocation."""
    from rf8hw.nn.checkpoint import load_checkpoint
    from rf8hw.zoo import mlp_digits

    built = []
    real = mlp_digits.build
    monkeypatch.setattr(mlp_digits, "build",
                        lambda cfg=None: built.append(torch.empty(0).device) or real(cfg))
    with pytest.raises(ValueError, match=r"the model needs torch\.float32 \[10000000, 64\]"):
        load_checkpoint(files[1]["bad.config_huge"])
    assert built == [torch.device("meta")]              # built once, on the meta device only


@pytest.mark.parametrize("name", list(RTL))
def test_rtl_reader_bad_manifests(name, files):
    from rf8hw.sim import load_rtl

    path = files[1][f"rtl.{name}"]
    with pytest.raises(ValueError) as info:
        load_rtl(path)
    assert RTL[name][1] in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("d, needle", [
    ([1, 2], "must be a JSON object, not list"),
    ("rows=2", "must be a JSON object, not str"),
    ({}, "lack rows, cols"),
    ({"rows": 2, "cols": 2}, "lack act_bits"),
])
def test_manifest_parameters_reader(d, needle):
    from rf8hw.arch import ArrayConfig

    with pytest.raises(ValueError, match=needle):
        ArrayConfig.from_dict(d, where="manifest m.json")


@pytest.mark.parametrize("content, needle", [
    (b"", "is not a readable safetensors file"),
    (b"{}", "is not a readable safetensors file"),
    (pickle.dumps([1]), "is not a readable safetensors file"),
])
def test_load_quantized_bad_tensor_files(content, needle, tmp_path):
    import rf8hw
    from rf8hw.nn import quant
    from rf8hw.zoo import mlp_digits

    path = tmp_path / "q.safetensors"
    quant.save_quantized(rf8hw.quantize(mlp_digits.build()), path,
                         model_info={"name": "mlp_digits", "config": {}})
    path.write_bytes(content)
    with pytest.raises(ValueError, match=needle) as info:
        quant.load_quantized(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("path, info, needle", [
    (None, None, "save_quantized path must be a file name (str or pathlib.Path), not NoneType"),
    ("{dir}", None, "is a directory; give a .safetensors file name"),
    ("{afile}/q.safetensors", None, "is not a directory"),
    ("{out}/q.json", None, "ends in .json, the suffix of its sidecar"),
    ("{out}/q.safetensors", "mlp_digits", "model_info must be a dict or None, not str"),
    ("{out}/q.safetensors", {"acc": float("nan")}, "model_info must hold JSON values only"),
    ("{out}/sdir.safetensors", None, "its sidecar"),
])
def test_save_quantized_bad_paths_and_info_write_nothing(path, info, needle, files, tmp_path):
    import rf8hw
    from rf8hw.nn import quant
    from rf8hw.zoo import mlp_digits

    out = tmp_path / "out"
    out.mkdir()
    (out / "sdir.json").mkdir()
    target = None if path is None else _fill([path], files[1], out)[0]
    with pytest.raises(ValueError) as info_:
        quant.save_quantized(rf8hw.quantize(mlp_digits.build()), target, model_info=info)
    assert needle in str(info_.value) and "\n" not in str(info_.value)
    assert [p.name for p in out.iterdir()] == ["sdir.json"]


@pytest.mark.parametrize("path, kind, needle", [
    (None, ValueError, "quantized model file must be a file name"),
    ("/dev/null", FileNotFoundError, "no such quantized model sidecar: /dev/null.json"),
    ("{ckpt}", ValueError, "is not an rf8hw-quantized-model v3 sidecar"),
    ("{ckpt_json}", ValueError, "is the sidecar; give the .safetensors file"),
    ("{dir}", FileNotFoundError, "no such quantized model sidecar"),
])
def test_load_quantized_bad_paths(path, kind, needle, files, tmp_path):
    from rf8hw.nn import quant

    with pytest.raises(kind) as info:
        quant.load_quantized(None if path is None else _fill([path], files[1], tmp_path / "out")[0])
    assert needle in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------------
# End to end, in a subprocess: no traceback reaches the user
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, needle", [
    (["train", "--model", "mlp_digits", "--init-from", "{bad.config_huge}", "--out", "{out}", "--quiet"],
     "[10000000, 64]"),
    (["generate", "--rows", "2", "--cols", "2", "--overflow", "clip", "-o", "{out}"], "--overflow"),
    (["cosim", "--rows", "2", "--cols", "2", "--tiles", "1", "--seed", "1", "--stall-prob", "-inf"],
     "stall_prob must be a number in [0, 0.99999]"),
    (["table", "--update-docs", "{dir}"], "Is a directory"),
    (["sweep", "--model", "minilm", "--pe", "rf8_pipe", "--rows", "2", "--cols", "2", "--address",
      "127.0.0.1:1", "--out", "{out}"], "no Ray cluster there"),
    (["estimate", "--model", "{adapters}:raises", "--rows", "2", "--cols", "2", "--no-synth", "--out",
      "{out}"], "raised RuntimeError: no weights here"),
])
def test_no_traceback_end_to_end(argv, needle, files, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rf8hw", *_fill(argv, files[1], tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert err.count("\n") == 1 and "Traceback" not in err and needle in err, err
