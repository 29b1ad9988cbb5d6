"""Fuzzing the .tflite reader end to end: flatbuffer parsing, validation and the TFLite frontend.

Any bytes give an irc graph or an IrcError naming the file. Two sources: byte-level edits of valid files (which
the flatbuffer layer and the validator must catch), and models edited as dataclasses and written without the
writer's validation (well-formed flatbuffers that lie: shapes, types, indices and operator codes that do not fit
together, which the validator and the frontend must catch). A graph that is read must survive the verifier and
the printer. Two targeted sources more: one tensor listed thousands of times as an input or output, and shape
arithmetic (TILE, BROADCAST_TO of a constant) of any size. The budget is tests/bad_inputs/fuzzing.py's (``IRC_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from irc.errors import IrcError
from irc.formats.tflite import flatbuffer, schema
from irc.frontends.tflite import graph_of
from irc.ir.graph import Graph
from irc.ir.printer import print_graph
from irc.ir.verify import find_problems
from tests.bad_inputs.fuzzing import CORPUS, INTERESTING_INTS, bounded, fuzz_settings, mutated

SEEDS = [(CORPUS / "good" / name).read_bytes() for name in ("tiny.tflite", "cnn.tflite")]
MODELS = [flatbuffer.read_model(seed, "seed.tflite") for seed in SEEDS]
DIMS = [-2, -1, 0, 1, 2, 3, 4, 6, 54, 2**31 - 1]
TYPES = sorted(schema.TENSOR_TYPE.codes)
OPS = sorted(schema.BUILTIN_OPERATOR.codes)


def read(data: bytes):
    """What irc makes of ``data`` as a .tflite file: a graph or an IrcError naming it."""
    try:
        model = flatbuffer.read_model(data, "fuzz.tflite")
    except IrcError as error:
        return error
    return graph_of(model, "fuzz.tflite", "fuzz")


def check(data: bytes) -> None:
    result = bounded(read, data)
    if isinstance(result, IrcError):
        assert str(result).startswith("fuzz.tflite"), f"the error does not name the file: {result}"
        return
    assert isinstance(result, Graph)
    assert isinstance(bounded(find_problems, result, elided_ok=True), list)
    bounded(print_graph, result)


@fuzz_settings()
@given(st.sampled_from(SEEDS).flatmap(mutated))
def test_edited_bytes(data):
    check(data)


@fuzz_settings()
@given(st.binary(max_size=200).map(lambda tail: b"\x1c\x00\x00\x00TFL3" + tail))
def test_random_bytes_behind_the_identifier(data):
    check(data)


@st.composite
def lying_models(draw) -> bytes:
    """A seed model with a few fields set to values that do not fit the rest of the model."""
    model = copy.deepcopy(draw(st.sampled_from(MODELS)))
    sg = model.subgraphs[0]
    n = len(sg.tensors)
    index = st.integers(-1, n)
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["shape", "type", "buffer", "inputs", "outputs", "opcode", "graph_io",
                                     "quantization", "drop_op", "swap_ops", "repeat_io"]))
        t = sg.tensors[draw(st.integers(0, n - 1))]
        op = sg.operators[draw(st.integers(0, len(sg.operators) - 1))] if sg.operators else None
        if edit == "shape":
            t.shape = draw(st.lists(st.sampled_from(DIMS), max_size=5))
        elif edit == "type":
            t.type = draw(st.sampled_from(TYPES))
        elif edit == "buffer":
            t.buffer = draw(st.integers(0, len(model.buffers) + 1))
        elif edit == "inputs" and op is not None:
            op.inputs = draw(st.lists(index, max_size=4))
        elif edit == "outputs" and op is not None:
            op.outputs = draw(st.lists(index, max_size=3))
        elif edit == "opcode" and model.operator_codes:
            model.operator_codes[draw(st.integers(0, len(model.operator_codes) - 1))].builtin_code = \
                draw(st.sampled_from(OPS))
        elif edit == "graph_io":
            setattr(sg, draw(st.sampled_from(["inputs", "outputs"])), draw(st.lists(index, max_size=3)))
        elif edit == "quantization":
            scales = draw(st.lists(st.sampled_from([0.0, -1.0, 1e-30, 0.5, float("inf"), float("nan")]),
                                   max_size=3))
            t.quantization = flatbuffer.Quantization(scale=scales, zero_point=[draw(
                st.sampled_from(INTERESTING_INTS + [-128])) for _ in scales],
                quantized_dimension=draw(st.integers(0, 4)))
        elif edit == "drop_op" and sg.operators:
            del sg.operators[draw(st.integers(0, len(sg.operators) - 1))]
        elif edit == "repeat_io":  # one tensor listed thousands of times: read in linear time
            setattr(sg, draw(st.sampled_from(["inputs", "outputs"])),
                    [draw(st.integers(0, n - 1))] * draw(st.sampled_from([2, 100, 5000])))
        elif edit == "swap_ops" and len(sg.operators) > 1:
            i, j = draw(st.integers(0, len(sg.operators) - 1)), draw(st.integers(0, len(sg.operators) - 1))
            sg.operators[i], sg.operators[j] = sg.operators[j], sg.operators[i]
    plan = flatbuffer._Plan.of(model)
    plan.buffer_of += range(len(plan.buffer_of), len(model.buffers) + 2)  # a tensor may name a missing buffer
    return flatbuffer._Writer(1 << 16).model(model, plan, None)


@fuzz_settings()
@given(lying_models())
def test_models_whose_fields_do_not_fit_together(data):
    check(data)


@st.composite
def shape_arithmetic_models(draw) -> bytes:
    """TILE or BROADCAST_TO of an int32 constant by sizes that may be huge: what the reader evaluates as it reads
    must be sized first (a 1 KB file must not make it compute a gigabyte)."""
    code = draw(st.sampled_from(["TILE", "BROADCAST_TO"]))
    sizes = draw(st.lists(st.sampled_from([0, 1, 3, 4096, 4097, 2**16, 2**28, 2**31 - 1, -1]), min_size=1,
                          max_size=3))
    value = np.arange(1 if code == "BROADCAST_TO" else len(sizes), dtype=np.int32)
    tensors = [flatbuffer.Tensor("x", [1], "INT32"), flatbuffer.Tensor("c", list(value.shape), "INT32", buffer=1),
               flatbuffer.Tensor("sizes", [len(sizes)], "INT32", buffer=2),
               flatbuffer.Tensor("out", [max(s, 1) for s in sizes], "INT32")]
    model = flatbuffer.TFLModel(
        operator_codes=[flatbuffer.OperatorCode(code)],
        subgraphs=[flatbuffer.SubGraph(tensors=tensors, inputs=[0], outputs=[3],
                                       operators=[flatbuffer.Operator(0, inputs=[1, 2], outputs=[3])])],
        buffers=[flatbuffer.Buffer(), flatbuffer.Buffer(value), flatbuffer.Buffer(np.int32(sizes))])
    return flatbuffer._Writer(1 << 12).model(model, flatbuffer._Plan.of(model), None)


@fuzz_settings()
@given(shape_arithmetic_models())
def test_shape_arithmetic_of_any_size(data):
    check(data)
