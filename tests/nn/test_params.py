"""rf8hw.nn.params (shared helpers) and the import layering of rf8hw.nn."""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import rf8hw.nn
from rf8hw.nn import params

NN_DIR = Path(rf8hw.nn.__file__).parent


def _nn_imports() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    """Module -> rf8hw.nn modules it imports anywhere (module level or inside functions), and
    (module, imported name) pairs of private names imported from other rf8hw modules."""
    graph, private = {}, []
    for f in sorted(NN_DIR.rglob("*.py")):
        parts = f.relative_to(NN_DIR).with_suffix("").parts
        name = ".".join(("rf8hw.nn", *parts[:-1], *([] if parts[-1] == "__init__" else parts[-1:])))
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rf8hw"):
                if node.module == "rf8hw.nn":
                    deps |= {f"rf8hw.nn.{a.name}" for a in node.names}
                elif node.module.startswith("rf8hw.nn."):
                    deps.add(node.module)
                private += [(name, f"{node.module}.{a.name}") for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("rf8hw.nn.")}
        graph[name] = deps
    return graph, private


def test_no_import_cycles_and_no_private_imports_inside_rf8hw_nn():
    graph, private = _nn_imports()
    assert "rf8hw.nn.params" in graph and not graph["rf8hw.nn.params"]
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo += graph.get(m, ())
        assert start not in seen, f"{start} imports itself back through {sorted(seen)}"
    assert private == []
    assert "rf8hw.nn.quant.layer" in graph                      # the quant package's modules are read too
    assert not any(d.startswith("rf8hw.nn.quant") for d in graph["rf8hw.nn.bitexact"])


def test_as_array_flattens_and_refuses_bad_data():
    assert params.as_array(torch.ones(2, 3, dtype=torch.float16)).dtype == np.float64
    assert params.as_array([[1, 2], [3, 4]]).tolist() == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match=r"^w is empty; need at least one value$"):
        params.as_array([], "w")
    with pytest.raises(ValueError, match=r"^w must be real, got a complex tensor"):
        params.as_array(torch.zeros(2, dtype=torch.complex64), "w")


@pytest.mark.parametrize("check, value, ok", [
    (params.positive, 1e-300, True), (params.positive, 0.0, False), (params.positive, np.float32(2), True),
    (params.non_negative, 0, True), (params.non_negative, -1e-9, False), (params.non_negative, np.inf, False),
    (params.finite, -3, True), (params.finite, -np.inf, False), (params.finite, float("nan"), False),
    (params.positive, True, False), (params.positive, "1.0", False), (params.finite, None, False),
    (params.finite, [1.0], False),
])
def test_real_number_checks(check, value, ok):
    if ok:
        assert check("v", value) == float(value) and type(check("v", value)) is float
    else:
        rule = {params.positive: " > 0", params.non_negative: " >= 0", params.finite: ""}[check]
        with pytest.raises(ValueError, match=rf"^v must be a finite number{rule}, not "):
            check("v", value)
