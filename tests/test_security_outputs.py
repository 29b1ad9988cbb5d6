"""Outputs never destroy data (issue 14 part B, issue 17 item 3).

``-o`` may replace a regular file with a file; it never empties or replaces a non-empty directory, a directory with
a file or a file with a directory unless told to with ``--force``, and never writes through a link or into a device,
a FIFO, ``/proc`` or ``/sys``. Each refusal is one line with exit 2, before any work. A run ended by SIGTERM removes
its temporary output; one killed outright leaves it for the next run to remove. The rules live in irc/outputs.py.

Lowering to xla, cuda and tpu imports TensorFlow, so the 300 MB budget of ``assert_refused`` applies only to
refusals, which come before the model is even read.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile import assert_refused, console_script, run_irc

from irc.cli import main
from irc.errors import OutputError, UsageError
from irc.outputs import atomic_dir, atomic_file, check_output, write_atomic

GOOD = Path(__file__).resolve().parent / "bad_inputs" / "good"
TINY = GOOD / "tiny.irc"
DIRECTORY_TARGETS = ["xla", "cuda", "tpu"]


def precious_directory(path: Path) -> Path:
    path.mkdir()
    (path / "notes.txt").write_text("years of work")
    return path


def assert_intact(directory: Path) -> None:
    assert [p.name for p in directory.iterdir()] == ["notes.txt"]
    assert (directory / "notes.txt").read_text() == "years of work"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".irc-" in p.name)


# ---- what is in the way is refused, and stays as it was ----------------------------------------------------------
@pytest.mark.parametrize("target", DIRECTORY_TARGETS)
def test_a_non_empty_directory_is_not_replaced_without_force(target, tmp_path):
    out = precious_directory(tmp_path / "precious")
    outcome = run_irc(["lower", TINY, "--emit", target, "-o", out], cwd=tmp_path)
    assert_refused(outcome, codes=(2,), fragment="precious: directory exists and is not empty (pass --force")
    assert_intact(out)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("target", DIRECTORY_TARGETS)
def test_a_file_is_not_replaced_by_a_directory_without_force(target, tmp_path):
    out = tmp_path / "model.bin"
    out.write_bytes(b"a file")
    assert_refused(run_irc(["lower", TINY, "--emit", target, "-o", out], cwd=tmp_path), codes=(2,),
                   fragment="is a file, and this output is a directory")
    assert out.read_bytes() == b"a file"


def test_a_directory_is_not_replaced_by_a_file_without_force(tmp_path):
    """Issue 17: ``-o existing_dir`` for tflite was an internal error (IsADirectoryError)."""
    out = precious_directory(tmp_path / "models")
    for emit in ("tflite", "ir"):
        outcome = run_irc(["lower", TINY, "--emit", emit, "-o", out], cwd=tmp_path)
        assert_refused(outcome, codes=(2,), fragment="models: is a directory, and this output is a file")
    assert_intact(out)


@pytest.mark.parametrize("emit", ["tflite", "xla"])
def test_special_files_are_refused_and_left_alone(emit, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    real = precious_directory(tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(real)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    cases = {fifo: "is a FIFO", link: "is a symbolic link", dangling: "is a symbolic link",
             Path("/dev/null"): "/dev/null: is a device"}
    for path, fragment in cases.items():
        for force in ([], ["--force"]):  # --force never reaches them either
            outcome = run_irc(["lower", TINY, "--emit", emit, "-o", path, *force], cwd=tmp_path)
            assert_refused(outcome, codes=(2,), fragment=fragment)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert dangling.is_symlink() and not (tmp_path / "nowhere").exists()
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    assert_intact(real)


@pytest.mark.parametrize(("output", "fragment"), [
    ("", "the output path is empty"),
    (".", ".: not a name irc can write an output to"),
    ("sub/.", "sub/.: not a name irc can write an output to"),
    ("/", "/: not a name irc can write an output to"),
    ("..", "..: not a name irc can write an output to"),
    ("sub/", "sub/: names a directory, but this output is a file"),
    ("/proc/irc-test.tflite", "irc does not write outputs under /proc"),
    ("/proc/self/irc-test.tflite", "irc does not write outputs under /proc"),
    ("/sys/irc-test.tflite", "irc does not write outputs under /sys"),
    ("/sys/kernel/new/irc-test.tflite", "irc does not write outputs under /sys"),
    ("file.txt/m.tflite", "file.txt is not a directory"),
    ("file.txt/missing/m.tflite", "file.txt is not a directory"),
])
def test_paths_that_cannot_be_outputs_are_one_line_usage_errors(output, fragment, tmp_path):
    """Each of these was exit 3 (a bug in irc) or wrote where it must not."""
    (tmp_path / "file.txt").write_text("a file where a directory is needed")
    outcome = run_irc(["lower", TINY, "-o", output], cwd=tmp_path)
    assert_refused(outcome, codes=(2,), fragment=fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
    assert (tmp_path / "file.txt").read_text() == "a file where a directory is needed"


@pytest.mark.parametrize("args", [
    ["dump", str(TINY), "-o", "{path}"],
    ["dump", str(TINY), "--save-weights", "{path}"],
    ["opt", str(TINY), "-O1", "-o", "{path}"],
    ["run", str(TINY), "--random", "0", "-o", "{path}"],
    ["viz", str(TINY), "--format", "dot", "-o", "{path}"],
    ["stats", str(TINY), "-o", "{path}"],
    ["check", str(TINY), "-o", "{path}"],
    ["diff", str(TINY), str(TINY), "-o", "{path}"],
    ["quant-report", str(TINY), "--calibration", str(GOOD / "calibration.npz"), "-o", "{path}"],
], ids=lambda args: args[0] + ("-save-weights" if "--save-weights" in args else ""))
def test_every_command_refuses_the_same_outputs(args, tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file.txt").write_text("x")
    for path, fragment in {"/dev/null": "is a device", str(tmp_path / "fifo"): "is a FIFO",
                           str(tmp_path / "file.txt" / "out"): "is not a directory", "/proc/out": "under /proc",
                           "": "output path is empty"}.items():  # "." and dirs: click refuses them (dir_okay=False)
        result = CliRunner().invoke(main, [part.format(path=path) for part in args])
        assert result.exit_code == 2, (path, result.output)
        [line] = result.stderr.splitlines()
        assert line.startswith("error: ") and fragment in line, (path, line)
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)


# ---- what is allowed ------------------------------------------------------------------------------------------------
def test_a_file_replaces_a_file_and_missing_parents_are_made(tmp_path):
    out = tmp_path / "m.tflite"
    out.write_bytes(b"yesterday's model")
    assert CliRunner().invoke(main, ["lower", str(TINY), "-o", str(out)]).exit_code == 0
    assert out.read_bytes()[4:8] == b"TFL3"
    deep = tmp_path / "a" / "b" / "m.tflite"
    assert CliRunner().invoke(main, ["lower", str(TINY), "-o", str(deep)]).exit_code == 0
    assert deep.read_bytes()[4:8] == b"TFL3"
    assert leftovers(tmp_path) == leftovers(deep.parent) == []


def test_tflite_and_ir_go_to_stdout_with_dash(tmp_path):
    done = subprocess.run([console_script(), "lower", str(TINY), "-o", "-"], capture_output=True, cwd=tmp_path,
                          timeout=120, check=True)
    assert done.stdout[4:8] == b"TFL3" and not any(tmp_path.iterdir())
    done = subprocess.run([console_script(), "lower", str(TINY), "--emit", "ir", "-o", "-"], capture_output=True,
                          cwd=tmp_path, timeout=120, check=True)
    assert done.stdout.startswith(b"graph") or b"func" in done.stdout or b"%" in done.stdout
    assert_refused(run_irc(["lower", TINY, "--emit", "xla", "-o", "-"], cwd=tmp_path), codes=(2,),
                   fragment="cannot go to stdout")


def test_force_replaces_a_directory_whole(tmp_path):
    out = precious_directory(tmp_path / "out")
    result = CliRunner().invoke(main, ["lower", str(TINY), "--emit", "xla", "-o", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert (out / "saved_model.pb").is_file() and not (out / "notes.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary and no old copy beside it


def test_an_empty_directory_is_filled_without_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with atomic_dir(out) as tmp:
        (tmp / "program.py").write_text("print()")
    assert [p.name for p in out.iterdir()] == ["program.py"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# ---- the module itself ---------------------------------------------------------------------------------------------
def test_force_never_empties_first_a_failed_write_keeps_the_old_output(tmp_path):
    out = precious_directory(tmp_path / "out")
    with pytest.raises(RuntimeError), atomic_dir(out, force=True) as tmp:
        (tmp / "half").write_text("half a program")
        raise RuntimeError("the backend failed")
    assert_intact(out)
    assert leftovers(tmp_path) == []


def test_a_failed_rename_puts_the_old_output_back(tmp_path, monkeypatch):
    out = precious_directory(tmp_path / "out")
    real_rename = os.rename

    def rename(src, dst):
        if Path(src).name.startswith(".out.irc-tmp-"):
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OutputError, match="No space left on device"), atomic_dir(out, force=True) as tmp:
        (tmp / "program.py").write_text("print()")
    assert_intact(out)
    assert leftovers(tmp_path) == []


def test_an_operating_system_refusal_is_one_output_error(tmp_path, monkeypatch):
    """As root a chmod 0o555 directory is still writable, so the refusal is simulated where the file is created."""
    import tempfile

    def refuse(**_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    result = CliRunner().invoke(main, ["lower", str(TINY), "-o", str(tmp_path / "m.tflite")])
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'm.tflite'}: cannot write the output: Permission denied\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only (0o555) directory anyway")
def test_a_read_only_directory_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert_refused(run_irc(["lower", TINY, "-o", locked / "m.tflite"], cwd=tmp_path), codes=(1,),
                   fragment="Permission denied")


def test_check_output_is_the_rule_for_the_python_api_too(tmp_path):
    out = precious_directory(tmp_path / "out")
    with pytest.raises(UsageError, match="not empty"):
        check_output(out, "directory")
    with pytest.raises(UsageError, match="is a directory"):
        write_atomic(out, b"data")
    assert check_output(out, "directory", force=True) == out
    with pytest.raises(UsageError, match="current one"):
        check_output(Path.cwd(), "directory", force=True)
    assert_intact(out)


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_leftovers_of_a_dead_process_are_cleaned_and_an_old_output_put_back(tmp_path):
    pid = dead_pid()
    stale_dir = tmp_path / f".m.tflite.irc-tmp-{pid}-abcd1234"
    stale_dir.mkdir()
    (stale_dir / "half").write_text("x")
    stale_file = tmp_path / f".m.tflite.irc-tmp-{pid}-efgh5678"
    stale_file.write_text("x")
    other = tmp_path / f".other.irc-tmp-{pid}-abcd1234"  # another target's: not ours to judge now
    other.write_text("x")
    mine = tmp_path / f".m.tflite.irc-tmp-{os.getpid()}-live0000"  # a live process's: left alone
    mine.write_text("x")
    with atomic_file(tmp_path / "m.tflite") as tmp:
        tmp.write_bytes(b"new")
    assert not stale_dir.exists() and not stale_file.exists() and other.exists() and mine.exists()

    old = precious_directory(tmp_path / f".out.irc-old-{pid}-abcd1234")  # killed between its two renames
    with pytest.raises(UsageError, match="out: directory exists and is not empty"), atomic_dir(tmp_path / "out"):
        pass
    assert not old.exists()
    assert_intact(tmp_path / "out")


# ---- signals -----------------------------------------------------------------------------------------------------
def start_and_wait_for_temporary(args, cwd: Path, prefix: str) -> subprocess.Popen:
    process = subprocess.Popen([console_script(), *map(str, args)], cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not any(name.startswith(prefix) for name in os.listdir(cwd)):
        assert process.poll() is None, f"ended before writing: {process.communicate()}"
        assert time.monotonic() < deadline, "no temporary output appeared"
        time.sleep(0.002)
    return process


@pytest.mark.parametrize(("signum", "code", "line"), [(signal.SIGTERM, 143, "error: terminated by SIGTERM"),
                                                      (signal.SIGINT, 130, "interrupted")], ids=["TERM", "INT"])
def test_a_signal_removes_the_temporary_and_keeps_the_old_output(signum, code, line, tmp_path):
    out = precious_directory(tmp_path / "out")
    process = start_and_wait_for_temporary(["lower", TINY, "--emit", "xla", "-o", "out", "--force"], tmp_path,
                                           ".out.irc-tmp-")
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert stderr.splitlines() == [line]
    assert leftovers(tmp_path) == []
    assert_intact(out)


def test_after_sigkill_the_next_run_removes_the_stale_temporary(tmp_path):
    process = start_and_wait_for_temporary(["lower", TINY, "--emit", "xla", "-o", "out"], tmp_path, ".out.irc-tmp-")
    process.kill()
    process.communicate(timeout=60)
    [stale] = leftovers(tmp_path)
    assert stale.startswith(f".out.irc-tmp-{process.pid}-")
    result = CliRunner().invoke(main, ["lower", str(TINY), "--emit", "ir", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert leftovers(tmp_path) == [] and (tmp_path / "out").is_file()


def test_diff_reports_an_unwritable_output_as_trouble_not_as_a_difference(tmp_path, monkeypatch):
    import tempfile

    def refuse(**_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    result = CliRunner().invoke(main, ["diff", str(TINY), str(TINY), "-o", str(tmp_path / "d.txt")])
    assert result.exit_code == 2 and "cannot write the output: Permission denied" in result.stderr
