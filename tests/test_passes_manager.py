"""The pass manager: pipeline text, options, errors, reproducers, instruments, custom passes and plugins."""

from __future__ import annotations

import io
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from click.testing import CliRunner

from irc.cli import main
from irc.errors import PassError, PipelineError, UsageError, VerifyError
from irc.ir.parser import parse
from irc.ir.types import DType, TensorType
from irc.passes import PIPELINES, Pass, Stats, available_passes, get_pass, option, register_pass, run_pipeline
from irc.passes.instruments import CheckNumerics, PrintIR
from irc.passes.manager import Instrument
from irc.passes.pipeline import format_pipeline, parse_pipeline

SMALL = """graph @small(%x: f32[2]) {
  %0 = const() {value = dense<f32[] [1.0]>} : f32[]
  %1 = mul(%x, %0) : f32[2]
  %2 = exp(%x) : f32[2]
  %3 = relu(%1) : f32[2]
  return %3 as "y"
}
"""


def small():
    return parse(SMALL, "small.irc")


# ----- test passes ------------------------------------------------------------------------------------------------
@register_pass
@dataclass(frozen=True)
class Options(Pass):
    """A pass with one option of each kind."""

    name = "test-options"
    count: int = option(3, "an int")
    ratio: float = option(0.5)
    flag: bool = option(False)
    mode: Literal["fast", "exact"] = option("fast")
    axes: tuple[int, ...] = option((1, 2))
    label: str = option("")

    def apply(self, graph, stats):
        pass


@register_pass(name="test-break-verifier")
def break_verifier(graph):
    """Declares a wrong result type on every relu."""
    for node in graph.nodes:
        if node.op == "relu":
            graph.set_type(node.results[0], TensorType(DType.f32, (7,)))


@register_pass(name="test-break-perm")
def break_perm(graph):
    """Sets an invalid perm on every transpose, the only way there is: through the graph."""
    for node in graph.nodes:
        if node.op == "transpose":
            graph.set_attr(node, "perm", (0, 0))


@register_pass(name="test-raise")
def raise_error(graph, *, message: str = "boom"):
    """Raises."""
    raise RuntimeError(message + "\nsecond line")


@register_pass(name="test-perturb")
def perturb(graph, *, amount: float = 1.0) -> dict:
    """Adds ``amount`` to every graph output (a pass that changes numerics)."""
    for name, value in list(graph.outputs.items()):
        graph.set_output(name, graph.op("add", value, graph.const(np.float32(amount))))
    return {"outputs perturbed": len(graph.outputs)}


# ----- pipeline text ----------------------------------------------------------------------------------------------
def test_options_are_parsed_by_type():
    (p,) = parse_pipeline("test-options{count=7 ratio=0.25 flag mode=EXACT axes=0,3, 4 label=hi}")
    assert (p.count, p.ratio, p.flag, p.mode, p.axes, p.label) == (7, 0.25, True, "exact", (0, 3, 4), "hi")
    (q,) = parse_pipeline("test-options{count=7,flag=false}")
    assert (q.count, q.flag) == (7, False)


def test_pipeline_round_trips_through_text():
    passes = parse_pipeline("canonicalize, tfl-fuse{activations=relu,tanh},fuse{pad=false},test-options{axes=5},dce")
    text = format_pipeline(passes)
    assert text == "canonicalize,tfl-fuse{activations=relu,tanh},fuse{pad=false},test-options{axes=5},dce"
    assert format_pipeline(parse_pipeline(text)) == text


def test_named_pipelines_expand_anywhere():
    names = [p.name for p in parse_pipeline("O1,layout{target=nchw}")]
    assert names == ["canonicalize", "fold-constants", "cse", "dce", "layout"]
    assert parse_pipeline("O0") == []
    for name in PIPELINES:
        parse_pipeline(name)  # every named pipeline is valid
    assert [p.name for p in parse_pipeline(["O1", "fuse"])][-1] == "fuse"


