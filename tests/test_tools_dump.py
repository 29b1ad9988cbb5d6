"""irc dump is deterministic: two runs (separate processes, different hash seeds) give byte-identical text, for
every kind of input, so dumps diff cleanly in git."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import irc
from tests.test_tools_graphs import mini_resnet


def dump_twice(*args: str) -> tuple[bytes, bytes]:
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-m", "irc.cli", "dump", *args], env=env, capture_output=True,
                              timeout=300, check=False)
        assert done.returncode == 0, done.stderr.decode()
        outs.append(done.stdout)
    return outs[0], outs[1]


def test_irc_text_dumps_identically(tmp_path):
    path = tmp_path / "m.irc"
    path.write_text(mini_resnet(blocks=3).dump(full=True))
    first, second = dump_twice(str(path))
    assert first == second and first.startswith(b"graph @mini_resnet")
    full_a, full_b = dump_twice(str(path), "--full")
    assert full_a == full_b and len(full_a) > len(first)


def test_tflite_dumps_identically(tmp_path):
    path = tmp_path / "m.tflite"
    irc.lower(mini_resnet(blocks=2), emit="tflite", output=str(path))
    first, second = dump_twice(str(path))
    assert first == second and b"conv2d" in first


@pytest.mark.slow
def test_savedmodel_dumps_identically(zoo_models):
    first, second = dump_twice(str(zoo_models.saved_model("resnet50", size=96)))
    assert first == second and first.count(b"conv2d(") == 53
