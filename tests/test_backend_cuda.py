"""The cuda target, on the CPU here: GPU placement in the SavedModel, the generated loader's CPU fallback (one
warning), _FusedConv2D, the NCHW layout with its NHWC CPU signature, and real models against TensorFlow."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
from test_backend_xla import MODELS, assert_close, model_case  # shared model cases, loaded once per process

from irc.ir.graph import Graph
from irc.ir.interpreter import random_inputs
from irc.ir.interpreter import run as interpret
from irc.ir.types import DType, TensorType

tf = pytest.importorskip("tensorflow")


NO_GPU = not tf.config.list_physical_devices("GPU")


def import_loader(directory):
    """The loader.py written beside a cuda SavedModel, imported as a fresh module."""
    spec = importlib.util.spec_from_file_location(f"loader_{abs(hash(str(directory)))}", directory / "loader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_quietly(directory):
    """The loader's serving function, and the warnings loading it twice gave."""
    loader = import_loader(directory)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        serve = loader.load(directory)
        loader.load(directory)
    return serve, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def run_serving(serve, inputs: dict) -> dict:
    return {k: v.numpy() for k, v in serve(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def conv_graph() -> Graph:
    r = np.random.default_rng(0)
    g = Graph("convnet")
    x = g.add_input("image", TensorType(DType.f32, (1, 12, 12, 3)))

    def w(*shape):
        return g.const(r.standard_normal(shape).astype(np.float32))

    y = g.op("tfl.conv2d", x, w(3, 3, 3, 8), w(8), strides=(2, 2), padding="SAME", fused_activation="relu")
    y = g.op("tfl.depthwise_conv2d", y, w(3, 3, 8, 1), w(8), padding="SAME", fused_activation="relu6")
    y = g.op("max_pool", y, ksize=(2, 2), strides=(2, 2))
    y = g.op("tfl.conv2d", y, w(1, 1, 8, 4), w(4), fused_activation="sigmoid")
    g.set_output("features", g.op("mean", y, axes=(1, 2)))
    return g


def function_nodes(serve):
    return [n for f in serve.graph.as_graph_def().library.function for n in f.node_def]


def test_ops_are_placed_on_the_gpu_and_fused(tmp_path):
    from irc.backends import cuda

    g = conv_graph()
    cuda.emit(g, passes="", output=tmp_path / "out")
    assert (tmp_path / "out" / "loader.py").exists()
    serve = tf.saved_model.load(str(tmp_path / "out")).signatures["serving_default"]
    nodes = function_nodes(serve)
    convs = [n for n in nodes if n.op in ("_FusedConv2D", "Conv2D", "DepthwiseConv2dNative")]
    assert convs and all(n.device.endswith("GPU:0") for n in convs)
    assert sum(n.op == "_FusedConv2D" for n in nodes) == 1  # relu fuses; the sigmoid conv stays split


@pytest.mark.skipif(not NO_GPU, reason="checks the fallback on a machine without a GPU")
def test_loader_falls_back_to_cpu_with_one_warning(tmp_path):
    from irc.backends import cuda

    g = conv_graph()
    out = tmp_path / "out"
    model = cuda.emit(g, passes="", output=out)
    inputs = random_inputs(g)
    want = interpret(g, inputs)
    serve, messages = load_quietly(out)
    assert len(messages) == 1 and "no GPU found" in messages[0] and "CPU" in messages[0]
    assert_close(run_serving(serve, inputs), want)
    with pytest.warns(RuntimeWarning, match="no GPU found"):
        assert_close(model.run(inputs), want)


def test_nchw_layout_keeps_an_nhwc_cpu_signature(tmp_path):
    from irc.backends import cuda, tfemit
    from irc.backends.tfemit.model import TFModel

    g = conv_graph()
    out = tmp_path / "out"
    model = cuda.emit(g, passes="", layout="nchw", output=out)
    assert model.cpu is not None and 'data_format="NCHW"' in model.gpu.source.code
    loaded = tf.saved_model.load(str(out))
    assert set(loaded.signatures) == {"serving_default", "serving_cpu"}
    gpu_convs = [n for n in function_nodes(loaded.signatures["serving_default"]) if "Conv" in n.op]
    assert gpu_convs and all(n.attr["data_format"].s == b"NCHW" for n in gpu_convs)
    inputs = random_inputs(g)
    want = interpret(g, inputs)
    if NO_GPU:
        serve, messages = load_quietly(out)
        assert len(messages) == 1
        assert_close(run_serving(serve, inputs), want)
    # the NCHW function itself computes the same (XLA runs NCHW convolutions on the CPU too)
    assert_close(TFModel(model.gpu.source, jit_compile=True).run(inputs), want)
    assert tfemit.generate(g).weights.keys() <= model.cpu.source.weights.keys()


def test_bad_layout_is_a_usage_error():
    from irc.backends import cuda
    from irc.errors import UsageError

    with pytest.raises(UsageError, match="layout"):
        cuda.emit(conv_graph(), passes="", layout="nhcw")


def test_check_reports_cpu_fallback_for_unknown_gpu_kernels():
    from irc.backends import cuda

    g = Graph("opaque")
    x = g.add_input("x", TensorType(DType.f32, (4,)))
    node_def = tf.function(lambda t: tf.math.cumsum(t, 0)).get_concrete_function(
        tf.TensorSpec([4], tf.float32)).graph.get_operation_by_name("Cumsum").node_def
    node = g.add("tf.Cumsum", [x, g.const(np.int32(0))], {"node_def": node_def.SerializeToString()}, types=[x.type])
    g.set_output("y", node.result)
    report = {n.op: status for n, status, _ in cuda.check(g)}
    assert report["const"] == "native"
    assert report["tf.Cumsum"] == ("native" if tf.test.is_built_with_cuda() else "fallback")


# ----- real models ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=sorted(MODELS))
def lowered(request, zoo_models, tmp_path_factory):
    """One cuda lowering per zoo model, written to disk."""
    from irc.backends import cuda

    case = model_case(zoo_models, request.param)
    out = tmp_path_factory.mktemp(case.name) / "cuda"
    cuda.emit(case.graph, output=out)
    return case, out


def test_model_through_the_loader_matches_tensorflow(lowered):
    case, out = lowered
    serve, messages = load_quietly(out)
    assert len(messages) == (1 if NO_GPU else 0)
    errors = assert_close(run_serving(serve, case.inputs), case.want)
    print(f"cuda {case.name}: max abs errors {errors}")


def test_model_uses_fused_convolutions(lowered):
    case, out = lowered
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    ops = {n.op for n in function_nodes(serve)}
    assert ("_FusedConv2D" in ops) == (case.name == "resnet50")  # conv + relu fuses; MobileNetV2 has relu6


@pytest.mark.slow
def test_mobilenet_nchw_matches_tensorflow(zoo_models, tmp_path):
    from irc.backends import cuda
    from irc.backends.tfemit.model import TFModel

    case = model_case(zoo_models, "mobilenet_v2")
    model = cuda.emit(case.graph, layout="nchw", output=tmp_path / "out")
    assert 'data_format="NCHW"' in model.gpu.source.code
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert_close(model.run(case.inputs), case.want)
    assert_close(TFModel(model.gpu.source, jit_compile=True).run(case.inputs), case.want)
