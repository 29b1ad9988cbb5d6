"""Shared helpers for the op tests: run an op's shape rule and kernel, compare with a TensorFlow oracle.

``check(name, inputs, attrs, expected)`` runs ``infer`` on the inputs' static types and the kernel on the inputs,
asserts the results have exactly the inferred dtype and shape and match ``expected`` (float32 tolerance relative
to the output's scale), then runs ``infer`` again with unknown and symbolic dims and an unknown rank and asserts
the relaxed types still describe the results.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from irc.ir.types import SymDim, TensorType, shapes_compatible, tensor_type_of
from irc.ops import infer_types, run_kernel

TOL = 1e-4


def rand(*shape, seed=0, dtype=np.float32, low=-1.0, high=1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(int(low), int(high), shape).astype(dtype)
    if np.dtype(dtype) == np.bool_:
        return rng.random(shape) < 0.5
    return rng.uniform(low, high, shape).astype(dtype)


def tf_run(fn, *args) -> list[np.ndarray]:
    """fn(*args) in TensorFlow, as a list of numpy arrays."""
    out = fn(*[tf.constant(a) for a in args])
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o.numpy() if hasattr(o, "numpy") else o) for o in outs]


def assert_close(got: np.ndarray, want: np.ndarray, tol: float = TOL) -> None:
    assert got.shape == want.shape, f"shape {got.shape} != expected {want.shape}"
    if got.dtype.kind in "fc":
        finite = np.isfinite(want)
        assert np.array_equal(np.isfinite(got), finite), "inf/nan positions differ"
        assert np.array_equal(got[~finite], want[~finite], equal_nan=True), "inf/nan values differ"
        if finite.any():
            scale = max(1.0, float(np.max(np.abs(want[finite]))))
            wide = np.complex128 if got.dtype.kind == "c" else np.float64  # float64 would drop an imaginary part
            err = float(np.max(np.abs(got[finite].astype(wide) - want[finite])))
            assert err <= tol * scale, f"max abs error {err} > {tol} * {scale}"
    else:
        np.testing.assert_array_equal(got, want)


def relaxed_types(types: list[TensorType]):
    """Variants of ``types`` with less shape information: all dims unknown, first dim symbolic, rank unknown."""
    def unknown(t):
        return t.with_shape(tuple(None for _ in t.shape))

    def symbolic(t):
        return t.with_shape((SymDim("batch"),) + t.shape[1:]) if t.shape else t

    yield "unknown dims", [unknown(t) for t in types]
    yield "symbolic batch", [symbolic(t) for t in types]
    yield "unknown rank", [t.with_shape(None) for t in types]


def check(name: str, inputs, attrs: dict, expected, *, tol: float = TOL, relax: tuple[str, ...] = (
        "unknown dims", "symbolic batch", "unknown rank")) -> list[np.ndarray]:
    """Checks op ``name`` on ``inputs`` against ``expected`` (an array or a list of them)."""
    inputs = [np.asarray(x) for x in inputs]
    expected = [np.asarray(e) for e in (expected if isinstance(expected, list) else [expected])]
    types = [tensor_type_of(x) for x in inputs]
    inferred = infer_types(name, types, attrs)
    outs = run_kernel(name, inputs, attrs)
    assert len(outs) == len(inferred) == len(expected), f"{len(outs)} results, {len(inferred)} inferred"
    for out, t, want in zip(outs, inferred, expected):
        assert out.dtype == t.dtype.numpy, f"kernel gives {out.dtype}, infer says {t.dtype.value}"
        assert out.shape == t.shape, f"kernel gives shape {out.shape}, infer says {t.shape}"
        assert out.dtype == want.dtype, f"kernel gives {out.dtype}, TensorFlow {want.dtype}"
        assert_close(out, want, tol)
    for label, variant in relaxed_types(types):
        if label not in relax:
            continue
        for out, t in zip(outs, infer_types(name, variant, attrs)):
            assert t.dtype.numpy == out.dtype, f"{label}: dtype {t.dtype.value}"
            assert shapes_compatible(t.shape, out.shape), f"{label}: inferred {t.shape} for {out.shape}"
    return outs


def infer_shape(name: str, shapes, attrs: dict | None = None, dtype=None) -> tuple | None:
    """The single result shape ``infer`` gives for operands of ``shapes`` (f32 unless ``dtype``)."""
    from irc.ir.types import DType

    dtype = dtype or DType.f32
    types = [TensorType(dtype, None if s is None else tuple(s)) for s in shapes]
    return infer_types(name, types, attrs or {})[0].shape
