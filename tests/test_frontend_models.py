"""Every zoo architecture lowered from TensorFlow runs in irc's interpreter as it runs in TensorFlow.

Two paths per architecture:
- the cached SavedModel (TF-free fast reader), compared with its serving signature;
- the Keras model (TF path: trace and freeze), with its batch-norm statistics recalibrated on the test data so
  activations stay O(1) through the network (with Keras' random initialisation they fade to ~1e-11, which
  would make any comparison pass), and with the pooled features as a second output.

Outputs must agree within 1e-4 * max(1, max|TF|). The pooled features of the recalibrated deep CNNs are
checked within 1e-3 * max(1, max|TF|): float32 rounding differs between TF's and numpy's convolutions and is
amplified by every normalized layer (about 1e-5 per layer after 50 layers, measured layer by layer).
"""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.ir.interpreter import run
from irc.ir.types import SymDim, split_sym
from tests.test_frontend_support import assert_close, assert_depends_on_input, check_graph, make_inputs, max_error
from tests.zoo_params import arch_params

# MobileNetV2 and ResNet50 also run at 224 (slow).
FULL_SIZE = ["mobilenet_v2", "resnet50"]


def signature_runner(path):
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda inputs: {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


@pytest.mark.parametrize("name, kwargs", arch_params())
def test_savedmodel_matches_tensorflow(zoo_models, name, kwargs):
    path = zoo_models.saved_model(name, **kwargs)
    graph = irc.load(path)
    check_graph(graph)
    reference = signature_runner(path)
    assert_depends_on_input(reference, graph)
    inputs = make_inputs(graph, seed=1)
    assert set(graph.outputs) == set(reference(inputs))
    assert_close(run(graph, inputs), reference(inputs))
    # The signature's unknown batch dim is the symbolic dim "batch", in the inputs and the outputs.
    assert graph.inputs[0].type.shape[0] == SymDim("batch")
    assert all(v.type.shape[0] == SymDim("batch") for v in graph.outputs.values())


def calibrated(model):
    """A copy of ``model`` whose batch norms normalize real activations (so values stay O(1) when tested)."""
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return model
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4,) + tuple(model.inputs[0].shape[1:])).astype(np.float32)
    for layer in copy.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # one training-mode call sets the moving statistics to this batch's
    copy(x, training=True)
    return copy


def with_features(model):
    """The model with its pooled features (the last global pooling layer's output) as a second output."""
    import keras

    pools = [layer for layer in model.layers if "GlobalAveragePooling" in type(layer).__name__]
    if not pools:
        return model, None
    return keras.Model(model.inputs, {"probs": model.output, "features": pools[-1].output}), "features"


@pytest.mark.parametrize("name, kwargs", arch_params())
def test_keras_model_matches_tensorflow(zoo_models, name, kwargs):
    model, features = with_features(calibrated(zoo_models.keras(name, **kwargs)))
    graph = irc.load(model)
    check_graph(graph)
    inputs = make_inputs(graph, seed=2)
    arrays = list(inputs.values())
    ref = model(arrays[0] if len(arrays) == 1 else arrays, training=False)
    ref = {k: np.asarray(v) for k, v in ref.items()} if isinstance(ref, dict) else {next(iter(graph.outputs)): ref}
    out = run(graph, inputs)
    errors = max_error(out, ref)
    for output, (err, scale) in errors.items():
        rel = 1e-3 if output == features else 1e-4
        assert err <= rel * max(1.0, scale), f"{output}: max error {err:.3g} (max |ref| {scale:.3g})"
    # Recalibrated, the network carries signal: its features are not all alike.
    if features:
        assert np.std(ref[features]) > 1e-2


def test_input_shape_fixes_the_batch(zoo_models):
    path = zoo_models.saved_model("mobilenet_v2", size=96)
    symbolic = irc.load(path)
    name = symbolic.inputs[0].name
    fixed = irc.load(path, input_shapes={name: (1, 96, 96, 3)})
    check_graph(fixed)
    assert fixed.inputs[0].type.shape == (1, 96, 96, 3)
    assert fixed.outputs["output_0"].type.shape == (1, 1000)
    assert all(d == 1 or not isinstance(d, SymDim) for n in fixed.nodes for r in n.results for d in r.type.shape)
    inputs = make_inputs(fixed, seed=3, batch=1)
    assert_close(run(fixed, inputs), signature_runner(path)(inputs))


