"""The fast path never imports TensorFlow or Keras: run it where importing them fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from tfgraph_models import cnn_savedmodel

GUARDED = """
import sys

class NoTF:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "tensorboard"):
            raise ImportError(f"the fast path imported {name}")
        return None

sys.meta_path.insert(0, NoTF())
from irc.frontends.savedmodel_reader import read_savedmodel_fast
graph = read_savedmodel_fast(sys.argv[1])
assert any(n.op == "Conv2D" for n in graph.nodes)
assert not [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")]
print("ok", len(graph.nodes))
"""


def test_fast_path_imports_no_tensorflow():
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", GUARDED, str(cnn_savedmodel())], cwd=root,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")
