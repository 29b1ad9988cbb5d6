"""TensorFlow's start-up log lines stay off the command line's stderr; everything else it writes still shows."""

from __future__ import annotations

import subprocess
import sys

import pytest

from irc.tfquiet import NOISE

pytest.importorskip("tensorflow")

SCRIPT = """
import os, sys
from irc import tfquiet
tfquiet.install()
import tensorflow as tf
os.write(2, b"kept: a line TensorFlow did not write\\n")
print((tf.constant(1.0) + 1).numpy())
"""


@pytest.mark.parametrize("line, noise", [
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", True),
    ("I0000 00:00:1796322641.451962   29837 cudart_stub.cc:31] Could not find cuda drivers on your machine", True),
    ("W0000 00:00:1796322641.451962   29837 cpu_feature_guard.cc:227] This TensorFlow binary is optimized", True),
    ("E0000 00:00:1796322645.158735   29837 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error", True),
    ("E0000 00:00:1796322645.158735   29837 bfc_allocator.cc:50] Allocator ran out of memory", False),
    ("error: model.irc:3:5: unknown op", False),
])
def test_only_start_up_lines_are_noise(line, noise):
    assert bool(NOISE.match(line)) is noise


def test_importing_tensorflow_after_install_writes_nothing_of_its_own():
    done = subprocess.run([sys.executable, "-c", SCRIPT], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "2.0"
    assert done.stderr.splitlines() == ["kept: a line TensorFlow did not write"], done.stderr
