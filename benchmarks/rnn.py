"""irc's TFLite output for recurrent models beside TensorFlow's converter, side by side in one run.

    .venv/bin/python benchmarks/rnn.py                      # both models, 100 timed invokes each
    .venv/bin/python benchmarks/rnn.py --runs 30 --json rnn.json

Models (Keras 3, seeded random weights, batch 1):
- ``lstm_gru``: ``Input((64, 32)) -> LSTM(128, return_sequences=True) -> GRU(64) -> Dense(10)``;
- ``bilstm_classifier``: token ids ``Input((64,))`` -> ``Embedding(5000, 64)`` -> ``Bidirectional(LSTM(64))``
  -> ``Dense(2)``, a text classifier.

Each is saved as a ``.keras`` file and exported as a SavedModel (``model.export``). Converters, each a whole fresh
process, its wall time measured from outside (best of ``--repeat``):
- ``irc``: ``irc lower SAVED_MODEL --emit tflite -o OUT``;
- ``tf saved_model``: ``python -c`` running ``TFLiteConverter.from_saved_model(SAVED_MODEL).convert()``;
- ``tf keras``: ``python -c`` loading the ``.keras`` file and running ``TFLiteConverter.from_keras_model``.
A converter that fails is reported with its last error line. For each file that converts: its size, its operators,
its latency in TensorFlow's TFLite interpreter (one thread, median of ``--runs`` invokes, all files interleaved
invoke by invoke so they see the same machine load) and its largest error against the Keras model on the same
input. Ratios are irc / the best TensorFlow file (targets: size <= 1.01x, latency <= 1.0x, conversion <= 0.5x of
the faster TensorFlow conversion).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

TARGETS = {"size": 1.01, "latency": 1.0, "convert": 0.5}
IRC = Path(sys.executable).with_name("irc")
MODELS = ("lstm_gru", "bilstm_classifier")

TF_FROM_SAVED_MODEL = """
import sys, tensorflow as tf
data = tf.lite.TFLiteConverter.from_saved_model(sys.argv[1]).convert()
open(sys.argv[2], "wb").write(data)
"""
TF_FROM_KERAS = """
import sys, keras, tensorflow as tf
model = keras.saving.load_model(sys.argv[1])
data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
open(sys.argv[2], "wb").write(data)
"""


def build(name: str):
    import keras

    keras.utils.set_random_seed(0)
    if name == "lstm_gru":
        inp = keras.Input((64, 32), batch_size=1, name="features")
        x = keras.layers.LSTM(128, return_sequences=True)(inp)
        x = keras.layers.GRU(64)(x)
        out = keras.layers.Dense(10)(x)
    else:
        inp = keras.Input((64,), batch_size=1, dtype="int32", name="tokens")
        x = keras.layers.Embedding(5000, 64)(inp)
        x = keras.layers.Bidirectional(keras.layers.LSTM(64))(x)
        out = keras.layers.Dense(2)(x)
    return keras.Model(inp, out, name=name)


def example(model) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = tuple(model.inputs[0].shape)
    if model.inputs[0].dtype.startswith("int"):
        return rng.integers(0, 5000, shape).astype(np.int32)
    return rng.standard_normal(shape).astype(np.float32)


def timed(command: list[str], repeat: int, env: dict) -> tuple[float | None, str]:
    """Best wall time of ``command`` run ``repeat`` times; (None, last error line) if it fails."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            return None, (lines[-1] if lines else f"exit status {done.returncode}")[:200]
        best = min(best, time.perf_counter() - start)
    return best, ""


def operators(path: Path) -> str:
    from irc.formats.tflite.flatbuffer import read_model

    model = read_model(path.read_bytes())
    counts = Counter(model.operator_codes[op.opcode_index].builtin_code for op in model.subgraphs[0].operators)
    inner = sum(len(sg.operators) for sg in model.subgraphs[1:])
    text = ", ".join(f"{code} x{n}" if n > 1 else code for code, n in sorted(counts.items()))
    return text + (f" (+{inner} in {len(model.subgraphs) - 1} subgraphs)" if inner else "")


