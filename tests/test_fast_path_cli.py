"""``irc lower SAVEDMODEL --emit tflite`` through the fast path: without TensorFlow, with a fallback note, and on
damaged inputs, where it must stop with one clear line (exit 1, no output file), never write a wrong model."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from irc.cli import main

tf = pytest.importorskip("tensorflow")

ROOT = Path(__file__).resolve().parent.parent

# Imports of TensorFlow, Keras and friends fail as if they were not installed; then `irc lower` runs.
GUARDED_LOWER = """
import sys

BLOCKED = ("tensorflow", "keras", "tf_keras", "tensorboard", "tflite_runtime")

class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, NoTensorFlow())
from irc.cli import run
try:
    run(sys.argv[1:])
except SystemExit as done:
    code = done.code or 0
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
sys.exit(code)
"""


def guarded_lower(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", GUARDED_LOWER, "lower", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def lower(*args, verbose=False):
    flags = ["-v"] if verbose else []
    return CliRunner().invoke(main, [*flags, "lower", *map(str, args)])


def copy_model(zoo_models, tmp_path, name="small_cnn") -> Path:
    return Path(shutil.copytree(zoo_models.saved_model(name), tmp_path / name))


def text_format_model(zoo_models, tmp_path) -> Path:
    """The model with saved_model.pbtxt instead of saved_model.pb: TF reads it, the fast path does not."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    path = copy_model(zoo_models, tmp_path)
    proto = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    (path / "saved_model.pbtxt").write_text(text_format.MessageToString(proto))
    (path / "saved_model.pb").unlink()
    return path


def assert_runs_like_tensorflow(tflite: Path, saved_model: Path) -> None:
    runner = tf.lite.Interpreter(model_path=str(tflite)).get_signature_runner()
    rng = np.random.default_rng(3)
    inputs = {k: rng.standard_normal(v["shape"]).astype(v["dtype"]) for k, v in runner.get_input_details().items()}
    fn = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    want = {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
    got = runner(**inputs)
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-5)


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ----- without TensorFlow ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["small_cnn", "transformer_encoder"])
def test_lower_to_tflite_where_tensorflow_cannot_be_imported(zoo_models, tmp_path, name):
    model = zoo_models.saved_model(name)
    out = tmp_path / "model.tflite"
    done = guarded_lower(model, "--emit", "tflite", "-o", out)
    assert done.returncode == 0, done.stderr
    assert_runs_like_tensorflow(out, model)


def test_unreadable_model_without_tensorflow_says_how_to_get_it(zoo_models, tmp_path):
    out = tmp_path / "model.tflite"
    done = guarded_lower(text_format_model(zoo_models, tmp_path), "--emit", "tflite", "-o", out)
    assert done.returncode == 1, done.stderr
    assert_one_line_error(done.stderr, "text-format", "pip install 'irc[tf]'")
    assert not out.exists()


# ----- the fallback ------------------------------------------------------------------------------------------------
def test_fallback_to_tensorflow_needs_unsafe_and_is_one_note_with_v(zoo_models, tmp_path):
    model = text_format_model(zoo_models, tmp_path)
    out = tmp_path / "model.tflite"
    refused = lower(model, "--emit", "tflite", "-o", out)
    assert refused.exit_code == 1 and not out.exists()
    assert_one_line_error(refused.stderr, "TF-free reader cannot read this SavedModel: text-format", "--unsafe",
                          "runs the model's code")
    result = lower(model, "--emit", "tflite", "-o", out, "--unsafe", verbose=True)
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    reason = "text-format SavedModels are not read by the fast path"
    assert notes == [f"note: fast path cannot read {model} ({reason}); using TensorFlow's loader (--unsafe)"]
    assert_runs_like_tensorflow(out, zoo_models.saved_model("small_cnn"))
    quiet = lower(model, "--emit", "tflite", "-o", out, "--unsafe")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_no_note_when_the_fast_path_reads_the_model(zoo_models, tmp_path):
    result = lower(zoo_models.saved_model("small_cnn"), "--emit", "tflite", "-o", tmp_path / "m.tflite", verbose=True)
    assert result.exit_code == 0 and "TensorFlow" not in result.stderr


