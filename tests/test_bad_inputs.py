"""Every bad input gets one clear line and the right exit code, and leaves no output behind (issue 9).

The corpus is ``tests/bad_inputs/``: ``manifest.toml`` lists each file, what is wrong with it and a fragment of
the error irc must print. Every command that takes a file of that kind runs on it in-process, with ``-o`` into an
empty directory; stderr must be exactly one line starting ``error:``, with the fragment in it and no traceback,
the exit code 1 (2 for bad usage and for ``irc diff``), and the directory must still be empty: no output and no
temporary leftovers. A few runs go through the real console script to prove the same holds in a process of its
own, where TensorFlow's and Python's own warnings would show.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from irc.cli import main

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
MANIFEST = tomllib.loads((CORPUS / "manifest.toml").read_text())
GOOD = CORPUS / "good" / "tiny.irc"
GOOD_CALIBRATION = CORPUS / "good" / "calibration.npz"
ELIDED = CORPUS / "irc" / "elided_without_weights.irc"
UNPICKLED = "IRC-UNPICKLED-THIS-FILE"  # printed by the corpus's pickles if anything ever unpickles them

# Every command that reads a model, as it would be typed: {model} and {out} are filled in.
MODEL_COMMANDS = {
    "dump": ["dump", "{model}", "-o", "{out}/m.irc"],
    "verify": ["verify", "{model}"],
    "opt": ["opt", "{model}", "-O2", "-o", "{out}/m.irc"],
    "lower-tflite": ["lower", "{model}", "--emit", "tflite", "-o", "{out}/m.tflite"],
    "lower-ir": ["lower", "{model}", "--emit", "ir", "-o", "{out}/m.irc"],
    "lower-xla": ["lower", "{model}", "--emit", "xla", "-o", "{out}/m_xla"],
    "run": ["run", "{model}", "--random", "0", "-o", "{out}/y.npz"],
    "stats": ["stats", "{model}", "-o", "{out}/stats.txt"],
    "viz": ["viz", "{model}", "-o", "{out}/m.svg"],
    "check": ["check", "{model}", "-o", "{out}/check.txt"],
    "diff": ["diff", "{model}", str(GOOD), "-o", "{out}/diff.txt"],
    "quant-report": ["quant-report", "{model}", "--calibration", str(GOOD_CALIBRATION), "-o", "{out}/q.txt"],
}
EXIT_CODES = {"diff": 2}  # diff's convention: 1 means "different", 2 means trouble

# The other kinds of input, each with the commands that read it.
INPUT_COMMANDS = {
    "input": {"run": ["run", str(GOOD), "--input", "x={path}", "-o", "{out}/y.npz"]},
    "calibration": {
        "lower-int8": ["lower", str(GOOD), "--quantize", "int8", "--calibration", "{path}", "-o", "{out}/m.tflite"],
        "quant-report": ["quant-report", str(GOOD), "--calibration", "{path}", "-o", "{out}/q.txt"],
    },
    "weights": {
        "dump": ["dump", str(ELIDED), "--weights", "{path}", "-o", "{out}/m.irc"],
        "run": ["run", str(ELIDED), "--weights", "{path}", "--random", "0", "-o", "{out}/y.npz"],
        "lower": ["lower", str(ELIDED), "--weights", "{path}", "-o", "{out}/m.tflite"],
    },
    "pipeline": {
        "opt": ["opt", str(GOOD), "--passes", "{text}", "-o", "{out}/m.irc"],
        "dump": ["dump", str(GOOD), "--passes", "{text}", "-o", "{out}/m.irc"],
        "lower": ["lower", str(GOOD), "--passes", "{text}", "-o", "{out}/m.tflite"],
    },
    "load_pass": {
        "passes": ["passes", "--load-pass", "{path}"],
        "opt": ["opt", str(GOOD), "--load-pass", "{path}", "-o", "{out}/m.irc"],
    },
}
USAGE_KINDS = {"pipeline", "load_pass"}  # bad usage: exit 2


def invoke(args: list[str]):
    return CliRunner().invoke(main, args)


def fill(template: list[str], **values) -> list[str]:
    return [part.format(**values) for part in template]


def refusal_problems(result, code: int, message: str, out: Path) -> list[str]:
    """What is wrong with how irc refused a bad input (empty when it refused it properly)."""
    problems = []
    lines = result.stderr.splitlines()
    if result.exit_code != code:
        problems.append(f"exit code {result.exit_code}, expected {code}")
    if len(lines) != 1 or not lines[0].startswith("error: "):
        problems.append(f"stderr is not one 'error:' line: {result.stderr!r}")
    elif message not in lines[0]:
        problems.append(f"message lacks {message!r}: {lines[0]!r}")
    if "Traceback" in result.output or UNPICKLED in result.output:
        problems.append(f"output shows a traceback or an unpickled object: {result.output[-500:]!r}")
    if out.exists() and any(out.iterdir()):
        problems.append(f"left files behind: {sorted(p.name for p in out.iterdir())}")
    return problems


def acceptance_problems(result, name: str) -> list[str]:
    """What is wrong with a run on an input this command should accept."""
    allowed = (0, 1) if name == "diff" else (0,)
    if result.exit_code not in allowed or "Traceback" in result.output or "internal error" in result.output:
        return [f"exit code {result.exit_code}: {result.output[-300:]!r}"]
    return []


def run_all(commands: dict[str, list[str]], tmp_path: Path, code, entry: dict, **values) -> list[str]:
    """Runs each command; ``code(name)`` is its exit code on refusal, ``entry`` the manifest entry."""
    failures = []
    for name, template in commands.items():
        out = tmp_path / name
        out.mkdir()
        result = invoke(fill(template, out=out, **values))
        message = entry.get("messages", {}).get(name, entry["message"])
        found = acceptance_problems(result, name) if name in entry.get("ok", ()) else refusal_problems(
            result, code(name), message, out)
        failures += [f"{name}: {p}" for p in found]
    return failures


# ---- the corpus ------------------------------------------------------------------------------------------------
def entries(kind: str) -> list:
    return [pytest.param(e, id=e.get("path", e.get("text"))) for e in MANIFEST.get(kind, [])]


@pytest.mark.parametrize("entry", entries("model"))
def test_every_command_refuses_a_bad_model(entry, tmp_path):
    failures = run_all(MODEL_COMMANDS, tmp_path, lambda name: EXIT_CODES.get(name, 1), entry,
                       model=CORPUS / entry["path"])
    assert not failures, f"{entry['path']} ({entry['defect']}):\n" + "\n".join(failures)


@pytest.mark.parametrize("kind", sorted(INPUT_COMMANDS))
def test_every_command_refuses_bad_inputs_calibration_weights_pipelines(kind, tmp_path):
    code = 2 if kind in USAGE_KINDS else 1
    failures = []
    for i, entry in enumerate(MANIFEST[kind]):
        where = tmp_path / str(i)
        where.mkdir()
        values = {"text": entry["text"]} if "text" in entry else {"path": CORPUS / entry["path"]}
        found = run_all(INPUT_COMMANDS[kind], where, lambda name: code, entry, **values)
        failures += [f"{entry.get('path', entry.get('text'))}: {f}" for f in found]
    assert not failures, "\n".join(failures)


def test_the_manifest_lists_every_file_of_the_corpus():
    listed = {e["path"] for kind in MANIFEST.values() for e in kind if "path" in e}
    on_disk = set()
    for path in CORPUS.rglob("*"):
        relative = path.relative_to(CORPUS)
        if relative.parts[0] in ("good", "__pycache__") or relative.suffix in (".toml", ".py"):
            continue
        top = relative.parts[:2]
        if top[0] == "savedmodel" and len(top) == 2:  # a SavedModel is its directory
            on_disk.add("/".join(top))
        elif path.is_file():
            on_disk.add(str(relative))
    assert listed == on_disk
    assert len(listed) + len(MANIFEST["pipeline"]) >= 40


def test_missing_paths_and_empty_directories(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    cases = {tmp_path / "no_such_model.tflite": "no such file or directory",
             tmp_path / "empty_dir": "directory is not a SavedModel"}
    failures = []
    for path, message in cases.items():
        out = tmp_path / f"out_{path.name}"
        out.mkdir()
        failures += run_all(MODEL_COMMANDS, out, lambda name: EXIT_CODES.get(name, 1), {"message": message},
                            model=path)
    assert not failures, "\n".join(failures)


# ---- outputs are never half-written, and an existing one survives a failure ----------------------------------------
@pytest.mark.parametrize("model", ["irc/wrong_declared_type.irc", "tflite/truncated_half.tflite", "pb/cyclic.pb"])
def test_a_failed_command_keeps_the_existing_output(model, tmp_path):
    old_file = tmp_path / "m.tflite"
    old_file.write_bytes(b"the previous model")
    old_dir = tmp_path / "m_xla"
    old_dir.mkdir()
    (old_dir / "saved_model.pb").write_bytes(b"the previous program")
    for args in (["lower", str(CORPUS / model), "-o", str(old_file)],
                 ["lower", str(CORPUS / model), "--emit", "xla", "-o", str(old_dir), "--force"],
                 ["dump", str(CORPUS / model), "-o", str(old_file)]):
        assert invoke(args).exit_code == 1
    assert old_file.read_bytes() == b"the previous model"
    assert (old_dir / "saved_model.pb").read_bytes() == b"the previous program"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "m_xla"]
    assert [p.name for p in old_dir.iterdir()] == ["saved_model.pb"]


def test_an_output_that_cannot_be_written_is_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory is needed")
    result = invoke(["lower", str(GOOD), "-o", str(blocker / "m.tflite")])
    assert result.exit_code == 2
    assert result.stderr == f"error: {blocker / 'm.tflite'}: {blocker} is not a directory\n"
    assert blocker.read_text() == "a file where a directory is needed"


# ---- model code never runs unasked -------------------------------------------------------------------------------
def test_lambda_layers_load_only_with_unsafe(tmp_path):
    lam = CORPUS / "keras" / "lambda_layer.keras"
    assert invoke(["dump", str(lam)]).exit_code == 1
    result = invoke(["--debug", "dump", str(lam), "--unsafe", "-o", str(tmp_path / "m.irc")])
    assert result.exit_code == 0, result.output
    assert "mul" in (tmp_path / "m.irc").read_text()  # the lambda's t * 2.0


def test_no_pickle_anywhere():
    """irc's own code never imports pickle, and every np.load says allow_pickle=False."""
    root = Path(__file__).resolve().parent.parent / "irc"
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "cPickle" not in text and "joblib" not in text, path
        for line in text.splitlines():
            if "np.load(" in line:
                assert "allow_pickle=False" in line, f"{path}: {line.strip()}"
            assert "allow_pickle=True" not in line and "safe_mode=False" not in line, f"{path}: {line.strip()}"


