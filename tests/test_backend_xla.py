"""The TensorFlow emitter and the xla target: op coverage against the reference interpreter, SavedModel + HLO
output, ops XLA cannot compile reported by name, and real models against TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from irc.errors import TargetError, UsageError
from irc.ir.graph import Graph
from irc.ir.interpreter import random_inputs
from irc.ir.interpreter import run as interpret
from irc.ir.types import DType, TensorType

tf = pytest.importorskip("tensorflow")

# zoo model -> build options, Keras layers whose outputs are compared too (errors are measured against each
# tensor's own scale), and words the HLO must contain (the model's own op names)
MODELS = {
    "mobilenet_v2": ({"size": 96}, ("block_6_expand_relu", "out_relu", "global_average_pooling2d"),
                     ("Conv1", "block_1_depthwise", "predictions")),
    "resnet50": ({"size": 96}, ("conv3_block1_out", "conv5_block3_out", "avg_pool"),
                 ("conv1_conv", "conv5_block3", "predictions")),
    "transformer_encoder": ({}, ("norm1", "pool"), ("attention", "ff1", "classifier")),
}
TAP = "layer:"  # prefix of the extra outputs that expose a layer
# ResNet50's deep activations, now that the zoo's batch norms keep them O(1), differ by 1.3e-4 of their scale
# between XLA's and TensorFlow's own float32 kernels (summation order over 50 layers), not by irc's doing.
RTOL = {"resnet50": 3e-4}


def assert_close(got: dict, want: dict, rtol: float = 1e-4) -> dict[str, float]:
    """Max abs error of every output <= rtol * the output's largest magnitude; returns the errors by name."""
    assert set(got) == set(want), (sorted(got), sorted(want))
    errors = {}
    for name, ref in want.items():
        out = np.asarray(got[name])
        assert out.shape == ref.shape, (name, out.shape, ref.shape)
        if ref.dtype.kind in "biu":
            np.testing.assert_array_equal(out, ref)
            continue
        err = float(np.max(np.abs(out.astype(np.float64) - ref))) if ref.size else 0.0
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        assert err <= rtol * scale or err == 0.0, f"{name}: max abs error {err} for values up to {scale}"
        errors[name] = err
    return errors


def tf_reference(path, inputs: dict) -> dict:
    """The SavedModel's serving_default outputs, by output name."""
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def layer_value(graph: Graph, layer: str):
    """The value Keras layer ``layer`` outputs: made by one of its nodes and used outside it."""
    for node in reversed(graph.topo_order()):
        if layer in node.loc.layers:
            for r in node.results:
                if graph.is_output(r) or any(layer not in user.loc.layers for user, _ in r.uses):
                    return r
    raise KeyError(f"no value leaves layer {layer!r}")


class ModelCase:
    """A zoo model loaded once per process: its SavedModel, its graph with the tapped layers as extra outputs
    (``layer:NAME``), and TensorFlow's outputs for the graph's inputs."""

    def __init__(self, zoo_models, name: str):
        import irc

        options, self.layers, self.hlo_words = MODELS[name]
        self.name = name
        self.path = zoo_models.saved_model(name, **options)
        self.keras = zoo_models.keras(name, **options)
        self.graph = irc.load(self.path)
        for layer in self.layers:
            self.graph.set_output(TAP + layer, layer_value(self.graph, layer))
        self.inputs = random_inputs(self.graph, seed=0)
        self.want = self.reference(self.inputs)

    def reference(self, inputs: dict) -> dict:
        """TensorFlow's outputs: the SavedModel's, and the tapped layers' from the same Keras model."""
        import keras

        want = tf_reference(self.path, inputs)
        (model_input,) = self.keras.inputs  # every zoo model here has one input
        taps = keras.Model(model_input, [self.keras.get_layer(name).output for name in self.layers])
        outs = taps(inputs[self.graph.inputs[0].name])
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        want.update({TAP + name: np.asarray(out) for name, out in zip(self.layers, outs)})
        return want


_CASES: dict[str, ModelCase] = {}


def model_case(zoo_models, name: str) -> ModelCase:
    """The shared ModelCase of zoo model ``name`` (the cuda and tpu tests use it too)."""
    if name not in _CASES:
        _CASES[name] = ModelCase(zoo_models, name)
    return _CASES[name]