def test_no_fast_forces_tensorflow_and_gives_the_same_file(zoo_models, tmp_path):
    model = zoo_models.saved_model("small_cnn")
    assert lower(model, "--emit", "tflite", "-o", tmp_path / "fast.tflite").exit_code == 0
    no_fast = lower(model, "--emit", "tflite", "-o", tmp_path / "tf.tflite", "--no-fast")
    assert no_fast.exit_code == 1 and "--unsafe" in no_fast.stderr  # TensorFlow's loader runs the model's code
    assert lower(model, "--emit", "tflite", "-o", tmp_path / "tf.tflite", "--no-fast", "--unsafe").exit_code == 0
    assert (tmp_path / "fast.tflite").read_bytes() == (tmp_path / "tf.tflite").read_bytes()


# ----- damaged inputs ----------------------------------------------------------------------------------------------
def assert_refused(model: Path, tmp_path: Path, *fragments: str) -> None:
    out = tmp_path / "model.tflite"
    result = lower(model, "--emit", "tflite", "-o", out)
    assert result.exit_code == 1, result.output
    assert_one_line_error(result.stderr, *fragments)
    assert not out.exists()
    assert not list(tmp_path.glob(".model.tflite.*"))  # no temporary file left behind


def truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def data_shard(model: Path) -> Path:
    (shard,) = (model / "variables").glob("variables.data-*")
    return shard


@pytest.mark.parametrize("keep", [0, 20, 700])
def test_truncated_variables_index(zoo_models, tmp_path, keep):
    model = copy_model(zoo_models, tmp_path)
    truncate(model / "variables" / "variables.index", keep)
    assert_refused(model, tmp_path, "variables.index", "corrupt variables index")


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.99])
def test_truncated_data_shard(zoo_models, tmp_path, fraction):
    model = copy_model(zoo_models, tmp_path)
    shard = data_shard(model)
    truncate(shard, int(shard.stat().st_size * fraction))
    assert_refused(model, tmp_path, shard.name, "past the end of the file (truncated?)")


def test_missing_data_shard(zoo_models, tmp_path):
    model = copy_model(zoo_models, tmp_path)
    data_shard(model).unlink()
    assert_refused(model, tmp_path, "cannot read variables data")


def test_variable_missing_from_the_bundle(zoo_models, tmp_path):
    """The index rewritten by TensorFlow itself without the second conv's kernel (both copies Keras saves)."""
    model = copy_model(zoo_models, tmp_path)
    prefix = str(model / "variables" / "variables")
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    keep = sorted(k for k, shape in shapes.items() if shape != [3, 3, 16, 32])
    assert len(keep) < len(shapes)
    tensors = [reader.get_tensor(k) for k in keep]
    for old in (model / "variables").iterdir():
        old.unlink()
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=keep, shape_and_slices=[""] * len(keep), tensors=tensors)
    assert_refused(model, tmp_path, "checkpoint has no tensor", "VARIABLE_VALUE")