# ---- --debug, internal errors ---------------------------------------------------------------------------------------
def test_debug_shows_the_traceback_and_still_ends_with_the_error():
    result = invoke(["--debug", "dump", str(CORPUS / "irc" / "cyclic.irc")])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and result.stderr.splitlines()[-1].startswith("error: ")


def test_a_crashing_builtin_pass_is_a_bug_in_irc_with_a_reproducer(tmp_path, monkeypatch):
    from irc.passes import fuse

    def crash(self, graph, stats):
        raise KeyError("oops")

    monkeypatch.setattr(fuse.Fuse, "apply", crash)
    result = invoke(["opt", str(GOOD), "--passes", "canonicalize,fuse", "--reproducer-dir", str(tmp_path)])
    assert result.exit_code == 3
    [line] = result.stderr.splitlines()
    assert line.startswith("error: this is a bug in irc: pass 'fuse' failed: KeyError: 'oops' (after canonicalize)")
    command = line.partition("reproduce with: ")[2].rstrip(")")
    assert command.startswith("irc opt ") and Path(command.split()[2]).exists()


def test_a_crash_outside_any_pass_is_one_internal_error_line(monkeypatch):
    import irc.ir.verify

    def crash(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(irc.ir.verify, "verify", crash)
    result = invoke(["verify", str(GOOD)])
    assert result.exit_code == 3
    assert result.stderr == ("internal error: this is a bug in irc: ZeroDivisionError: division by zero "
                             "(run with --debug for the traceback)\n")


# ---- the real console script ------------------------------------------------------------------------------------
def console_script() -> str:
    script = Path(sys.executable).parent / "irc"
    return str(script) if script.exists() else shutil.which("irc")


SUBPROCESS_CASES = [  # {c}: the corpus, {out}: an empty directory
    ["dump", "{c}/irc/deeply_nested_attr.irc"],
    ["lower", "{c}/tflite/truncated_half.tflite", "-o", "{out}/m.tflite"],
    ["run", "{c}/good/tiny.irc", "--input", "x={c}/inputs/pickled_object.npy", "-o", "{out}/y.npz"],
    ["lower", "{c}/pb/cyclic.pb", "--emit", "xla", "-o", "{out}/m_xla"],
    ["dump", "{c}/savedmodel/truncated_variables", "-o", "{out}/m.irc"],
]


@pytest.mark.parametrize("args", SUBPROCESS_CASES, ids=lambda args: args[1].removeprefix("{c}/"))
def test_console_script_prints_one_line(args, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([console_script(), *fill(args, c=CORPUS, out=out)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert UNPICKLED not in done.stdout + done.stderr
    assert not any(out.iterdir())


@pytest.mark.slow
def test_console_script_keras_refusal_prints_one_line(tmp_path):
    """Importing Keras prints its own notices on some installs; the refusal must still be the only line."""
    done = subprocess.run([console_script(), "dump", str(CORPUS / "keras" / "custom_class.keras")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
