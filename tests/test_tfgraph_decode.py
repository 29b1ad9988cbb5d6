"""Decoding pieces that need no TensorFlow: tables, snappy, CRC32C, tensors, refs, GraphDefs."""

from __future__ import annotations

import struct

import ml_dtypes
import numpy as np
import pytest

from irc.errors import InputError
from irc.formats import tfproto
from irc.frontends import tfattrs
from irc.frontends.savedmodel_reader import read_graphdef_bytes
from irc.frontends.tensor_bundle import crc32c, read_table, snappy_decompress
from irc.frontends.tfgraph import FuncRef

M = tfproto.MESSAGES


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def _block(pairs, compression=0) -> bytes:
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in pairs)
    body += struct.pack("<II", 0, 1)  # one restart point at 0
    if compression == 1:  # snappy: a length, then the whole block as literals of up to 60 bytes
        chunks = [body[i:i + 60] for i in range(0, len(body), 60)]
        body = _varint(len(body)) + b"".join(bytes([(len(c) - 1) << 2]) + c for c in chunks)
    crc = crc32c(body + bytes([compression]))
    masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    return body + bytes([compression]) + struct.pack("<I", masked)


def _table(pairs, compression=0) -> bytes:
    data = _block(pairs, compression)
    meta = _block([])
    index = _block([(pairs[-1][0], _varint(0) + _varint(len(data) - 5))])
    handles = _varint(len(data)) + _varint(len(meta) - 5) + _varint(len(data) + len(meta)) + _varint(len(index) - 5)
    footer = handles.ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    return data + meta + index + footer


def test_crc32c_known_value():
    assert crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize("compression", [0, 1])
def test_read_table(compression):
    pairs = [(b"", b"header"), (b"a/kernel", b"x" * 100), (b"b/bias", b"yz")]
    assert read_table(_table(pairs, compression)) == dict(pairs)


def test_read_table_rejects_bad_checksum():
    raw = bytearray(_table([(b"k", b"v")]))
    raw[5] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        read_table(bytes(raw))


def test_snappy_copies():
    # "abcd" literal, then a 2-byte-offset copy of 8 bytes at distance 4 (overlapping its own output).
    data = _varint(12) + bytes([3 << 2]) + b"abcd" + bytes([((8 - 1) << 2) | 2]) + struct.pack("<H", 4)
    assert snappy_decompress(data) == b"abcdabcdabcd"


def _tensor(**fields):
    t = M["TensorProto"](**fields)
    return tfattrs.tensor(t)


def _shape(*dims):
    return M["TensorShapeProto"](dim=[M["Dim"](size=d) for d in dims])


def test_tensor_decoding():
    a = _tensor(dtype=3, tensor_shape=_shape(2, 2), tensor_content=np.arange(4, dtype=np.int32).tobytes())
    assert a.dtype == np.int32 and a.tolist() == [[0, 1], [2, 3]]
    filled = _tensor(dtype=1, tensor_shape=_shape(2, 3), float_val=[7.0])
    assert filled.shape == (2, 3) and (filled == 7.0).all()
    half = _tensor(dtype=19, tensor_shape=_shape(2), half_val=[0x3C00, 0x4000])
    assert half.dtype == np.float16 and half.tolist() == [1.0, 2.0]
    bf = _tensor(dtype=14, tensor_shape=_shape(1), half_val=[0x3F80])
    assert bf.dtype == ml_dtypes.bfloat16 and float(bf[0]) == 1.0
    s = _tensor(dtype=7, tensor_shape=_shape(2), string_val=[b"hi", b"\xff"])
    assert s.dtype == object and s.tolist() == [b"hi", b"\xff"]
    assert _tensor(dtype=10, bool_val=[True]).shape == ()


def test_attr_decoding():
    av = M["AttrValue"]
    assert tfattrs.attr_value(av(s=b"SAME")) == "SAME"
    assert tfattrs.attr_value(av(s=b"\n\x07\n\x03CPU")) == b"\n\x07\n\x03CPU"
    assert tfattrs.attr_value(av(type=20)) == "resource"
    assert tfattrs.attr_value(av(shape=M["TensorShapeProto"](unknown_rank=True))) is None
    assert tfattrs.attr_value(av(shape=_shape(-1, 3))) == (None, 3)
    assert tfattrs.attr_value(av(list=M["ListValue"](i=[1, 2]))) == [1, 2]
    assert tfattrs.attr_value(av(list=M["ListValue"]())) == []
    func = tfattrs.attr_value(av(func=M["NameAttrList"](name="body")))
    assert func == FuncRef("body", {})


def _node(graph_or_fn, name, op, inputs=(), **attrs):
    node = (graph_or_fn.node if hasattr(graph_or_fn, "node") else graph_or_fn.node_def).add(
        name=name, op=op, input=list(inputs))
    for key, value in attrs.items():
        node.attr.add(key=key, value=value)
    return node


def _library_graph() -> bytes:
    """x -> Identity -> PartitionedCall(f) ; f returns FusedBatchNormV3's batch_mean."""
    av = M["AttrValue"]
    graph = M["GraphDef"]()
    fn = graph.library.function.add()
    fn.signature.name = "f"
    fn.signature.input_arg.add(name="a", type=1)
    fn.signature.output_arg.add(name="mean", type=1)
    _node(fn, "bn", "FusedBatchNormV3", ["a", "a", "a", "a", "a"], T=av(type=1), U=av(type=1))
    _node(fn, "relu", "Relu", ["bn:y:0", "^bn"])
    fn.ret.add(key="mean", value="bn:batch_mean:0")
    _node(graph, "x", "Placeholder", dtype=av(type=1), shape=av(shape=_shape(-1, 4)))
    _node(graph, "id", "Identity", ["x:0", "^x"])
    _node(graph, "call", "PartitionedCall", ["id"], f=av(func=M["NameAttrList"](name="f")))
    _node(graph, "out", "Neg", ["call"])
    return graph.SerializeToString()


def test_graphdef_with_a_call_is_flattened():
    graph = read_graphdef_bytes(_library_graph(), "test.pb", input_shapes={"x": (2, 4)})
    assert graph.inputs == [("x", "float32", (2, 4))]
    assert graph.outputs == [("out", "out:0")]
    bn = graph.node("call/bn")
    assert bn.inputs == ["x"] * 5
    assert bn.attrs["epsilon"] == pytest.approx(1e-4) and bn.attrs["data_format"] == "NHWC"  # defaults
    assert graph.node("out").inputs == ["call/bn:1"]
    assert "call/relu" not in [n.name for n in graph.nodes]  # feeds no output
    assert graph.functions == {}
    assert bn.node_def and M["NodeDef"].FromString(bn.node_def).op == "FusedBatchNormV3"


def test_graphdef_errors_name_the_file():
    with pytest.raises(InputError, match="broken.pb"):
        read_graphdef_bytes(b"\xff\xff\xff", "broken.pb")
    graph = M["GraphDef"]()
    _node(graph, "call", "PartitionedCall", [], f=M["AttrValue"](func=M["NameAttrList"](name="missing")))
    with pytest.raises(InputError, match="call.*missing"):
        read_graphdef_bytes(graph.SerializeToString(), "nofunc.pb")
