"""The TF-free fast path against the TensorFlow-based loader, on every zoo architecture.

- Both paths print identical IR for the same SavedModel (constants compared by content hash), so every lowering,
  pass and backend sees the same graph whichever reader ran.
- The fast path's .tflite runs in TFLite's interpreter as the SavedModel runs in TensorFlow: float32 within
  1e-4 and float16 weights within 1e-2 of the outputs' scale, the TFLite backend's own tolerances.
"""

from __future__ import annotations

import difflib

import numpy as np
import pytest

import irc
from irc.frontends.tensorflow import lower_tf
from irc.ir.printer import print_graph
from tests.zoo_params import VOCAB, arch_params

tf = pytest.importorskip("tensorflow")

def ir_diff(a: str, b: str) -> str:
    return "".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True), "fast path", "TF path", n=1))[:4000]


@pytest.mark.parametrize("name, kwargs", arch_params())
def test_fast_and_tensorflow_paths_print_identical_ir(zoo_models, name, kwargs):
    path = zoo_models.saved_model(name, **kwargs)
    fast = print_graph(lower_tf(path, fast=True))
    slow = print_graph(lower_tf(path, fast=False, unsafe=True))  # TF's loader: only with unsafe
    assert fast == slow, ir_diff(fast, slow)


def make_inputs(runner, name: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    inputs = {}
    for key, spec in sorted(runner.get_input_details().items()):
        if np.issubdtype(spec["dtype"], np.integer):
            inputs[key] = rng.integers(0, VOCAB.get(name, 10), spec["shape"]).astype(spec["dtype"])
        else:
            inputs[key] = rng.standard_normal(spec["shape"]).astype(spec["dtype"])
    return inputs


def tensorflow_outputs(path, inputs: dict) -> dict[str, np.ndarray]:
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def max_relative_error(got: dict, want: dict) -> float:
    """Max abs error over the outputs, relative to max(1, the output's largest magnitude)."""
    assert set(got) == set(want)
    worst = 0.0
    for key, ref in want.items():
        out = np.asarray(got[key], np.float64)
        assert out.shape == ref.shape, (key, out.shape, ref.shape)
        worst = max(worst, float(np.max(np.abs(out - ref))) / max(1.0, float(np.max(np.abs(ref)))))
    return worst


@pytest.mark.parametrize("name, kwargs", arch_params())
def test_fast_path_tflite_matches_tensorflow(zoo_models, name, kwargs):
    path = zoo_models.saved_model(name, **kwargs)
    graph = irc.load(path, fast=True)  # fast=True: an error here rather than a silent fallback
    float32 = tf.lite.Interpreter(model_content=irc.lower(graph, "tflite")).get_signature_runner()
    inputs = make_inputs(float32, name)
    reference = tensorflow_outputs(path, inputs)
    assert max_relative_error(float32(**inputs), reference) <= 1e-4
    # float16 is held to what it must compute (random deep networks drift by 1e-1 from float32 in TF's own
    # converter's files too): the tflite pipeline's graph with its constants rounded to float16
    from irc.backends.tflite.backend import prepare
    from irc.ir.interpreter import run as interpret
    from tests.test_backend_tflite_models import rounded_to_float16

    float16 = tf.lite.Interpreter(model_content=irc.lower(graph, "tflite", quantize="float16"))
    want = interpret(rounded_to_float16(prepare(graph)), inputs)
    assert max_relative_error(float16.get_signature_runner()(**inputs), want) <= 1e-4
