"""irc's TFLite backend beside TensorFlow's own converter, side by side in one run.

    .venv/bin/python benchmarks/tflite.py                         # MobileNetV2, ResNet50 (224x224), transformer
    .venv/bin/python benchmarks/tflite.py --size 96 --runs 50     # a quicker look
    .venv/bin/python benchmarks/tflite.py --json results.json

For each model (built by irc.zoo with seeded random weights and exported as a SavedModel) it measures, on the
same SavedModel:
- conversion wall time: the whole ``irc lower MODEL --emit tflite -o OUT`` command (a fresh process: Python start,
  imports, loading, passes, writing) against ``TFLiteConverter.from_saved_model(MODEL).convert()`` in a process
  that has already imported TensorFlow (the best of ``--repeat`` runs each). The CPU time of both is given too: on
  a shared machine it is steadier than the wall time;
- file size;
- latency in TensorFlow's TFLite interpreter, one thread: the median of ``--runs`` invokes, irc's and TF's models
  interleaved so both see the same machine load;
- numeric error: the largest absolute difference of each model's outputs from the SavedModel run by TensorFlow
  on the same random input.

The table gives irc / TF ratios against the targets (size <= 1.01x, latency <= 1.05x, conversion <= 0.5x).
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
from pathlib import Path

import numpy as np

MODELS = ("mobilenet_v2", "resnet50", "transformer_encoder")
IMAGE_MODELS = {"mobilenet_v2", "resnet50"}
TARGETS = {"size": 1.01, "latency": 1.05, "convert": 0.5}
IRC = Path(sys.executable).with_name("irc")


def export(name: str, size: int, workdir: Path) -> Path:
    from irc import zoo

    kwargs = {"size": size} if name in IMAGE_MODELS else {}
    return zoo.export(zoo.build(name, **kwargs), workdir / name)


def irc_lower(saved_model: Path, out: Path, repeat: int, workdir: Path) -> tuple[float, float]:
    """Best wall time and CPU time of the whole ``irc lower`` command.

    Python keeps compiled bytecode as an installed package does (``PYTHONPYCACHEPREFIX`` in the work directory,
    filled by an untimed first run), even where the environment sets PYTHONDONTWRITEBYTECODE.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPYCACHEPREFIX=str(workdir / "pycache"))
    command = [str(IRC) if IRC.exists() else "irc", "lower", str(saved_model), "--emit", "tflite", "-o", str(out)]
    subprocess.run(command, check=True, env=env)
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        before = os.times()
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env)
        wall = time.perf_counter() - start
        after = os.times()
        best = min(best, wall)
        best_cpu = min(best_cpu, after.children_user + after.children_system - before.children_user
                       - before.children_system)
    return best, best_cpu


def tf_convert(saved_model: Path, out: Path, repeat: int) -> tuple[float, float]:
    """Best wall time and CPU time (all threads) of TF's converter on the SavedModel, TensorFlow imported."""
    import tensorflow as tf

    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        cpu, start = time.process_time(), time.perf_counter()
        data = tf.lite.TFLiteConverter.from_saved_model(str(saved_model)).convert()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    out.write_bytes(data)
    return best, best_cpu


def inputs_for(path: Path, name: str) -> dict:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    details = tf.lite.Interpreter(model_path=str(path)).get_signature_runner().get_input_details()
    inputs = {}
    for key, d in details.items():
        shape = [max(int(s), 1) for s in d["shape"]]
        if np.issubdtype(d["dtype"], np.integer):
            inputs[key] = rng.integers(0, 1000 if name == "transformer_encoder" else 10, shape).astype(d["dtype"])
        else:
            inputs[key] = rng.standard_normal(shape).astype(d["dtype"])
    return inputs


