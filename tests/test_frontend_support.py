"""Helpers for the frontend tests: inputs, running TensorFlow references, comparing, graph checks."""

from __future__ import annotations

import numpy as np

from irc.ir.graph import Graph
from irc.ir.interpreter import run
from irc.ir.types import DType
from irc.ir.verify import verify

VOCAB = 500  # the smallest vocabulary of the zoo's text models


def make_inputs(graph: Graph, seed: int = 0, batch: int = 2) -> dict[str, np.ndarray]:
    """Random inputs for ``graph``: normal floats, token ids below VOCAB; unknown dims are ``batch``."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for v in graph.inputs:
        shape = tuple(d if isinstance(d, int) else batch for d in v.type.shape)
        if v.type.dtype.is_float:
            arrays[v.name] = rng.standard_normal(shape).astype(v.type.dtype.numpy)
        elif v.type.dtype is DType.bool:
            arrays[v.name] = rng.random(shape) < 0.5
        else:
            arrays[v.name] = rng.integers(0, VOCAB, shape).astype(v.type.dtype.numpy)
    return arrays


def max_error(out: dict, ref: dict) -> dict[str, tuple[float, float]]:
    """Per output: (max abs error, max abs reference value)."""
    assert set(out) == set(ref), f"outputs differ: irc {sorted(out)}, TF {sorted(ref)}"
    result = {}
    for name, r in ref.items():
        r = np.asarray(r)
        o = out[name]
        assert o.shape == r.shape, f"{name}: irc shape {o.shape}, TF {r.shape}"
        assert o.dtype == r.dtype, f"{name}: irc dtype {o.dtype}, TF {r.dtype}"
        err = float(np.max(np.abs(o.astype(np.float64) - r.astype(np.float64)))) if r.size else 0.0
        result[name] = (err, float(np.max(np.abs(r))) if r.size else 0.0)
    return result


def assert_close(out: dict, ref: dict, rel: float = 1e-4) -> dict[str, float]:
    """max |irc - TF| <= rel * max(1, max |TF|) for every output; returns the errors."""
    errors = {}
    for name, (err, scale) in max_error(out, ref).items():
        assert err <= rel * max(1.0, scale), f"{name}: max error {err:.3g} (max |ref| {scale:.3g})"
        errors[name] = err
    return errors


def assert_depends_on_input(reference, graph: Graph) -> None:
    """A model test's reference outputs must change with the input. Random weights can make them constant
    (MobileNetV2's softmax was exactly 1/1000 everywhere), and then comparing anything with them checks nothing."""
    first, second = reference(make_inputs(graph, seed=11)), reference(make_inputs(graph, seed=12))
    for name, a in first.items():
        a, b = np.asarray(a, np.float64), np.asarray(second[name], np.float64)
        spread, scale = float(np.max(np.abs(a - b))), float(np.max(np.abs(a)))
        assert spread > 1e-3 * scale, (f"{name}: the reference gives the same output for two different random inputs "
                                       f"(max difference {spread:.3g}, max |output| {scale:.3g}): comparing it checks "
                                       "nothing")


def check_graph(graph: Graph, opaque: bool = False) -> None:
    """The invariants every lowered graph keeps: it verifies and each node names the TF node it came from."""
    verify(graph)
    unlocated = [n for n in graph.nodes if not n.loc.names]
    assert not unlocated, f"nodes without a TF location: {unlocated[:3]}"
    if not opaque:
        assert not [n for n in graph.nodes if n.is_opaque], "unexpected opaque TF ops"


def compare(graph: Graph, reference, inputs: dict, rel: float = 1e-4) -> dict[str, float]:
    """Runs ``graph`` in the interpreter and ``reference(inputs) -> dict`` and compares them."""
    out = run(graph, inputs)
    ref = {k: np.asarray(v) for k, v in reference(inputs).items()}
    return assert_close(out, ref, rel)


def test_frontend_doc_lists_every_covered_op():
    """docs/frontend.md's "Covered TF ops" list is the registry's (regenerate it when a lowering is added)."""
    import re
    from pathlib import Path

    from irc.frontends.lowering import supported_ops

    doc = (Path(__file__).parent.parent / "docs" / "frontend.md").read_text()
    count, body = re.search(r"### Covered TF ops \((\d+)\)\n\n(.*?)\.\n\n", doc, re.DOTALL).groups()
    listed = [op.strip() for op in body.replace("\n", " ").split(",")]
    assert listed == sorted(supported_ops()) and int(count) == len(listed)
