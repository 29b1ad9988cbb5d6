"""Runs .tflite files in TensorFlow's own TFLite interpreter in a child process, so an abort in a kernel
(SIGABRT, SIGSEGV) fails the test that asked instead of killing pytest.

``run_tflite_models([(path, inputs), ...])`` runs each model's default signature on its inputs (a dict of arrays)
in one child (TensorFlow is imported once) and returns each model's outputs; a model whose ``invoke`` kills the
child raises ``TFLiteCrash`` naming that model and the signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_CHILD = r"""
import sys, numpy as np
import tensorflow as tf
for i, (model, inputs) in enumerate(zip(sys.argv[1::2], sys.argv[2::2])):
    print(f"start {i}", flush=True)
    feed = dict(np.load(inputs))
    runner = tf.lite.Interpreter(model_path=model).get_signature_runner()
    outputs = runner(**feed)
    np.savez(inputs + ".out.npz", **{k: np.asarray(v) for k, v in outputs.items()})
    print(f"done {i}", flush=True)
"""


class TFLiteCrash(AssertionError):
    """TFLite's interpreter killed the process (or failed) on a model."""


def run_tflite_models(models: list[tuple[str | os.PathLike, dict]], timeout: float = 600) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        args = []
        for i, (path, inputs) in enumerate(models):
            feed = Path(tmp) / f"in{i}.npz"
            np.savez(feed, **{k: np.asarray(v) for k, v in inputs.items()})
            args += [str(path), str(feed)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        proc = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True,
                              check=False, timeout=timeout, env=env)
        if proc.returncode != 0:
            started = [line for line in proc.stdout.splitlines() if line.startswith("start")]
            which = models[int(started[-1].split()[1])][0] if started else "?"
            how = (f"signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
                   else f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
            raise TFLiteCrash(f"TFLite's interpreter failed on {which} ({how})")
        return [dict(np.load(Path(tmp) / f"in{i}.npz.out.npz")) for i in range(len(models))]


def run_tflite(path: str | os.PathLike, inputs: dict) -> dict:
    """One model's outputs from TFLite's interpreter, run in a child process."""
    return run_tflite_models([(path, inputs)])[0]
