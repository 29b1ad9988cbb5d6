"""Issue 14, part A: no model runs code or opens a file outside itself unless the user says so (docs/security.md).

Each crafted input is built here, pointed at a ``Sentinel`` (a secret no command may print, a path no command may
create), and run through the real console script: it must be refused on one line, exit 1 or 2, with no signal,
the sentinel untouched, and, where the refusal comes before TensorFlow is imported, within 10 s and 300 MB. The
opt-in flags are shown to work on the legitimate case (a harmless opaque op runs under --allow-tf-ops).
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from irc.formats import tfproto
from irc.ir.graph import Graph
from irc.ir.printer import print_graph
from irc.ir.types import DType, TensorType
from tests.hostile import Sentinel, assert_refused, run_irc

F32, STRING = 1, 7  # TensorFlow DataType enums


# ----- crafting, without TensorFlow -------------------------------------------------------------------------------
def node_def(op: str, name: str, n_inputs: int = 0, **types: int) -> bytes:
    """A serialized NodeDef: ``op`` with ``n_inputs`` data inputs and type attributes (``T=F32``)."""
    node = tfproto.MESSAGES["NodeDef"](name=name, op=op, input=[f"in{i}" for i in range(n_inputs)])
    for key, dtype in types.items():
        node.attr.add(key=key).value.type = dtype
    return node.SerializeToString()


def library_of(function: str, *body: tuple[str, str, int]) -> bytes:
    """A FunctionDefLibrary with one function whose body is the (op, name, n_inputs) nodes."""
    lib = tfproto.MESSAGES["FunctionDefLibrary"]()
    fn = lib.function.add()
    fn.signature.name = function
    for op, name, n_inputs in body:
        fn.node_def.add(name=name, op=op, input=[f"arg{i}" for i in range(n_inputs)])
    return lib.SerializeToString()


def string_const(graph: Graph, text: str):
    return graph.add("const", [], {"value": np.array(text.encode(), dtype=object)}).result


def hostile_graph(sentinel: Sentinel) -> Graph:
    """Writes the forbidden file and returns the secret: tf.WriteFile and tf.ReadFile."""
    g = Graph("hostile")
    x = g.add_input("x", TensorType(DType.f32, (2,)))
    target, secret = string_const(g, str(sentinel.forbidden)), string_const(g, str(sentinel.secret))
    g.add("tf.WriteFile", [target, secret], {"node_def": node_def("WriteFile", "write", 2)}, types=[])
    read = g.add("tf.ReadFile", [secret], {"node_def": node_def("ReadFile", "read", 1)},
                 types=[TensorType(DType.str, ())])
    g.set_output("y", x)
    g.set_output("leak", read.result)
    return g


def one_opaque(op: str, node: bytes, library: bytes = b"", result=True) -> Graph:
    """x: f32[2] -> one opaque node ``op`` (its NodeDef ``node``) -> y."""
    g = Graph("opaque")
    x = g.add_input("x", TensorType(DType.f32, (2,)))
    attrs = {"node_def": node, **({"library": library} if library else {})}
    out = g.add(op, [x], attrs, types=[TensorType(DType.f32, (2,))] if result else [])
    g.set_output("y", out.result if result else x)
    return g


def write(path: Path, graph: Graph) -> Path:
    path.write_text(print_graph(graph))
    return path


@pytest.fixture
def sentinel(tmp_path) -> Sentinel:
    return Sentinel(tmp_path / "sentinel")


@pytest.fixture
def work(tmp_path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def refused(sentinel: Sentinel, args, cwd: Path, *fragments: str, absent: tuple[str, ...] = (), codes=(1, 2)):
    outcome = run_irc(args, cwd=cwd)
    assert_refused(outcome, codes=codes)
    line = outcome.stderr.strip()
    for fragment in fragments:
        assert fragment in line, outcome.describe()
    for fragment in absent:
        assert fragment not in line, outcome.describe()
    sentinel.assert_untouched(outcome, cwd)
    return line


# ----- opaque ops in .irc files ----------------------------------------------------------------------------------
def test_file_ops_in_irc_never_run_without_unsafe(sentinel, work):
    model = write(work / "hostile.irc", hostile_graph(sentinel))
    np.savez(work / "calibration.npz", x=np.ones((4, 2), np.float32))
    commands = [
        ["run", model, "--random", "0"],
        ["run", model, "--random", "0", "--allow-tf-ops"],
        ["diff", model, model, "--numeric"],
        ["diff", model, model, "--numeric", "--allow-tf-ops"],
        ["quant-report", model, "--calibration", work / "calibration.npz", "--allow-tf-ops"],
        ["opt", model, "--check-numerics"],
        ["lower", model, "--emit", "ir", "--check-numerics", "--allow-tf-ops", "-o", "out.irc"],
        ["lower", model, "--quantize", "int8", "--calibration", work / "calibration.npz", "--allow-tf-ops",
         "-o", "out.tflite"],
    ]
    for args in commands:
        refused(sentinel, args, work, "WriteFile (node 'write')", "reads or writes files", "--unsafe",
                absent=("pass --allow-tf-ops",))


def test_the_node_def_decides_what_runs(sentinel, work):
    """A node called tf.Identity whose NodeDef is an Abort is an Abort; it never gets to kill the process."""
    abort = one_opaque("tf.Identity", node_def("Abort", "quit", 1))
    refused(sentinel, ["run", write(work / "abort.irc", abort), "--random", "0", "--allow-tf-ops"], work,
            "Abort (node 'quit')", "--unsafe")


def test_function_libraries_are_checked_node_by_node(sentinel, work):
    """A StatefulPartitionedCall whose function writes a file: every function of the library is read."""
    call = one_opaque("tf.StatefulPartitionedCall", node_def("StatefulPartitionedCall", "call", 1),
                      library_of("innocent", ("Identity", "pass", 1), ("WriteFile", "drop", 2)))
    refused(sentinel, ["run", write(work / "call.irc", call), "--random", "0", "--allow-tf-ops"], work,
            "WriteFile (node 'innocent/drop')", "--unsafe")
    py = one_opaque("tf.PartitionedCall", node_def("PartitionedCall", "call", 1),
                    library_of("helper", ("EagerPyFunc", "python", 1)))
    refused(sentinel, ["run", write(work / "py.irc", py), "--random", "0", "--allow-tf-ops"], work,
            "EagerPyFunc", "runs Python code")


def test_harmless_opaque_op_asks_for_allow_tf_ops_then_runs(sentinel, work):
    model = write(work / "lgamma.irc", one_opaque("tf.Lgamma", node_def("Lgamma", "lgamma", 1, T=F32)))
    refused(sentinel, ["run", model, "--random", "0"], work, "Lgamma", "pass --allow-tf-ops")
    np.save(work / "x.npy", np.array([0.5, 3.0], np.float32))
    done = run_irc(["run", model, "--input", "x=x.npy", "--allow-tf-ops", "-o", "y.npz"], cwd=work)
    assert done.returncode == 0, done.describe()
    np.testing.assert_allclose(np.load(work / "y.npz")["y"], [math.lgamma(0.5), math.lgamma(3.0)], rtol=1e-5)


def test_stateful_ops_need_unsafe_even_with_allow_tf_ops(sentinel, work):
    """Ops TensorFlow registers as stateful (here Timestamp) are not run under --allow-tf-ops alone."""
    g = Graph("stateful")
    x = g.add_input("x", TensorType(DType.f32, (2,)))
    stamp = g.add("tf.Timestamp", [], {"node_def": node_def("Timestamp", "clock")}, types=[TensorType(DType.f64, ())])
    g.set_output("y", x)
    g.set_output("t", stamp.result)
    model = write(work / "stateful.irc", g)
    outcome = run_irc(["run", model, "--random", "0", "--allow-tf-ops"], cwd=work)
    assert outcome.returncode == 1 and outcome.stderr.count("\n") == 1, outcome.describe()  # TF was imported
    assert "stateful TensorFlow ops (Timestamp (node 'clock'))" in outcome.stderr and "--unsafe" in outcome.stderr
    done = run_irc(["run", model, "--random", "0", "--unsafe"], cwd=work)
    assert done.returncode == 0, done.describe()


# ----- TFLite Flex ops and GraphDefs --------------------------------------------------------------------------
def test_flex_ops_in_tflite_never_run_without_unsafe(sentinel, work):
    from irc.backends.tflite.backend import emit

    model = work / "flex.tflite"
    model.write_bytes(emit(one_opaque("tf.ReadFile", node_def("ReadFile", "read", 1)), passes="O0",
                           allow_tf_ops=True))
    for flags in ([], ["--allow-tf-ops"]):
        refused(sentinel, ["run", model, "--random", "0", *flags], work, "ReadFile (node 'read')", "--unsafe",
                absent=("pass --allow-tf-ops",))


def readfile_graphdef(secret: Path) -> bytes:
    graph = tfproto.MESSAGES["GraphDef"]()
    const = graph.node.add(name="path", op="Const")
    const.attr.add(key="dtype").value.type = STRING
    value = const.attr.add(key="value").value.tensor
    value.dtype = STRING
    value.string_val.append(str(secret).encode())
    graph.node.add(name="read", op="ReadFile", input=["path"])
    return graph.SerializeToString()


def test_graphdef_file_ops_are_not_offered_to_allow_tf_ops(sentinel, work):
    model = work / "read.pb"
    model.write_bytes(readfile_graphdef(sentinel.secret))
    for command in (["run", model, "--random", "0"], ["lower", model, "--emit", "tflite", "-o", "m.tflite"]):
        refused(sentinel, command, work, "ReadFile", "reads or writes files", absent=("pass --allow-tf-ops",))
        refused(sentinel, [*command, "--allow-tf-ops"], work, "ReadFile", "--unsafe",
                absent=("pass --allow-tf-ops",))
    assert not (work / "m.tflite").exists()


# ----- SavedModels: TensorFlow's loader runs the model's code ------------------------------------------------------
@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """A TF1 SavedModel whose main_op writes a file, and a TF2 one whose table's initializer reads an asset."""
    tf = pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("saved_models")
    target = root / "main-op-wrote-this.txt"
    tf1 = root / "tf1_main_op"
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        y = tf.identity(x * 2.0, name="y")
        main_op = tf.io.write_file(str(target), "main_op ran")
        builder = tf.compat.v1.saved_model.Builder(str(tf1))
        signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature},
                                             main_op=main_op)
        builder.save()

    vocab = root / "vocab.txt"
    vocab.write_text("a\nb\nc\n")

    class Lookup(tf.Module):
        def __init__(self):
            super().__init__()
            self.table = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
                str(vocab), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
                tf.lookup.TextFileIndex.LINE_NUMBER), -1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, words):
            return {"ids": self.table.lookup(words)}

    tf2 = root / "tf2_table"
    tf.saved_model.save(Lookup(), str(tf2))
    return {"tf1": tf1, "tf2": tf2, "main_op_target": target}