# ----- hand-built graphs covering the emitter's rules --------------------------------------------------------------
def _rng():
    return np.random.default_rng(0)


def cnn_graph() -> Graph:
    """Convolutions, pools, batch norm, resize, pad, concat/split and the activations, in both layouts."""
    r = _rng()
    g = Graph("cnn")
    x = g.add_input("image", TensorType(DType.f32, (1, 8, 8, 3)))

    def w(*shape):
        return g.const(r.standard_normal(shape).astype(np.float32))

    y = g.op("tfl.conv2d", x, w(3, 3, 3, 8), w(8), padding="SAME", fused_activation="relu")
    y = g.op("tfl.depthwise_conv2d", y, w(3, 3, 8, 1), w(8), strides=(2, 2), padding="SAME", fused_activation="relu6")
    y = g.op("batch_norm", y, w(8), w(8), w(8), g.const(r.uniform(0.5, 2, 8).astype(np.float32)), epsilon=1e-3)
    a, b = g.add("split", [y], {"axis": 3, "sizes": (4, 4)}).results
    y = g.op("concat", g.op("hard_swish", a), g.op("sigmoid", b), axis=3)
    t = g.op("tfl.conv2d_transpose", y, w(2, 2, 6, 8), w(6), output_shape=(1, 8, 8, 6), strides=(2, 2),
             padding="SAME", fused_activation="tanh")
    t = g.op("avg_pool", t, ksize=(3, 3), strides=(1, 1), padding="SAME")
    n = g.op("transpose", t, perm=(0, 3, 1, 2))  # NCHW ops
    n = g.op("conv2d", n, w(3, 3, 6, 4), w(4), padding="VALID", data_format="NCHW", dilations=(2, 2))
    n = g.op("tfl.max_pool", n, ksize=(2, 2), strides=(2, 2), data_format="NCHW", fused_activation="relu")
    n = g.op("batch_norm", n, w(4), w(4), w(4), g.const(np.ones(4, np.float32)), data_format="NCHW")
    y = g.op("transpose", n, perm=(0, 2, 3, 1))
    y = g.op("resize", y, size=(4, 4), method="bilinear", half_pixel_centers=True)
    y = g.op("pad", y, paddings=((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    y = g.op("elu", g.op("leaky_relu", y, alpha=0.1))
    y = g.op("resize", y, size=(3, 3), method="nearest")
    y = g.op("reshape", g.op("silu", y), shape=(1, -1))
    y = g.op("tfl.matmul", y, w(36, 5), w(5), fused_activation="relu_n1_to_1")
    g.set_output("logits", y)
    g.set_output("probs", g.op("softmax", y, beta=0.5))
    return g


def sequence_graph() -> Graph:
    """Embedding-style gathers, attention-style batch matmuls, reductions, shape ops and elementwise math."""
    r = _rng()
    g = Graph("sequence")
    tokens = g.add_input("tokens", TensorType(DType.i32, (2, 6)))
    feats = g.add_input("feats", TensorType(DType.f32, (2, 6, 4)))
    table = g.const(r.standard_normal((10, 4)).astype(np.float32))
    e = g.op("add", g.op("gather", table, tokens, axis=0), feats)
    scores = g.op("batch_matmul", e, e, adj_y=True)
    attn = g.op("batch_matmul", g.op("softmax", scores, axis=-1), e)
    mean = g.op("mean", attn, axes=(-1,), keepdims=True)
    var = g.op("mean", g.op("squared_difference", attn, mean), axes=(-1,), keepdims=True)
    norm = g.op("mul", g.op("sub", attn, mean), g.op("rsqrt", g.op("add", var, g.const(np.float32(1e-5)))))
    h = g.op("gelu", norm)
    h = g.op("add", h, g.op("gelu", norm, approximate=True))
    h = g.op("add", h, g.op("erf", norm))
    h = g.op("maximum", h, g.op("neg", g.op("abs", h)))
    h = g.op("div", h, g.op("add", g.op("exp", g.op("minimum", h, g.const(np.float32(2)))), g.const(np.float32(1))))
    pooled = g.op("sum", h, axes=(1,))
    g.set_output("pooled", g.op("max", g.op("expand_dims", pooled, axis=1), axes=(1,)))
    first = g.op("squeeze", g.op("strided_slice", h, begin=(0, 0, 0), end=(2, 1, 4), strides=(1, 1, 1)), axes=(1,))
    g.set_output("first", g.op("tile", g.op("slice", first, begin=(0, 1), size=(-1, 2)), multiples=(1, 2)))
    best = g.op("argmax", pooled, axis=1, dtype=DType.i32)
    g.set_output("best", best)
    g.set_output("onehot", g.op("one_hot", best, depth=4))
    mask = g.op("greater", tokens, g.const(np.int32(4)))
    masked = g.op("select", mask, g.op("cast", tokens, to=DType.f32), g.const(np.float32(-1)))
    g.set_output("masked", g.op("floor_mod", g.op("square", masked), g.const(np.float32(3))))
    g.set_output("ints", g.op("div", tokens, g.const(np.int32(-3))))
    parts = g.add("unpack", [feats], {"axis": 0}).results
    g.set_output("packed", g.op("pack", *parts, axis=2))
    g.set_output("shape", g.op("shape", feats))
    g.set_output("bcast", g.op("broadcast_to", g.op("prod", feats, axes=(0, 2)), shape=(3, 6)))
    return g


def quant_graph() -> Graph:
    """quantize, dequantize, requantize, and a quantized op run in float between them."""
    g = Graph("quant")
    x = g.add_input("x", TensorType(DType.f32, (1, 4, 4, 2)))
    q = g.op("quantize", x, dtype=DType.i8, scale=(0.05,), zero_point=(3,))
    q = g.op("max_pool", q, ksize=(2, 2), strides=(2, 2))
    q = g.op("requantize", q, dtype=DType.u8, scale=(0.1,), zero_point=(128,))
    g.set_output("y", g.op("dequantize", q))
    return g


def indexing_graph() -> Graph:
    """cumsum, roll, dynamic slices, top_k, gather_nd and the scatters (the TFLite emitters' cases)."""
    from tests.test_backend_tflite_ops import build

    return build("indexing")


GRAPHS = {"cnn": cnn_graph, "sequence": sequence_graph, "quant": quant_graph, "indexing": indexing_graph}


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_emitter_matches_interpreter(name, jit):
    from irc.backends import tfemit

    g = GRAPHS[name]()
    inputs = random_inputs(g, seed=1)
    # TensorFlow's CPU kernels take NCHW convolutions only under XLA
    model = tfemit.build(g, tfemit.EmitOptions(nchw_as_nhwc=not jit), jit_compile=jit)
    assert_close(model.run(inputs), interpret(g, inputs))


def test_generated_source_is_readable_python():
    from irc.backends import tfemit

    source = tfemit.generate(cnn_graph())
    compile(source.code, "model.py", "exec")
    assert source.code.startswith("def model(w, image):")
    assert "tf.nn.conv2d(image, w[" in source.code
    assert "data_format=\"NCHW\"" in source.code
    assert max(len(line) for line in source.code.splitlines()) <= 120
    assert all(v.ndim and v.size > 16 for v in source.weights.values())  # small constants stay literals


def test_fused_conv2d_for_cuda():
    from irc.backends import tfemit

    g = cnn_graph()
    fused = tfemit.build(g, tfemit.EmitOptions(fused_kernels=True, nchw_as_nhwc=True))
    ops = {op.type for op in fused.concrete_function().graph.get_operations()}
    assert "_FusedConv2D" in ops
    inputs = random_inputs(g)
    assert_close(fused.run(inputs), interpret(g, inputs))


def _opaque_node(g: Graph, fn, *args):
    """A tf.<Op> node made from the single op ``fn`` traces to, as the frontend keeps ops it does not lower."""
    specs = [tf.TensorSpec(v.type.shape, v.type.dtype.numpy) for v in args]
    graph = tf.function(fn).get_concrete_function(*specs).graph
    op = next(o for o in graph.get_operations() if o.type not in ("Placeholder", "Const", "Identity", "NoOp"))
    consts = [t for t in op.inputs if t.op.type == "Const"]
    operands = list(args) + [g.const(tf.get_static_value(t)) for t in consts]
    types = [TensorType(DType.parse(t.dtype.name), tuple(t.shape.as_list())) for t in op.outputs]
    return g.add(f"tf.{op.type}", operands, {"node_def": op.node_def.SerializeToString()}, types=types)


def test_opaque_op_recreated_from_node_def():
    from irc.backends import xla

    g = Graph("opaque")
    x = g.add_input("x", TensorType(DType.f32, (2, 5)))
    node = _opaque_node(g, lambda t: tf.math.cumsum(t, axis=1, exclusive=True), x)
    g.set_output("y", g.op("relu", node.result))
    assert [s for _, s, _ in xla.check(g)] == ["native"] * len(g)
    data = np.arange(10, dtype=np.float32).reshape(2, 5) - 4
    got = xla.emit(g, passes="").run({"x": data})
    np.testing.assert_allclose(got["y"], np.maximum(tf.math.cumsum(data, axis=1, exclusive=True).numpy(), 0))


def test_opaque_while_loop_with_its_function_library(tmp_path):
    from irc.backends import xla

    def loop(t):
        return tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, y * 1.5 + 1.0), [tf.constant(0), t])[1]

    traced = tf.function(loop).get_concrete_function(tf.TensorSpec([2], tf.float32)).graph
    op = next(o for o in traced.get_operations() if o.type in ("While", "StatelessWhile"))
    g = Graph("loop")
    x = g.add_input("x", TensorType(DType.f32, (2,)))
    consts = [g.const(tf.get_static_value(t)) for t in op.inputs[:3]]
    library = traced.as_graph_def().library.SerializeToString()
    node = g.add(f"tf.{op.type}", [*consts, x], {"node_def": op.node_def.SerializeToString(), "library": library},
                 types=[TensorType(DType.i32, ()), TensorType(DType.i32, ()), TensorType(DType.i32, ()), x.type])
    g.set_output("y", node.results[3])
    model = xla.emit(g, passes="", output=tmp_path / "out")
    data = np.array([1.0, -2.0], np.float32)
    np.testing.assert_allclose(model.run({"x": data})["y"], loop(tf.constant(data)).numpy())
    served = tf.saved_model.load(str(tmp_path / "out")).signatures["serving_default"](x=tf.constant(data))
    np.testing.assert_allclose(served["y"].numpy(), loop(tf.constant(data)).numpy())
    g.remove_attr(node, "library")
    (item,) = [i for i in xla.check(g) if i.node is node]
    assert item.status == "unsupported" and "lacks" in item.reason


def test_op_xla_cannot_compile_is_reported_by_name(tmp_path):
    from irc.backends import xla

    g = Graph("bad")
    x = g.add_input("x", TensorType(DType.f32, (2, 5)))
    norm = _opaque_node(g, lambda t: tf.math.reduce_euclidean_norm(t, axis=1), x).result
    g.set_output("y", g.op("exp", norm))
    report = {n.op: (status, reason) for n, status, reason in xla.check(g)}
    assert report["tf.EuclideanNorm"][0] == "unsupported"
    assert "no XLA kernel for EuclideanNorm" in report["tf.EuclideanNorm"][1]
    assert report["exp"] == ("native", "")
    with pytest.raises(TargetError, match=r"xla cannot run .*tf\.EuclideanNorm"):
        xla.emit(g, passes="", output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_op_is_reported_by_name():
    from irc.backends import xla

    g = Graph("unknown")
    x = g.add_input("x", TensorType(DType.f32, (3,)))
    g.set_output("y", g.add("mystery", [x], {}, types=[x.type]).result)
    (item,) = xla.check(g)
    assert item.status == "unsupported" and "no rule for mystery" in item.reason
    with pytest.raises(TargetError, match="mystery"):
        xla.emit(g, passes="")


def test_quantized_nodes_run_as_float():
    from irc.backends import xla

    g = quant_graph()
    statuses = {n.op: s for n, s, _ in xla.check(g)}
    assert statuses == {"quantize": "native", "max_pool": "fallback", "requantize": "native", "dequantize": "native"}
    inputs = random_inputs(g)
    assert_close(xla.emit(g, passes="").run(inputs), interpret(g, inputs))


def test_xla_output_directory(tmp_path):
    from irc.backends import xla

    g = cnn_graph()
    out = tmp_path / "out"
    model = xla.emit(g, passes="", output=out)
    assert {p.name for p in out.iterdir()} >= {"saved_model.pb", "variables", "model.hlo.txt", "model.py"}
    hlo = (out / "model.hlo.txt").read_text()
    assert hlo.startswith("HloModule") and "convolution" in hlo and 'op_name="conv2d' in hlo
    inputs = random_inputs(g)
    want = interpret(g, inputs)
    assert_close(model.run(inputs), want)
    loaded = tf.saved_model.load(str(out))
    serve = loaded.signatures["serving_default"]
    assert_close({k: v.numpy() for k, v in serve(image=tf.constant(inputs["image"])).items()}, want)
    fdefs = serve.graph.as_graph_def().library.function
    assert any(f.attr["_XlaMustCompile"].b for f in fdefs)
    # a second lowering is refused without force, and with it replaces the first one whole
    (out / "stray.txt").write_text("left from before")
    with pytest.raises(UsageError, match="directory exists and is not empty"):
        xla.emit(g, passes="", output=out)
    assert (out / "stray.txt").exists()
    xla.emit(g, passes="", output=out, force=True)
    assert not (out / "stray.txt").exists() and (out / "model.hlo.txt").read_text().startswith("HloModule")


def any_batch_graph(depthwise: bool = False) -> Graph:
    r = _rng()
    g = Graph("anybatch")
    x = g.add_input("image", TensorType(DType.f32, ("n", 6, 6, 3)))
    y = g.op("relu", g.op("conv2d", x, g.const(r.standard_normal((3, 3, 3, 4)).astype(np.float32)), padding="SAME"))
    if depthwise:
        y = g.op("depthwise_conv2d", y, g.const(r.standard_normal((3, 3, 4, 1)).astype(np.float32)), padding="SAME")
    g.set_output("y", g.op("mean", y, axes=(1, 2)))
    return g


def parse_mlir(text: str) -> str:
    """The module as TensorFlow's MLIR tooling parses, verifies and prints it (an empty pass pipeline)."""
    return tf.mlir.experimental.run_pass_pipeline(text, "")


def test_hlo_and_stablehlo_for_each_batch_size(tmp_path):
    from irc.backends import xla

    out = tmp_path / "out"
    xla.emit(any_batch_graph(), passes="", output=out, batch="1,8")
    files = {p.name for p in out.iterdir()}
    assert {"model.hlo.txt", "model.stablehlo.mlir", "model.b8.hlo.txt", "model.b8.stablehlo.mlir"} <= files
    for stem, batch in (("model", 1), ("model.b8", 8)):
        hlo = (out / f"{stem}.hlo.txt").read_text()
        assert hlo.startswith("HloModule") and f"f32[{batch},6,6,3]" in hlo
        stablehlo = (out / f"{stem}.stablehlo.mlir").read_text()
        assert "stablehlo.convolution" in stablehlo and f"tensor<{batch}x6x6x3xf32>" in stablehlo
        assert f"tensor<{batch}x6x6x3xf32>" in parse_mlir(stablehlo)
    with pytest.raises(Exception, match="unknown"):  # the parser does check: a made-up op is refused
        parse_mlir((out / "model.stablehlo.mlir").read_text().replace("stablehlo.convolution", "stablehlo.convolutio"))


def test_fixed_batch_refuses_other_batch_sizes():
    from irc.backends import xla
    from irc.errors import UsageError

    with pytest.raises(UsageError, match="fixed at 1"):
        xla.emit(cnn_graph(), passes="", batch="1,8")
    with pytest.raises(UsageError, match="comma"):
        xla.emit(any_batch_graph(), passes="", batch="1;8")


def test_huge_batch_is_refused_before_tracing():
    from irc.backends import xla
    from irc.errors import InputError

    with pytest.raises(InputError, match="batch 100000000"):
        xla.emit(any_batch_graph(), passes="", batch="1,100000000")


def test_note_when_xla_is_measured_slower_on_this_cpu():
    from irc.backends import xla

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("the note is for CPU hosts")
    (line,) = xla.notes(any_batch_graph(depthwise=True))
    assert "depthwise_conv2d" in line and "slower" in line
    assert xla.notes(any_batch_graph()) == []


# ----- real models ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=sorted(MODELS))
def lowered(request, zoo_models, tmp_path_factory):
    """One xla lowering per zoo model, written to disk."""
    from irc.backends import xla

    case = model_case(zoo_models, request.param)
    out = tmp_path_factory.mktemp(case.name) / "xla"
    return case, xla.emit(case.graph, output=out), out


def test_model_matches_tensorflow(lowered):
    case, model, _ = lowered
    errors = assert_close(model.run(case.inputs), case.want, RTOL.get(case.name, 1e-4))
    print(f"xla {case.name}: max abs errors {errors}")


def test_saved_model_matches_tensorflow(lowered):
    case, _, out = lowered
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    assert_close({k: v.numpy() for k, v in serve(**case.inputs).items()}, case.want, RTOL.get(case.name, 1e-4))


def test_model_hlo_names_the_model_ops(lowered):
    case, _, out = lowered
    hlo = (out / "model.hlo.txt").read_text()
    assert hlo.startswith("HloModule") and len(hlo) > 10_000
    for word in case.hlo_words:
        assert word in hlo, f"{word} not in {case.name}'s HLO"
    assert ("convolution(" in hlo) == (case.name != "transformer_encoder")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50"])
def test_full_size_model_matches_tensorflow(name, zoo_models):
    import irc
    from irc.backends import xla

    path = zoo_models.saved_model(name)
    graph = irc.load(path)
    inputs = random_inputs(graph)
    assert_close(xla.emit(graph).run(inputs), tf_reference(path, inputs))


def test_irc_lower_command_for_each_target(zoo_models, tmp_path):
    import subprocess
    import sys

    from click.testing import CliRunner

    from irc.cli import main

    path = str(zoo_models.saved_model("transformer_encoder"))
    runner = CliRunner()
    # Each `irc lower` runs as its own process, as users run it: TensorFlow's process-wide device and XLA state
    # left by earlier tests in this worker must not decide where the cuda model's ops can be placed.
    logs = {}
    for args in (["--emit", "xla", "--batch", "1,2"], ["--emit", "cuda", "--layout", "nchw", "--precision", "fp16"],
                 ["--emit", "tpu", "--tpu", "10.9.8.7:8470"]):
        out = tmp_path / args[1]
        done = subprocess.run([sys.executable, "-m", "irc.cli", "lower", path, *args, "-o", str(out)],
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        logs[args[1]] = done.stderr
    assert (tmp_path / "xla" / "model.hlo.txt").read_text().startswith("HloModule")
    assert (tmp_path / "xla" / "model.b2.stablehlo.mlir").exists()
    if not tf.test.is_built_with_cuda():
        notes = [line for line in logs["cuda"].splitlines() if "note:" in line]
        assert len(notes) == 1 and "without CUDA" in notes[0], logs["cuda"]
    assert (tmp_path / "cuda" / "loader.py").exists() and (tmp_path / "cuda" / "saved_model.pb").exists()
    assert 'default="10.9.8.7:8470"' in (tmp_path / "tpu" / "run_tpu.py").read_text()
    result = runner.invoke(main, ["check", path, "--target", "xla"], catch_exceptions=False)
    assert result.exit_code == 0 and "will convert to xla" in result.output


def test_fill_and_dynamic_update_slice_emit_as_their_kernels_run(tmp_path):
    """What TensorLists become (a list made at a run-time length, an item set at a run-time index)."""
    from irc.backends import xla
    from irc.ir.interpreter import run

    g = Graph("lists")
    i, item = g.add_input("i", TensorType(DType.i32, ())), g.add_input("item", TensorType(DType.f32, (3,)))
    dims = g.op("pack", g.const(np.int32(4)), g.const(np.int32(3)), axis=0)
    zeros = g.op("fill", dims, g.const(np.float32(0)))
    start = g.op("pack", i, g.const(np.int32(0)), axis=0)
    g.set_output("list", g.op("dynamic_update_slice", zeros, g.op("expand_dims", item, axis=0), start))
    model = xla.emit(g, passes="", output=tmp_path / "out")
    for index in (1, 3, 7, -2):  # past either end: clamped, as XLA does
        inputs = {"i": np.int32(index), "item": np.array([1, 2, 3], np.float32)}
        np.testing.assert_array_equal(model.run(inputs)["list"], run(g, inputs)["list"])
