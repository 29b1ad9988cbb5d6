"""Crafted TensorFlow files, built without TensorFlow: GraphDefs (with irc's own protobuf classes) and checkpoint
indexes (a LevelDB table written here byte by byte), honest or hostile as each test needs.

Used by tests/test_security_limits_tf.py and the TF reader fuzzers; the layouts follow TensorFlow's protos
(graph.proto, function.proto, tensor_bundle.proto) and LevelDB's table format.
"""

from __future__ import annotations

import io
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np

from irc.formats.tfproto import MESSAGES
from irc.frontends.tensor_bundle import crc32c, read_table

FLOAT, INT32, STRING = 1, 3, 7
GOOD_SAVEDMODEL = Path(__file__).resolve().parent / "bad_inputs" / "good" / "tiny_savedmodel"


# ---- GraphDefs ---------------------------------------------------------------------------------------------------
def add_node(container, name: str, op: str, inputs=(), **attrs):
    """A NodeDef in ``container.node`` (a GraphDef) or ``container.node_def`` (a FunctionDef). Attribute values:
    an int is a type enum for keys T/dtype, a tuple is a shape, an AttrValue-like callable edits the attr."""
    node = (container.node if hasattr(container, "node") else container.node_def).add(name=name, op=op)
    node.input.extend(inputs)
    for key, value in attrs.items():
        attr = node.attr.add(key=key).value
        if callable(value):
            value(attr)
        elif isinstance(value, tuple):
            for size in value:
                attr.shape.dim.add(size=size)
        else:
            attr.type = value
    return node


def placeholder(container, name: str = "x", shape=(1, 4)):
    return add_node(container, name, "Placeholder", dtype=FLOAT, shape=tuple(shape))


def tensor_attr(dtype: int, shape, *, content: bytes = b"", float_val=(), int_val=(), string_val=()):
    """An attribute setter for a TensorProto value."""
    def edit(attr):
        t = attr.tensor
        t.dtype = dtype
        for size in shape:
            t.tensor_shape.dim.add(size=size)
        t.tensor_content = content
        t.float_val.extend(float_val)
        t.int_val.extend(int_val)
        t.string_val.extend(string_val)
    return edit


def const_graphdef(shape, *, content: bytes = b"", float_val=(1.0,)) -> bytes:
    """x: f32[1] plus a Const of ``shape`` (its values one float_val, or ``content``) that an AddV2 reads."""
    gd = MESSAGES["GraphDef"]()
    placeholder(gd, shape=(1,))
    add_node(gd, "big", "Const", dtype=FLOAT,
             value=tensor_attr(FLOAT, shape, content=content, float_val=() if content else float_val))
    add_node(gd, "y", "AddV2", ["x", "big"], T=FLOAT)
    return gd.SerializeToString()


def call_tree_graphdef(depth: int, fanout: int = 2, leaf_ops: int = 1, calls: str = "direct") -> bytes:
    """Functions f0..f{depth}: each f_i calls f_{i+1} ``fanout`` times in a chain, f_depth holds ``leaf_ops``
    Relus. One call of f0 inlines to fanout**depth * leaf_ops nodes. ``calls`` is "direct" (the function's name
    as the op) or "partitioned" (PartitionedCall with attribute f)."""
    gd = MESSAGES["GraphDef"]()
    placeholder(gd)
    call_node(gd, "call", "f0", "x", calls)
    for i in range(depth + 1):
        fn = gd.library.function.add()
        fn.signature.name = f"f{i}"
        fn.signature.input_arg.add(name="a", type=FLOAT)
        fn.signature.output_arg.add(name="out", type=FLOAT)
        prev = "a"
        if i == depth:
            for k in range(leaf_ops):
                add_node(fn, f"r{k}", "Relu", [prev], T=FLOAT)
                prev = f"r{k}:activations:0"
        else:
            for k in range(fanout):
                call_node(fn, f"c{k}", f"f{i + 1}", prev, calls)
                prev = f"c{k}:{'out' if calls == 'direct' else 'output'}:0"
        fn.ret.add(key="out", value=prev)
    add_node(gd, "y", "Relu", ["call"], T=FLOAT)
    return gd.SerializeToString()