def latencies(paths: dict[str, Path], x: np.ndarray, runs: int, warmup: int = 5) -> dict[str, float]:
    """Median invoke time of each file, one thread, the files interleaved invoke by invoke."""
    import tensorflow as tf

    interpreters = {}
    for key, path in paths.items():
        interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreters[key] = interpreter
    for _ in range(warmup):
        for interpreter in interpreters.values():
            interpreter.invoke()
    times = {key: [] for key in paths}
    for _ in range(runs):
        for key, interpreter in interpreters.items():
            start = time.perf_counter()
            interpreter.invoke()
            times[key].append(time.perf_counter() - start)
    return {key: float(np.median(t)) for key, t in times.items()}


def run_file(path: Path, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def benchmark(name: str, runs: int, repeat: int, workdir: Path) -> dict:
    model = build(name)
    keras_file, saved = workdir / f"{name}.keras", workdir / f"{name}_saved"
    model.save(keras_file)
    model.export(str(saved), verbose=False)
    x = example(model)
    want = np.asarray(model(x))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPYCACHEPREFIX=str(workdir / "pycache"))
    irc = str(IRC) if IRC.exists() else "irc"
    commands = {
        "irc": [irc, "lower", str(saved), "--emit", "tflite", "-o", str(workdir / f"{name}.irc.tflite")],
        "tf saved_model": [sys.executable, "-c", TF_FROM_SAVED_MODEL, str(saved), str(workdir / f"{name}.tfsm.tflite")],
        "tf keras": [sys.executable, "-c", TF_FROM_KERAS, str(keras_file), str(workdir / f"{name}.tfk.tflite")],
    }
    subprocess.run(commands["irc"], env=env, capture_output=True, check=False)  # fills the bytecode cache, untimed
    row = {"model": name, "converters": {}}
    paths = {}
    for key, command in commands.items():
        seconds, error = timed(command, repeat, env)
        row["converters"][key] = {"convert_s": seconds, "error": error}
        if seconds is not None:
            paths[key] = Path(command[-1])
    speed = latencies(paths, x, runs)
    for key, path in paths.items():
        got = run_file(path, x)
        row["converters"][key].update(bytes=path.stat().st_size, latency_ms=speed[key] * 1e3, operators=operators(path),
                                      max_abs_error=float(np.max(np.abs(got.astype(np.float64) - want))))
    tf_done = {k: v for k, v in row["converters"].items() if k != "irc" and v["convert_s"] is not None}
    if "irc" in paths and tf_done:
        mine = row["converters"]["irc"]
        row["ratio"] = {"size": mine["bytes"] / min(v["bytes"] for v in tf_done.values()),
                        "latency": mine["latency_ms"] / min(v["latency_ms"] for v in tf_done.values()),
                        "convert": mine["convert_s"] / min(v["convert_s"] for v in tf_done.values())}
    print(f"{name}: done", file=sys.stderr)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| model | converter | convert s | size KB | latency ms | max abs error | operators (main graph) |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        for key, r in row["converters"].items():
            if r["convert_s"] is None:
                lines.append(f"| {row['model']} | {key} | fails | | | | {r['error']} |")
                continue
            lines.append(f"| {row['model']} | {key} | {r['convert_s']:.2f} | {r['bytes'] / 1e3:.1f} | "
                         f"{r['latency_ms']:.3f} | {r['max_abs_error']:.1e} | {r['operators']} |")
        if "ratio" in row:
            ratio = row["ratio"]
            marks = ", ".join(f"{k} {ratio[k]:.3f}x{'' if ratio[k] <= TARGETS[k] else ' (over)'}" for k in TARGETS)
            lines.append(f"| {row['model']} | irc / best TF | | | | | {marks} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--runs", type=int, default=100, help="timed invokes per file (at least 20)")
    parser.add_argument("--repeat", type=int, default=2, help="conversions per converter (the best counts)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.runs < 20:
        parser.error("--runs must be at least 20")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
    with tempfile.TemporaryDirectory(prefix="irc-rnn-bench-") as tmp:
        rows = [benchmark(name, args.runs, args.repeat, Path(tmp)) for name in args.models]
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"latency: median of {args.runs} invokes, 1 thread; conversion: whole process, best of {args.repeat}")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
