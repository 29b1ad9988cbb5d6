"""Plugins: ops, lowerings, TFLite emitters, passes and backends added from outside irc (``irc --load FILE.py`` and
entry points), one registry that does not depend on import order, and the backend protocol."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from irc import registry
from irc.cli import main
from irc.ir.parser import parse
from irc.ir.printer import print_graph
from tests.hostile import run_irc

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "examples" / "plugin_sinh.py"
SINH_MODEL = """graph @m(%x: f32[3]) {
  %0 = sinh(%x) : f32[3]
  %1 = relu(%0) : f32[3]
  return %1 as "y"
}
"""
SMALL = """graph @small(%x: f32[2]) {
  %one = const() {value = dense<f32[2] [1.0, 1.0]>} : f32[2]
  %0 = mul(%x, %one) : f32[2]
  %1 = relu(%0) : f32[2]
  return %1 as "y"
}
"""


def python(code: str) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter: what happens before the registry's first lookup is the point."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)


# ----- the example plugin, end to end through the CLI -------------------------------------------------------------
def test_example_plugin_runs_verifies_optimizes_and_emits(tmp_path):
    (tmp_path / "m.irc").write_text(SINH_MODEL)
    np.save(tmp_path / "x.npy", np.array([-1.0, 0.5, 2.0], np.float32))

    without = run_irc(["verify", "m.irc"], cwd=tmp_path)
    assert without.returncode == 1 and "unknown op 'sinh'" in without.stderr

    for args in (["verify", "m.irc", "--load", PLUGIN], ["--load", PLUGIN, "verify", "m.irc"]):
        outcome = run_irc(args, cwd=tmp_path)
        assert outcome.returncode == 0, outcome.describe()

    ran = run_irc(["run", "m.irc", "--load", PLUGIN, "--input", "x=x.npy", "-o", "out.npz"], cwd=tmp_path)
    assert ran.returncode == 0, ran.describe()
    want = np.maximum(np.sinh(np.array([-1.0, 0.5, 2.0], np.float32)), 0)
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["y"], want, rtol=1e-6)

    opt = run_irc(["opt", "m.irc", "--load-pass", PLUGIN, "-O2", "-o", "opt.irc"], cwd=tmp_path)
    assert opt.returncode == 0, opt.describe()
    assert "sinh(" in (tmp_path / "opt.irc").read_text()

    lowered = run_irc(["lower", "m.irc", "--load", PLUGIN, "--emit", "tflite", "-o", "m.tflite"], cwd=tmp_path)
    assert lowered.returncode == 0, lowered.describe()
    from irc.formats.tflite.flatbuffer import read_model

    model = read_model((tmp_path / "m.tflite").read_bytes())
    assert ("CUSTOM", "Sinh") in {(c.builtin_code, c.custom_code) for c in model.operator_codes}


def test_example_plugin_lowers_tensorflow_sinh(tmp_path):
    tf = pytest.importorskip("tensorflow")  # a third-party module: only TensorFlow may be missing
    module = tf.Module()
    module.f = tf.function(lambda x: tf.nn.relu(tf.math.sinh(x)),
                           input_signature=[tf.TensorSpec([3], tf.float32, name="x")])
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.f})
    x = np.array([-1.0, 0.5, 2.0], np.float32)
    np.save(tmp_path / "x.npy", x)
    want = module.f(tf.constant(x)).numpy()

    refused = run_irc(["lower", "sm", "--emit", "ir", "-o", "sm.irc"], cwd=tmp_path)
    assert refused.returncode != 0 and "Sinh" in refused.stderr

    lowered = run_irc(["lower", "sm", "--load", PLUGIN, "--emit", "ir", "-o", "sm.irc"], cwd=tmp_path)
    assert lowered.returncode == 0, lowered.describe()
    assert "sinh(" in (tmp_path / "sm.irc").read_text()
    ran = run_irc(["run", "sm", "--load", PLUGIN, "--input", "x.npy", "-o", "out.npz"], cwd=tmp_path)
    assert ran.returncode == 0, ran.describe()
    (got,) = np.load(tmp_path / "out.npz").values()
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_failing_plugin_file_is_one_error_line(tmp_path):
    (tmp_path / "m.irc").write_text(SMALL)
    (tmp_path / "bad.py").write_text("raise RuntimeError('half written')\n")
    outcome = run_irc(["--load", "bad.py", "verify", "m.irc"], cwd=tmp_path)
    assert outcome.returncode == 1
    assert outcome.stderr == "error: bad.py: loading plugins failed: RuntimeError: half written\n"


# ----- one registry, independent of import order ------------------------------------------------------------------
def test_a_user_op_named_like_a_builtin_is_refused_before_the_first_lookup():
    result = python("""
from irc.ops.base import OpDef, register
class Relu(OpDef):
    name = "relu"
try:
    register(Relu)
except ValueError as e:
    print(e)
from irc.ops import get_op
print(get_op("conv2d").name)
""")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "op 'relu' is registered twice: by irc.ops.activation.Relu and by __main__.Relu", "conv2d"]


def test_a_user_op_registered_before_the_first_lookup_joins_the_builtins():
    result = python("""
from irc.ops.base import OpDef, register
class Twice(OpDef):
    name = "twice"
    operands = ("x",)
    def infer(self, types, attrs, consts):
        return list(types)
    def kernel(self, inputs, attrs):
        return [inputs[0] * 2]
