"""Complex numbers and Fourier transforms: Complex, Real, Imag, ComplexAbs, FFT/IFFT(2D), RFFT/IRFFT(2D).

irc's complex dtype is c64: complex128 graphs are refused by ``tf_dtype``. The real transforms' fft_length
operand becomes the ``fft_length`` attribute, so it must be a constant.
"""

from __future__ import annotations

from irc.frontends.lowering import lowers
from irc.frontends.lowering.context import CannotLower, Lowerer, tf_dtype
from irc.frontends.tfgraph import TFNode
from irc.ir.graph import Value
from irc.ir.types import DType

PARTS = {"Real": "real", "Imag": "imag", "ComplexAbs": "complex_abs"}
TRANSFORMS = {"FFT": "fft", "IFFT": "ifft", "FFT2D": "fft2d", "IFFT2D": "ifft2d"}
REAL_TRANSFORMS = {"RFFT": "rfft", "IRFFT": "irfft", "RFFT2D": "rfft2d", "IRFFT2D": "irfft2d"}


def _only(node: TFNode, attr: str, dtype: DType) -> None:
    if attr in node.attrs and tf_dtype(node.attrs[attr]) is not dtype:
        raise CannotLower(f"{attr} {node.attrs[attr]}: irc's complex ops take {dtype.numpy.name}")


@lowers("Complex")
def complex_(cx: Lowerer, node: TFNode, args: list) -> Value:
    _only(node, "T", DType.f32)
    _only(node, "Tout", DType.c64)
    return cx.op("complex", *args)


@lowers(*PARTS)
def part(cx: Lowerer, node: TFNode, args: list) -> Value:
    _only(node, "T", DType.c64)
    _only(node, "Tout", DType.f32)
    return cx.op(PARTS[node.op], args[0])


@lowers(*TRANSFORMS)
def transform(cx: Lowerer, node: TFNode, args: list) -> Value:
    _only(node, "Tcomplex", DType.c64)
    return cx.op(TRANSFORMS[node.op], args[0])


@lowers(*REAL_TRANSFORMS)
def real_transform(cx: Lowerer, node: TFNode, args: list) -> Value:
    _only(node, "Treal", DType.f32)
    _only(node, "Tcomplex", DType.c64)
    x, lengths = args
    return cx.op(REAL_TRANSFORMS[node.op], x, fft_length=tuple(cx.ints(lengths, "fft_length")))
