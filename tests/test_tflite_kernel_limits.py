"""TFLite kernels' rank and broadcast limits (irc/backends/tflite/kernel_limits.py).

A broadcast beyond a kernel's rank (Gemma's 5-D GREATER against a scalar) aborted TFLite's interpreter: irc must
merge it to fit or refuse it at conversion. The files are run in TensorFlow's own interpreter in a child process,
so an abort fails the test instead of killing pytest.
"""

from __future__ import annotations

import importlib
import inspect
import re

import numpy as np
import pytest

import irc
from irc.backends.tflite import backend, kernel_limits
from irc.backends.tflite.kernel_limits import LIMITS, merge_groups
from irc.backends.tflite.ops import MAX_VERSION, rules
from irc.errors import TargetError
from irc.formats.tflite import opnames
from irc.formats.tflite.flatbuffer import read_model
from irc.formats.tflite.schema import BUILTIN_OPERATOR
from tests.hostile import run_irc
from tests.tflite_subprocess import run_tflite_models


def emitted_builtins() -> set[str]:
    """Every builtin code irc's emitters can write: string literals naming a BuiltinOperator in the emitter
    modules (the registry's own and its plugins') and the backend, and the op-name tables they emit by."""
    modules = {rule.emit.__module__ for rule in rules().values()} | {backend.__name__, "irc.backends.tflite.ops"}
    words = set()
    for name in modules:
        words |= set(re.findall(r'"([A-Z][A-Z0-9_]+)"', inspect.getsource(importlib.import_module(name))))
    for table in (opnames.ARITHMETIC, opnames.BINARY, opnames.UNARY, opnames.REDUCE, opnames.ACTIVATION_OPS):
        words |= set(table.values())
    words |= set(MAX_VERSION)
    return words & set(BUILTIN_OPERATOR.codes)


def test_every_emitted_builtin_has_limits():
    builtins = emitted_builtins()
    assert {"LESS", "CONV_2D", "SELECT_V2", "RESHAPE"} <= builtins  # the scan finds what it should
    missing = sorted(builtins - set(LIMITS))
    assert not missing, f"builtins irc writes without an entry in kernel_limits.LIMITS: {missing}"


def test_limits_name_real_builtins():
    assert set(LIMITS) <= set(BUILTIN_OPERATOR.codes)
    for code, limit in LIMITS.items():
        assert limit.source, code
        assert limit.broadcast is None or 4 <= limit.broadcast <= 8, code


@pytest.mark.parametrize("shapes, out, groups", [
    ([[1, 1, 1, 8, 8], [1, 1, 1, 1, 1]], [1, 1, 1, 8, 8], [[0, 1, 2, 3, 4]]),  # Gemma's mask against a scalar
    ([[2, 3, 1, 4, 5], [1, 1, 6, 1, 1]], [2, 3, 6, 4, 5], [[0, 1], [2], [3, 4]]),
    ([[2, 1, 2, 1, 2], [1, 2, 1, 2, 1]], [2, 2, 2, 2, 2], [[0], [1], [2], [3], [4]]),  # nothing merges
    ([[-1, 1, 8], [1, 1, 1]], [-1, 1, 8], [[0, 1, 2]]),  # an unknown batch dim broadcasts like a known one
])
def test_merge_groups(shapes, out, groups):
    assert merge_groups(shapes, out) == groups


def _graph(name: str, inputs: dict[str, str], body: str, out: str) -> str:
    args = ", ".join(f"%{k}: {t}" for k, t in inputs.items())
    return f'graph @{name}({args}) {{\n  %0 = {body} : {out}\n  return %0 as "y"\n}}'


