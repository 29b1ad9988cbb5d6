"""Outputs: written whole or not at all, and never at the cost of what was there.

Every file or directory irc writes to a path a user named goes through this module:

- The new output is built beside the target under a temporary name, ``.NAME.irc-tmp-PID-XXXXXXXX.tmp``, and
  renamed into place only when complete. A failure (an exception, Ctrl-C, SIGTERM under the CLI) removes it.
- A file output (``.tflite``, ``.irc``, ``.npz``, a picture, a report) replaces an existing regular file, as
  ``cc -o`` does. A directory output (a SavedModel, a TPU program) replaces only an empty directory.
  Anything else in the way (a non-empty directory, a directory where a file goes, a file where a directory
  goes) is refused unless ``force`` is given (``--force``); then the old output is renamed aside
  (``.NAME.irc-old-PID-XXXXXXXX``), the new one renamed in, and only then is the old one deleted: it is never
  emptied first.
- Never written, even with ``force``: a symbolic link, a device, a FIFO or a socket (checked with ``lstat``, so a
  link is refused rather than followed); a path whose last part is empty, ``.`` or ``..``; a path under
  ``/proc`` or ``/sys``; a path below a file.
- Missing parent directories are created (like ``mkdir -p``) below the nearest existing directory.
- A process killed outright (SIGKILL) cannot clean up: the next irc process that writes the same target removes
  the temporaries of processes that no longer run, and puts back an old output left aside if the target is
  missing.

Refusals are ``UsageError`` (exit 2); a write the operating system refuses (permissions, a read-only or full
file system) is an ``OutputError`` (exit 1). Both name the path, on one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from irc.errors import OutputError, UsageError

FILE = "file"
DIRECTORY = "directory"
PSEUDO_FILE_SYSTEMS = ("/proc", "/sys")  # files there are kernel interfaces, not storage
FORCE_HINT = "pass --force to replace it"
_NAME_IN_TEMP = 100  # characters of the target's name kept in a temporary's name (NAME_MAX is 255)


def check_output(path: str | os.PathLike, kind: str = FILE, force: bool = False) -> Path:
    """Refuses a path irc must not write ``kind`` to (see the module docstring); returns it as a Path.

    Call it before the work that produces the output, so a bad ``-o`` fails at once; ``atomic_file`` and
    ``atomic_dir`` call it again when they write.
    """
    text = os.fspath(path)
    if text == "":
        raise UsageError("the output path is empty")
    target = Path(text)
    if os.path.basename(text.rstrip(os.sep)) in ("", ".", ".."):  # the raw text: Path("out/.") is "out"
        raise UsageError(f"{text}: not a name irc can write an output to", hint="name a new file or directory")
    if kind == FILE and text.endswith(os.sep):
        raise UsageError(f"{text}: names a directory, but this output is a file", hint="name a file")
    real = os.path.realpath(target)
    for root in PSEUDO_FILE_SYSTEMS:
        if real == root or real.startswith(root + os.sep):
            raise UsageError(f"{text}: irc does not write outputs under {root}")
    _check_ancestors(text, target.parent)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return target
    except OSError as e:
        raise OutputError(f"{text}: cannot write here: {e.strerror}") from None
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        raise UsageError(f"{text}: is a symbolic link; irc does not write through links",
                         hint="name the file itself, or remove the link")
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UsageError(f"{text}: is a {_kind_of(mode)}, not a {kind} irc can replace")
    if force:
        if stat.S_ISDIR(mode) and (os.path.ismount(target) or _holds(real, _cwd())):
            raise UsageError(f"{text}: irc does not replace a mount point or a directory holding the current one")
        return target
    if kind == FILE and stat.S_ISDIR(mode):
        raise UsageError(f"{text}: is a directory, and this output is a file",
                         hint=f"name a file inside it, e.g. {target / 'model'}, or pass --force to replace it")
    if kind == DIRECTORY and stat.S_ISREG(mode):
        raise UsageError(f"{text}: is a file, and this output is a directory", hint=FORCE_HINT)
    if kind == DIRECTORY and _has_entries(target):
        raise UsageError(f"{text}: directory exists and is not empty", hint=FORCE_HINT)
    return target


def _check_ancestors(text: str, parent: Path) -> None:
    """The nearest existing ancestor must be a directory: missing ones below it will be created."""
    for ancestor in (parent, *parent.parents):
        try:
            st = os.stat(ancestor)
        except (FileNotFoundError, NotADirectoryError):  # missing, or below a file: look further up
            continue
        except OSError as e:
            raise OutputError(f"{text}: cannot write here: {ancestor}: {e.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{text}: {ancestor} is not a directory")
        return


def _holds(directory: str, path: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # the current directory was removed: nothing can hold it
        return ""


def _kind_of(mode: int) -> str:
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _has_entries(directory: Path) -> bool:
    with os.scandir(directory) as entries:
        return any(True for _ in entries)


def write_output(path, data: bytes | str, force: bool = False) -> None:
    """Writes a command's or a backend's output file atomically; ``-`` (or None) writes to stdout."""
    if path in (None, "-"):
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        return
    write_atomic(path, data, force=force)


def write_atomic(path: str | os.PathLike, data: bytes | str, force: bool = False) -> None:
    """Writes ``data`` to a temporary file beside ``path``, then renames it into place."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_file(path, force=force) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, force: bool = False):
    """Yields a temporary file path beside ``path``; on success it replaces ``path``, on failure it is removed."""
    with _writing(path, FILE, force) as (target, make_temporary):
        fd, name = make_temporary(tempfile.mkstemp)
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            if tmp.exists():
                os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
            _install(tmp, target)
        finally:
            _remove(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, force: bool = False):
    """Yields a temporary directory beside ``path``; on success it takes the place of ``path``."""
    with _writing(path, DIRECTORY, force) as (target, make_temporary):
        tmp = Path(make_temporary(tempfile.mkdtemp))
        try:
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())
            _install(tmp, target)
        finally:
            _remove(tmp)


