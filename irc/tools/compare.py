"""Comparing attribute values and constants the way a reader of a diff wants: by meaning, briefly shown."""

from __future__ import annotations

import math

import numpy as np

from irc.ir.printer import ElidedTensor, format_attr, tensor_digest
from irc.ir.types import DType

SHOW_AT_MOST = 60  # characters of an attribute value shown in a diff line


def _tensor_key(x) -> tuple[str, tuple[int, ...]]:
    if isinstance(x, ElidedTensor):
        return x.dtype.value, tuple(x.shape)
    return DType.from_numpy(x.dtype).value, tuple(int(d) for d in x.shape)


def tensors_equal(x, y) -> bool:
    """Same dtype, shape and contents; an elided tensor compares by its content hash."""
    if x is y:
        return True
    if _tensor_key(x) != _tensor_key(y):
        return False
    if isinstance(x, ElidedTensor) or isinstance(y, ElidedTensor):
        return _digest(x) == _digest(y)
    if x.dtype.kind in "OUS":
        return [str(v) for v in x.ravel()] == [str(v) for v in y.ravel()]
    return x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")


def _digest(x) -> str:
    return x.digest if isinstance(x, ElidedTensor) else tensor_digest(x)


def tensor_summary(x) -> str:
    """``f32[3,3,3,64] sha256:0123456789abcdef``, or the literal for a small tensor (cut short)."""
    if isinstance(x, np.ndarray) and x.size > 16:
        return f"{_tensor_key(x)[0]}[{','.join(map(str, x.shape))}] sha256:{_digest(x)}"
    return _cut(format_attr(x, full=False))


def _cut(text: str) -> str:
    return text if len(text) <= SHOW_AT_MOST else text[: SHOW_AT_MOST - 4] + "...>"


def max_abs_diff(x, y) -> float | None:
    """The largest elementwise difference of two same-shaped numeric tensors (None when it cannot be computed)."""
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray) or x.shape != y.shape:
        return None
    if x.dtype.kind not in "fiub" or y.dtype.kind not in "fiub" or x.size == 0:
        return None
    return float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))))


def attrs_equal(x, y) -> bool:
    """Attribute values equal by meaning: tensors by contents, floats with nan == nan, lists elementwise."""
    if isinstance(x, (np.ndarray, ElidedTensor)) or isinstance(y, (np.ndarray, ElidedTensor)):
        both = all(isinstance(v, (np.ndarray, ElidedTensor)) for v in (x, y))
        return both and tensors_equal(x, y)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(attrs_equal(p, q) for p, q in zip(x, y))
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return type(x) is type(y) and x == y or (_is_number(x) and _is_number(y) and x == y)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def show_attr(value) -> str:
    """An attribute value as a diff line shows it: the text form, cut short."""
    if isinstance(value, (np.ndarray, ElidedTensor)):
        return tensor_summary(value)
    text = format_attr(value, full=False)
    return text if len(text) <= SHOW_AT_MOST else text[: SHOW_AT_MOST - 3] + "..."