def latencies(paths: dict[str, Path], inputs: dict, runs: int, warmup: int = 5) -> dict[str, float]:
    """Median invoke time of each model, one thread, the models interleaved invoke by invoke."""
    import tensorflow as tf

    interpreters = {}
    for key, path in paths.items():
        interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
        for name, detail in interpreter.get_signature_runner().get_input_details().items():
            interpreter.set_tensor(detail["index"], inputs[name])
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


def max_error(path: Path, inputs: dict, reference: dict) -> float:
    import tensorflow as tf

    out = tf.lite.Interpreter(model_path=str(path)).get_signature_runner()(**inputs)
    return max(float(np.max(np.abs(np.asarray(out[k], np.float64) - reference[k]))) for k in reference)


def benchmark(models, size: int, runs: int, repeat: int, workdir: Path) -> list[dict]:
    import tensorflow as tf

    rows = []
    for name in models:
        saved = export(name, size, workdir)
        paths = {"irc": workdir / f"{name}.irc.tflite", "tf": workdir / f"{name}.tf.tflite"}
        convert = {"irc": irc_lower(saved, paths["irc"], repeat, workdir), "tf": tf_convert(saved, paths["tf"], repeat)}
        inputs = inputs_for(paths["tf"], name)
        fn = tf.saved_model.load(str(saved)).signatures["serving_default"]
        reference = {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
        latency = latencies(paths, inputs, runs)
        row = {"model": name if name not in IMAGE_MODELS else f"{name} {size}x{size}"}
        for key in ("irc", "tf"):
            row[key] = {"convert_s": convert[key][0], "convert_cpu_s": convert[key][1], "bytes": paths[key].stat().st_size,
                        "latency_ms": latency[key] * 1e3, "max_abs_error": max_error(paths[key], inputs, reference)}
        row["ratio"] = {"size": row["irc"]["bytes"] / row["tf"]["bytes"],
                        "latency": row["irc"]["latency_ms"] / row["tf"]["latency_ms"],
                        "convert": row["irc"]["convert_s"] / row["tf"]["convert_s"],
                        "convert_cpu": row["irc"]["convert_cpu_s"] / row["tf"]["convert_cpu_s"]}
        rows.append(row)
        print(f"{name}: done", file=sys.stderr)
    return rows


def table(rows: list[dict]) -> str:
    header = ("| model | convert irc / TF: wall (CPU) s | size irc / TF (MB) | latency irc / TF (ms) | max abs error "
              "irc / TF | ratios size, latency, convert wall (CPU) |")
    lines = [header, "|---|---|---|---|---|---|"]
    for row in rows:
        irc, tf_, r = row["irc"], row["tf"], row["ratio"]
        marks = ", ".join(f"{r[k]:.3f}x{'' if r[k] <= TARGETS[k] else ' (over)'}" for k in ("size", "latency", "convert"))
        marks += f" ({r['convert_cpu']:.3f}x)"
        lines.append(f"| {row['model']} | {irc['convert_s']:.2f} ({irc['convert_cpu_s']:.2f}) / "
                     f"{tf_['convert_s']:.2f} ({tf_['convert_cpu_s']:.2f}) | "
                     f"{irc['bytes'] / 1e6:.2f} / {tf_['bytes'] / 1e6:.2f} | {irc['latency_ms']:.2f} / "
                     f"{tf_['latency_ms']:.2f} | {irc['max_abs_error']:.1e} / {tf_['max_abs_error']:.1e} | {marks} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--size", type=int, default=224, help="input size of the image models")
    parser.add_argument("--runs", type=int, default=50, help="timed invokes per model (at least 20)")
    parser.add_argument("--repeat", type=int, default=2, help="conversions per converter (the best counts)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.runs < 20:
        parser.error("--runs must be at least 20")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
    with tempfile.TemporaryDirectory(prefix="irc-tflite-bench-") as tmp:
        rows = benchmark(args.models, args.size, args.runs, args.repeat, Path(tmp))
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"latency: median of {args.runs} invokes, 1 thread; conversion: best of {args.repeat}")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
