"""Helpers that generated TensorFlow programs call, for what a plain ``tf.*`` call cannot say.

Each helper is self-contained (it imports what it needs itself), because the TPU backend copies the source of the
helpers a model uses into the program it writes; the xla and cuda backends call them from here. They run inside a
``tf.function`` (graph mode): ``tf_op`` adds an op to the graph being traced.
"""

from __future__ import annotations


def tf_op(node_def, inputs, name, library=""):
    """Re-creates a TensorFlow op from its serialized NodeDef (base64 text) on ``inputs``; returns its outputs.

    Attributes the NodeDef leaves out take their registered defaults; internal ones (``_class``, ...) are dropped.
    ``library`` (base64 text of a FunctionDefLibrary) holds the functions the op calls (While, If, ...).
    """
    import base64

    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2, node_def_pb2
    from tensorflow.python.framework import op_def_registry

    proto = node_def_pb2.NodeDef.FromString(base64.b64decode(node_def))
    attrs = {key: value for key, value in proto.attr.items() if not key.startswith("_")}
    op_def = op_def_registry.get(proto.op)
    if op_def is None:
        raise ValueError(f"TensorFlow has no op named {proto.op!r}")
    for attr in op_def.attr:
        if attr.name not in attrs and attr.HasField("default_value"):
            attrs[attr.name] = attr.default_value
    if library:  # add the functions to the graph being traced, so that the op (and a SavedModel) finds them
        functions = graph_pb2.GraphDef()
        functions.library.ParseFromString(base64.b64decode(library))
        tf.graph_util.import_graph_def(functions, name="")
    graph = tf.compat.v1.get_default_graph()
    tensors = [tf.convert_to_tensor(x) for x in inputs]  # weights arrive as variables
    return graph.create_op(proto.op, tensors, name=name, attrs=attrs).outputs


def fused_conv2d(x, filter, bias, strides, padding, dilations, data_format, activation, name):
    """TensorFlow's ``_FusedConv2D``: conv2d + bias (+ relu or relu6) in one kernel (cuDNN's on a GPU)."""
    import tensorflow as tf
    from tensorflow.core.framework import attr_value_pb2

    def ints(values):
        return attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(i=list(values)))

    fused = [b"BiasAdd"] + ([{"relu": b"Relu", "relu6": b"Relu6"}[activation]] if activation != "none" else [])
    attrs = {
        "T": attr_value_pb2.AttrValue(type=x.dtype.as_datatype_enum),
        "TArgs": attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(type=[x.dtype.as_datatype_enum])),
        "num_args": attr_value_pb2.AttrValue(i=1),
        "num_host_args": attr_value_pb2.AttrValue(i=0),
        "strides": ints(strides),
        "dilations": ints(dilations),
        "padding": attr_value_pb2.AttrValue(s=padding.encode()),
        "data_format": attr_value_pb2.AttrValue(s=data_format.encode()),
        "fused_ops": attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(s=fused)),
    }
    graph = tf.compat.v1.get_default_graph()
    tensors = [tf.convert_to_tensor(t) for t in (x, filter, bias)]  # weights arrive as variables
    return graph.create_op("_FusedConv2D", tensors, name=name, attrs=attrs).outputs[0]


def dequantize(q, scale, zero_point, axis, precision="float64", out="float32"):
    """real = scale * (q - zero_point), computed in ``precision`` and returned as ``out``; ``axis`` is the channel
    axis of per-channel parameters."""
    import tensorflow as tf

    wide = tf.as_dtype(precision)
    scale, zero_point = tf.cast(scale, wide), tf.cast(zero_point, wide)
    if axis is not None:
        shape = [1] * q.shape.rank
        shape[axis] = -1
        scale, zero_point = tf.reshape(scale, shape), tf.reshape(zero_point, shape)
    return tf.cast((tf.cast(q, wide) - zero_point) * scale, tf.as_dtype(out))


def quantize(x, dtype, scale, zero_point, axis, precision="float64"):
    """q = clip(round_half_even(x / scale) + zero_point) in the integer ``dtype``, computed in ``precision``."""
    import tensorflow as tf

    wide = tf.as_dtype(precision)
    scale, zero_point = tf.cast(scale, wide), tf.cast(zero_point, wide)
    if axis is not None:
        shape = [1] * x.shape.rank
        shape[axis] = -1
        scale, zero_point = tf.reshape(scale, shape), tf.reshape(zero_point, shape)
    q = tf.round(tf.cast(x, wide) / scale) + zero_point
    return tf.cast(tf.clip_by_value(q, dtype.min, dtype.max), dtype)


def lstm(x, kernel, recurrent_kernel, bias, h, c, time_major=False, cell_clip=0.0, name="lstm"):
    """Every step's h of Keras's LSTM over ``x`` (irc's ``tfl.unidirectional_sequence_lstm``), as a tf.scan."""
    import tensorflow as tf

    with tf.name_scope(name):
        steps = x if time_major else tf.transpose(x, [1, 0, 2])

        def step(state, x_t):
            h_t, c_t = state
            i, f, g, o = tf.split(tf.matmul(x_t, kernel) + tf.matmul(h_t, recurrent_kernel) + bias, 4, axis=-1)
            c_t = tf.sigmoid(f) * c_t + tf.sigmoid(i) * tf.tanh(g)
            if cell_clip > 0:
                c_t = tf.clip_by_value(c_t, -cell_clip, cell_clip)
            return tf.sigmoid(o) * tf.tanh(c_t), c_t

        hs, _ = tf.scan(step, steps, initializer=(h, c))
        return hs if time_major else tf.transpose(hs, [1, 0, 2])
