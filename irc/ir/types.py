"""Tensor types: dtypes, shapes with unknown or symbolic dimensions, quantization parameters.

All of these are frozen (hashable, comparable) so that types can be shared freely between values.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from typing import Union

import numpy as np


class DType(enum.Enum):
    """Element types. The value is the short name used in the text form."""

    f32 = "f32"
    f16 = "f16"
    bf16 = "bf16"
    f64 = "f64"
    i8 = "i8"
    i4 = "i4"  # 4-bit weights: held in int8 arrays with values in [-8, 7], packed two per byte in .tflite files
    u8 = "u8"
    i16 = "i16"
    i32 = "i32"
    i64 = "i64"
    bool = "bool"
    str = "str"
    c64 = "c64"  # complex64: two f32s (real, imaginary); spectral ops (fft2d, rfft, ...) make and take it

    @property
    def numpy(self) -> np.dtype:
        if self is DType.bf16:
            import ml_dtypes  # shipped with tensorflow and jax; only needed for bfloat16

            return np.dtype(ml_dtypes.bfloat16)
        if self is DType.i4:
            return np.dtype(np.int8)
        return np.dtype(_NUMPY_NAMES[self])

    @property
    def is_float(self) -> bool:
        return self in (DType.f32, DType.f16, DType.bf16, DType.f64)

    @property
    def is_complex(self) -> bool:
        return self is DType.c64

    @property
    def is_integer(self) -> bool:
        return self in (DType.i4, DType.i8, DType.u8, DType.i16, DType.i32, DType.i64)

    @property
    def int_range(self) -> tuple[int, int]:
        """The smallest and largest value of an integer dtype (i4: -8 and 7, though held in int8 arrays)."""
        if self is DType.i4:
            return -8, 7
        info = np.iinfo(self.numpy)
        return int(info.min), int(info.max)

    @property
    def itemsize(self) -> int:
        return 8 if self is DType.str else self.numpy.itemsize

    @classmethod
    def from_numpy(cls, dtype) -> DType:
        dtype = np.dtype(dtype)
        if dtype.name == "bfloat16":
            return cls.bf16
        if dtype.kind in "OUS":
            return cls.str
        for member, name in _NUMPY_NAMES.items():
            if dtype == np.dtype(name):
                return member
        raise ValueError(f"no irc dtype for numpy dtype {dtype}")

    @classmethod
    def parse(cls, name: str) -> DType:
        """Accepts irc names (f32) and numpy/TF names (float32)."""
        if name in cls._value2member_map_:
            return cls(name)
        if name in _LONG_NAMES:
            return _LONG_NAMES[name]
        raise ValueError(f"unknown dtype {name!r}")


_NUMPY_NAMES = {
    DType.f32: "float32", DType.f16: "float16", DType.f64: "float64",
    DType.i8: "int8", DType.u8: "uint8", DType.i16: "int16", DType.i32: "int32", DType.i64: "int64",
    DType.bool: "bool", DType.str: "object", DType.c64: "complex64",
}
_LONG_NAMES = {name: member for member, name in _NUMPY_NAMES.items() if member is not DType.str}
_LONG_NAMES.update({"int4": DType.i4, "bfloat16": DType.bf16, "string": DType.str, "half": DType.f16, "double": DType.f64})


@dataclass(frozen=True)
class SymDim:
    """A named unknown dimension (e.g. ``batch``): two dims with the same name are equal at run time.

    A name ending in ``_x`` and a number K > 1 (``batch_x16``) stands for K times the dim before it: Swin's
    windows and space-to-batch fold the batch into ``batch * K`` rows, and ``//`` K unfolds them again. Use
    ``scale_dim`` and ``split_sym`` rather than spelling such names.
    """

    name: str

    def __str__(self) -> str:
        return self.name


_SCALED = re.compile(r"(.+)_x([1-9][0-9]{0,17})")  # at most 18 digits: a hostile name cannot make a huge int


def split_sym(d: SymDim) -> tuple[SymDim, int]:
    """(base symbol, factor): ``batch_x16`` -> (batch, 16), ``batch`` -> (batch, 1)."""
    match = _SCALED.fullmatch(d.name)
    if match is None or int(match[2]) < 2 or match[2].startswith("0"):
        return d, 1
    return SymDim(match[1]), int(match[2])


def scale_dim(d: Dim, factor: int) -> Dim:
    """``d`` times a positive int ``factor``: an int, a scaled symbol (``batch`` * 16 = ``batch_x16``) or None."""
    if isinstance(d, int):
        return d * factor
    if not isinstance(d, SymDim) or factor < 1:
        return None
    base, k = split_sym(d)
    k *= factor
    return base if k == 1 else SymDim(f"{base.name}_x{k}")


def divide_dim(d: Dim, divisor: int) -> Dim:
    """``d`` divided by a positive int ``divisor`` when that is exact (``batch_x16`` / 4 = ``batch_x4``), else
    None (an int ``d`` that it does not divide is floored, as TF's FloorDiv does)."""
    if isinstance(d, int):
        return d // divisor if divisor > 0 else None
    if not isinstance(d, SymDim) or divisor < 1:
        return None
    base, k = split_sym(d)
    if k % divisor:
        return None
    return scale_dim(base, k // divisor)


# A dimension is a known size, a symbolic name, or None (unknown, unrelated to any other).
Dim = Union[int, SymDim, None]


def dim_str(d: Dim) -> str:
    return "?" if d is None else str(d)


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point). ``axis`` is set for per-channel parameters.

    ``block_size`` (blockwise, 2-D tensors only): every channel along ``axis`` is cut into blocks of that many
    elements along the other axis, each with a scale of its own; ``scale`` then lists them channel by channel
    (``channels * blocks`` values, a [channels, blocks] array read row by row).
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None
    block_size: int | None = None

    def __post_init__(self):
        if len(self.scale) != len(self.zero_point) or not self.scale:
            raise ValueError("quantization needs as many zero points as scales, and at least one")
        if self.axis is None and len(self.scale) != 1:
            raise ValueError("per-tensor quantization has exactly one scale")
        if self.block_size is not None and (self.axis is None or self.block_size < 1):
            raise ValueError("blockwise quantization needs a channel axis and a positive block size")

    @property
    def per_axis(self) -> bool:
        return self.axis is not None


@dataclass(frozen=True)
class TensorType:
    """The type of a value: dtype, shape (None = unknown rank) and optional quantization."""

    dtype: DType
    shape: tuple[Dim, ...] | None
    quant: QuantParams | None = None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    @property
    def num_elements(self) -> int | None:
        if not self.is_static:
            return None
        return math.prod(self.shape)  # exact: numpy's int64 product wraps for huge (hostile) shapes

    def with_shape(self, shape) -> TensorType:
        return TensorType(self.dtype, None if shape is None else tuple(shape), self.quant)

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(dtype, self.shape, None)

    def with_quant(self, quant: QuantParams | None) -> TensorType:
        return TensorType(self.dtype, self.shape, quant)

    def __str__(self) -> str:
        from irc.ir.printer import format_type

        return format_type(self)


def tensor_type_of(array: np.ndarray) -> TensorType:
    return TensorType(DType.from_numpy(array.dtype), tuple(int(d) for d in array.shape))


def dims_compatible(a: Dim, b: Dim) -> bool:
    """Whether two dims may describe the same run-time size."""
    if a is None or b is None:
        return True
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, SymDim) and isinstance(b, SymDim):
        return a == b
    return True  # a symbol may stand for any known size


def shapes_compatible(a: tuple[Dim, ...] | None, b: tuple[Dim, ...] | None) -> bool:
    if a is None or b is None:
        return True
    return len(a) == len(b) and all(dims_compatible(x, y) for x, y in zip(a, b))


def join_dims(a: Dim, b: Dim) -> Dim:
    """The most precise dim that describes both: equal dims stay, different ones become unknown."""
    return a if a == b else None


def join_types(a: TensorType, b: TensorType) -> TensorType:
    """The type of a value that is ``a`` on one path and ``b`` on another (an ``if``'s branches, a loop's
    iterations): same dtype, shapes joined dimension by dimension (a rank that differs is unknown)."""
    if a.dtype != b.dtype:
        raise ValueError(f"{a} and {b} have different dtypes")
    if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
        shape = None
    else:
        shape = tuple(join_dims(x, y) for x, y in zip(a.shape, b.shape))
    return TensorType(a.dtype, shape, a.quant if a.quant == b.quant else None)
