"""The lowerings of 3-D convolutions and pools and of the complex and FFT ops, on the TF path and the fast path,
run in irc's interpreter against TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from irc.frontends.tensorflow import lower_tf
from irc.ir.interpreter import run
from irc.ir.printer import print_graph
from tests.test_frontend_lowering import check, spec

tf = pytest.importorskip("tensorflow")
RNG = np.random.default_rng(3)
FILTER = tf.constant(RNG.standard_normal((3, 2, 3, 3, 4)).astype(np.float32))
FILTER_T = tf.constant(RNG.standard_normal((3, 3, 2, 4, 3)).astype(np.float32))


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("strides", [(1, 1, 1), (2, 1, 3)])
def test_conv3d(padding, strides):
    graph = check(lambda x: tf.nn.conv3d(x, FILTER, (1, *strides, 1), padding), [spec([None, 7, 6, 8, 3])],
                  ops=["Conv3D"])
    assert [n.op for n in graph.nodes if n.op == "conv3d"] == ["conv3d"]


@pytest.mark.parametrize("padding, size", [("SAME", (8, 6, 9)), ("VALID", (9, 7, 8))])
def test_conv3d_transpose(padding, size):
    def fn(x):
        shape = tf.stack([tf.shape(x)[0], *size, 4])  # a symbolic batch, as Keras builds it
        return tf.nn.conv3d_transpose(x, FILTER_T, shape, (1, 2, 2, 3, 1), padding)

    graph = check(fn, [spec([None, 4, 3, 3, 3])], ops=["Conv3DBackpropInputV2"])
    assert any(n.op == "conv3d_transpose" for n in graph.nodes)


@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_pool3d(pool, padding):
    fn = tf.nn.max_pool3d if pool == "max" else tf.nn.avg_pool3d
    check(lambda x: fn(x, (2, 3, 2), (2, 2, 1), padding), [spec([None, 5, 7, 6, 3])],
          ops=["MaxPool3D" if pool == "max" else "AvgPool3D"])


def fnet_mixing(x):
    """FNet's token mixing, as keras.ops.fft2 builds it on TensorFlow: Complex, FFT2D, Real (Imag unused)."""
    z = tf.signal.fft2d(tf.complex(x, tf.zeros_like(x)))
    return tf.math.real(z) + 0.5 * tf.math.imag(z)


def test_complex_and_fft2d():
    check(fnet_mixing, [spec([None, 6, 8])], ops=["Complex", "FFT2D", "Real", "Imag"])


def test_fft_ifft_and_abs():
    def fn(x, y):
        z = tf.signal.fft(tf.complex(x, y))
        return {"abs": tf.abs(tf.signal.ifft2d(z * z)), "real": tf.math.real(tf.signal.ifft(z))}

    check(fn, [spec([None, 4, 6]), spec([None, 4, 6])], ops=["FFT", "IFFT", "IFFT2D", "ComplexAbs"])


def test_real_transforms_and_cast():
    def fn(x):
        spectrum = tf.signal.rfft(x)
        back = tf.signal.irfft(spectrum, [10])
        two = tf.signal.irfft2d(tf.signal.rfft2d(x, [4, 6]), [4, 6])
        return {"back": back, "two": two, "cast": tf.math.real(tf.signal.fft(tf.cast(x, tf.complex64)))}

    check(fn, [spec([None, 5, 10])], ops=["RFFT", "IRFFT", "RFFT2D", "IRFFT2D", "Cast"])


def test_complex128_is_refused():
    def fn(x):
        return tf.math.real(tf.signal.fft(tf.cast(x, tf.complex128)))

    with pytest.raises(Exception, match="complex128"):
        check(fn, [spec([2, 4])])


def test_fast_path_reads_the_same_graph(tmp_path):
    """A SavedModel of these ops (complex64 and 3-D ops) prints the same IR through both readers."""
    module = tf.Module()
    module.w = tf.Variable(FILTER)

    @tf.function(input_signature=[spec([None, 6, 6, 6, 3]), spec([None, 6, 8])])
    def serve(x, s):
        y = tf.nn.max_pool3d(tf.nn.conv3d(x, module.w, (1, 1, 1, 1, 1), "SAME"), 2, 2, "VALID")
        phase = tf.constant(np.exp(1j * np.linspace(0, 1, 8)).astype(np.complex64))  # a c64 constant
        return {"y": y, "s": tf.math.real(tf.signal.fft2d(tf.complex(s, tf.zeros_like(s)) * phase))}

    module.serve = serve
    path = str(tmp_path / "model")
    tf.saved_model.save(module, path, signatures={"serving_default": serve})
    fast = lower_tf(path, fast=True)
    assert print_graph(fast) == print_graph(lower_tf(path, fast=False, unsafe=True))
    x, s = RNG.standard_normal((2, 6, 6, 6, 3)).astype(np.float32), RNG.standard_normal((2, 6, 8)).astype(np.float32)
    want = serve(x, s)
    got = run(fast, {"x": x, "s": s})
    for key in want:
        np.testing.assert_allclose(got[key], want[key].numpy(), atol=1e-4 * np.abs(want[key].numpy()).max())
