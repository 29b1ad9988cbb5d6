"""Architectures beyond irc's zoo, small and with random weights: one per keras.applications family and keras-hub
backbone kind that this budget allows (benchmarks/coverage.py has every one and the table).

Each goes through the TF-free fast path, irc's reference interpreter and TFLite's own interpreter (in a child
process: an abort fails the test instead of killing pytest), against TensorFlow running the SavedModel, within
1e-4 of the outputs' scale, or TF's own converter's error where that is larger.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import irc
from benchmarks.coverage import MODELS, export, relative_error, tf_command
from tests.tflite_subprocess import run_tflite_models

pytest.importorskip("tensorflow")
pytest.importorskip("keras_hub")

pytestmark = pytest.mark.slow

# the smallest of each kind: two CNN families, encoders, decoders, encoder-decoders, vision transformers
SUBSET = ["mobilenet_v3_small", "mobilenet", "bert", "albert", "deberta_v3", "xlnet", "gpt2", "llama", "gemma",
          "t5", "whisper", "vit", "falcon", "swin", "fnet"]
TOLERANCE = 1e-4


@pytest.mark.parametrize("name", SUBSET)
def test_model_matches_tensorflow_everywhere(name, tmp_path):
    assert name in MODELS
    path, inputs, want = export(name, tmp_path)
    graph = irc.load(path, fast=True)  # fast=True: an error here rather than a fallback to TensorFlow's loader
    assert relative_error(irc.run(graph, inputs), want) <= TOLERANCE, "reference interpreter"
    ours = tmp_path / "irc.tflite"
    irc.lower(graph, "tflite", output=ours)
    (got,) = run_tflite_models([(ours, inputs)])
    error = relative_error(got, want)
    if not error <= TOLERANCE:  # NaN fails too
        theirs = tmp_path / "tf.tflite"
        subprocess.run(tf_command(path, theirs), check=True, capture_output=True)
        (tf_got,) = run_tflite_models([(theirs, inputs)])
        tf_error = relative_error(tf_got, want)
        assert error <= max(TOLERANCE, tf_error if np.isfinite(tf_error) else 0), (error, tf_error)