def flip(path: Path, position: int, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 1 << bit
    path.write_bytes(bytes(data))


def test_bit_flip_in_a_length_prefix(zoo_models, tmp_path):
    """saved_model.pb starts with the schema version, then the MetaGraph's length: make it overrun the file."""
    model = copy_model(zoo_models, tmp_path)
    data = (model / "saved_model.pb").read_bytes()
    assert data[:3] == b"\x08\x01\x12"
    last = 3
    while data[last] & 0x80:  # the length varint's last byte
        last += 1
    flip(model / "saved_model.pb", last, 6)
    assert_refused(model, tmp_path, "saved_model.pb", "corrupt or truncated saved_model.pb")


def test_bit_flip_in_a_node_reference(zoo_models, tmp_path):
    """A consumer's input names a node that is not there: a damaged graph, refused without asking TensorFlow."""
    model = copy_model(zoo_models, tmp_path)
    data = (model / "saved_model.pb").read_bytes()
    at = data.index(b"/Relu:activations:0")
    flip(model / "saved_model.pb", at + 1, 5)  # ".../Relu:activations:0" -> ".../relu:activations:0"
    assert_refused(model, tmp_path, "damaged graph", "unknown node", "relu")


def test_bit_flip_in_an_op_name(zoo_models, tmp_path):
    model = copy_model(zoo_models, tmp_path)
    data = (model / "saved_model.pb").read_bytes()
    at = data.index(b"\x12\x06Conv2D")  # NodeDef.op = "Conv2D"
    flip(model / "saved_model.pb", at + 3, 1)  # "Conv2D" -> "Cmnv2D"
    assert_refused(model, tmp_path, "Cmnv2D")


def test_field_with_another_wire_type_is_refused(zoo_models, tmp_path):
    """A field irc declares, stored with another wire type, would read as its default: an error instead."""
    model = copy_model(zoo_models, tmp_path)
    data = (model / "saved_model.pb").read_bytes()
    # NodeDef.op = "Conv2D" (field 2, length-delimited) -> field 2 as the varint 0, then three varints of the
    # unused field 15 so every enclosing length stays right: the file parses, with no op on that node.
    damaged = data.replace(b"\x12\x06Conv2D", b"\x10\x00" + b"\x78\x00" * 3, 1)
    (model / "saved_model.pb").write_bytes(damaged)
    assert_refused(model, tmp_path, "field 'op' of NodeDef is stored as varint")


def flip_inside(model: Path, keys) -> Path:
    """One bit flipped in the middle of each tensor whose key ``keys`` accepts; every size stays right."""
    from irc.frontends.tensor_bundle import TensorBundle

    bundle = TensorBundle(model / "variables" / "variables")
    shard = data_shard(model)
    for key, entry in bundle.entries.items():
        if keys(key):
            flip(shard, entry.offset + entry.size // 2, 3)
    return shard


@pytest.mark.parametrize("what, keys", [
    ("weights", lambda key: key != "_CHECKPOINTABLE_OBJECT_GRAPH"),
    ("object graph (a string tensor)", lambda key: key == "_CHECKPOINTABLE_OBJECT_GRAPH"),
])
def test_bit_flip_inside_the_variables_data(zoo_models, tmp_path, what, keys):
    """The tensor's CRC32C in the index catches it, as TensorFlow's restore does."""
    model = copy_model(zoo_models, tmp_path)
    shard = flip_inside(model, keys)
    with pytest.raises(Exception, match="(?i)checksum"):
        tf.saved_model.load(str(model))
    assert_refused(model, tmp_path, shard.name, "fails its checksum")


def test_random_bit_flips_never_crash_or_leave_files(zoo_models, tmp_path):
    """Any single bit flip in saved_model.pb: either a model or one `error:` line with exit 1, no traceback.

    saved_model.pb carries no checksum (TensorFlow does not check one either), so a flip inside a value (a
    stride, a float constant) gives a different valid model; the checks above cover what can be detected."""
    model = copy_model(zoo_models, tmp_path)
    original = (model / "saved_model.pb").read_bytes()
    rng = random.Random(10)
    outcomes = {0: 0, 1: 0}
    for _ in range(25):
        (model / "saved_model.pb").write_bytes(original)
        flip(model / "saved_model.pb", rng.randrange(len(original)), rng.randrange(8))
        out = tmp_path / "model.tflite"
        out.unlink(missing_ok=True)
        result = lower(model, "--emit", "tflite", "-o", out, "--fast")
        assert result.exit_code in outcomes, result.output
        outcomes[result.exit_code] += 1
        if result.exit_code:
            assert_one_line_error(result.stderr)
            assert not out.exists()
        else:
            assert out.stat().st_size > 0
    assert outcomes[1] > 0
