"""Latency of irc's TensorFlow backends beside TensorFlow's own, side by side in one run.

    .venv/bin/python benchmarks/backends.py                       # MobileNetV2 and ResNet50 at 224x224, CPU
    .venv/bin/python benchmarks/backends.py --device gpu          # on a GPU machine
    .venv/bin/python benchmarks/backends.py --size 96 --runs 20   # a quick look

For each model (built by irc.zoo with seeded random weights) it times, on the same input:
- tf.function: the Keras model under a plain ``tf.function``;
- tf jit: the same with ``jit_compile=True`` (TensorFlow's own XLA path);
- irc xla: irc's xla target (the model lowered to irc IR, optimized, rebuilt and compiled with XLA);
- irc cuda: irc's cuda target (ops placed on /GPU:0; on a machine without a GPU they fall back to the CPU).

Each variant runs ``--warmup`` calls (compilation included) and then ``--runs`` timed calls; the table gives the
median and the 90th percentile per call, the speed relative to tf.function, and the largest difference of its
output from tf.function's. ``--json FILE`` also writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

MODELS = ("mobilenet_v2", "resnet50")
VARIANTS = ("tf.function", "tf jit", "irc xla", "irc cuda")


def build_variants(name: str, size: int, workdir: Path) -> tuple[dict, str]:
    """The four callables for zoo model ``name`` (each takes one NHWC float batch), and its input name."""
    import tensorflow as tf

    from irc import zoo
    from irc.api import load
    from irc.backends import get_backend

    model = zoo.build(name, size=size)
    path = zoo.export(model, workdir / f"{name}-{size}")
    graph = load(path)
    input_name = graph.inputs[0].name
    xla = get_backend("xla").emit(graph, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the no-GPU note, when benchmarking on a CPU
        cuda = get_backend("cuda").emit(graph, {})
        cuda_fn = cuda.target
    plain = tf.function(lambda x: model(x, training=False))
    jit = tf.function(lambda x: model(x, training=False), jit_compile=True)
    return {
        "tf.function": lambda x: plain(x),
        "tf jit": lambda x: jit(x),
        "irc xla": lambda x: next(iter(xla(x).values())),
        "irc cuda": lambda x: next(iter(cuda_fn(x).values())),
    }, input_name


def time_calls(fn, x, warmup: int, runs: int) -> tuple[list[float], np.ndarray, float]:
    """Per-call seconds of ``runs`` timed calls after ``warmup`` ones, the output, and the first call's seconds."""
    start = time.perf_counter()
    out = np.asarray(fn(x))
    first = time.perf_counter() - start
    for _ in range(max(warmup - 1, 0)):
        np.asarray(fn(x))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = np.asarray(fn(x))  # .numpy() waits for the device
        times.append(time.perf_counter() - start)
    return times, out, first


def benchmark(models, size: int, batch: int, warmup: int, runs: int, device: str) -> list[dict]:
    import tensorflow as tf

    rows = []
    with tempfile.TemporaryDirectory(prefix="irc-bench-") as tmp:
        for name in models:
            print(f"building {name} at {size}x{size} ...", file=sys.stderr)
            variants, _ = build_variants(name, size, Path(tmp))
            x = tf.constant(np.random.default_rng(0).standard_normal((batch, size, size, 3)).astype(np.float32))
            reference = None
            for variant in VARIANTS:
                with tf.device(device):
                    times, out, first = time_calls(variants[variant], x, warmup, runs)
                if reference is None:
                    reference = out
                rows.append({
                    "model": name, "variant": variant, "size": size, "batch": batch, "device": device,
                    "median_ms": 1e3 * statistics.median(times),
                    "p90_ms": 1e3 * float(np.percentile(times, 90)),
                    "first_call_s": first,
                    "max_abs_diff": float(np.max(np.abs(out - reference))),
                })
                print(f"  {variant:12s} {rows[-1]['median_ms']:9.2f} ms", file=sys.stderr)
    return rows


def table(rows: list[dict]) -> str:
    header = (f"{'model':14s} {'variant':12s} {'median ms':>10s} {'p90 ms':>9s} {'vs tf.function':>15s} "
              f"{'first call s':>13s} {'max |diff|':>11s}")
    lines = [header]
    base = {r["model"]: r["median_ms"] for r in rows if r["variant"] == "tf.function"}
    for r in rows:
        speed = base[r["model"]] / r["median_ms"]
        lines.append(f"{r['model']:14s} {r['variant']:12s} {r['median_ms']:10.2f} {r['p90_ms']:9.2f} "
                     f"{speed:14.2f}x {r['first_call_s']:13.2f} {r['max_abs_diff']:11.2e}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo models")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--batch", type=int, default=1, help="examples per call")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first (compilation included)")
    parser.add_argument("--runs", type=int, default=50, help="timed calls per variant")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="where to run the TF variants")
    parser.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if args.device == "gpu":
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            parser.error("--device gpu, but TensorFlow sees no GPU here")
        for gpu in gpus:
            with contextlib.suppress(RuntimeError):
                tf.config.experimental.set_memory_growth(gpu, True)
    device = "/GPU:0" if args.device == "gpu" else "/CPU:0"
    models = [m for m in args.models.split(",") if m]
    rows = benchmark(models, args.size, args.batch, args.warmup, args.runs, device)
    gpu_names = [d.name for d in tf.config.list_physical_devices("GPU")]
    print(f"irc backends, {args.size}x{args.size}, batch {args.batch}, {args.runs} runs, device {device} "
          f"(TensorFlow {tf.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores{', GPUs: ' + ', '.join(gpu_names) if gpu_names else ', no GPU'})")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