@pytest.mark.parametrize("text, message", [
    ("fsue", "unknown pass 'fsue' (did you mean 'fuse'? passes: canonicalize,"),
    ("fuse{activations=relu}", ("pass 'fuse' has no option 'activations' (options: bias, pad): fusing activations "
                                "is TFLite's business now, use tfl-fuse{activations=...}")),
    ("tfl-fuse{activation=relu}", "pass 'tfl-fuse' has no option 'activation' (options: activations)"),
    ("test-options{count=many}", "pass 'test-options': option 'count': expected an integer, got 'many'"),
    ("test-options{flag=maybe}", "option 'flag': expected true or false, got 'maybe'"),
    ("test-options{mode=slow}", "option 'mode': expected one of fast, exact, got 'slow'"),
    ("test-options{count=1,2}", "option 'count': expected one int, got a list 1,2"),
    ("test-options{count=1 count=2}", "option 'count' is given twice"),
    ("fuse{activations=relu", "a '{' is not closed"),
    ("fuse}", "unbalanced '}'"),
    ("fuse!", "bad pipeline element 'fuse!'"),
])
def test_bad_pipelines_are_one_line_errors(text, message):
    with pytest.raises(PipelineError) as raised:
        parse_pipeline(text)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_registry_refuses_builtin_and_pipeline_names():
    with pytest.raises(ValueError, match=r"pass 'fuse' is registered twice: by irc\.passes\.fuse\.Fuse and by "):
        register_pass(lambda graph: None, name="fuse")
    with pytest.raises(ValueError, match="name of a pipeline"):
        register_pass(lambda graph: None, name="tflite")
    assert {"canonicalize", "fold-constants", "cse", "dce", "fold-batchnorm", "fuse", "layout"} <= set(
        available_passes())
    assert get_pass("fuse").summary()


# ----- running ----------------------------------------------------------------------------------------------------
def test_report_has_times_statistics_and_op_counts():
    graph = small()
    report = run_pipeline(graph, "canonicalize,dce,cse")
    assert [r.name for r in report.records] == ["canonicalize", "dce", "cse"]
    assert [r.changed for r in report.records] == [True, True, False]
    assert report.records[0].stats == {"x * 1 -> x": 1, "nodes removed": 2}
    assert report.records[1].stats == {"nodes removed": 1}
    assert report.stats["nodes removed"] == 3
    assert report.ops_before == {"const": 1, "exp": 1, "mul": 1, "relu": 1}
    assert report.ops_after == {"relu": 1}
    assert report.op_count_note() == "4 -> 1 nodes (const 1->0, exp 1->0, mul 1->0)"
    table = report.timing_table()
    assert "1. canonicalize" in table and "(verifier)" in table and table.splitlines()[-1].startswith("total")