def call_node(container, name: str, fname: str, arg: str, calls: str):
    if calls == "direct":
        return add_node(container, name, fname, [arg])

    def func(attr):
        attr.func.name = fname

    def types(attr):
        attr.list.type.append(FLOAT)
    return add_node(container, name, "PartitionedCall", [arg], f=func, Tin=types, Tout=types)


# ---- checkpoint indexes (LevelDB tables) ----------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def block(entries, *, restart_interval: int = 16) -> bytes:
    """A table block: ``entries`` are (key, value) or (shared, unshared suffix, value) for hand-made prefixes."""
    out, restarts, prev = bytearray(), [], b""
    for i, entry in enumerate(entries):
        if len(entry) == 3:
            shared, suffix, value = entry
        else:
            key, value = entry
            shared = 0
            if i % restart_interval:
                while shared < min(len(prev), len(key)) and prev[shared] == key[shared]:
                    shared += 1
            suffix = key[shared:]
            prev = key
        if shared == 0:
            restarts.append(len(out))
        out += _varint(shared) + _varint(len(suffix)) + _varint(len(value)) + suffix + value
    restarts = restarts or [0]
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def table(data_blocks: list[bytes], index_targets: list[int] | None = None) -> bytes:
    """A LevelDB table of ``data_blocks`` (uncompressed, checksummed); the index block points at the blocks
    listed in ``index_targets`` (default: each once, in order)."""
    out, handles = bytearray(), []
    for data in data_blocks:
        handles.append((len(out), len(data)))
        out += data + b"\x00" + struct.pack("<I", _mask(crc32c(data + b"\x00")))
    targets = range(len(data_blocks)) if index_targets is None else index_targets
    index = block([(b"k%08d" % i, _varint(handles[t][0]) + _varint(handles[t][1])) for i, t in enumerate(targets)])
    index_handle = (len(out), len(index))
    out += index + b"\x00" + struct.pack("<I", _mask(crc32c(index + b"\x00")))
    footer = _varint(0) + _varint(0) + _varint(index_handle[0]) + _varint(index_handle[1])
    footer = footer.ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    return bytes(out + footer)


def header() -> bytes:
    msg = MESSAGES["BundleHeaderProto"](num_shards=1)
    return msg.SerializeToString()


def entry(dtype: int = FLOAT, shape=(2,), offset: int = 0, size: int | None = None, data: bytes = b"",
          crc: int | None = None, shard: int = 0) -> bytes:
    msg = MESSAGES["BundleEntryProto"](dtype=dtype, shard_id=shard, offset=offset)
    for dim in shape:
        msg.shape.dim.add(size=dim)
    msg.size = len(data) if size is None else size
    msg.crc32c = _mask(crc32c(data)) if crc is None else crc
    return msg.SerializeToString()


def savedmodel_with_index(root: Path, index: bytes, data: bytes | None = None) -> Path:
    """The corpus's tiny SavedModel, copied to ``root``, with its variables.index (and .data) replaced."""
    shutil.copytree(GOOD_SAVEDMODEL, root)
    variables = root / "variables"
    (variables / "variables.index").write_bytes(index)
    if data is not None:
        (variables / "variables.data-00000-of-00001").write_bytes(data)
    return root


KERNEL = "variables/0/.ATTRIBUTES/VARIABLE_VALUE"  # the Dense kernel of the tiny SavedModel


def real_rows() -> list[tuple[bytes, bytes]]:
    """The tiny SavedModel's own index entries, to rebuild its index with one defect each."""
    index = GOOD_SAVEDMODEL / "variables" / "variables.index"
    return sorted(read_table(index.read_bytes()).items())


