"""Running irc on a hostile input the way a user would, and checking what the issue promises of it.

``run_irc`` runs the real console script in a child process, inside a scratch directory, and reports its exit
status, output, wall time and peak memory (the child's own maximum RSS, read from a small wrapper process, so one
test's figure is not another's). ``Sentinel`` is a directory outside the scratch directory holding a secret that no
command may print and a path no command may create: a crafted model that reads or writes files points at it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Runs argv[3:] with a timeout of argv[2] s, then writes the child's peak RSS (KiB on Linux), exit status and wall time
# as JSON to the file descriptor argv[1].
_WRAPPER = """
import json, os, resource, subprocess, sys, time
start = time.monotonic()
try:
    done = subprocess.run(sys.argv[3:], timeout=float(sys.argv[2]))
    status = done.returncode
except subprocess.TimeoutExpired:
    status = "timeout"
seconds = time.monotonic() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with os.fdopen(int(sys.argv[1]), "w") as out:
    json.dump({"status": status, "seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
               "peak_kib": usage.ru_maxrss}, out)
"""

# The budgets of issue 14 for a small crafted file. Time is the child's processor time: on a loaded 2-core CI
# machine wall time measures the neighbours; a hang still shows, as MAX_WALL_SECONDS or the run's timeout.
MAX_SECONDS = 10.0
MAX_WALL_SECONDS = 60.0
MAX_PEAK_MB = 300.0


def console_script() -> str:
    script = Path(sys.executable).parent / "irc"
    return str(script) if script.exists() else shutil.which("irc")


@dataclass
class Outcome:
    returncode: int | str  # "timeout" when it ran past the limit; negative: killed by that signal
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float
    cpu_seconds: float = 0.0

    @property
    def signalled(self) -> bool:
        return isinstance(self.returncode, int) and self.returncode < 0

    def describe(self) -> str:
        return (f"exit {self.returncode}, {self.seconds:.1f} s ({self.cpu_seconds:.1f} s CPU), {self.peak_mb:.0f} MB\n"
                f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}")


def run_irc(args, *, cwd: Path, timeout: float = 60.0, env: dict | None = None) -> Outcome:
    """Runs ``irc ARGS`` in ``cwd`` with a clean copy of the environment and no standard input."""
    read, write = os.pipe()
    child_env = {**os.environ, **(env or {})}
    with subprocess.Popen([sys.executable, "-c", _WRAPPER, str(write), str(timeout), console_script(), *map(str, args)],
                          cwd=cwd, env=child_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, pass_fds=(write,)) as process:
        os.close(write)
        stdout, stderr = process.communicate(timeout=timeout + 30)
    with os.fdopen(read) as stats_file:
        stats = json.loads(stats_file.read() or "{}")
    return Outcome(stats.get("status", process.returncode), stdout, stderr, stats.get("seconds", 0.0),
                   stats.get("peak_kib", 0) / 1024, stats.get("cpu_seconds", 0.0))


class Sentinel:
    """A directory a hostile model must not touch: ``secret`` must never be printed or copied, ``forbidden``
    must never come to exist."""

    TOKEN = "irc-sentinel-7c1f0a9e"

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.secret = root / "secret.txt"
        self.secret.write_text(f"{self.TOKEN}\n")
        self.forbidden = root / "written-by-model.txt"

    def assert_untouched(self, outcome: Outcome, *outputs: Path) -> None:
        assert not self.forbidden.exists(), f"a model wrote {self.forbidden}\n{outcome.describe()}"
        assert self.secret.read_text() == f"{self.TOKEN}\n"
        seen = outcome.stdout + outcome.stderr
        for path in outputs:
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
            seen += "".join(p.read_bytes().decode("latin-1") for p in files)
        assert self.TOKEN not in seen, f"a model read {self.secret}\n{outcome.describe()}"


def assert_refused(outcome: Outcome, *, codes=(1, 2), fragment: str | None = None) -> None:
    """The promise for a hostile input: no signal, no hang, no traceback, one ``error:`` line, exit 1 or 2, and
    within the time and memory budgets."""
    assert outcome.returncode != "timeout", f"hung past the limit\n{outcome.describe()}"
    assert not outcome.signalled, f"killed by {signal.Signals(-outcome.returncode).name}\n{outcome.describe()}"
    assert outcome.returncode in codes, outcome.describe()
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome.describe()
    if fragment is not None:
        assert fragment in lines[0], outcome.describe()
    assert outcome.cpu_seconds < MAX_SECONDS and outcome.seconds < MAX_WALL_SECONDS, outcome.describe()
    assert outcome.peak_mb < MAX_PEAK_MB, outcome.describe()