def test_a_pass_that_breaks_the_verifier_is_named_with_a_reproducer(tmp_path):
    graph = small()
    with pytest.raises(PassError) as raised:
        run_pipeline(graph, "canonicalize,test-break-verifier,dce", reproducer_dir=tmp_path)
    message = str(raised.value)
    assert message.startswith("pass 'test-break-verifier' broke the verifier: 'relu': result 0 is declared f32[7]")
    assert "(after canonicalize)" in message and "\n" not in message
    command = message.partition("reproduce with: ")[2].rstrip(")")
    args = shlex.split(command)
    assert args[:2] == ["irc", "opt"] and args[-2:] == ["--passes", "test-break-verifier,dce"]
    reproducer = parse(Path(args[2]).read_text(), args[2])  # the IR the failing pass was given: after canonicalize
    assert reproducer.op_histogram() == {"exp": 1, "relu": 1}
    result = CliRunner().invoke(main, args[1:] + ["--reproducer-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "pass 'test-break-verifier' broke the verifier" in result.stderr


def test_in_place_edits_fail_loudly_and_naming_the_method():
    graph = parse("""graph @g(%x: f32[2,3]) {
      %0 = transpose(%x) {perm = [1, 0]} : f32[3,2]
      return %0 as "y"
    }""")
    node = graph.nodes[0]
    attempts = {
        "graph.set_attr": [lambda: node.attrs.__setitem__("perm", (0, 1)), lambda: node.attrs.update(perm=(0, 1)),
                           lambda: node.attrs.pop("perm"), lambda: setattr(node, "attrs", {})],
        "graph.set_type": [lambda: setattr(node.result, "type", TensorType(DType.f32, (2, 3)))],
        "graph.set_operand": [lambda: setattr(node, "operands", [])],
    }
    for method, edits in attempts.items():
        for edit in edits:
            with pytest.raises((TypeError, AttributeError), match=method.replace(".", r"\.")):
                edit()
    with pytest.raises(TypeError):
        node.operands[0] = graph.inputs[0]  # a tuple
    assert node.attrs == {"perm": (1, 0)} and node.result.type == TensorType(DType.f32, (3, 2))


def test_an_attribute_edit_counts_as_a_change_and_is_verified(tmp_path):
    graph = parse("""graph @g(%x: f32[2,3]) {
      %0 = transpose(%x) {perm = [1, 0]} : f32[3,2]
      return %0 as "y"
    }""")
    version = graph.version
    graph.set_attr(graph.nodes[0], "perm", [1, 0])  # same value, list -> tuple: still an edit
    assert graph.version > version and graph.nodes[0].attrs["perm"] == (1, 0)
    with pytest.raises(PassError, match="pass 'test-break-perm' broke the verifier: 'transpose'.*perm"):
        run_pipeline(graph, "test-break-perm", reproducer_dir=tmp_path)


def test_a_pass_that_raises_is_named_with_the_passes_before_it(tmp_path):
    with pytest.raises(PassError) as raised:
        run_pipeline(small(), "cse,test-raise{message=bad},dce", reproducer_dir=tmp_path)
    message = str(raised.value)
    assert message.startswith("pass 'test-raise' failed: RuntimeError: bad second line (after cse)")
    assert "--passes 'test-raise{message=bad},dce'" in message
    assert raised.value.pass_name == "test-raise"


def test_invalid_input_is_not_blamed_on_a_pass():
    graph = small()
    break_verifier(graph)
    with pytest.raises(VerifyError, match="the input IR is invalid before any pass ran"):
        run_pipeline(graph, "dce")
    run_pipeline(graph, "dce", verify_each=False)  # without verification nothing checks


def test_instruments_see_every_pass():
    seen = []

    class Recorder(Instrument):
        def before_pipeline(self, graph, passes):
            seen.append(("start", len(passes)))

        def before_pass(self, p, graph):
            seen.append(("before", p.name))

        def after_pipeline(self, graph, report):
            seen.append(("end", report.changed))

    calls = []
    run_pipeline(small(), "canonicalize,dce",
                 instrument=[Recorder(), lambda p, graph, record: calls.append((p.name, record.changed))])
    assert seen == [("start", 2), ("before", "canonicalize"), ("before", "dce"), ("end", True)]
    assert calls == [("canonicalize", True), ("dce", True)]


def test_print_ir_before_after_and_after_change():
    def printed(**kw):
        stream = io.StringIO()
        run_pipeline(small(), "canonicalize,cse,dce", instrument=PrintIR(stream=stream, **kw))
        return [line for line in stream.getvalue().splitlines() if line.startswith("// -----")]

    assert printed(before=["cse"]) == ["// ----- IR before cse (pass 2 of 3) ----- //"]
    assert printed(after=["dce"]) == ["// ----- IR after dce (pass 3 of 3) ----- //"]
    assert len(printed(after_all=True)) == 3
    assert printed(after_change=True) == ["// ----- IR after canonicalize (pass 1 of 3) ----- //",
                                          "// ----- IR after dce (pass 3 of 3) ----- //"]
    assert printed(after_all=True, after_change=True) == printed(after_change=True)


def test_check_numerics_names_the_first_pass_that_changes_outputs(tmp_path):
    run_pipeline(small(), "O2", instrument=CheckNumerics())  # the default pipeline changes nothing numerically
    with pytest.raises(PassError) as raised:
        run_pipeline(small(), "canonicalize,test-perturb{amount=0.5},dce", instrument=CheckNumerics(),
                     reproducer_dir=tmp_path)
    message = str(raised.value)
    assert message.startswith("pass 'test-perturb' changed output 'y': max difference 0.5 > tolerance")
    assert "--check-numerics" in message
    run_pipeline(small(), "test-perturb{amount=1e-9}", instrument=CheckNumerics())  # within tolerance


def test_check_numerics_compares_exactly_for_integers_and_nan_agrees():
    check = CheckNumerics()
    assert check.compare(np.array([1, 2]), np.array([1, 3])) == "1 element(s) differ"
    assert check.compare(np.array([np.nan, 1.0]), np.array([np.nan, 1.0])) is None
    assert "max difference" in check.compare(np.array([np.nan, 1.0]), np.array([0.0, 1.0]))
    assert check.compare(np.zeros((2,)), np.zeros((3,))) == "shape [3] instead of [2]"


def test_function_pass_options_and_statistics():
    cls = get_pass("test-perturb")
    assert [(o.name, o.type_name, o.default) for o in cls.options()] == [("amount", "float", 1.0)]
    assert cls.summary() == "Adds ``amount`` to every graph output (a pass that changes numerics)."
    report = run_pipeline(small(), [cls(amount=2.0)])
    assert report.records[0].stats == {"outputs perturbed": 1}
    assert report.records[0].spec == "test-perturb{amount=2.0}"


def test_entry_point_plugins_are_loaded(monkeypatch):
    from irc import passes, registry
    from tests.test_plugins import FakeEntryPoint

    def plugin_pass(graph, *, times: int = 1):
        """A pass from an installed package."""

    monkeypatch.setattr(registry.metadata, "entry_points",
                        lambda group: [FakeEntryPoint("plugin-pass", plugin_pass),
                                       FakeEntryPoint("broken", ImportError("no module named nowhere"))]
                        if group == "irc.passes" else [])
    fresh = registry.Registry("pass", passes.BUILTIN_PASSES.values(), "irc.passes", passes._adopt)
    monkeypatch.setattr(passes, "PASSES", fresh)
    with pytest.warns(UserWarning, match="cannot load plugin 'broken'"):
        cls = get_pass("plugin-pass")
    assert cls.summary() == "A pass from an installed package."
    assert parse_pipeline("plugin-pass{times=2}")[0].times == 2


# ----- command line -----------------------------------------------------------------------------------------------
def invoke(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def test_opt_reads_stdin_and_writes_stdout():
    result = invoke("opt", "-", "--passes", "canonicalize,dce", input=SMALL)
    assert result.exit_code == 0, result.output
    assert result.stdout == 'graph @small(%x: f32[2]) {\n  %0 = relu(%x) : f32[2]\n  return %0 as "y"\n}\n'


def test_opt_levels_timing_and_print_ir(tmp_path):
    path = tmp_path / "small.irc"
    path.write_text(SMALL)
    result = invoke("opt", str(path), "-O2", "--timing", "--print-ir-after", "canonicalize", "-o",
                    str(tmp_path / "out.irc"))
    assert result.exit_code == 0, result.output
    assert "// ----- IR after canonicalize (pass 1 of 6) ----- //" in result.stderr
    assert "2. fold-constants" in result.stderr and "total" in result.stderr
    assert (tmp_path / "out.irc").read_text().count("relu") == 1


@pytest.mark.parametrize("args, message", [
    (["--passes", "dce", "-O1"], "give one of --passes, --pipeline and -O0..-O3"),
    (["--pipeline", "fast"], "unknown pipeline 'fast' (pipelines: O0, O1, O2, O3, tflite, xla, cuda)"),
    (["--passes", "dce", "--print-ir-after", "fsue"], "unknown pass 'fsue'"),
    (["--passes", "fuse{pad=sometimes}"], "pass 'fuse': option 'pad': expected true or false, got 'sometimes'"),
])
def test_opt_usage_errors(args, message):
    result = invoke("opt", "-", *args, input=SMALL)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_passes_lists_every_pass_option_and_pipeline():
    result = invoke("passes")
    assert result.exit_code == 0
    for name in available_passes():
        assert f"  {name} " in result.stdout
    assert "max-size: int = 4194304" in result.stdout
    assert "target: nhwc|nchw = nhwc" in result.stdout
    assert "tflite  canonicalize,fold-constants,split-complex,tfl-fuse-lstm,fold-batchnorm" in result.stdout


def test_dump_after_a_pass(tmp_path):
    path = tmp_path / "small.irc"
    path.write_text(SMALL)
    result = invoke("dump", str(path), "-O1", "--after", "canonicalize")
    assert result.exit_code == 0, result.output
    assert "exp" in result.stdout and "mul" not in result.stdout  # dce has not run
    result = invoke("dump", str(path), "-O1", "--after", "fuse")
    assert result.exit_code == 2 and "pass 'fuse' is not in the pipeline" in result.stderr
    assert invoke("dump", str(path), "--after", "fuse").exit_code == 0  # alone: the pipeline 'irc lower' runs


def test_usage_error_for_missing_pass_file():
    result = invoke("opt", "-", "--load-pass", "nowhere.py", "--passes", "dce", input=SMALL)
    assert result.exit_code == 2 and "--load: no such file: nowhere.py" in result.stderr
    with pytest.raises(UsageError):
        from irc.passes import load_pass_file

        load_pass_file("nowhere.py")


def test_register_pass_says_what_is_wrong_with_a_class():
    class NotAPass:
        name = "not-a-pass"

    with pytest.raises(TypeError, match="register_pass: class .*NotAPass is not a Pass: derive it from irc.passes"):
        register_pass(NotAPass)

    @dataclass(frozen=True)
    class NoApply(Pass):
        name = "no-apply"

    with pytest.raises(TypeError, match="pass .*NoApply defines no apply\\(self, graph, stats\\) method"):
        register_pass(NoApply)
    with pytest.raises(NotImplementedError, match="pass 'no-apply' .*NoApply.* defines no apply\\(self, graph"):
        NoApply().apply(small(), Stats())

    class Undecorated(Pass):
        name = "undecorated"
        level: int = 1

        def apply(self, graph, stats):
            pass

    with pytest.raises(TypeError, match="has options \\(level\\) but is not a dataclass"):
        register_pass(Undecorated)
