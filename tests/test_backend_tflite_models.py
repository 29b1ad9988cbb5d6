"""Every architecture the TF frontend supports, lowered by irc to .tflite, run in TensorFlow's TFLite interpreter and
compared with the SavedModel run by TensorFlow: float32 within 1e-4 of the outputs' scale. Float16 weights change
the outputs as much as they do in TF's own converter (up to a third of the softmax's scale for InceptionV3 with
random weights), so a float16 .tflite is held to what it must compute: the graph with every float32 constant
rounded to float16, run by irc's interpreter, within 1e-4. Each model is lowered once per session (small inputs
here; full size under ``-m slow``)."""

from __future__ import annotations

import fcntl
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from irc.backends.tflite.backend import emit, prepare
from irc.formats.tflite.flatbuffer import read_model
from irc.outputs import atomic_file
from tests.zoo_params import TEST_SIZES, VOCAB

tf = pytest.importorskip("tensorflow")

MODELS = {name: kwargs for name, kwargs in TEST_SIZES.items() if name != "small_cnn"}  # small_cnn: quantize tests
FULL_SIZE = ["mobilenet_v2", "mobilenet_v3_small", "resnet50", "efficientnet_b0", "densenet121", "inception_v3",
             "unet"]
SEED = 7


class Lowered:
    """One zoo model: its SavedModel, irc graph after the tflite pipeline, TF's outputs and the emitted files."""

    def __init__(self, path, name: str):
        import irc

        self.path, self.name = path, name
        self.graph = prepare(irc.load(path))
        self.inputs = self._inputs()
        self.reference = self._reference()
        self._files: dict[str | None, bytes] = {}

    def _reference(self) -> dict:
        """TensorFlow's outputs on ``inputs``, computed once per machine (loading a SavedModel takes seconds)."""
        cache = Path(self.path).parent / f"{Path(self.path).name}.tf-{tf.__version__}-seed{SEED}.npz"
        with open(f"{cache}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not cache.exists():
                fn = tf.saved_model.load(str(self.path)).signatures["serving_default"]
                outputs = fn(**{k: tf.constant(v) for k, v in self.inputs.items()})
                with atomic_file(cache) as tmp, open(tmp, "wb") as f:
                    np.savez(f, **{k: v.numpy() for k, v in outputs.items()})
            with np.load(cache, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}

    def _inputs(self) -> dict:
        rng = np.random.default_rng(SEED)
        inputs = {}
        for v in self.graph.inputs:
            shape = [d if isinstance(d, int) else 1 for d in v.type.shape]
            if v.type.dtype.is_integer:
                inputs[v.name] = rng.integers(0, VOCAB.get(self.name, 10), shape).astype(v.type.dtype.numpy)
            else:
                inputs[v.name] = rng.standard_normal(shape).astype(v.type.dtype.numpy)
        return inputs

    def tflite(self, quantize: str | None = None) -> bytes:
        if quantize not in self._files:
            self._files[quantize] = emit(self.graph, passes="O0", quantize=quantize)
        return self._files[quantize]

    def run(self, quantize: str | None = None) -> dict:
        runner = tf.lite.Interpreter(model_content=self.tflite(quantize)).get_signature_runner()
        return runner(**self.inputs)


@pytest.fixture(scope="session")
def lowered(zoo_models):
    cache: dict[tuple, Lowered] = {}

    def get(name: str, **kwargs) -> Lowered:
        key = (name, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = Lowered(zoo_models.saved_model(name, **kwargs), name)
        return cache[key]

    return get


def max_relative_error(got: dict, want: dict) -> float:
    """Max abs error over the outputs, relative to max(1, the output's largest magnitude)."""
    assert set(got) == set(want)
    worst = 0.0
    for name, ref in want.items():
        out = np.asarray(got[name], np.float64)
        assert out.shape == ref.shape, (name, out.shape, ref.shape)
        worst = max(worst, float(np.max(np.abs(out - ref))) / max(1.0, float(np.max(np.abs(ref)))))
    return worst


def rounded_to_float16(graph):
    """A copy of ``graph`` with every float32 constant rounded to float16: what a float16 .tflite computes (its
    DEQUANTIZEs widen exactly these values; the arithmetic stays float32)."""
    graph = graph.copy()
    for node in graph.nodes:
        value = node.attrs.get("value") if node.op == "const" else None
        if isinstance(value, np.ndarray) and value.dtype == np.float32 and node.result.type.quant is None:
            graph.set_attr(node, "value", value.astype(np.float16).astype(np.float32))
    return graph


def weight_bytes(data: bytes) -> int:
    return sum(b.nbytes for b in read_model(data).buffers)


def op_counts(data: bytes) -> Counter:
    model = read_model(data)
    return Counter(model.operator_codes[op.opcode_index].builtin_code for op in model.subgraphs[0].operators)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_float32_matches_tensorflow(lowered, name):
    model = lowered(name, **MODELS[name])
    assert max_relative_error(model.run(), model.reference) <= 1e-4


@pytest.mark.parametrize("name", sorted(MODELS))
def test_float16_matches_tensorflow(lowered, name):
    from irc.ir.interpreter import run as interpret

    model = lowered(name, **MODELS[name])
    want = interpret(rounded_to_float16(model.graph), model.inputs)
    assert max_relative_error(model.run("float16"), want) <= 1e-4
    assert op_counts(model.tflite("float16"))["DEQUANTIZE"] > 0
    assert weight_bytes(model.tflite("float16")) < 0.51 * weight_bytes(model.tflite())


CLASSIFIERS = ["mobilenet_v2", "mobilenet_v3_small", "resnet50", "efficientnet_b0", "densenet121", "inception_v3"]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_logits_match_the_reference_interpreter(lowered, name):
    """The logits themselves, relative to their own scale: irc's .tflite against irc's interpreter running the
    graph as loaded (which the frontend's tests hold to TensorFlow), or for float16 the graph after the tflite
    pipeline with its constants rounded to float16."""
    import irc
    from irc.ir.interpreter import run as interpret

    model = lowered(name, **MODELS[name])
    graph = irc.load(model.path)
    softmax = [n for n in graph.nodes if n.op == "softmax"][-1]
    graph.set_output("logits", softmax.operands[0])
    wants = {None: interpret(graph, model.inputs)["logits"],
             "float16": interpret(rounded_to_float16(prepare(graph)), model.inputs)["logits"]}
    for quantize, want in wants.items():
        data = emit(graph, quantize=quantize)
        got = tf.lite.Interpreter(model_content=data).get_signature_runner()(**model.inputs)["logits"]
        want = want.astype(np.float64)
        assert float(np.max(np.abs(got - want))) <= 1e-4 * float(np.max(np.abs(want))), quantize


@pytest.mark.slow
@pytest.mark.parametrize("name", FULL_SIZE)
def test_full_size_matches_tensorflow(lowered, name):
    from irc.ir.interpreter import run as interpret

    model = lowered(name)
    assert max_relative_error(model.run(), model.reference) <= 1e-4
    want = interpret(rounded_to_float16(model.graph), model.inputs)
    assert max_relative_error(model.run("float16"), want) <= 1e-4


# ----- what irc writes: TFLite's own idioms, nothing stray ---------------------------------------------------------
def test_mobilenet_v2_is_what_tflite_expects(lowered):
    """The ops TF's converter writes for MobileNetV2: pads and batch norms folded, relu6 fused, MEAN for the
    global pool, one FULLY_CONNECTED."""
    counts = op_counts(lowered("mobilenet_v2", size=96).tflite())
    assert counts == Counter({"CONV_2D": 35, "DEPTHWISE_CONV_2D": 17, "ADD": 10, "MEAN": 1, "FULLY_CONNECTED": 1,
                              "SOFTMAX": 1})


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0", "resnet50", "densenet121",
                                  "inception_v3"])
