"""Latency of irc's TensorFlow backends beside TensorFlow's own, side by side in one run.

    .venv/bin/python benchmarks/backends.py                       # MobileNetV2 and ResNet50 at 224x224, CPU
    .venv/bin/python benchmarks/backends.py --device gpu          # on a GPU machine
    .venv/bin/python benchmarks/backends.py --device gpu --layout nchw --precision fp16   # irc cuda's GPU options
    .venv/bin/python benchmarks/backends.py --size 96 --runs 20 --models mobilenet_v2,transformer_encoder
    .venv/bin/python benchmarks/backends.py --ops                 # which ops XLA makes slower on this CPU

For each model (built by irc.zoo with seeded random weights) it times, on the same input:
- tf.function: the Keras model under a plain ``tf.function``;
- tf jit: the same with ``jit_compile=True`` (TensorFlow's own XLA path);
- irc xla: irc's xla target (the model lowered to irc IR, optimized, rebuilt and compiled with XLA);
- irc cuda: irc's cuda target (fused ops placed on /GPU:0; without a GPU they run on the CPU).

Each variant runs ``--warmup`` calls (compilation included); then the ``--runs`` timed calls are interleaved (one
call of each variant in turn), so a busy machine slows all of them alike. ``--threads`` (default 1) fixes
TensorFlow's thread pools. The table gives the median and the 90th percentile per call, the speed relative to
tf.function, and the largest difference of its output from tf.function's. ``--json FILE`` also writes the rows.

``--ops`` times single ops the same way under tf.function and jit_compile: the ops XLA runs slower on a CPU are
the ones ``irc/backends/xla.py`` (``CPU_SLOWER_OPS``) warns about.
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

MODELS = ("mobilenet_v2", "resnet50", "transformer_encoder")
VARIANTS = ("tf.function", "tf jit", "irc xla", "irc cuda")


def build_variants(name: str, size: int, workdir: Path, cuda_options: dict) -> tuple[dict, object]:
    """The four callables for zoo model ``name`` (each takes one batch of its input), and its input name."""
    import tensorflow as tf

    from irc import zoo
    from irc.api import load
    from irc.backends import get_backend

    model = zoo.build(name, **({} if name == "transformer_encoder" else {"size": size}))
    path = zoo.export(model, workdir / f"{name}-{size}")
    graph = load(path)
    xla = get_backend("xla").emit(graph, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the no-GPU note, when benchmarking on a CPU
        cuda = get_backend("cuda").emit(graph, dict(cuda_options))
        cuda_fn = cuda.target
    plain = tf.function(lambda x: model(x, training=False))
    jit = tf.function(lambda x: model(x, training=False), jit_compile=True)
    spec = model.inputs[0]
    return {
        "tf.function": lambda x: plain(x),
        "tf jit": lambda x: jit(x),
        "irc xla": lambda x: next(iter(xla(x).values())),
        "irc cuda": lambda x: next(iter(cuda_fn(x).values())),
    }, spec


def example_input(spec, batch: int):
    """A seeded batch for a Keras model's one input: token ids for an integer input, normal floats otherwise."""
    import tensorflow as tf

    shape = (batch, *[d or 1 for d in spec.shape[1:]])
    dtype = tf.as_dtype(spec.dtype)
    rng = np.random.default_rng(0)
    if dtype.is_integer:
        return tf.constant(rng.integers(0, 100, shape), dtype)
    return tf.constant(rng.standard_normal(shape).astype(np.float32))


def time_interleaved(fns: dict, x, warmup: int, runs: int) -> tuple[dict, dict, dict]:
    """Per-call seconds of each function over ``runs`` rounds that call every function once in turn, after
    ``warmup`` calls each; also each one's output and first-call seconds (compilation included)."""
    times, outs, first = {k: [] for k in fns}, {}, {}
    for key, fn in fns.items():
        start = time.perf_counter()
        outs[key] = np.asarray(fn(x))
        first[key] = time.perf_counter() - start
        for _ in range(max(warmup - 1, 0)):
            np.asarray(fn(x))
    for _ in range(runs):
        for key, fn in fns.items():
            start = time.perf_counter()
            outs[key] = np.asarray(fn(x))  # .numpy() waits for the device
            times[key].append(time.perf_counter() - start)
    return times, outs, first


