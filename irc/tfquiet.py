"""TensorFlow's start-up lines, kept off the command line's stderr.

Importing the ``tensorflow`` package writes log lines straight to file descriptor 2 from C++ before its logging is
set up, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence them: on a machine without an NVIDIA driver, "Could not find cuda
drivers on your machine" at import and "failed call to cuInit" at the first device query. irc's commands promise
one ``error:`` line on bad input, and a user should not read a CUDA error from ``irc lower --emit xla`` on a laptop.

``install()`` (the CLI calls it) puts an import hook in front of the first ``import tensorflow``: the import and a
device query run with descriptor 2 sent to a temporary file, and afterwards every captured line that is not such
start-up noise is written to stderr as it was. ``IRC_TF_LOG=1`` turns the hook off.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

# INFO and WARNING lines of TF's C++ logging ("I0000 00:00:1796322584.319850   29631 cudart_stub.cc:31] ..."), the
# banner absl prints before it is initialised, and the cuInit failure of a CUDA build on a machine without a GPU.
NOISE = re.compile(r"^(?:[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before absl::"
                   r"|E\d{4} [\d:.]+ +\d+ cuda_[a-z_]+\.cc:\d+\] failed call to cuInit)")


def install() -> None:
    """Quiets the first import of TensorFlow in this process (nothing if it is imported already or IRC_TF_LOG=1)."""
    if "tensorflow" in sys.modules or os.environ.get("IRC_TF_LOG") == "1":
        return
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


@contextlib.contextmanager
def captured_stderr():
    """Descriptor 2 goes to a temporary file inside the block; afterwards the lines that are not noise are
    written back to it."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().decode(errors="replace").splitlines(keepends=True)
                    if not NOISE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the real finders locate the package
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with captured_stderr():
            self.loader.exec_module(module)
            with contextlib.suppress(Exception):  # a CUDA build logs its driver check at the first device query
                module.config.list_physical_devices()

    def __getattr__(self, name):  # get_code, get_resource_reader, ... of the real loader
        return getattr(self.loader, name)