def test_tf1_main_op_does_not_run_without_unsafe(saved_models, sentinel, work):
    line = refused(sentinel, ["dump", saved_models["tf1"]], work, "TF-free reader cannot read this SavedModel",
                   "--unsafe", "runs the model's code")
    assert "TF1" in line
    assert not saved_models["main_op_target"].exists()


def test_tf2_resource_initializer_does_not_run_without_unsafe(saved_models, sentinel, work):
    refused(sentinel, ["dump", saved_models["tf2"]], work, "TF-free reader cannot read this SavedModel",
            "captures a resource", "--unsafe")


def with_asset(saved_models, tmp_path: Path, filename: str) -> Path:
    """The TF2 model, its asset's path replaced by ``filename``."""
    import shutil

    model = Path(shutil.copytree(saved_models["tf2"], tmp_path / "model"))
    pb = model / "saved_model.pb"
    proto = tfproto.parse("SavedModel", pb.read_bytes())
    assets = [a for m in proto.meta_graphs for a in m.asset_file_def]
    assert assets, "the table's vocabulary should be an asset"
    for asset in assets:
        asset.filename = filename
    pb.write_bytes(proto.SerializeToString())
    return model


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "device"])
def test_assets_stay_inside_the_assets_directory(saved_models, sentinel, work, tmp_path, kind):
    secret = str(sentinel.secret)
    filename = {"absolute": secret, "dotdot": os.path.relpath(secret, tmp_path / "model" / "assets"),
                "symlink": "linked.txt", "device": "/dev/zero"}[kind]
    model = with_asset(saved_models, tmp_path, filename)
    if kind == "symlink":
        (model / "assets" / "linked.txt").symlink_to(sentinel.secret)
    for flags in ([], ["--unsafe"]):  # even a trusted model's assets are read only from its assets/ directory
        refused(sentinel, ["dump", model, *flags], work, f"asset {filename!r}", "assets/")


