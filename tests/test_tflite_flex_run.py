"""Running a .tflite with Flex ops (``irc lower --allow-tf-ops``) from Python, as docs/tflite.md describes.

TensorFlow's Flex delegate is not in every TFLite interpreter: TensorFlow 2.21's ``tf.lite.Interpreter`` (tensorflow and tensorflow-cpu alike) and
ai-edge-litert 2.3 refuse such a model ("Select TensorFlow op(s) ... not supported by this interpreter"). irc's
own reference interpreter runs the Flex ops with TensorFlow's kernels, so ``irc.run(..., allow_tf_ops=True)`` can.
"""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.backends.tflite.backend import emit
from irc.ir.graph import Graph
from irc.ir.types import DType, TensorType
from tests.test_backend_tflite import opaque_node

X = np.array([0.1, -0.2, 0.5, 0.9], np.float32)


@pytest.fixture
def flex_tflite(tmp_path):
    g = Graph("flex")
    x = g.add_input("x", TensorType(DType.f32, (4,)))
    g.set_output("y", g.op("relu", opaque_node(g, "Erfinv", x, "model/erfinv")))
    path = tmp_path / "flex.tflite"
    path.write_bytes(emit(g, passes="O0", allow_tf_ops=True))
    return path


def expected() -> np.ndarray:
    import tensorflow as tf

    return np.maximum(tf.math.erfinv(X).numpy(), 0)


def test_irc_runs_a_flex_tflite_from_python(flex_tflite):
    graph = irc.load(flex_tflite)
    assert [n.op for n in graph.nodes if n.is_opaque] == ["tf.Erfinv"]
    np.testing.assert_allclose(irc.run(graph, {"x": X}, allow_tf_ops=True)["y"], expected(), rtol=1e-6)


def test_tflite_interpreter_runs_a_flex_tflite_where_it_links_the_flex_delegate(flex_tflite):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(flex_tflite))
    try:
        interpreter.allocate_tensors()
    except RuntimeError as e:
        if "Select TensorFlow op" not in str(e):
            raise
        pytest.skip(f"this TensorFlow ({tf.__version__}) has no Flex delegate in tf.lite.Interpreter (see docs/tflite.md)")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], X)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, expected(), rtol=1e-6)


def test_docs_say_what_runs_a_flex_tflite():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "tflite.md").read_text(encoding="utf-8")
    flex = doc.split("## Flex ops", 1)[1].split("\n## ", 1)[0]
    assert "irc run model.tflite --allow-tf-ops" in flex and "tf.lite.Interpreter" in flex and "ai_edge_litert" in flex