# (graph text, inputs, numpy reference): broadcasts beyond the kernel's rank that merge to fit
_RNG = np.random.default_rng(0)
_F = lambda *s: _RNG.normal(size=s).astype(np.float32)
CASES = {
    "greater_5d_scalar": (_graph("g", {"a": "f32[1,1,1,8,8]", "b": "f32[]"}, "greater(%a, %b)", "bool[1,1,1,8,8]"),
                          {"a": _F(1, 1, 1, 8, 8), "b": np.float32(0.1)}, np.greater),
    "less_5d": (_graph("l", {"a": "f32[2,3,1,4,5]", "b": "f32[1,1,6,1,1]"}, "less(%a, %b)", "bool[2,3,6,4,5]"),
                {"a": _F(2, 3, 1, 4, 5), "b": _F(1, 1, 6, 1, 1)}, np.less),
    "equal_6d_rank_differs": (
        _graph("e", {"a": "i32[2,1,3,4,5,6]", "b": "i32[7,1,1,1,1]"}, "equal(%a, %b)", "bool[2,7,3,4,5,6]"),
        {"a": _RNG.integers(0, 3, (2, 1, 3, 4, 5, 6)).astype(np.int32),
         "b": _RNG.integers(0, 3, (7, 1, 1, 1, 1)).astype(np.int32)}, np.equal),
    "logical_and_5d": (
        _graph("la", {"a": "bool[2,2,2,1,3]", "b": "bool[1,1,1,4,1]"}, "logical_and(%a, %b)", "bool[2,2,2,4,3]"),
        {"a": _RNG.random((2, 2, 2, 1, 3)) > 0.5, "b": _RNG.random((1, 1, 1, 4, 1)) > 0.5}, np.logical_and),
    "floor_mod_5d": (
        _graph("fm", {"a": "i32[2,3,4,5,6]", "b": "i32[6]"}, "floor_mod(%a, %b)", "i32[2,3,4,5,6]"),
        {"a": _RNG.integers(-9, 9, (2, 3, 4, 5, 6)).astype(np.int32), "b": np.arange(1, 7, dtype=np.int32)},
        np.mod),
    "pow_5d": (_graph("p", {"a": "f32[2,3,4,5,6]", "b": "f32[6]"}, "pow(%a, %b)", "f32[2,3,4,5,6]"),
               {"a": np.abs(_F(2, 3, 4, 5, 6)) + 0.5, "b": _F(6)}, np.power),
    "mul_8d": (_graph("m", {"a": "f32[2,2,2,2,1,1,1,1]", "b": "f32[1,1,1,1,3,3,3,3]"}, "mul(%a, %b)",
                      "f32[2,2,2,2,3,3,3,3]"),
               {"a": _F(2, 2, 2, 2, 1, 1, 1, 1), "b": _F(1, 1, 1, 1, 3, 3, 3, 3)}, np.multiply),
    "select_7d": (
        _graph("s", {"c": "bool[1,1,1,2,3,1,1]", "x": "f32[2,2,2,2,3,4,1]", "y": "f32[]"}, "select(%c, %x, %y)",
               "f32[2,2,2,2,3,4,1]"),
        {"c": _RNG.random((1, 1, 1, 2, 3, 1, 1)) > 0.5, "x": _F(2, 2, 2, 2, 3, 4, 1), "y": np.float32(-1)},
        np.where),
    # past REVERSE_V2's 8 dims: each run of reversed axes is the middle of a 3-D reshape
    "reverse_9d": (
        _graph("r", {"a": "f32[batch,2,1,2,3,1,2,2,3]"}, "reverse(%a) {axes = [1, 3, 4, 7]}", "f32[batch,2,1,2,3,1,2,2,3]"),
        {"a": _F(2, 2, 1, 2, 3, 1, 2, 2, 3)}, lambda a: np.flip(a, (1, 3, 4, 7))),
    # GATHER_ND and SCATTER_ND have no rank limit (probed to 10 dims)
    "gather_nd_9d": (
        _graph("gn", {"p": "f32[2,3,2,2,2,2,2,2,2]", "i": "i32[4,2]"}, "gather_nd(%p, %i)", "f32[4,2,2,2,2,2,2,2]"),
        {"p": _F(2, 3, 2, 2, 2, 2, 2, 2, 2), "i": np.array([[0, 2], [1, 0], [1, 1], [0, 0]], np.int32)},
        lambda p, i: p[tuple(i.T)]),
    "scatter_nd_9d": (
        _graph("sn", {"i": "i32[2,1]", "u": "f32[2,2,2,2,2,2,2,2,2]"}, "scatter_nd(%i, %u) {shape = [3,2,2,2,2,2,2,2,2]}",
               "f32[3,2,2,2,2,2,2,2,2]"),
        {"i": np.array([[2], [0]], np.int32), "u": _F(2, 2, 2, 2, 2, 2, 2, 2, 2)},
        lambda i, u: np.stack([u[1], np.zeros_like(u[0]), u[0]])),
    "less_dynamic_batch": (
        _graph("d", {"a": "f32[batch,1,1,8,8]", "b": "f32[]"}, "less(%a, %b)", "bool[batch,1,1,8,8]"),
        {"a": _F(3, 1, 1, 8, 8), "b": np.float32(0.0)}, np.less),
}