# ----- Keras files ----------------------------------------------------------------------------------------------
def keras_file(path: Path, config: str | bytes, level: int = 9) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        zf.writestr("config.json", config)
    return path


def sequential(*layers: dict) -> dict:
    return {"module": "keras", "class_name": "Sequential", "config": {"name": "seq", "layers": list(layers)}}


def test_keras_config_bomb_is_refused_before_inflating(sentinel, work):
    padding = b" " * (80 << 20)  # 80 MiB of spaces deflate to about 80 KB
    model = keras_file(work / "bomb.keras", b'{"class_name": "Sequential", "config": {}}' + padding)
    assert model.stat().st_size < 1 << 20
    refused(sentinel, ["dump", model], work, "config.json (80 MiB uncompressed)", "memory limit")


def test_deep_keras_config_is_one_line(sentinel, work):
    deep = "[" * 5000 + "]" * 5000
    refused(sentinel, ["dump", keras_file(work / "deep.keras", deep)], work, "nests too deeply")
    nested = sequential({"class_name": "Dense", "config": {"name": "d"}})
    for _ in range(150):  # parses, but deeper than any real config
        nested = {"wrap": nested}
    refused(sentinel, ["dump", keras_file(work / "nested.keras", json.dumps(nested))], work,
            "levels deep (irc reads up to 100)")


