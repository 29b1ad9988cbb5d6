"""The complex dtype and the Fourier transforms: shape rules and reference kernels against TensorFlow."""

import numpy as np
import pytest
import tensorflow as tf

from irc.ir.types import DType, SymDim
from tests.op_oracle import check, infer_shape, rand, tf_run

B = SymDim("batch")


def crand(*shape, seed=0) -> np.ndarray:
    return (rand(*shape, seed=seed) + 1j * rand(*shape, seed=seed + 100)).astype(np.complex64)


def test_complex_parts():
    re, im = rand(3, 4, seed=1), rand(4, seed=2)
    z = tf_run(tf.complex, re, np.broadcast_to(im, (3, 4)).copy())[0]
    check("complex", [re, im], {}, z)
    x = crand(2, 5, seed=3)
    check("real", [x], {}, tf_run(tf.math.real, x)[0])
    check("imag", [x], {}, tf_run(tf.math.imag, x)[0])
    check("complex_abs", [x], {}, tf_run(tf.abs, x)[0])


@pytest.mark.parametrize("op, fn", [("fft", tf.signal.fft), ("ifft", tf.signal.ifft),
                                    ("fft2d", tf.signal.fft2d), ("ifft2d", tf.signal.ifft2d)])
def test_complex_transforms(op, fn):
    x = crand(2, 6, 8, seed=4)
    check(op, [x], {}, tf_run(fn, x)[0])


@pytest.mark.parametrize("n", [8, 5, 12, 1])
def test_rfft_irfft(n):
    x = rand(3, 8, seed=5)
    spectrum = tf_run(lambda v: tf.signal.rfft(v, [n]), x)[0]
    check("rfft", [x], {"fft_length": (n,)}, spectrum)
    z = crand(3, 5, seed=6)  # a spectrum that is not Hermitian-consistent: IRFFT's own conventions apply
    check("irfft", [z], {"fft_length": (n,)}, tf_run(lambda v: tf.signal.irfft(v, [n]), z)[0])


@pytest.mark.parametrize("lengths", [(6, 8), (4, 5), (8, 10)])
def test_rfft2d_irfft2d(lengths):
    x = rand(2, 6, 8, seed=7)
    check("rfft2d", [x], {"fft_length": lengths}, tf_run(lambda v: tf.signal.rfft2d(v, lengths), x)[0])
    z = crand(2, 6, 5, seed=8)
    check("irfft2d", [z], {"fft_length": lengths}, tf_run(lambda v: tf.signal.irfft2d(v, lengths), z)[0])


def test_shape_rules():
    assert infer_shape("rfft", [(B, 7, 16)], {"fft_length": (16,)}) == (B, 7, 9)
    assert infer_shape("irfft2d", [(B, 7, 9)], {"fft_length": (7, 16)}, dtype=DType.c64) == (B, 7, 16)
    assert infer_shape("fft2d", [(B, 3, 4)], dtype=DType.c64) == (B, 3, 4)
    with pytest.raises(ValueError, match="takes a c64 tensor"):
        infer_shape("fft", [(2, 4)])
    with pytest.raises(ValueError, match="takes a f32 tensor"):
        infer_shape("real", [(2, 4)], dtype=DType.c64) and infer_shape("complex", [(2,), (2,)], dtype=DType.c64)
    with pytest.raises(ValueError, match="rank >= 2"):
        infer_shape("fft2d", [(4,)], dtype=DType.c64)
    with pytest.raises(ValueError, match="fft_length"):
        infer_shape("rfft2d", [(4, 4)], {"fft_length": (4,)})


def test_c64_in_the_text_form():
    """c64 types and constants print and parse back (constants as bytes); a list of numbers is refused."""
    from irc.errors import InputError
    from irc.ir.graph import Graph
    from irc.ir.parser import parse
    from irc.ir.printer import print_graph
    from irc.ir.types import TensorType

    g = Graph("c")
    x = g.add_input("x", TensorType(DType.f32, (2, 3)))
    z = g.op("mul", g.op("complex", x, x), g.const(np.array([1 + 2j, -0.5j, 3], np.complex64)))
    g.set_output("y", g.op("real", g.op("fft", z)))
    text = print_graph(g, full=True)
    assert "c64[2,3]" in text and 'dense<c64[3] b64"' in text
    assert print_graph(parse(text), full=True) == text
    with pytest.raises(InputError, match="written as bytes"):
        parse(text.replace(text[text.index('dense<c64[3]'):text.index('">', text.index('dense<c64[3]')) + 2],
                           "dense<c64[3] [1.0, 2.0, 3.0]>"))