def test_input_shape_fixes_the_loop_state(zoo_models):
    """With the batch fixed, the LSTM's zero initial state is a constant (no run-time fill is left)."""
    path = zoo_models.saved_model("lstm_classifier")
    graph = irc.load(path, input_shapes={"tokens": (3, 16)})
    check_graph(graph)
    assert "select" not in {n.op for n in graph.nodes if "zeros" in " ".join(n.loc.names)}
    inputs = make_inputs(graph, seed=4, batch=3)
    assert_close(run(graph, inputs), signature_runner(path)(inputs))


def test_symbolic_batch_survives_reshapes(zoo_models):
    """Flatten, Dense over a sequence (Tensordot) and Conv2DTranspose compute shapes from Shape ops; with an
    unknown batch they become reshapes with -1 and results typed with the symbolic batch."""
    for name in ("small_cnn", "transformer_encoder", "unet"):
        graph = irc.load(zoo_models.saved_model(name))
        batch = SymDim("batch")
        reshapes = [n for n in graph.nodes if n.op == "reshape"]
        flexible = [n for n in reshapes if n.attrs["shape"][0] == -1]
        assert flexible, name
        # -1 stands for the batch, or for the batch merged with other dims ([batch, 32, 64] -> [batch_x32, 64])
        assert all(split_sym(n.result.type.shape[0])[0] == batch for n in flexible)
        if name == "transformer_encoder":  # its Tensordot's [batch, 32, 64] -> [batch_x32, 64]
            assert any(n.result.type.shape[0] == SymDim("batch_x32") for n in flexible)
        assert all(v.type.shape[0] == batch for v in graph.outputs.values())
        assert not [n for n in graph.nodes if n.op == "shape"], name  # every Shape op was folded
        for batch_size in (1, 3):
            inputs = make_inputs(graph, seed=5, batch=batch_size)
            out = run(graph, inputs)
            assert next(iter(out.values())).shape[0] == batch_size


def test_loops_stay_loops(zoo_models):
    """A Keras RNN's While is one while node whose body holds one step (unrolling is the unroll-loops pass's)."""
    for name in ("lstm_classifier", "gru_classifier"):
        graph = irc.load(zoo_models.saved_model(name))
        ops = graph.op_histogram()
        assert ops["while"] == 1, ops
        (loop,) = graph.walk("while")
        assert loop.loc.layers == (name.split("_")[0],)
        assert [n.op for n in loop.regions[1].walk()].count("matmul") == 2  # the input and recurrent kernels
        assert not any(n.is_opaque for n in graph.walk(recursive=True))


def test_locations_name_keras_layers(zoo_models):
    graph = irc.load(zoo_models.saved_model("unet"))
    layers = {layer for n in graph.nodes for layer in n.loc.layers}
    assert {"down1", "up2", "skip1", "mask"} <= layers
    convs = [n for n in graph.nodes if n.op == "conv2d_transpose"]
    assert convs and convs[0].loc.layers == ("up2",)


def test_fast_and_tf_paths_agree(zoo_models):
    """The TF-free reader and TensorFlow's loader give the same lowered graph for a SavedModel."""
    path = zoo_models.saved_model("transformer_encoder")
    fast = irc.load(path, fast=True)
    slow = irc.load(path, fast=False, unsafe=True)  # TensorFlow's loader: only with unsafe
    check_graph(slow)
    assert fast.op_histogram() == slow.op_histogram()
    assert [v.name for v in fast.inputs] == [v.name for v in slow.inputs] and list(fast.outputs) == list(slow.outputs)
    inputs = make_inputs(fast, seed=6)
    assert_close(run(slow, inputs), run(fast, inputs), rel=1e-6)


def test_savedmodel_lowering_does_not_import_tensorflow(zoo_models):
    import subprocess
    import sys

    path = zoo_models.saved_model("lstm_classifier")
    code = (f"import sys, irc; g = irc.load({str(path)!r}); "
            "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'; "
            "print(sum(len(graph) for graph in g.all_graphs()))")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.strip()) > 40  # the LSTM loop with its cond and body


def test_cli_input_shape_and_errors(zoo_models):
    from click.testing import CliRunner

    from irc.cli import main

    path = str(zoo_models.saved_model("small_cnn"))
    result = CliRunner().invoke(main, ["dump", path, "--input-shape", "image=1,8,8,1"])
    assert result.exit_code == 0, result.output
    assert "graph @small_cnn(%image: f32[1,8,8,1])" in result.output
    result = CliRunner().invoke(main, ["dump", path, "--input-shape", "img=1,8,8,1"])
    assert result.exit_code == 2 and "not an input of the model (inputs: image)" in result.output