def benchmark(models, size: int, batch: int, warmup: int, runs: int, device: str,
              cuda_options: dict | None = None) -> list[dict]:
    import tensorflow as tf

    rows = []
    with tempfile.TemporaryDirectory(prefix="irc-bench-") as tmp:
        for name in models:
            print(f"building {name} at {size}x{size} ...", file=sys.stderr)
            variants, spec = build_variants(name, size, Path(tmp), cuda_options or {})
            x = example_input(spec, batch)
            with tf.device(device):
                times, outs, first = time_interleaved(variants, x, warmup, runs)
            reference = outs["tf.function"]
            for variant in VARIANTS:
                rows.append({
                    "model": name, "variant": variant, "size": size, "batch": batch, "device": device,
                    "median_ms": 1e3 * statistics.median(times[variant]),
                    "p90_ms": 1e3 * float(np.percentile(times[variant], 90)),
                    "first_call_s": first[variant],
                    "max_abs_diff": float(np.max(np.abs(outs[variant] - reference))),
                })
                print(f"  {variant:12s} {rows[-1]['median_ms']:9.2f} ms", file=sys.stderr)
    return rows


def op_cases() -> dict:
    """Single ops at MobileNetV2 / transformer sizes: name -> a function of no arguments."""
    import tensorflow as tf

    rng = np.random.default_rng(0)

    def t(*shape):
        return tf.constant(rng.standard_normal(shape).astype(np.float32))

    x, k3, k1, dw = t(1, 24, 24, 96), t(3, 3, 96, 96), t(1, 1, 96, 144), t(3, 3, 96, 1)
    a, b, q, k = t(32, 64), t(64, 256), t(4, 32, 16), t(4, 16, 32)
    return {
        "conv2d": lambda: tf.nn.conv2d(x, k3, 1, "SAME"),
        "conv2d 1x1": lambda: tf.nn.conv2d(x, k1, 1, "SAME"),
        "depthwise_conv2d": lambda: tf.nn.depthwise_conv2d(x, dw, [1, 1, 1, 1], "SAME"),
        "matmul": lambda: tf.linalg.matmul(a, b),
        "batch_matmul": lambda: tf.linalg.matmul(q, k),
        "avg_pool": lambda: tf.nn.avg_pool2d(x, 3, 1, "SAME"),
        "softmax": lambda: tf.nn.softmax(b),
        "relu6": lambda: tf.nn.relu6(x),
    }


def op_benchmark(warmup: int, runs: int) -> str:
    import tensorflow as tf

    lines = [f"{'op':18s} {'tf.function us':>15s} {'jit us':>10s} {'jit / tf.function':>18s}"]
    for name, fn in op_cases().items():
        fns = {"plain": tf.function(fn), "jit": tf.function(fn, jit_compile=True)}
        times, _, _ = time_interleaved({k: (lambda _x, f=f: f()) for k, f in fns.items()}, None, warmup, runs)
        plain, jit = (1e6 * statistics.median(times[k]) for k in ("plain", "jit"))
        lines.append(f"{name:18s} {plain:15.1f} {jit:10.1f} {jit / plain:17.2f}x")
    return "\n".join(lines)


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
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra- and inter-op threads (0: TF's)")
    parser.add_argument("--layout", choices=("nhwc", "nchw"), default="nhwc", help="irc cuda: layout")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="irc cuda: precision")
    parser.add_argument("--jit", action="store_true", help="irc cuda: compile with XLA")
    parser.add_argument("--ops", action="store_true", help="time single ops under tf.function and jit instead")
    parser.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.ops:
        print(f"single ops, CPU, {args.threads or 'default'} thread(s), {args.runs} interleaved runs "
              f"(TensorFlow {tf.__version__})")
        print(op_benchmark(args.warmup, args.runs))
        return 0

    if args.device == "gpu":
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            parser.error("--device gpu, but TensorFlow sees no GPU here")
        for gpu in gpus:
            with contextlib.suppress(RuntimeError):
                tf.config.experimental.set_memory_growth(gpu, True)
    device = "/GPU:0" if args.device == "gpu" else "/CPU:0"
    models = [m for m in args.models.split(",") if m]
    cuda_options = {"layout": args.layout, "precision": args.precision, "jit": args.jit}
    rows = benchmark(models, args.size, args.batch, args.warmup, args.runs, device, cuda_options)
    gpu_names = [d.name for d in tf.config.list_physical_devices("GPU")]
    print(f"irc backends, images {args.size}x{args.size}, batch {args.batch}, {args.runs} interleaved runs, irc cuda "
          f"{args.layout}/{args.precision}{'/jit' if args.jit else ''}, "
          f"{args.threads or 'default'} thread(s), device {device} "
          f"(TensorFlow {tf.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores{', GPUs: ' + ', '.join(gpu_names) if gpu_names else ', no GPU'})")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