register(Twice)
from irc.ops import all_ops, run_kernel
print(run_kernel("twice", [3], {})[0], "conv2d" in all_ops(), "twice" in all_ops())
""")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["6", "True", "True"]


def test_a_pass_name_taken_twice_names_both(tmp_path):
    from irc.passes import register_pass

    def dce(graph):
        """Not irc's dce."""

    with pytest.raises(ValueError, match=r"^pass 'dce' is registered twice: by irc\.passes\.dce\.DeadCodeElimination "
                                         r"and by test_plugins\.test_a_pass_name_taken_twice_names_both"):
        register_pass(dce)


class FakeEntryPoint:
    def __init__(self, name, obj):
        self.name, self.value, self._obj = name, f"plugin:{name}", obj

    def load(self):
        if isinstance(self._obj, Exception):
            raise self._obj
        return self._obj


def test_entry_points_are_loaded_before_the_first_lookup_and_a_broken_one_warns(monkeypatch):
    adopted = {}
    plugins = {"irc.things": [FakeEntryPoint("good", 42), FakeEntryPoint("broken", ImportError("no module x"))]}
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: plugins.get(group, []))
    things = registry.Registry("thing", (), "irc.things", lambda name, obj: adopted.setdefault(name, obj))
    with pytest.warns(UserWarning, match="cannot load plugin 'broken' \\(plugin:broken\\) of irc.things"):
        assert things.get("anything") is None
    assert adopted == {"good": 42}


def test_every_extension_point_has_its_entry_point_group():
    from irc.backends import BACKENDS
    from irc.backends.tflite.ops import EMITTERS
    from irc.frontends.lowering import LOWERINGS
    from irc.ops import OPS
    from irc.passes import PASSES

    groups = {r.group for r in (OPS, LOWERINGS, EMITTERS, PASSES, BACKENDS)}
    assert groups == set(registry.ENTRY_POINT_GROUPS) == {
        "irc.ops", "irc.lowerings", "irc.tflite_emitters", "irc.passes", "irc.backends"}


def test_loading_a_file_twice_imports_it_once(tmp_path):
    counter = tmp_path / "count.txt"
    plugin = tmp_path / "once.py"
    plugin.write_text(f"from pathlib import Path\np = Path({str(counter)!r})\n"
                      "p.write_text(str(int(p.read_text() or 0) + 1) if p.exists() else '1')\n")
    first = registry.load_file(plugin)
    assert registry.load_file(plugin) is first and counter.read_text() == "1"


# ----- backends ---------------------------------------------------------------------------------------------------
def test_every_backend_follows_the_protocol():
    from irc.backends import Backend, available_backends
    from irc.passes import PIPELINES, available_passes

    backends = available_backends()
    assert {"ir", "tflite", "xla", "cuda", "tpu"} <= set(backends)
    for name, backend in backends.items():
        assert isinstance(backend, Backend) and backend.name == name and backend.description
        assert backend.writes in ("file", "directory")
        for part in backend.default_pipeline.split(","):
            assert part.split("{")[0] in PIPELINES or part.split("{")[0] in available_passes()
        assert set(backend.passes) <= set(available_passes())
    assert backends["tflite"].passes == ("tflite-idioms",)


@pytest.mark.parametrize("target", ["ir", "tflite"])
def test_lowering_leaves_the_callers_graph_unchanged(target):
    import irc

    graph = parse(SMALL)
    before = print_graph(graph, full=True)
    artifact = irc.lower(graph, emit=target, passes="O1")
    assert print_graph(graph, full=True) == before and len(graph) == 3
    if target == "ir":
        assert [n.op for n in artifact.nodes] == ["relu"]


def test_backend_passes_are_listed_and_run_by_name():
    runner = CliRunner()
    listed = runner.invoke(main, ["passes"])
    assert listed.exit_code == 0 and "  tflite-idioms " in listed.stdout
    assert "    pipeline: tflite,tflite-idioms; brings tflite-idioms\n" in listed.stdout
    ran = runner.invoke(main, ["opt", "-", "--passes", "tflite-idioms"], input=SMALL)
    assert ran.exit_code == 0, ran.output
    assert "relu(" in ran.stdout


def doc_blocks(language: str) -> list[str]:
    text = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.DOTALL | re.MULTILINE)


def test_the_docs_show_the_example_file():
    assert doc_blocks("python")[0] in PLUGIN.read_text(encoding="utf-8")


def test_a_backend_plugin_is_a_target_and_lists_its_passes(tmp_path):
    (tmp_path / "m.irc").write_text(SMALL)
    (tmp_path / "oplist.py").write_text(next(b for b in doc_blocks("python") if "class OpList(Backend)" in b))
    outcome = run_irc(["lower", "m.irc", "--load", "oplist.py", "--emit", "oplist", "-o", "ops.txt"], cwd=tmp_path)
    assert outcome.returncode == 0, outcome.describe()
    assert (tmp_path / "ops.txt").read_text() == "relu\n"
    listed = run_irc(["passes", "--load", "oplist.py"], cwd=tmp_path)
    assert "  oplist-prepare " in listed.stdout
    assert "  oplist  The op of every node, one per line.\n" in listed.stdout
    assert "    pipeline: O1,oplist-prepare; brings oplist-prepare\n" in listed.stdout
    unknown = run_irc(["lower", "m.irc", "--emit", "oplist", "-o", "ops.txt"], cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown target 'oplist' (targets: cuda, ir, tflite, tpu, xla)" in unknown.stderr
