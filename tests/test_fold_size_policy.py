"""Constants that would grow far past the data they are computed from stay computations (fold-constants' size
policy, also applied when the TF frontend folds), and large square DFT matrices are gathered at run time from
n-entry tables (split-complex). Each model runs in TFLite's interpreter (a child process) against TensorFlow; the
policy's folding decisions on small graphs are golden cases in tests/passes/fold-constants-size.irc."""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.backends.tflite.backend import emit
from irc.formats.tflite.flatbuffer import read_model
from irc.ir.interpreter import run as interpret
from tests.tflite_subprocess import run_tflite

tf = pytest.importorskip("tensorflow")
RNG = np.random.default_rng(5)


def convert(fn, shape, tmp_path):
    """fn lowered by irc and emitted for TFLite: (graph, .tflite path, builtin op names, largest constant bytes)."""
    graph = irc.load(fn)
    data = emit(graph)
    model = read_model(data)
    ops = [model.operator_codes[op.opcode_index].builtin_code for op in model.subgraphs[0].operators]
    largest = max(np.asarray(b.view()).nbytes for b in model.buffers)
    path = tmp_path / "model.tflite"
    path.write_bytes(data)
    return graph, path, ops, largest


def check(fn, shape, tmp_path, rtol):
    x = RNG.standard_normal(shape).astype(np.float32)
    graph, path, ops, largest = convert(fn, shape, tmp_path)
    want = np.asarray(fn(x))
    name = graph.inputs[0].name
    for got in (next(iter(run_tflite(path, {name: x}).values())), next(iter(interpret(graph, {name: x}).values()))):
        err = float(np.max(np.abs(np.asarray(got, np.float64) - want)))
        assert err <= rtol * max(1.0, float(np.max(np.abs(want)))), err
    return ops, largest


def shifted_window_mask(size: int, window: int, shift: int):
    """Swin's attention mask for shifted windows: region ids written by slice updates into zeros, split into
    windows, compared pairwise (a (windows, window^2, window^2) outer comparison of size^2 ids)."""
    from tensorflow.compiler.tf2xla.python import xla

    ids = tf.zeros((1, size, size, 1), tf.int32)
    bounds = [(0, size - window), (size - window, size - shift), (size - shift, size)]
    for count, ((h0, h1), (w0, w1)) in enumerate((h, w) for h in bounds for w in bounds):
        ids = xla.dynamic_update_slice(ids, tf.fill((1, h1 - h0, w1 - w0, 1), count), [0, h0, w0, 0])
    n = size // window
    windows = tf.reshape(tf.transpose(tf.reshape(ids, (n, window, n, window)), (0, 2, 1, 3)), (n * n, window**2))
    return tf.cast(windows[:, None, :] != windows[:, :, None], tf.float32) * -100.0


def test_an_outer_comparison_of_small_constants_is_computed_at_run_time(tmp_path):
    size, window = 32, 8
    windows, tokens = (size // window) ** 2, window * window

    @tf.function(input_signature=[tf.TensorSpec([windows, tokens, tokens], tf.float32)])
    def attend(x):
        return tf.nn.softmax(x + shifted_window_mask(size, window, window // 2))

    ops, largest = check(attend, (windows, tokens, tokens), tmp_path, 1e-6)
    mask_bytes = windows * tokens * tokens * 4
    assert largest < mask_bytes // 8  # only the window ids are stored, not the 64 KiB mask
    assert "NOT_EQUAL" in ops and "CUSTOM" not in ops


def test_size_keeping_and_small_folds_still_happen(tmp_path):
    w = RNG.standard_normal((24, 40)).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([3, 40], tf.float32)])
    def dense(x):  # a transposed weight and a small broadcast: both materialized
        return tf.matmul(x, tf.transpose(tf.constant(w))) + tf.broadcast_to(tf.constant([0.5]), [3, 24])

    ops, _ = check(dense, (3, 40), tmp_path, 1e-5)
    assert ops == ["FULLY_CONNECTED"] or set(ops) == {"FULLY_CONNECTED", "ADD"}
    assert "TRANSPOSE" not in ops and "BROADCAST_TO" not in ops


@pytest.mark.parametrize("shape", [(2, 8, 64), (1, 48, 12)], ids=str)
def test_fnet_mixing_with_dft_tables_matches_tensorflow(shape, tmp_path):
    """real(fft2d(complex(x, 0))): the 64 x 64 (48 x 48) DFT matrices come from 64-entry tables, exactly."""

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def mix(x):
        return tf.math.real(tf.signal.fft2d(tf.complex(x, tf.zeros_like(x))))

    ops, largest = check(mix, shape, tmp_path, 1e-6)
    n = max(shape[1:])
    assert largest < n * n * 4  # no n x n matrix stored
    assert "GATHER" in ops and "CUSTOM" not in ops


def test_inverse_transforms_with_dft_tables_match_tensorflow(tmp_path):
    @tf.function(input_signature=[tf.TensorSpec([2, 50], tf.float32)])
    def spectrum(x):
        z = tf.signal.ifft(tf.signal.fft(tf.complex(x, 0.5 * x)) * tf.complex(x, -x))
        return tf.math.imag(z) + tf.abs(z)

    ops, largest = check(spectrum, (2, 50), tmp_path, 1e-5)
    assert largest < 50 * 50 * 4 and "GATHER" in ops
