"""Complex numbers and Fourier transforms: ``complex``, ``real``, ``imag``, ``complex_abs`` and the FFTs.

irc's complex dtype is ``c64`` (two f32s). The transforms are TensorFlow's: over the innermost one or two dims,
unnormalized forward, ``1/n`` on the inverse. ``fft_length`` (an attribute, as every shape-like parameter) gives
the real signal's length per transformed dim: the operand is cropped or zero-padded to it (for the inverse real
transforms, to ``fft_length // 2 + 1`` complex entries in the innermost dim).
"""

from __future__ import annotations

import numpy as np

from irc.ir.types import DType, TensorType
from irc.ops.base import ELEMENTWISE, PURE, Attr, OpDef, broadcast_shapes, register


def _needs(t: TensorType, dtype: DType, what: str) -> None:
    if t.dtype is not dtype:
        raise ValueError(f"{what} takes a {dtype.value} tensor, got {t.dtype.value}")


def _needs_rank(t: TensorType, rank: int, what: str) -> None:
    if t.shape is not None and len(t.shape) < rank:
        raise ValueError(f"{what} transforms the innermost {rank} dim(s): it needs rank >= {rank}, got {t}")


# ----- complex numbers -------------------------------------------------------------------------------------------
@register
class Complex(OpDef):
    name = "complex"
    summary = "real + i * imag from two f32 tensors (broadcasting) to c64."
    operands = ("real", "imag")
    traits = frozenset({PURE, ELEMENTWISE})

    def infer(self, types, attrs, consts):
        re, im = types
        _needs(re, DType.f32, "complex")
        _needs(im, DType.f32, "complex")
        return [TensorType(DType.c64, broadcast_shapes(re.shape, im.shape))]

    def kernel(self, inputs, attrs):
        re, im = inputs
        return [(re.astype(np.complex64) + np.complex64(1j) * im.astype(np.complex64)).astype(np.complex64)]


class ComplexToReal(OpDef):
    """c64 -> f32, elementwise."""

    operands = ("x",)
    traits = frozenset({PURE, ELEMENTWISE})

    def infer(self, types, attrs, consts):
        _needs(types[0], DType.c64, self.name)
        return [TensorType(DType.f32, types[0].shape)]

    def kernel(self, inputs, attrs):
        return [np.asarray(self.part(inputs[0])).astype(np.float32)]

    @staticmethod
    def part(x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@register
class Real(ComplexToReal):
    name = "real"
    summary = "The real part of a c64 tensor, as f32."
    part = staticmethod(np.real)


@register
class Imag(ComplexToReal):
    name = "imag"
    summary = "The imaginary part of a c64 tensor, as f32."
    part = staticmethod(np.imag)


@register
class ComplexAbs(ComplexToReal):
    name = "complex_abs"
    summary = "|x| = sqrt(re^2 + im^2) of a c64 tensor, as f32."
    part = staticmethod(np.abs)


# ----- Fourier transforms ------------------------------------------------------------------------------------------
class ComplexFFT(OpDef):
    """c64 -> c64 over the innermost ``dims`` dims."""

    operands = ("x",)
    dims = 1
    inverse = False

    def infer(self, types, attrs, consts):
        _needs(types[0], DType.c64, self.name)
        _needs_rank(types[0], self.dims, self.name)
        return [TensorType(DType.c64, types[0].shape)]

    def kernel(self, inputs, attrs):
        axes = tuple(range(-self.dims, 0))
        fn = np.fft.ifftn if self.inverse else np.fft.fftn
        return [fn(inputs[0], axes=axes).astype(np.complex64)]


@register
class FFT(ComplexFFT):
    name = "fft"
    summary = "Discrete Fourier transform over the innermost dim (TensorFlow's FFT)."


@register
class IFFT(ComplexFFT):
    name = "ifft"
    summary = "Inverse discrete Fourier transform over the innermost dim, scaled by 1/n (TensorFlow's IFFT)."
    inverse = True


@register
class FFT2D(ComplexFFT):
    name = "fft2d"
    summary = "2-D discrete Fourier transform over the innermost two dims (TensorFlow's FFT2D)."
    dims = 2


@register
class IFFT2D(ComplexFFT):
    name = "ifft2d"
    summary = "Inverse 2-D discrete Fourier transform over the innermost two dims (TensorFlow's IFFT2D)."
    dims = 2
    inverse = True


class RealFFT(OpDef):
    """f32 -> c64 (forward) or c64 -> f32 (inverse) over the innermost ``dims`` dims, with ``fft_length``."""

    operands = ("x",)
    attrs = {"fft_length": Attr("ints")}
    dims = 1
    inverse = False

    def infer(self, types, attrs, consts):
        x = types[0]
        _needs(x, DType.c64 if self.inverse else DType.f32, self.name)
        _needs_rank(x, self.dims, self.name)
        lengths = tuple(attrs["fft_length"])
        if len(lengths) != self.dims or any(n < 0 for n in lengths):
            raise ValueError(f"{self.name} takes fft_length of {self.dims} non-negative length(s), got {list(lengths)}")
        if self.inverse and any(n == 0 for n in lengths):
            raise ValueError(f"{self.name} needs positive fft_length, got {list(lengths)}")
        out = lengths if self.inverse else lengths[:-1] + (lengths[-1] // 2 + 1,)
        shape = None if x.shape is None else tuple(x.shape[:-self.dims]) + out
        return [TensorType(DType.f32 if self.inverse else DType.c64, shape)]

    def kernel(self, inputs, attrs):
        x, lengths = inputs[0], tuple(attrs["fft_length"])
        axes = tuple(range(-self.dims, 0))
        if not self.inverse:
            if 0 in lengths:  # numpy refuses an empty transform; TensorFlow gives zeros
                return [np.zeros(x.shape[:-self.dims] + lengths[:-1] + (lengths[-1] // 2 + 1,), np.complex64)]
            return [np.fft.rfftn(x, s=lengths, axes=axes).astype(np.complex64)]
        return [np.fft.irfftn(x, s=lengths, axes=axes).astype(np.float32)]


@register
class RFFT(RealFFT):
    name = "rfft"
    summary = "Real-input Fourier transform over the innermost dim: fft_length // 2 + 1 c64 results (TF's RFFT)."


@register
class IRFFT(RealFFT):
    name = "irfft"
    summary = "Inverse of rfft: fft_length f32 results over the innermost dim (TensorFlow's IRFFT)."
    inverse = True


@register
class RFFT2D(RealFFT):
    name = "rfft2d"
    summary = "Real-input 2-D Fourier transform over the innermost two dims (TensorFlow's RFFT2D)."
    dims = 2


@register
class IRFFT2D(RealFFT):
    name = "irfft2d"
    summary = "Inverse of rfft2d over the innermost two dims (TensorFlow's IRFFT2D)."
    dims = 2
    inverse = True