@pytest.mark.parametrize("key", ["class_name", "registered_name", "module"])
def test_unhashable_names_in_a_keras_config_are_one_line(sentinel, work, key):
    layer = {"module": "keras.layers", "class_name": "Dense", "config": {"name": "dense", "units": 2}}
    layer[key] = {"not": "a string"}
    model = keras_file(work / "unhashable.keras", json.dumps(sequential(layer)))
    refused(sentinel, ["dump", model], work, f"has a {key} that is a dict, not a string", codes=(1,))


def test_modules_that_merely_start_with_keras_are_not_keras(sentinel, work):
    layer = {"module": "kerasevil.layers", "class_name": "Dense", "config": {"name": "dense", "units": 2}}
    model = keras_file(work / "evil_module.keras", json.dumps(sequential(layer)))
    refused(sentinel, ["dump", model], work, "custom class 'Dense' from module 'kerasevil.layers'", "not registered")


def test_keras_module_check_is_exact():
    from irc.frontends.tf_loader import _is_keras_module

    assert _is_keras_module("keras") and _is_keras_module("keras.layers") and _is_keras_module("keras.src.models")
    for module in ("kerasevil", "kerasevil.layers", "keras_evil", "os", "", None, ["keras"]):
        assert not _is_keras_module(module)


# ----- the policy, in Python -------------------------------------------------------------------------------------
def test_denied_families():
    from irc.ops.tf_policy import denied_reason

    for op in ("ReadFile", "WriteFile", "MatchingFiles", "SaveV2", "RestoreV2", "MergeV2Checkpoints",
               "TFRecordReaderV2", "WholeFileReader", "TFRecordDataset", "MapDataset", "IteratorGetNext",
               "InitializeTableFromTextFileV2", "ImmutableConst", "PrintV2", "Print", "Abort", "PyFunc",
               "EagerPyFunc", "PyFuncStateless", "CreateSummaryFileWriter", "WriteScalarSummary",
               "RandomShuffleQueueV2", "FIFOQueueV2", "DebugIdentityV2", "RemoteCall", "CollectiveReduceV2",
               "_Send", "_Recv", "DecodeProtoV2", "LoadAndRemapMatrix"):
        assert denied_reason(op), op
    for op in ("Lgamma", "Cumsum", "Erfinv", "DecodePng", "DecodeJpeg", "Assert", "RandomUniform", "Unique",
               "StatefulPartitionedCall", "Identity", "Snapshot", "StringSplitV2", "TensorScatterUpdate"):
        assert denied_reason(op) is None, op


def test_api_run_needs_the_permission_too():
    import irc
    from irc.errors import InputError

    graph = one_opaque("tf.Lgamma", node_def("Lgamma", "lgamma", 1, T=F32))
    x = np.array([0.5, 3.0], np.float32)
    with pytest.raises(InputError, match="Lgamma.*allow_tf_ops=True"):
        irc.run(graph, [x])
    pytest.importorskip("tensorflow")
    np.testing.assert_allclose(irc.run(graph, [x], allow_tf_ops=True)["y"], [math.lgamma(0.5), math.lgamma(3.0)],
                               rtol=1e-5)
