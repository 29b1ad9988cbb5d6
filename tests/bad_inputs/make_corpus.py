"""Writes the binary files of the bad-input corpus (the text ones are written by hand).

    .venv/bin/python tests/bad_inputs/make_corpus.py

Everything is made from ``good/tiny.irc`` (a matmul and a relu, input ``x: f32[1,4]``) or from the same model
built in Keras, with fixed seeds and timestamps, so running it again gives the same files; only the .keras files
carry Keras's own save time, and TensorFlow-written bytes may change with the TensorFlow version (the defects they
carry do not). The expected outcome of each file is in ``manifest.toml``; ``tests/test_bad_inputs.py`` checks
that every file is listed there.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GOOD = HERE / "good" / "tiny.irc"
# The digest in irc/elided_without_weights.irc: the weights files below answer it with the wrong array.
ELIDED_DIGEST = "5d2c4b1a9e8f7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a19080706050403020100"
GENERATED_DIRS = ("tflite", "savedmodel", "keras", "pb", "inputs", "calibration", "weights", "other")


class _Unpickled:
    """Unpickling this prints a marker: a test that sees the marker has caught irc running pickled code."""

    def __reduce__(self):
        return builtins.print, ("IRC-UNPICKLED-THIS-FILE",)


def _write(relative: str, data: bytes) -> None:
    path = HERE / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _npy(array, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _pickled_npz(name: str) -> bytes:
    """An .npz whose one entry is an object array: loading it needs pickle, which irc must refuse."""
    return _zip({f"{name}.npy": _npy(np.array([_Unpickled()], dtype=object), allow_pickle=True)})


def _flip(data: bytes, *positions: int) -> bytes:
    out = bytearray(data)
    for pos in positions:
        out[pos % len(out)] ^= 0xFF
    return bytes(out)


# ---- .tflite ------------------------------------------------------------------------------------------------
def _good_tflite(source: Path = GOOD) -> bytes:
    from irc.backends import get_backend
    from irc.ir.parser import parse

    graph = parse(source.read_text(), source=str(source))
    return get_backend("tflite").emit(graph, {})


def _unchecked(model) -> bytes:
    """The bytes of a model the writer would refuse (it validates): the malformed files the reader must catch."""
    from irc.formats.tflite import flatbuffer

    plan = flatbuffer._Plan.of(model)
    plan.buffer_of += range(len(plan.buffer_of), 1000)  # a tensor may name a buffer that does not exist
    return flatbuffer._Writer(1 << 16).model(model, plan, None)


def make_tflite() -> None:
    from irc.formats.tflite import flatbuffer

    good = _good_tflite()
    _write("good/tiny.tflite", good)  # seeds of the fuzz tests
    _write("good/cnn.tflite", _good_tflite(HERE / "good" / "cnn.irc"))
    _write("tflite/empty.tflite", b"")
    _write("tflite/truncated_header.tflite", good[:6])
    _write("tflite/truncated_half.tflite", good[: len(good) // 2])
    _write("tflite/truncated_last_byte.tflite", good[:-1])
    _write("tflite/wrong_identifier.tflite", good[:4] + b"XXXX" + good[8:])
    _write("tflite/root_offset_past_end.tflite", struct.pack("<I", 1 << 30) + good[4:])
    _write("tflite/bitflip_vtable.tflite", _flip(good, struct.unpack_from("<I", good)[0]))
    _write("tflite/png_bytes.tflite", b"\x89PNG\r\n\x1a\n" + bytes(range(64)))

    def mutated(edit) -> bytes:
        model = flatbuffer.read_model(good, "good.tflite")
        edit(model)
        return _unchecked(model)

    def sg(model):
        return model.subgraphs[0]

    _write("tflite/tensor_buffer_out_of_range.tflite",
           mutated(lambda m: setattr(sg(m).tensors[1], "buffer", 999)))
    _write("tflite/operator_input_out_of_range.tflite",
           mutated(lambda m: setattr(sg(m).operators[0], "inputs", [0, 77])))
    _write("tflite/graph_output_out_of_range.tflite", mutated(lambda m: setattr(sg(m), "outputs", [-5])))
    _write("tflite/opcode_index_out_of_range.tflite",
           mutated(lambda m: setattr(sg(m).operators[0], "opcode_index", 42)))
    _write("tflite/unknown_builtin_op.tflite",
           mutated(lambda m: setattr(m.operator_codes[0], "builtin_code", 4000)))
    _write("tflite/unknown_tensor_type.tflite", mutated(lambda m: setattr(sg(m).tensors[0], "type", 99)))
    _write("tflite/buffer_size_mismatch.tflite",
           mutated(lambda m: setattr(sg(m).tensors[1], "shape", [7, 3])))
    _write("tflite/no_subgraphs.tflite", mutated(lambda m: setattr(m, "subgraphs", [])))
    _write("tflite/wrong_schema_version.tflite", mutated(lambda m: setattr(m, "version", 2)))
    _write("tflite/wrong_options_table.tflite", mutated(
        lambda m: setattr(sg(m).operators[0], "builtin_options", flatbuffer.options("Conv2DOptions"))))
    _write("tflite/huge_input_dims.tflite",
           mutated(lambda m: setattr(sg(m).tensors[sg(m).inputs[0]], "shape", [2**31 - 1, 2**31 - 1, 2**31 - 1])))
    _write("tflite/inconsistent_shapes.tflite",
           mutated(lambda m: setattr(sg(m).tensors[sg(m).inputs[0]], "shape", [1, 9])))
    _write("tflite/cyclic_operators.tflite", mutated(_make_cycle))
    make_tflite_sizes()


def make_tflite_sizes() -> None:
    """Files whose sizes are out of proportion to their bytes (issue 14). ``make_corpus.py sizes`` writes these
    and the .irc files without the rest, whose TensorFlow-written bytes change with every regeneration."""
    from irc.formats.tflite import flatbuffer

    def model(code: str, tensors, operands, buffers) -> bytes:
        """One operator reading ``operands`` and writing the last tensor; tensor 0 is the graph input."""
        operator = flatbuffer.Operator(0, inputs=operands, outputs=[len(tensors) - 1])
        return flatbuffer.write_model(flatbuffer.TFLModel(
            operator_codes=[flatbuffer.OperatorCode(code)],
            subgraphs=[flatbuffer.SubGraph(tensors=tensors, inputs=[0], outputs=[len(tensors) - 1],
                                           operators=[operator])],
            buffers=[flatbuffer.Buffer(), *(flatbuffer.Buffer(np.asarray(b)) for b in buffers)]))

    # TILE of a one-element constant into 2^28 elements (1 GiB): read as a node, refused by irc run
    _write("tflite/tile_over_memory_limit.tflite", model("TILE", [
        flatbuffer.Tensor("x", [1], "INT32"), flatbuffer.Tensor("one", [1], "INT32", buffer=1),
        flatbuffer.Tensor("multiples", [1], "INT32", buffer=2), flatbuffer.Tensor("tiled", [2**28], "INT32")],
        [1, 2], [np.int32([7]), np.int32([2**28])]))
    # a RESHAPE whose new shape holds 5,000 values: no shape has that many
    _write("tflite/shape_operand_too_long.tflite", model("RESHAPE", [
        flatbuffer.Tensor("x", [1, 4]), flatbuffer.Tensor("shape", [5000], "INT32", buffer=1),
        flatbuffer.Tensor("y", [4])], [0, 1], [np.ones(5000, np.int32)]))


def _make_cycle(model) -> None:
    """The operator reads its own output: a cycle no TFLite interpreter can schedule."""
    op = model.subgraphs[0].operators[0]
    op.inputs = [op.outputs[0], *op.inputs[1:]]


# ---- TensorFlow formats -------------------------------------------------------------------------------------
def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(0)
    return keras


def _tiny_keras():
    keras = _keras()
    inp = keras.Input((4,), batch_size=1, name="x")
    out = keras.layers.Dense(2, activation="relu", name="dense")(inp)
    return keras.Model(inp, out, name="tiny")


def _zip(files: dict[str, bytes]) -> bytes:
    """A zip of ``files`` with a fixed timestamp, so the same files give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def make_savedmodels(tmp: Path) -> None:
    good = tmp / "sm"
    _tiny_keras().export(str(good), verbose=False)
    pb = (good / "saved_model.pb").read_bytes()
    out = HERE / "savedmodel"

    def copy(name: str, root: Path = out) -> Path:
        shutil.copytree(good, root / name)
        shutil.rmtree(root / name / "assets", ignore_errors=True)
        for path in (root / name).rglob("fingerprint.pb"):
            path.unlink()
        return root / name

    shutil.rmtree(HERE / "good" / "tiny_savedmodel", ignore_errors=True)
    copy("tiny_savedmodel", HERE / "good")  # a seed of the fuzz tests
    (copy("truncated_pb") / "saved_model.pb").write_bytes(pb[: len(pb) // 3])
    (copy("garbage_pb") / "saved_model.pb").write_bytes(bytes(range(256)) * 4)
    (copy("bitflip_pb") / "saved_model.pb").write_bytes(_flip(pb, 2, 3, 40, 41))
    shutil.rmtree(copy("missing_variables") / "variables")
    data = next((copy("truncated_variables") / "variables").glob("variables.data-*"))
    data.write_bytes(data.read_bytes()[:5])
    _flip_a_weight(copy("bitflip_weights") / "variables" / "variables")
    index = copy("garbage_variables_index") / "variables" / "variables.index"
    index.write_bytes(b"not a tensor bundle index" * 8)
    garbage_text = copy("garbage_pbtxt")
    (garbage_text / "saved_model.pb").unlink()
    (garbage_text / "saved_model.pbtxt").write_text("meta_graphs { this is { not protobuf text\n")
    no_pb = out / "no_saved_model_pb"
    (no_pb / "variables").mkdir(parents=True)
    (no_pb / "variables" / "README").write_text("a directory with variables but no saved_model.pb\n")


def _flip_a_weight(prefix: Path) -> None:
    """One bit flipped in the middle of each float tensor (whichever copy the model reads): sizes all stay right."""
    from irc.frontends.tensor_bundle import TensorBundle

    bundle = TensorBundle(prefix)
    path = bundle.shard_path(0)
    data = bytearray(path.read_bytes())
    for entry in bundle.entries.values():
        if entry.dtype == 1:  # DT_FLOAT
            data[entry.offset + entry.size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def make_keras_files(tmp: Path) -> None:
    keras = _keras()
    inp = keras.Input((4,), batch_size=1, name="x")
    out = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inp)
    lam = keras.Model(inp, out, name="lambda_model")
    lam.save(str(tmp / "lambda.keras"))
    _write("keras/lambda_layer.keras", (tmp / "lambda.keras").read_bytes())

    good = tmp / "tiny.keras"
    _tiny_keras().save(str(good))
    data = good.read_bytes()
    _write("keras/truncated_zip.keras", data[: len(data) // 2])
    _write("keras/not_a_zip.keras", b"this is not a zip file\n")
    with zipfile.ZipFile(good) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(members["config.json"])
    _write("keras/no_config.keras", _zip({k: v for k, v in members.items() if k != "config.json"}))
    _write("keras/bad_config_json.keras", _zip({**members, "config.json": b"{\"class_name\": "}))
    config["config"]["layers"][1]["module"] = "evil_module"
    config["config"]["layers"][1]["class_name"] = "EvilDense"
    config["config"]["layers"][1]["registered_name"] = "evil>EvilDense"
    _write("keras/custom_class.keras", _zip({**members, "config.json": json.dumps(config).encode()}))
    _write("keras/garbage.h5", b"\x89HDF\r\n\x1a\n" + bytes(200))


def make_graphdefs() -> None:
    keras = _keras()
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    model = _tiny_keras()
    fn = tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec([1, 4], tf.float32, name="x"))
    frozen = convert_variables_to_constants_v2(fn).graph.as_graph_def()
    data = frozen.SerializeToString(deterministic=True)
    _write("good/tiny.pb", data)  # a seed of the fuzz tests
    _write("pb/truncated.pb", data[: len(data) // 2])
    _write("pb/garbage.pb", b"\xff" * 64)
    _write("pb/empty.pb", b"")

    def graph_def(nodes, shape=(1, 4)) -> bytes:
        gd = tf.compat.v1.GraphDef()
        for name, op, inputs in nodes:
            node = gd.node.add(name=name, op=op)
            node.input.extend(inputs)
            node.attr["T"].type = tf.float32.as_datatype_enum
            if op == "Placeholder":
                node.attr["dtype"].type = tf.float32.as_datatype_enum
                node.attr["shape"].shape.CopyFrom(tf.TensorShape(shape).as_proto())
            if op == "Const":  # an int32 scalar
                node.attr["dtype"].type = tf.int32.as_datatype_enum
                node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.int32(3)))
        return gd.SerializeToString(deterministic=True)

    _write("pb/cyclic.pb", graph_def([("x", "Placeholder", []), ("a", "AddV2", ["x", "b"]),
                                      ("b", "AddV2", ["a", "x"]), ("out", "Identity", ["b"])]))
    _write("pb/unknown_op.pb", graph_def([("x", "Placeholder", []), ("y", "IrcNoSuchOp", ["x"])]))
    _write("pb/missing_input_node.pb", graph_def([("x", "Placeholder", []), ("y", "Relu", ["nowhere"])]))
    _write("pb/mismatched_dtypes.pb", graph_def([("x", "Placeholder", []), ("c", "Const", []),
                                                 ("y", "AddV2", ["x", "c"])]))
    _write("pb/huge_input_dims.pb", graph_def([("x", "Placeholder", []), ("y", "Relu", ["x"])],
                                              shape=(10**6, 10**6, 10**6)))
    _write("pb/duplicate_node_names.pb", graph_def([("x", "Placeholder", []), ("y", "Relu", ["x"]),
                                                    ("y", "Tanh", ["x"])]))
    _write("pb/wrong_input_count.pb", graph_def([("x", "Placeholder", []), ("y", "AddV2", ["x"])]))
    wrong_kind = tf.compat.v1.GraphDef.FromString(graph_def([("x", "Placeholder", []), ("y", "Relu", ["x"])]))
    wrong_kind.node[1].attr["T"].s = b"float32"  # a string where TensorFlow declares a type
    _write("pb/attribute_of_the_wrong_kind.pb", wrong_kind.SerializeToString(deterministic=True))
    del keras


# ---- limits: small files that describe huge work (issue 14), built without TensorFlow ---------------------------
def make_limits() -> None:
    """Each needs a limit to be refused: a GraphDef whose functions call each other twice, twenty deep (a million
    nodes from 1.7 KB), a recursive one, a one-value Const of 2^28 floats, a negative dim; checkpoint indexes with
    a negative offset or dim, overlapping tensors, one data block named twice, keys sharing a 64 KiB prefix 4,500
    times; an .npz member that inflates 260 MiB of zeros from a quarter of a megabyte."""
    from tests import tf_crafted as craft
    from tests.tf_crafted import KERNEL, real_rows, with_entry, zip_bomb

    _write("pb/function_call_tree.pb", craft.call_tree_graphdef(20))
    recursive = craft.MESSAGES["GraphDef"].FromString(craft.call_tree_graphdef(2))
    for node in recursive.library.function[1].node_def:
        node.op = "f0"
    _write("pb/recursive_functions.pb", recursive.SerializeToString(deterministic=True))
    _write("pb/splat_const_2_28.pb", craft.const_graphdef((2**28,)))
    _write("pb/const_negative_dim.pb", craft.const_graphdef((-3, 4)))

    def savedmodel(name: str, index: bytes) -> None:
        root = HERE / "savedmodel" / name
        shutil.rmtree(root, ignore_errors=True)
        craft.savedmodel_with_index(root, index)

    savedmodel("ckpt_negative_offset", with_entry(KERNEL, offset=-64))
    savedmodel("ckpt_negative_dim", with_entry(KERNEL, shape=[-4, 2]))
    savedmodel("ckpt_overlapping_tensors", with_entry(KERNEL, offset=8))
    rows = real_rows()
    savedmodel("ckpt_block_named_twice", craft.table([craft.block(rows[:3]), craft.block(rows[3:])], [0, 1, 0]))
    prefix = b"k" * (64 << 10)
    shared = [(0, b"", craft.header()), (0, prefix, b"")] + [(64 << 10, b"%04d" % i, b"") for i in range(4500)]
    savedmodel("ckpt_shared_key_prefix", craft.table([craft.block(shared)]))
    _write("calibration/zip_bomb.npz", zip_bomb(260 << 20))


# ---- arrays: run --input, --calibration, --weights ----------------------------------------------------------
def make_arrays() -> None:
    x = np.linspace(-1, 1, 4, dtype=np.float32).reshape(1, 4)
    good_npy = _npy(x)
    _write("inputs/wrong_shape.npy", _npy(np.zeros((3, 3), np.float32)))
    _write("inputs/wrong_dtype_string.npy", _npy(np.array([["a", "b", "c", "d"]])))
    _write("inputs/wrong_dtype_complex.npy", _npy(x.astype(np.complex64)))
    _write("inputs/pickled_object.npy", _npy(np.array([_Unpickled()], dtype=object), allow_pickle=True))
    _write("inputs/truncated.npy", good_npy[:-5])
    _write("inputs/not_npy.npy", b"x = [1, 2, 3, 4]\n")
    _write("inputs/empty.npy", b"")
    _write("inputs/npz_not_npy.npy", _npz(x=x))
    _write("inputs/huge_header_shape.npy", _huge_header_npy())
    _write("calibration/wrong_name.npz", _npz(nope=np.zeros((4, 1, 4), np.float32)))
    _write("calibration/wrong_shape.npz", _npz(x=np.zeros((4, 1, 5), np.float32)))
    _write("calibration/wrong_dtype.npz", _npz(x=np.array([["a", "b", "c", "d"]])))
    _write("calibration/pickled_object.npz", _pickled_npz("x"))
    _write("calibration/truncated.npz", _npz(x=np.zeros((4, 1, 4), np.float32))[:100])
    _write("calibration/no_arrays.npz", _npz())
    _write("calibration/zero_samples.npz", _npz(x=np.zeros((0, 1, 4), np.float32)))
    _write("calibration/not_npz.npz", b"not a zip at all\n")
    _write("calibration/empty.npz", b"")
    _write("calibration/bitflip.npz", _flip(_npz(x=np.zeros((4, 1, 4), np.float32)), 60, 61, 62))
    _write("good/calibration.npz", _npz(x=np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 1, 4)))
    _write("weights/pickled_object.npz", _pickled_npz("a" * 64))
    _write("weights/not_npz.npz", b"\x00" * 32)
    digest = ELIDED_DIGEST
    _write("weights/wrong_shape.npz", _npz(**{digest: np.zeros((3, 3), np.float32)}))
    _write("weights/wrong_dtype.npz", _npz(**{digest: np.zeros((4, 2), np.int64)}))
    _write("weights/one_array.npy", _npy(np.zeros((4, 2), np.float32)))


def _huge_header_npy() -> bytes:
    """A .npy header promising a 10^18-element array, followed by 16 bytes of data."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000000000), }"
    header = header.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + bytes(16)


# ---- .irc text that is long or not text ---------------------------------------------------------------------
def make_irc() -> None:
    _write("irc/not_utf8.irc", b"graph @g(%x: f32[1]) {\n  \xff\xfe\x00\x81 return %x as \"y\"\n}\n")
    depth = 3000
    _write("irc/deeply_nested_attr.irc", (
        "graph @g(%x: f32[1,4]) {\n  %0 = relu(%x) {deep = " + "[" * depth + "1" + "]" * depth
        + "} : f32[1,4]\n  return %0 as \"y\"\n}\n").encode())
    depth = 50_000
    _write("irc/deeply_nested_tensor_literal.irc", (
        "graph @g(%x: f32[1]) {\n  %c = const() {value = dense<f32[1] " + "[" * depth + "1.0" + "]" * depth
        + ">} : f32[1]\n  return %x as \"y\"\n}\n").encode())


def make_other() -> None:
    _write("other/model.onnx", b"\x08\x07\x12\x07pytorch" + bytes(32))
    _write("other/tflite_named_keras.keras", _good_tflite())
    _write("other/keras_named_tflite.tflite", _zip({"config.json": b"{}", "model.weights.h5": b""}))


# ---- issue 14: files that would run code or read files outside the model ------------------------------------
def make_hostile() -> None:
    """Keras configs irc must refuse before Keras reads them, and a GraphDef that reads /etc/hostname."""
    layer = {"module": "keras.layers", "class_name": "Dense", "config": {"name": "dense", "units": 2}}

    def keras_zip(config: bytes) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for name, data in (("metadata.json", b'{"keras_version": "3.0.0"}'), ("config.json", config)):
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        return buffer.getvalue()

    def sequential(*layers) -> bytes:
        config = {"module": "keras", "class_name": "Sequential", "config": {"name": "seq", "layers": list(layers)}}
        return json.dumps(config).encode()

    _write("keras/config_bomb.keras", keras_zip(sequential(layer) + b" " * (40 << 20)))  # 40 KB -> 40 MiB
    _write("keras/deep_config.keras", keras_zip(b"[" * 5000 + b"]" * 5000))
    _write("keras/unhashable_class_name.keras", keras_zip(sequential({**layer, "class_name": {"a": 1}})))
    _write("keras/kerasevil_module.keras", keras_zip(sequential({**layer, "module": "kerasevil.layers"})))

    from irc.formats import tfproto

    graph = tfproto.MESSAGES["GraphDef"]()
    const = graph.node.add(name="path", op="Const")
    const.attr.add(key="dtype").value.type = 7  # DT_STRING
    value = const.attr.add(key="value").value.tensor
    value.dtype = 7
    value.string_val.append(b"/etc/hostname")
    graph.node.add(name="read", op="ReadFile", input=["path"])
    _write("pb/read_file.pb", graph.SerializeToString(deterministic=True))


def main() -> int:
    import tempfile

    sys.path.insert(0, str(HERE.parent.parent))
    if sys.argv[1:] == ["sizes"]:  # only the files that need no TensorFlow
        make_irc()
        make_tflite_sizes()
        return 0
    for name in GENERATED_DIRS:
        shutil.rmtree(HERE / name, ignore_errors=True)
    make_irc()
    make_arrays()
    make_tflite()
    make_other()
    with tempfile.TemporaryDirectory() as tmp:
        make_savedmodels(Path(tmp))
        make_keras_files(Path(tmp))
    make_graphdefs()
    make_hostile()
    make_limits()
    files = [p for name in GENERATED_DIRS for p in (HERE / name).rglob("*") if p.is_file()]
    print(f"wrote {len(files)} files under {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
