"""Decoding of TF attribute values, shapes, dtypes and tensors into plain Python and numpy."""

from __future__ import annotations

import math

import numpy as np

from irc import limits
from irc.errors import InputError
from irc.frontends.tfgraph import FuncRef

# TF DataType enum -> (irc dtype name, numpy dtype or None when it has no array form). ml_dtypes' types are named
# ("ml_dtypes.bfloat16") and imported on first use: importing ml_dtypes costs about a second, which every
# ``irc lower`` paid before it read a single float32 model.
DTYPES: dict[int, tuple[str, object]] = {
    1: ("float32", np.float32), 2: ("float64", np.float64), 3: ("int32", np.int32), 4: ("uint8", np.uint8),
    5: ("int16", np.int16), 6: ("int8", np.int8), 7: ("string", object), 8: ("complex64", np.complex64),
    9: ("int64", np.int64), 10: ("bool", np.bool_), 11: ("qint8", np.int8), 12: ("quint8", np.uint8),
    13: ("qint32", np.int32), 14: ("bfloat16", "ml_dtypes.bfloat16"), 15: ("qint16", np.int16),
    16: ("quint16", np.uint16), 17: ("uint16", np.uint16), 18: ("complex128", np.complex128),
    19: ("float16", np.float16), 20: ("resource", None), 21: ("variant", None), 22: ("uint32", np.uint32),
    23: ("uint64", np.uint64), 24: ("float8_e5m2", "ml_dtypes.float8_e5m2"),
    25: ("float8_e4m3fn", "ml_dtypes.float8_e4m3fn"), 26: ("float8_e4m3fnuz", "ml_dtypes.float8_e4m3fnuz"),
    27: ("float8_e4m3b11fnuz", "ml_dtypes.float8_e4m3b11fnuz"), 28: ("float8_e5m2fnuz", "ml_dtypes.float8_e5m2fnuz"),
    29: ("int4", "ml_dtypes.int4"), 30: ("uint4", "ml_dtypes.uint4"),
}
DTYPE_ENUM = {name: num for num, (name, _) in DTYPES.items()}


def dtype_name(num: int) -> str:
    if num > 100:  # reference types (DT_FLOAT_REF = 101) read like their value type
        num -= 100
    if num not in DTYPES:
        return f"dtype{num}"
    return DTYPES[num][0]


def numpy_type(num: int):
    """The numpy type of TF dtype ``num``: a numpy scalar type, ``object`` for strings, None without array form."""
    np_type = DTYPES.get(num, (None, None))[1]
    if isinstance(np_type, str):
        import ml_dtypes

        np_type = getattr(ml_dtypes, np_type.removeprefix("ml_dtypes."))
    return np_type


def numpy_dtype(num: int):
    if num > 100:
        num -= 100
    np_type = numpy_type(num)
    if np_type is None:
        raise ValueError(f"TF dtype {dtype_name(num)} has no array form")
    return np.dtype(np_type)


def shape(proto) -> tuple | None:
    """TensorShapeProto -> tuple (None for unknown dims) or None for unknown rank."""
    if proto.unknown_rank:
        return None
    return tuple(d.size if d.size >= 0 else None for d in proto.dim)


def _typed_values(proto, np_type: np.dtype):
    """The repeated *_val field that holds a TensorProto's values, as a flat array."""
    num = proto.dtype
    if np_type == np.dtype(object):
        return np.array(list(proto.string_val), dtype=object)
    if num in (14, 19):  # half and bfloat16 are kept as their 16-bit patterns in half_val
        return np.array(proto.half_val, dtype=np.uint16).view(np_type)
    if num in (24, 25, 26, 27, 28):
        return np.frombuffer(proto.float8_val, dtype=np_type)
    if num == 8:
        return np.array(proto.scomplex_val, dtype=np.float32).view(np.complex64)
    if num == 18:
        return np.array(proto.dcomplex_val, dtype=np.float64).view(np.complex128)
    field = {1: "float_val", 2: "double_val", 9: "int64_val", 10: "bool_val", 22: "uint32_val",
             23: "uint64_val"}.get(num, "int_val")
    return np.array(getattr(proto, field), dtype=np_type)


def tensor(proto, what: str = "tensor") -> np.ndarray:
    """TensorProto -> numpy array of the right dtype and shape (read-only when it views the proto bytes).

    Sized before anything is allocated: values the proto holds are bounded by the file, but a value written
    once for a huge shape (TF's splat) is checked against irc's memory limit. ``what`` names the tensor."""
    np_type = numpy_dtype(proto.dtype)
    if proto.tensor_shape.unknown_rank or any(d.size < 0 for d in proto.tensor_shape.dim):
        dims = [d.size for d in proto.tensor_shape.dim] if not proto.tensor_shape.unknown_rank else "unknown"
        raise InputError(f"{what} has a negative or unknown dimension in shape {dims}")
    dims = tuple(d.size for d in proto.tensor_shape.dim)
    count = math.prod(dims)
    itemsize = np_type.itemsize  # an object array holds one pointer per string
    if proto.tensor_content and np_type != np.dtype(object):
        # TensorFlow reads tensor_content only when it holds exactly the tensor's bytes.
        if len(proto.tensor_content) != count * itemsize:
            raise InputError(f"{what} has {len(proto.tensor_content)} bytes of content for {np_type} shape "
                             f"{list(dims)} ({count * itemsize} bytes)")
        return np.frombuffer(proto.tensor_content, dtype=np_type).reshape(dims)
    flat = _typed_values(proto, np_type)
    if flat.size > count:
        raise InputError(f"{what} holds {flat.size} values for shape {list(dims)}")
    if flat.size < count:
        # TF writes a repeated value once and pads a short list with its last value.
        limits.check_array(dims, itemsize, what, backed_by=flat.nbytes)
        if flat.size == 0:
            flat = np.zeros(count, dtype=np_type) if np_type != np.dtype(object) else np.full(count, b"", object)
        else:
            flat = np.concatenate([flat, np.full(count - flat.size, flat[-1], dtype=np_type)])
    return flat.reshape(dims)


def text_or_bytes(data: bytes) -> str | bytes:
    """Attribute strings are text (padding, data_format) except a few binary blobs (config_proto)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    if any(c < " " and c not in "\n\t\r" for c in text):
        return data
    return text


def attr_map(entries) -> dict[str, object]:
    return {e.key: attr_value(e.value) for e in entries if e.value.WhichOneof("value") is not None}


def attr_value(value) -> object:
    kind = value.WhichOneof("value")
    if kind == "s":
        return text_or_bytes(value.s)
    if kind in ("i", "f", "b", "placeholder"):
        return getattr(value, kind)
    if kind == "type":
        return dtype_name(value.type)
    if kind == "shape":
        return shape(value.shape)
    if kind == "tensor":
        return tensor(value.tensor)
    if kind == "func":
        return FuncRef(value.func.name, attr_map(value.func.attr))
    if kind == "list":
        return _list_value(value.list)
    return None


def _list_value(lst) -> list:
    if lst.s:
        return [text_or_bytes(s) for s in lst.s]
    if lst.i:
        return list(lst.i)
    if lst.f:
        return list(lst.f)
    if lst.b:
        return list(lst.b)
    if lst.type:
        return [dtype_name(t) for t in lst.type]
    if lst.shape:
        return [shape(s) for s in lst.shape]
    if lst.tensor:
        return [tensor(t) for t in lst.tensor]
    if lst.func:
        return [FuncRef(f.name, attr_map(f.attr)) for f in lst.func]
    return []
