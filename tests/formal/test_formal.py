"""The formal proofs (``rf8hw.formal``, ``docs/verification.md``): every task proves, every
mutant fails with a VCD counterexample, and the contract the checkers use is the format's."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rf8hw.arch import PE_KINDS
from rf8hw.format import baselines, golden


def test_contract_weight_table_is_the_formats_value_table():
    """The checkers' ``W(code)`` (from ``spec.code_value``) is the golden model's integer weight
    for RF8 and ``baselines``' for INT8/FP8, on all 256 codes."""
    from rf8hw.formal.contract import weight_table

    assert list(weight_table("rf8")) == golden.weight_int(np.arange(256, dtype=np.uint8)).tolist()
    for fmt in ("int8", "fp8_e4m3"):
        assert list(weight_table(fmt)) == [baselines.WEIGHT_INT_FUNCS[fmt](c) for c in range(256)]


def test_task_list_covers_every_pe_kind_and_shape():
    from rf8hw.formal.pe_checks import EQUIVALENCE_KINDS
    from rf8hw.formal.suite import ProveConfig, mutant_tasks, properties

    tasks = properties(ProveConfig())
    assert {t.params["kind"] for t in tasks if t.family == "product"} == set(PE_KINDS)
    assert {t.params["kind"] for t in tasks if t.family == "equivalence"} == set(EQUIVALENCE_KINDS)
    assert {(t.params["rows"], t.params["cols"]) for t in tasks if t.family == "protocol"} == {
        (1, 1), (2, 2), (2, 3), (3, 2), (3, 3)}
    assert all(t.mode == "prove" for t in tasks)
    assert len({t.key() for t in tasks}) == len(tasks)
    assert len(mutant_tasks()) == 9


@pytest.mark.parametrize("bad, word", [({"shapes": ("2by2",)}, "shape"), ({"depth": 1}, "depth"),
                                       ({"pe_act_bits": 1}, "pe_act_bits")])
def test_prove_config_refuses_bad_values(bad, word):
    from rf8hw.formal.suite import ProveConfig

    with pytest.raises(ValueError, match=word):
        ProveConfig(**bad)


def test_only_naming_no_task_is_refused_not_an_empty_run():
    """``--only zzz`` once ran nothing and exited 0 ("0 of 0 proved")."""
    from rf8hw.formal.suite import ProveConfig, properties

    assert {t.family for t in properties(ProveConfig(only=("product",)))} == {"product"}
    with pytest.raises(ValueError, match=r"^only: no task name contains 'zzz' \(rf8hw prove --list "):
        properties(ProveConfig(only=("product", "zzz")))


def test_probe_names_a_missing_register():
    from rf8hw.formal import probe
    from rf8hw.hdl.pe import RF8PE

    frag = probe.elaborate(RF8PE(4, 23))
    assert probe.internal(frag, "weight").name == "weight"
    with pytest.raises(LookupError, match="no_such_register"):
        probe.internal(frag, "no_such_register")


def test_read_verdict_refuses_an_incomplete_run(tmp_path):
    """A status file alone, without SymbiYosys' closing DONE line, is no verdict."""
    from rf8hw.formal.sby import SbyError, read_verdict

    (tmp_path / "status").write_text("PASS 0 1\n")
    (tmp_path / "logfile.txt").write_text("SBY 1:00:00 [task] engine_0: smtbmc yices\n")
    with pytest.raises(SbyError, match="did not complete"):
        read_verdict(tmp_path)
    (tmp_path / "logfile.txt").write_text("SBY 1:00:00 [task] DONE (PASS, rc=0)\n")
    assert read_verdict(tmp_path).status == "PASS"


@pytest.fixture()
def formal_cache(tmp_path_factory):
    """A verdict cache of this session (the user's own is left alone; YoWASP's compiled
    WebAssembly cache is the user's, as for every other YoWASP tool)."""
    return tmp_path_factory.getbasetemp() / "formal-cache"


@pytest.mark.slow
def test_every_proof_passes_and_is_cached(formal_cache):
    """All tasks of the default ``ProveConfig`` PASS (k-induction); running them again is a
    cache hit for each."""
    from rf8hw.formal.suite import ProveConfig, prove

    t0 = time.monotonic()
    results = prove(ProveConfig(), root=formal_cache)
    first = time.monotonic() - t0
    failed = [(r.task.name, r.status, r.workdir) for r in results if r.status != "PASS"]
    assert not failed, failed
    assert all(not r.cached for r in results)
    t0 = time.monotonic()
    again = prove(ProveConfig(), root=formal_cache)
    assert all(r.cached and r.status == "PASS" for r in again)
    assert time.monotonic() - t0 < first


@pytest.mark.slow
def test_every_mutant_fails_with_a_vcd_trace(formal_cache):
    from rf8hw.formal.suite import mutant_tasks, run_all

    pairs = mutant_tasks()
    results = run_all([t for t, _ in pairs], root=formal_cache)
    for (task, what), r in zip(pairs, results):
        # FAIL: a real trace from the initial state; UNKNOWN: the base case is too shallow for
        # one (a 2x2 array needs more cycles to fill), the induction step fails: not proved
        assert (r.status, r.failed_step) in (("FAIL", "basecase"), ("UNKNOWN", "induction")), (
            task.name, what, r.status, r.workdir)
        text = open(r.trace).read()
        assert r.trace.endswith(".vcd") and "$enddefinitions" in text and "$var" in text, r.trace


def test_run_logged_refuses_exit_0_without_the_closing_line(tmp_path):
    """Item 7 of the formal-proofs issue: a Yosys/nextpnr run counts only when its log has the
    tool's closing line, whatever the exit status."""
    import sys

    from rf8hw.toolchain.tools import YOSYS_DONE, run_logged

    script = "import sys; open('tool.log', 'w').write(sys.argv[1])"
    run_logged([sys.executable, "-c", script, f"ok\n{YOSYS_DONE} Logfile hash: 0\n"], tmp_path,
               tmp_path / "tool.log", "yosys", done=YOSYS_DONE)
    with pytest.raises(RuntimeError, match="did not complete"):
        run_logged([sys.executable, "-c", script, "truncated"], tmp_path, tmp_path / "tool.log",
                   "yosys", done=YOSYS_DONE)