@contextlib.contextmanager
def _writing(path, kind: str, force: bool):
    """Checks ``path``, makes its parents, clears dead processes' leftovers beside it, and turns the operating
    system's refusals into one-line ``OutputError``s naming the path."""
    target = check_output(path, kind, force)
    text = os.fspath(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if clean_stale(target):
            check_output(path, kind, force)  # the old output put back is in the way now

        def make_temporary(maker):
            return maker(prefix=f".{target.name[:_NAME_IN_TEMP]}.irc-tmp-{os.getpid()}-", suffix=".tmp",
                         dir=target.parent)

        yield target, make_temporary
    except OSError as e:
        reason = e.strerror or str(e)
        raise OutputError(f"{text}: cannot write the output: {reason}") from None


def _install(tmp: Path, target: Path) -> None:
    """Renames ``tmp`` to ``target``. Whatever is there (already allowed by check_output) is renamed aside first
    and deleted only once the new output is in place; a regular file under a file is replaced in one rename."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        st = None
    if st is None or (stat.S_ISREG(st.st_mode) and tmp.is_file()):
        os.replace(tmp, target)
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):  # appeared since check_output: leave it be
        raise UsageError(f"{target}: is a {_kind_of(st.st_mode)}, not an output irc can replace")
    old = target.with_name(f".{target.name[:_NAME_IN_TEMP]}.irc-old-{os.getpid()}-{os.urandom(4).hex()}")
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale(target: Path) -> bool:
    """Removes the temporaries beside ``target`` left by irc processes that died (SIGKILL, a crash, power loss),
    and puts back an old output such a process had moved aside before its new one was in place (returns whether
    it did)."""
    pattern = re.compile(rf"\.{re.escape(target.name[:_NAME_IN_TEMP])}\.irc-(tmp|old)-(\d+)-")
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return False
    restored = False
    for entry in entries:
        match = pattern.match(entry.name)
        if not match or _running(int(match.group(2))):
            continue
        leftover = Path(entry.path)
        with contextlib.suppress(OSError):  # another user's, in a shared directory: not ours to move or remove
            if match.group(1) == "old" and not os.path.lexists(target):
                os.rename(leftover, target)
                restored = True
            else:
                _remove(leftover)
    return restored


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, under another user
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
