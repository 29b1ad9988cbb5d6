"""What a new user trips over (issue 17): an IR file written with -o is usable by every command, elided dumps
never give a silently different result, opt elides like dump, --after alone, -O4, and stats in model order."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import irc
from irc.cli import main
from irc.ir.graph import Graph, Location
from irc.ir.types import DType, TensorType

CHANNELS = 32  # above the printer's elision threshold, so the batch norm's parameters are elided


def conv_bn_graph() -> Graph:
    """conv2d -> batch_norm -> relu -> matmul, with constants large enough to be elided."""
    rng = np.random.default_rng(0)
    g = Graph("conv_bn")
    x = g.add_input("image", TensorType(DType.f32, (1, 6, 6, 3)))

    def const(*shape, low=-1.0):
        return g.const(rng.uniform(low, 1.0, shape).astype(np.float32))

    dense = const(CHANNELS, 4)  # made first, as frontends do with weights: it must not put "dense" first in stats
    y = g.op("conv2d", x, const(3, 3, 3, CHANNELS), padding="SAME", loc=Location.of("m/conv/Conv2D", "conv"))
    y = g.op("batch_norm", y, const(CHANNELS), const(CHANNELS), const(CHANNELS), const(CHANNELS, low=0.5),
             epsilon=1e-3, loc=Location.of("m/bn/FusedBatchNormV3", "bn"))
    y = g.op("relu", y, loc=Location.of("m/relu/Relu", "relu"))
    y = g.op("mean", y, axes=(1, 2), loc=Location.of("m/pool/Mean", "pool"))
    y = g.op("matmul", y, dense, loc=Location.of("m/dense/MatMul", "dense"))
    g.set_output("logits", y)
    return g


def cli(*args, cwd=None):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "full.irc"
    path.write_text(conv_bn_graph().dump(full=True))
    return path


def run_outputs(path, *extra):
    graph = irc.load(path, *extra)
    return irc.run(graph, {"image": np.random.default_rng(1).standard_normal((1, 6, 6, 3)).astype(np.float32)})


# ----- item 1: a dump written with -o can be used by every command ----------------------------------------------
@pytest.mark.parametrize("write", [
    ["dump", "{model}", "-o", "{out}"],
    ["lower", "{model}", "--emit", "ir", "-o", "{out}"],
    ["opt", "{model}", "-O1", "-o", "{out}"],
], ids=["dump", "lower-ir", "opt"])
def test_ir_written_with_o_is_usable_by_every_command(tmp_path, model, write):
    out = tmp_path / "sub" / "model.irc"
    args = [a.format(model=model, out=out) for a in write]
    assert cli(*args).exit_code == 0
    text = out.read_text()
    assert text.startswith("// weights: model.weights.npz\n") and "sha256:" in text and 'b64"' not in text
    assert (tmp_path / "sub" / "model.weights.npz").is_file()
    for command in (["verify", out], ["run", out, "--random", "0", "-o", tmp_path / "y.npz"],
                    ["opt", out, "-O2", "-o", tmp_path / "o2.irc"], ["lower", out, "-o", tmp_path / "m.tflite"],
                    ["dump", out, "--full"]):
        result = cli(*command)
        assert result.exit_code == 0, (command, result.output)
    want = run_outputs(model)["logits"]
    np.testing.assert_allclose(run_outputs(out)["logits"], want, rtol=1e-6)
    np.testing.assert_allclose(run_outputs(tmp_path / "o2.irc")["logits"], want, rtol=1e-4)


def test_weights_file_is_found_beside_the_dump_from_any_directory(tmp_path, model, monkeypatch):
    out = tmp_path / "a" / "model.irc"
    assert cli("dump", model, "-o", out).exit_code == 0
    monkeypatch.chdir(tmp_path)  # a relative path to the dump, from another directory
    np.testing.assert_allclose(run_outputs("a/model.irc")["logits"], run_outputs(model)["logits"], rtol=1e-6)


def test_missing_weights_file_is_named(tmp_path, model):
    out = tmp_path / "model.irc"
    assert cli("dump", model, "-o", out).exit_code == 0
    (tmp_path / "model.weights.npz").rename(tmp_path / "elsewhere.npz")
    result = cli("run", out, "--random", "0")
    assert result.exit_code == 1
    assert f"its weights file {tmp_path / 'model.weights.npz'} is missing" in result.output
    assert len(result.output.strip().splitlines()) == 1
    # An explicit --weights still wins.
    assert cli("run", out, "--random", "0", "--weights", tmp_path / "elsewhere.npz").exit_code == 0


def test_weights_header_cannot_point_outside_the_dumps_directory(tmp_path, model):
    text = conv_bn_graph().dump()
    for name in ("../model.weights.npz", "/etc/passwd", "sub/w.npz"):
        path = tmp_path / "hostile.irc"
        path.write_text(f"// weights: {name}\n{text}")
        result = cli("verify", path)
        assert result.exit_code == 1 and "is not a file name beside it" in result.output


def test_stale_weights_file_is_refused(tmp_path, model):
    out = tmp_path / "model.irc"
    assert cli("dump", model, "-o", out).exit_code == 0
    other = conv_bn_graph()
    other.set_attr(other.nodes[0], "value", other.nodes[0].attrs["value"] + 1)  # different weights, different hashes
    (tmp_path / "other.irc").write_text(other.dump(full=True))
    assert cli("dump", tmp_path / "other.irc", "-o", tmp_path / "other_out.irc", "--save-weights",
               tmp_path / "model.weights.npz").exit_code == 0
    result = cli("run", out, "--random", "0")
    assert result.exit_code == 1 and "has no constant sha256:" in result.output


def test_full_dump_writes_no_weights_file(tmp_path, model):
    assert cli("dump", model, "--full", "-o", tmp_path / "m.irc").exit_code == 0
    assert not (tmp_path / "m.weights.npz").exists()
    assert not (tmp_path / "m.irc").read_text().startswith("//")


# ----- item 2: elided dumps: verify checks what it can, passes that need a constant fail --------------------------
def test_verify_on_an_elided_dump_checks_types_and_says_what_it_did_not(tmp_path, model):
    plain = tmp_path / "plain.irc"
    plain.write_text(cli("dump", model).output)  # stdout: elided, no weights file
    result = cli("verify", plain)
    assert result.exit_code == 0
    assert "not checked: the data of 6 constant(s) elided from the dump" in result.output
    broken = tmp_path / "broken.irc"
    broken.write_text(plain.read_text().replace(f"f32[1,6,6,{CHANNELS}] loc(\"m/relu", "f32[1,6,6,7] loc(\"m/relu"))
    assert cli("verify", broken).exit_code == 1


def test_a_pass_that_needs_an_elided_constant_fails_naming_pass_and_node(tmp_path, model):
    plain = tmp_path / "plain.irc"
    plain.write_text(cli("dump", model).output)
    result = cli("opt", plain, "--passes", "fold-batchnorm")
    assert result.exit_code == 1
    line, = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert "pass 'fold-batchnorm' failed: needs the data of constant sha256:" in line and "(layer conv)" in line
    # With the weights, the same pass folds the batch norm.
    weights = tmp_path / "w.npz"
    assert cli("dump", model, "--save-weights", weights).exit_code == 0
    folded = cli("opt", plain, "--passes", "fold-batchnorm", "--weights", weights)
    assert folded.exit_code == 0 and "batch_norm" not in folded.output


def test_quantizing_an_elided_dump_is_an_input_error_not_a_crash(tmp_path, model):
    plain = tmp_path / "plain.irc"
    plain.write_text(cli("dump", model).output)
    result = cli("lower", plain, "--passes", "dce", "--quantize", "dynamic-int8", "-o", tmp_path / "q.tflite")
    assert result.exit_code == 1, result.output  # was 3, "a bug in irc"
    assert "quantizing (dynamic-int8) needs the data of constant sha256:" in result.output


# ----- item 5: opt elides like dump -------------------------------------------------------------------------------
def test_opt_elides_like_dump_and_full_shows_everything(model):
    elided = cli("opt", model, "-O1").output
    assert "sha256:" in elided and 'b64"' not in elided
    assert 'b64"' in cli("opt", model, "-O1", "--full").output


# ----- item 6: --after PASS alone -----------------------------------------------------------------------------------
def test_dump_after_alone_runs_the_lowering_pipeline_up_to_that_pass(model):
    result = cli("dump", model, "--after", "tfl-fuse")
    assert result.exit_code == 0, result.output
    assert "batch_norm" not in result.output and 'fused_activation = "relu"' in result.output
    assert "batch_norm" in cli("dump", model, "--after", "canonicalize").output


# ----- item 7: -O4 and stats' order ---------------------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["-O4", "-Os"])
def test_unknown_optimization_level_is_a_clear_usage_error(model, flag):
    result = cli("opt", model, flag)
    assert result.exit_code == 2
    assert f"error: {flag} is not an optimization level: use -O0, -O1, -O2 or -O3" in result.output


def test_a_level_after_a_space_says_how_to_write_it(model):
    result = cli("dump", model, "-O", "2")
    assert result.exit_code == 2 and "write the optimization level without a space: -O2" in result.output


def test_stats_lists_layers_in_model_order(model):
    result = cli("stats", model)
    table = result.output.split("\nlayers\n")[1].splitlines()[1:]
    assert [row.split()[0] for row in table] == ["conv", "bn", "relu", "pool", "dense"]


def test_a_graph_still_missing_weights_records_no_weights_file(tmp_path, model):
    from irc.ir.weights_file import write_ir

    plain = irc.parse(cli("dump", model).output)  # every large constant elided, no weights
    dense = next(n for n in plain.nodes if n.op == "const" and n.result.type.shape == (CHANNELS, 4))
    plain.set_attr(dense, "value", np.zeros((CHANNELS, 4), np.float32))  # one constant known again
    out = tmp_path / "partial.irc"
    write_ir(plain, out)
    assert (tmp_path / "partial.weights.npz").is_file() and not out.read_text().startswith("//")
    assert cli("verify", out).exit_code == 0  # still elided, as its input was: no stale-file error
