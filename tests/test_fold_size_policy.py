"""Constants that would grow far past the data they are computed from stay computations (fold-constants' size
policy, also applied when the TF frontend folds), and large square DFT matrices are gathered at run time from
n-entry tables (split-complex). Each model runs in TFLite's interpreter (a child process) against TensorFlow; the
policy's folding decisions on small graphs are golden cases in tests/passes/fold-constants-size.irc."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

import irc
from irc.backends.tflite.backend import emit
from irc.formats.tflite.flatbuffer import read_model
from irc.ir.interpreter import run as interpret
from tests.tflite_subprocess import run_tflite_models

tf = pytest.importorskip("tensorflow")
RNG = np.random.default_rng(5)


class Converted(NamedTuple):
    ops: list[str]  # TFLite builtin names
    largest: int  # bytes of the largest constant buffer
    errors: tuple[float, float]  # TFLite's and irc's interpreter's max abs error, relative to max(1, max |TF|)


def convert_and_run(functions: dict, tmp_path) -> dict[str, Converted]:
    """Each tf.function (one f32 input) lowered by irc, emitted for TFLite and run there (all in one child
    process) and in irc's interpreter, against TensorFlow on the same random input."""
    cases, models = {}, []
    for name, fn in functions.items():
        x = RNG.standard_normal(fn.input_signature[0].shape).astype(np.float32)
        graph = irc.load(fn)
        data = emit(graph)
        model = read_model(data)
        ops = [model.operator_codes[op.opcode_index].builtin_code for op in model.subgraphs[0].operators]
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(data)
        feed = {graph.inputs[0].name: x}
        cases[name] = (ops, max(b.view().nbytes for b in model.buffers), np.asarray(fn(x), np.float64),
                       next(iter(interpret(graph, feed).values())))
        models.append((path, feed))
    converted = {}
    for (name, (ops, largest, want, ours)), outputs in zip(cases.items(), run_tflite_models(models)):
        scale = max(1.0, float(np.max(np.abs(want))))
        errors = tuple(float(np.max(np.abs(np.asarray(got, np.float64) - want))) / scale
                       for got in (next(iter(outputs.values())), ours))
        converted[name] = Converted(ops, largest, errors)
    return converted


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


SIZE, WINDOW = 32, 8
WINDOWS, TOKENS = (SIZE // WINDOW) ** 2, WINDOW * WINDOW
W = RNG.standard_normal((24, 40)).astype(np.float32)


def spec(*shape):
    return [tf.TensorSpec(shape, tf.float32)]


@tf.function(input_signature=spec(WINDOWS, TOKENS, TOKENS))
def attend(x):
    return tf.nn.softmax(x + shifted_window_mask(SIZE, WINDOW, WINDOW // 2))


@tf.function(input_signature=spec(3, 40))
def dense(x):  # a transposed weight and a small broadcast: both materialized
    return tf.matmul(x, tf.transpose(tf.constant(W))) + tf.broadcast_to(tf.constant([0.5]), [3, 24])


def fnet_mixing(*shape):
    @tf.function(input_signature=spec(*shape))
    def mix(x):
        return tf.math.real(tf.signal.fft2d(tf.complex(x, tf.zeros_like(x))))

    return mix


@tf.function(input_signature=spec(2, 50))
def spectrum(x):
    z = tf.signal.ifft(tf.signal.fft(tf.complex(x, 0.5 * x)) * tf.complex(x, -x))
    return tf.math.imag(z) + tf.abs(z)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return convert_and_run({"attend": attend, "dense": dense, "mix_64": fnet_mixing(2, 8, 64),
                            "mix_48": fnet_mixing(1, 48, 12), "spectrum": spectrum},
                           tmp_path_factory.mktemp("fold_size"))


def test_an_outer_comparison_of_small_constants_is_computed_at_run_time(converted):
    ops, largest, errors = converted["attend"]
    assert max(errors) <= 1e-6
    assert largest < WINDOWS * TOKENS * TOKENS * 4 // 8  # only the window ids are stored, not the 64 KiB mask
    assert "NOT_EQUAL" in ops and "CUSTOM" not in ops


def test_size_keeping_and_small_folds_still_happen(converted):
    ops, _, errors = converted["dense"]
    assert max(errors) <= 1e-5
    assert set(ops) <= {"FULLY_CONNECTED", "ADD"}, ops  # no TRANSPOSE or BROADCAST_TO left


@pytest.mark.parametrize("name, n", [("mix_64", 64), ("mix_48", 48)])
def test_fnet_mixing_with_dft_tables_matches_tensorflow(converted, name, n):
    """real(fft2d(complex(x, 0))): the n x n DFT matrices come from n-entry tables, exactly."""
    ops, largest, errors = converted[name]
    assert max(errors) <= 1e-6
    assert largest < n * n * 4  # no n x n matrix stored
    assert "GATHER" in ops and "CUSTOM" not in ops


def test_inverse_transforms_with_dft_tables_match_tensorflow(converted):
    ops, largest, errors = converted["spectrum"]
    assert max(errors) <= 1e-5
    assert largest < 50 * 50 * 4 and "GATHER" in ops
