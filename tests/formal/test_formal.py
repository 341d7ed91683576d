"""The formal proofs (``rf8hw.formal``, ``docs/verification.md``): every task proves, every
mutant fails with a VCD counterexample, and the contract the checkers use is the format's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

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
    assert {(t.params["rows"], t.params["cols"], t.params["pe"]) for t in tasks
            if t.family == "accel_protocol"} == {(r, r, pe) for r in (1, 2) for pe in ("rf8", "rf8_pipe")}
    assert {(t.params["rows"], t.params["cols"]) for t in tasks if t.family == "comb_path"} == {
        (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (8, 8)}
    assert all(t.mode == ("structure" if t.family == "comb_path" else "prove") for t in tasks)
    assert len({t.key() for t in tasks}) == len(tasks)
    assert len(mutant_tasks()) == 13


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


def test_only_selects_mutants_too_and_a_mutant_fails_by_trace(capsys):
    from rf8hw import cli
    from rf8hw.formal.suite import ProveConfig, Task, TaskResult, mutant_failed, mutant_tasks

    cfg = ProveConfig(only=("mutant_product_rf8",))
    assert [t.name for t, _ in mutant_tasks(cfg, select=True)] == ["mutant_product_rf8"]
    assert len(mutant_tasks(cfg)) == 13
    assert cli.main(["prove", "--only", "mutant_product_rf8"]) == 2
    assert "add --mutants" in capsys.readouterr().err
    t = Task("m", "product", {})

    def res(status, step, trace="t.vcd"):
        return TaskResult(t, status, 1.0, 1.0, ".", trace, step, False)

    assert mutant_failed(res("FAIL", "basecase")) and mutant_failed(res("UNKNOWN", "induction"))
    assert not mutant_failed(res("PASS", None, None)) and not mutant_failed(res("FAIL", "basecase", None))
    assert not mutant_failed(res("UNKNOWN", "basecase"))


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


#: The default task list in parts of comparable solver time, so that ``pytest -n 2`` spreads
#: them over both workers (each word selects as ``rf8hw prove --only``).
PROOF_PARTS = {"rf8_products": ("product_rf8",), "int8_fp8_products": ("product_int8", "product_fp8"),
               "equivalence": ("equivalence_",), "protocol": ("protocol_", "accel_ports_"),
               "comb_paths": ("no_comb_path_",)}


def _jobs() -> int:
    """Tasks at a time: 1 per xdist worker (two workers already fill the two cores), else 2."""
    return 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2


def test_proof_parts_partition_the_default_tasks():
    from rf8hw.formal.suite import ProveConfig, properties

    every = [t.name for t in properties(ProveConfig())]
    parts = [t.name for words in PROOF_PARTS.values() for t in properties(ProveConfig(only=words))]
    assert sorted(parts) == sorted(every) and len(set(parts)) == len(parts)


@pytest.mark.slow
@pytest.mark.parametrize("part", PROOF_PARTS)
def test_every_proof_passes_and_is_cached(part, formal_cache):
    """All tasks of the default ``ProveConfig`` PASS (k-induction), in the parts of
    :data:`PROOF_PARTS`; running a part again is a cache hit for each task."""
    from rf8hw.formal.suite import ProveConfig, prove

    config = ProveConfig(only=PROOF_PARTS[part], jobs=_jobs())
    t0 = time.monotonic()
    results = prove(config, root=formal_cache)
    first = time.monotonic() - t0
    failed = [(r.task.name, r.status, r.workdir) for r in results if r.status != "PASS"]
    assert results and not failed, failed
    assert all(not r.cached for r in results)
    t0 = time.monotonic()
    again = prove(config, root=formal_cache)
    assert all(r.cached and r.status == "PASS" for r in again)
    assert time.monotonic() - t0 < first


def test_8_bit_product_proofs_are_split_into_groups_covering_every_code():
    """From a6 on each kind's product proof is 16 tasks; their code groups partition 0..255."""
    from rf8hw.formal.suite import CODE_SPLIT_BITS, ProveConfig, properties

    tasks = [t for t in properties(ProveConfig(pe_act_bits=8)) if t.family == "product"]
    for kind in PE_KINDS:
        mine = [t.params for t in tasks if t.params["kind"] == kind]
        assert len(mine) == 1 << CODE_SPLIT_BITS
        covered = sorted(c for p in mine for c in range(256)
                         if c >> (8 - p["code_high_bits"]) == p["code_high"])
        assert covered == list(range(256)), kind
    assert all("code_high" not in t.params for t in properties(ProveConfig(pe_act_bits=5)))


@pytest.mark.slow
def test_a_code_group_proof_is_not_vacuous(formal_cache):
    """The group's ``Assume`` leaves codes to check: the residual-sign mutant fails at a8 in
    the group 0x10-0x1f (residual codes), with a trace."""
    from rf8hw.formal.suite import Task, run_task

    params = {"kind": "rf8", "act_bits": 8, "acc_bits": 27, "code_high": 1, "code_high_bits": 4}
    r = run_task(Task("mutant_product_rf8_a8_codes10-1f", "product", params, depth=5,
                      mutant="ResidualSignFlippedPE"), root=formal_cache)
    assert (r.status, r.failed_step) == ("FAIL", "basecase") and r.trace.endswith(".vcd"), r


