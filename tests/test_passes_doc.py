"""The worked example in docs/writing-passes.md runs as written and prints what the doc shows."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from irc.cli import main

DOC = Path(__file__).resolve().parent.parent / "docs" / "writing-passes.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), re.DOTALL | re.MULTILINE)


def test_doc_example_runs(tmp_path, monkeypatch):
    source = next(b for b in blocks("python") if b.startswith("# my_passes.py"))
    model, expected = blocks("irc")[:2]
    command = next(b for b in blocks("sh") if b.startswith("irc opt model.irc --load ")).strip()
    (tmp_path / "my_passes.py").write_text(source)
    (tmp_path / "model.irc").write_text(model)
    monkeypatch.chdir(tmp_path)
    args = shlex.split(command)
    assert args[:2] == ["irc", "opt"]
    result = CliRunner().invoke(main, args[1:], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout == expected


def test_doc_example_check_numerics_names_the_pass(tmp_path, monkeypatch):
    source = next(b for b in blocks("python") if b.startswith("# my_passes.py"))
    (tmp_path / "my_passes.py").write_text(source)
    (tmp_path / "model.irc").write_text(blocks("irc")[0])
    monkeypatch.chdir(tmp_path)
    args = ["opt", "model.irc", "--load-pass", "my_passes.py", "--passes", "strength,drop-final-softmax,dce",
            "--check-numerics", "--reproducer-dir", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "pass 'drop-final-softmax' changed output 'probabilities'" in result.stderr
    assert "(after strength)" in result.stderr


def test_doc_debug_rewrites_output(tmp_path, monkeypatch):
    source = next(b for b in blocks("python") if b.startswith("# my_passes.py"))
    (tmp_path / "my_passes.py").write_text(source)
    (tmp_path / "model.irc").write_text(blocks("irc")[0])
    monkeypatch.chdir(tmp_path)
    shown = re.search(r"\$ (irc opt .*--debug-rewrites)\n((?:\s+rewrite: .*\n)+)", DOC.read_text())
    result = CliRunner().invoke(main, shlex.split(shown.group(1))[1:])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [line.strip() for line in shown.group(2).splitlines()]


def test_doc_class_form_runs(tmp_path):
    import numpy as np

    from irc.ir.interpreter import run
    from irc.ir.parser import parse
    from irc.passes import run_pipeline
    from irc.registry import load_file

    (tmp_path / "clamp.py").write_text(next(b for b in blocks("python") if "class ClampOutputs(Pass)" in b))
    load_file(tmp_path / "clamp.py")
    graph = parse('graph @g(%x: f32[3]) {\n  %0 = exp(%x) : f32[3]\n  return %0 as "y"\n}')
    report = run_pipeline(graph, "clamp-outputs{low=0 high=2}")
    assert report.records[0].stats == {"outputs clamped": 1}
    got = run(graph, {"x": np.array([-5.0, 0.0, 5.0], np.float32)})["y"]
    np.testing.assert_allclose(got, [np.exp(-5.0), 1.0, 2.0], rtol=1e-6)