def test_over_rank_broadcasts_run_in_tflite(tmp_path):
    models = []
    for name, (text, inputs, _) in CASES.items():
        path = tmp_path / f"{name}.tflite"
        irc.lower(irc.parse(text), "tflite", output=path)
        models.append((path, inputs))
    results = run_tflite_models(models)
    for (name, (_, inputs, reference)), got in zip(CASES.items(), results):
        want = reference(*inputs.values())
        np.testing.assert_allclose(got["y"], want, rtol=1e-6, err_msg=name)


def test_broadcast_that_cannot_merge_is_refused_naming_the_node():
    text = _graph("bad", {"a": "f32[2,1,2,1,2]", "b": "f32[1,2,1,2,1]"}, "less(%a, %b)", "bool[2,2,2,2,2]")
    with pytest.raises(TargetError, match=r"less at .*LESS broadcasts over at most 4 dimensions"):
        irc.lower(irc.parse(text), "tflite")


@pytest.mark.parametrize("body, inputs, out, fragment", [
    ("transpose(%a) {perm = [6, 5, 4, 3, 2, 1, 0]}", {"a": "f32[1,2,1,2,1,2,1]"}, "f32[1,2,1,2,1,2,1]",
     "TRANSPOSE takes at most 6 dimensions"),
    ("batch_matmul(%a, %b)", {"a": "f32[1,2,1,2,3,4]", "b": "f32[1,2,1,2,4,5]"}, "f32[1,2,1,2,3,5]",
     "BATCH_MATMUL takes at most 5 dimensions"),
    ("concat(%a, %a) {axis = 0}", {"a": "f32[1,2,1,2,1,2,1]"}, "f32[2,2,1,2,1,2,1]",
     "CONCATENATION takes at most 6 dimensions"),  # XNNPACK's limit
])
def test_over_rank_operands_are_refused(body, inputs, out, fragment):
    with pytest.raises(TargetError, match=fragment):
        irc.lower(irc.parse(_graph("bad", inputs, body, out)), "tflite")


def test_refusal_is_one_line_from_the_cli(tmp_path):
    text = _graph("bad", {"a": "f32[2,1,2,1,2]", "b": "f32[1,2,1,2,1]"}, "less(%a, %b)", "bool[2,2,2,2,2]")
    (tmp_path / "bad.irc").write_text(text)
    outcome = run_irc(["lower", "bad.irc", "--emit", "tflite", "-o", "bad.tflite"], cwd=tmp_path)
    assert outcome.returncode == 1, outcome.stderr
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "LESS" in lines[0], outcome.stderr
    assert not (tmp_path / "bad.tflite").exists()


def test_fit_leaves_operators_inside_their_limits_alone():
    text = _graph("ok", {"a": "f32[2,3,1,4]", "b": "f32[1,1,5,1]"}, "less(%a, %b)", "bool[2,3,5,4]")
    model = read_model(irc.lower(irc.parse(text), "tflite"))
    assert [model.operator_codes[op.opcode_index].builtin_code for op in model.subgraphs[0].operators] == ["LESS"]


def test_merged_broadcast_is_reshaped_around_the_operator():
    text = _graph("g", {"a": "f32[1,1,1,8,8]", "b": "f32[]"}, "greater(%a, %b)", "bool[1,1,1,8,8]")
    model = read_model(irc.lower(irc.parse(text), "tflite"))
    graph = model.subgraphs[0]
    codes = [model.operator_codes[op.opcode_index].builtin_code for op in graph.operators]
    assert codes == ["RESHAPE", "RESHAPE", "GREATER", "RESHAPE"]
    greater = graph.operators[2]
    assert [graph.tensors[i].shape for i in greater.inputs] == [[64], [1]]
    assert kernel_limits.LIMITS["GREATER"].broadcast == 4