@pytest.mark.slow
@pytest.mark.parametrize("family", ["protocol", "pe"])
def test_every_mutant_fails_with_a_vcd_trace(family, formal_cache):
    """Each mutant (those of the array's and the accelerator's ports, then those of the PE
    proofs and the path check) fails with its trace."""
    from rf8hw.formal.suite import mutant_tasks, run_all

    ports = ("protocol", "accel_protocol")
    pairs = [(t, w) for t, w in mutant_tasks() if (t.family in ports) == (family == "protocol")]
    assert pairs
    results = run_all([t for t, _ in pairs], jobs=_jobs(), root=formal_cache)
    for (task, what), r in zip(pairs, results):
        if task.family == "comb_path":        # a structural check: its trace is the path
            assert (r.status, r.failed_step) == ("FAIL", "structure"), (task.name, r.status)
            path = open(r.trace).read().splitlines()
            assert (path[0], path[-1], len(path)) == ("m_axis_acc_tready", "s_axis_a_tready", 3)
            assert path[1].endswith("($and)"), path
            continue
        # FAIL with a real trace from the initial state (suite.MUTANT_DEPTH gives the base case
        # of the mutants that need it the cycles to reach their bug)
        assert (r.status, r.failed_step) == ("FAIL", "basecase"), (task.name, what, r.status,
                                                                   r.workdir)
        text = open(r.trace).read()
        assert r.trace.endswith(".vcd") and "$enddefinitions" in text and "$var" in text, r.trace


SHIPPED_VERILOG = sorted((Path(__file__).parents[2] / "rtl").glob("*.v"))


def test_verilog_is_shipped():
    assert SHIPPED_VERILOG


@pytest.mark.slow
@pytest.mark.parametrize("v", SHIPPED_VERILOG, ids=lambda v: v.stem)
def test_the_shipped_verilog_has_no_combinational_ready_path(v, tmp_path):
    """rtl/*.v as users take them: no combinational path from m_axis_acc_tready to an input
    tready (the structural check of rf8hw.formal.comb_paths on Yosys' flattened netlist)."""
    from rf8hw.formal.comb_paths import SINKS, SOURCE, find_comb_path, netlist

    module = netlist(v, v.stem, tmp_path / v.stem)
    assert find_comb_path(module, SOURCE, SINKS) is None, v.name
    assert find_comb_path(module, "s_axis_a_tvalid", ("m_axis_acc_tvalid",)) is None, v.name


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


def _tree_in(folder: Path) -> list[tuple[int, str]]:
    """(pid, start time) of the live processes whose working directory is under ``folder``."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cwd = Path(p / "cwd").resolve()
            stat = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat[0] != "Z" and (cwd == folder or folder in cwd.parents):
            found.append((int(p.name), stat[19]))
    return found


def _alive(procs) -> list[int]:
    alive = []
    for pid, start in procs:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat[0] != "Z" and stat[19] == start:
            alive.append(pid)
    return alive


_TREE = """
import os, subprocess, sys, time
# like SymbiYosys: a child in a process group of its own, which starts a grandchild
child = ("import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)")
subprocess.Popen([sys.executable, "-c", child], preexec_fn=os.setpgrp)
time.sleep(300)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_stop_all_ends_the_whole_tree_of_a_tracked_tool(tmp_path):
    """A tool whose child sits in a process group of its own (as SymbiYosys' are) and has a
    child itself: stop_all ends all three, and nothing new starts until allow_runs."""
    from rf8hw.formal import sby

    done = []
    worker = threading.Thread(target=lambda: done.append(
        sby.run_tracked([sys.executable, "-c", _TREE], tmp_path)))
    worker.start()
    deadline = time.monotonic() + 30
    while len(_tree_in(tmp_path)) < 3 and time.monotonic() < deadline:  # python, python, sleep
        time.sleep(0.05)
    tree = _tree_in(tmp_path)
    assert len(tree) >= 3, tree
    try:
        t0 = time.monotonic()
        sby.stop_all()
        worker.join(30)
        assert not worker.is_alive() and done and done[0].returncode != 0
        assert time.monotonic() - t0 < sby.STOP_GRACE + 5
        assert not _alive(tree), _alive(tree)
        with pytest.raises(sby.SbyError, match="being stopped"):
            sby.run_tracked([sys.executable, "-c", "pass"], tmp_path)
    finally:
        sby.allow_runs()
        for pid in _alive(tree):
            os.kill(pid, signal.SIGKILL)
    assert sby.run_tracked([sys.executable, "-c", "print(1)"], tmp_path).stdout == "1\n"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigterm_to_rf8hw_prove_leaves_no_solver_running(tmp_path):
    """``rf8hw prove`` killed by SIGTERM while its solvers run: one line, status 143, and no
    SymbiYosys, Yosys, smtbmc or solver process left (found by their working directory, the
    task folders, which also finds any orphaned grandchild)."""
    import platformdirs

    cache = tmp_path / "xdg"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache),       # the verdicts: this test's own
           "YOWASP_CACHE_DIR": os.environ.get("YOWASP_CACHE_DIR")
           or platformdirs.user_cache_dir("YoWASP", appauthor=False)}   # compiled Yosys: shared
    proc = subprocess.Popen([sys.executable, "-m", "rf8hw", "prove", "--no-cache", "--only",
                             "protocol_", "--jobs", "2"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    formal = cache / "rf8hw" / "formal"
    try:
        deadline = time.monotonic() + 300
        solvers = []
        while not solvers and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if formal.is_dir():
                solvers = [p for p, _ in _tree_in(formal)
                           if b"yices" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert solvers, "no solver seen running"
        tree = _tree_in(formal)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == ("rf8hw prove: interrupted (signal 15); the SymbiYosys "
                                            "runs were stopped"), err
    assert not _alive(tree) and not _tree_in(formal), (_alive(tree), _tree_in(formal))
