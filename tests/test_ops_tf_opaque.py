import numpy as np
import pytest
import tensorflow as tf

from irc.errors import InputError
from irc.ir.types import DType, TensorType
from irc.ops import get_op, infer_types, run_kernel
from irc.ops.tf_opaque import OPAQUE
from irc.ops.tf_policy import permitted
from tests.op_oracle import assert_close, rand


@pytest.fixture(autouse=True)
def tf_ops_permitted():
    """These tests run harmless TF ops, as --allow-tf-ops lets a user (a test may take the permission back)."""
    with permitted(allow_tf_ops=True):
        yield


def node_def_of(fn, *specs, op_type: str) -> bytes:
    """The serialized NodeDef of the first ``op_type`` node in fn's graph."""
    graph = tf.function(fn).get_concrete_function(*specs).graph
    node = next(n for n in graph.as_graph_def().node if n.op == op_type)
    return node.SerializeToString()


def test_lookup_and_attrs():
    assert get_op("tf.Cumsum") is OPAQUE and get_op("tf.Anything") is OPAQUE
    assert OPAQUE.summary
    assert OPAQUE.check_attrs({"node_def": b"x", "T": "f32", "_output_shapes": (1, 2)}) == []
    assert OPAQUE.check_attrs({"T": 1}) == ["missing required attribute 'node_def'"]
    assert OPAQUE.check_attrs({"node_def": "text"}) != []
    with pytest.raises(ValueError, match="explicitly"):
        infer_types("tf.Cumsum", [TensorType(DType.f32, (2,))], {"node_def": b""})


def test_runs_a_single_output_op():
    nd = node_def_of(lambda x: tf.math.cumsum(x, axis=1, exclusive=True), tf.TensorSpec([None, 4]), op_type="Cumsum")
    x = rand(3, 4, seed=1)
    out = run_kernel("tf.Cumsum", [x, np.array(1, np.int32)], {"node_def": nd, "extra": 5})
    assert len(out) == 1
    assert_close(out[0], tf.math.cumsum(x, axis=1, exclusive=True).numpy())
    out = run_kernel("tf.Cumsum", [rand(2, 6, seed=2), np.array(1, np.int32)], {"node_def": nd})  # other shape
    assert out[0].shape == (2, 6)


def test_runs_a_multi_output_op():
    nd = node_def_of(lambda x: tf.unique(x), tf.TensorSpec([None], tf.int32), op_type="Unique")
    x = np.array([3, 1, 3, 2, 1], np.int32)
    y, idx = run_kernel("tf.Unique", [x], {"node_def": nd})
    want = tf.unique(x)
    np.testing.assert_array_equal(y, want.y.numpy())
    np.testing.assert_array_equal(idx, want.idx.numpy())


def test_wrong_input_count():
    nd = node_def_of(lambda x: tf.math.cumsum(x, axis=1), tf.TensorSpec([None, 4]), op_type="Cumsum")
    with pytest.raises(ValueError, match="takes 2 inputs, got 1"):
        run_kernel("tf.Cumsum", [rand(2, 4)], {"node_def": nd})


def test_nothing_runs_without_permission():
    nd = node_def_of(lambda x: tf.math.cumsum(x, axis=1), tf.TensorSpec([None, 4]), op_type="Cumsum")
    with permitted(), pytest.raises(InputError, match="Cumsum.*--allow-tf-ops"):
        run_kernel("tf.Cumsum", [rand(2, 4), np.array(1, np.int32)], {"node_def": nd})
    with permitted(allow_tf_ops=True):
        assert run_kernel("tf.Cumsum", [rand(2, 4), np.array(1, np.int32)], {"node_def": nd})[0].shape == (2, 4)


def test_the_node_def_decides_not_the_irc_op_name(tmp_path):
    """A node named tf.Identity whose NodeDef is a WriteFile is a WriteFile."""
    target = tmp_path / "written"

    def write(filename):
        tf.io.write_file(filename, "x")

    nd = node_def_of(write, tf.TensorSpec([], tf.string), op_type="WriteFile")
    for allow in (False, True):
        with permitted(allow_tf_ops=allow), pytest.raises(InputError, match="WriteFile.*files.*--unsafe"):
            run_kernel("tf.Identity", [np.array(str(target).encode(), object), np.array(b"x", object)],
                       {"node_def": nd})
    assert not target.exists()