def test_cnns_have_no_stray_operators(lowered, name):
    counts = op_counts(lowered(name, **MODELS[name]).tflite())
    assert not {"TRANSPOSE", "DEQUANTIZE", "BATCH_MATMUL", "DIV", "SHAPE"} & set(counts), counts
    assert counts["RESHAPE"] <= 1  # the classifier's flatten; squeeze-excite means keep their dims
    # zero padding folds into the convolutions; what is left pads for a max pool, as in TF's own conversion
    assert counts["PAD"] <= 2
    if name == "mobilenet_v3_small":
        assert counts["HARD_SWISH"] == 19


def test_transformer_uses_gelu_and_fully_connected(lowered):
    counts = op_counts(lowered("transformer_encoder").tflite())
    assert counts["GELU"] == 1 and "ERF" not in counts and "EXP" not in counts
    assert counts["FULLY_CONNECTED"] == 7 and counts["BATCH_MATMUL"] == 2
    assert "SHAPE" not in counts and "DEQUANTIZE" not in counts


def test_signature_names_and_dynamic_batch(lowered):
    model = lowered("mobilenet_v2", size=96)
    interpreter = tf.lite.Interpreter(model_content=model.tflite())
    signature = interpreter.get_signature_list()["serving_default"]
    assert signature["inputs"] == list(model.inputs) and signature["outputs"] == list(model.reference)
    flat = read_model(model.tflite())
    sg = flat.subgraphs[0]
    assert sg.tensors[sg.inputs[0]].shape_signature[0] == -1
    batch = np.concatenate([model.inputs[name] for name in model.inputs] * 2)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], batch.shape)
    interpreter.allocate_tensors()
    out = interpreter.get_signature_runner()(**{next(iter(model.inputs)): batch})
    first = next(iter(out.values()))
    np.testing.assert_allclose(first[0], first[1], rtol=1e-6)