def edited_entry(value: bytes, fields: dict) -> bytes:
    """A serialized BundleEntryProto with ``fields`` changed (shape given as a list of dims)."""
    entry = MESSAGES["BundleEntryProto"].FromString(value)
    for name, field in fields.items():
        if name == "shape":
            del entry.shape.dim[:]
            for dim in field:
                entry.shape.dim.add(size=dim)
        else:
            setattr(entry, name, field)
    return entry.SerializeToString()


def with_entry(key: str, **fields) -> bytes:
    """The real index with one entry's fields changed (shape given as a list of dims)."""
    rows = [(k, edited_entry(v, fields) if k == key.encode() else v) for k, v in real_rows()]
    return table([block(rows)])


# ---- .npz archives ---------------------------------------------------------------------------------------------
def zip_bomb(nbytes: int, name: str = "x.npy", shape=None) -> bytes:
    """An .npz whose one float32 member is ``nbytes`` of zeros, deflated."""
    shape = shape or (nbytes // 16, 1, 4)
    buffer = io.BytesIO()
    member = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # the same bytes each time
    member.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w") as zf, zf.open(member, "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        chunk = bytes(min(nbytes, 1 << 20))
        for _ in range(nbytes // len(chunk)):
            f.write(chunk)
    return buffer.getvalue()


def nested_loops_graphdef(depth: int, trips: int = 4096) -> bytes:
    """x: f32[1] through ``depth`` While loops nested in one another's bodies, each running ``trips`` times (a
    constant trip count): trips**depth body runs at run time from a few dozen nodes."""
    gd = MESSAGES["GraphDef"]()
    placeholder(gd, shape=(1,))
    _loop(gd, "loop", "x", 0, trips)
    add_node(gd, "y", "Relu", ["loop:1"], T=FLOAT)
    for level in range(depth):
        cond = gd.library.function.add()
        _signature(cond, f"cond{level}", ["i", "v"], [(INT32, "i"), (FLOAT, "v")], [(10, "less")])
        add_node(cond, "n", "Const", dtype=INT32, value=tensor_attr(INT32, (), int_val=[trips]))
        add_node(cond, "less", "Less", ["i", "n:output:0"], T=INT32)
        cond.ret.add(key="less", value="less:z:0")
        body = gd.library.function.add()
        _signature(body, f"body{level}", ["i", "v"], [(INT32, "i"), (FLOAT, "v")], [(INT32, "i2"), (FLOAT, "v2")])
        add_node(body, "one", "Const", dtype=INT32, value=tensor_attr(INT32, (), int_val=[1]))
        add_node(body, "next", "AddV2", ["i", "one:output:0"], T=INT32)
        if level + 1 < depth:
            _loop(body, "inner", "v", level + 1, trips)
            value = "inner:output:1"
        else:
            add_node(body, "relu", "Relu", ["v"], T=FLOAT)
            value = "relu:activations:0"
        body.ret.add(key="i2", value="next:z:0")
        body.ret.add(key="v2", value=value)
    return gd.SerializeToString()


def _signature(fn, name: str, _args, inputs, outputs) -> None:
    fn.signature.name = name
    for dtype, arg in inputs:
        fn.signature.input_arg.add(name=arg, type=dtype)
    for dtype, arg in outputs:
        fn.signature.output_arg.add(name=arg, type=dtype)


def _loop(container, name: str, value: str, level: int, trips: int) -> None:
    """A While over (i = 0, value) with cond{level} and body{level}."""
    add_node(container, f"{name}_zero", "Const", dtype=INT32, value=tensor_attr(INT32, (), int_val=[0]))
    zero = f"{name}_zero" if hasattr(container, "node") else f"{name}_zero:output:0"

    def func(fname):
        def edit(attr):
            attr.func.name = fname
        return edit

    def types(attr):
        attr.list.type.extend([INT32, FLOAT])
    add_node(container, name, "While", [zero, value], T=types, cond=func(f"cond{level}"), body=func(f"body{level}"))
