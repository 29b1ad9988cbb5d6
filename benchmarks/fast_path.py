"""SavedModel -> .tflite: ``irc lower`` (the TF-free fast path) against TensorFlow's converter, as whole processes.

    .venv/bin/python benchmarks/fast_path.py                          # MobileNetV2, ResNet50, EfficientNetB0 at 224
    .venv/bin/python benchmarks/fast_path.py --models mobilenet_v2 --size 96 --runs 1    # a quick look

Each model (built once by irc.zoo with seeded random weights, cached in --models-dir) is converted by two
commands, each a fresh process, as a user would run them:
- irc: ``irc lower MODEL --emit tflite -o out.tflite``;
- TF: a script that imports TensorFlow and writes ``TFLiteConverter.from_saved_model(MODEL).convert()``.

The runs alternate (irc, TF, irc, TF, ...) after one untimed irc run. Wall time is taken around each process;
peak memory is that process's own maximum resident set size (``os.wait4``). irc's modules are byte-compiled
first (``compileall``), as pip does when it installs a package, so that irc does not pay for compiling its
sources on every run where PYTHONDONTWRITEBYTECODE is set. The table gives the median of ``--runs`` runs and the
ratios irc / TF, against the targets (irc at most 0.25x TF's wall time and 0.3x its peak memory). Last, both
.tflite files run in TFLite's interpreter on one random input and the largest difference of their outputs is
shown, so a fast but wrong conversion cannot pass unnoticed. ``--json FILE`` also writes the figures.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("mobilenet_v2", "resnet50", "efficientnet_b0")
WALL_TARGET, MEMORY_TARGET = 0.25, 0.3

TF_CONVERT = """
import sys
import tensorflow as tf
data = tf.lite.TFLiteConverter.from_saved_model(sys.argv[1]).convert()
with open(sys.argv[2], "wb") as f:
    f.write(data)
"""

# Runs in a subprocess, so the benchmark itself never imports TensorFlow between timed runs.
COMPARE = """
import sys
import numpy as np
import tensorflow as tf
outs = []
for path in sys.argv[1:]:
    runner = tf.lite.Interpreter(model_path=path).get_signature_runner()
    specs = runner.get_input_details()
    rng = np.random.default_rng(0)
    feed = {k: rng.standard_normal(v["shape"]).astype(v["dtype"]) for k, v in sorted(specs.items())}
    outs.append(runner(**feed))
print(max(float(np.max(np.abs(outs[0][k] - outs[1][k]))) for k in outs[0]))
"""


def irc_command(model: Path, output: Path) -> list[str]:
    script = Path(sys.executable).parent / "irc"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "irc.cli"]
    return head + ["lower", str(model), "--emit", "tflite", "-o", str(output)]


def tf_command(model: Path, output: Path) -> list[str]:
    return [sys.executable, "-c", TF_CONVERT, str(model), str(output)]


def measure(argv: list[str], log: Path) -> tuple[float, float]:
    """Runs ``argv`` as a fresh process: (wall seconds, peak resident MB). Its output goes to ``log``."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with open(log, "wb") as out:
        start = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, out.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{' '.join(argv[:4])} ... failed with exit code {code}:\n{tail}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def saved_model(name: str, size: int, models_dir: Path) -> Path:
    path = models_dir / f"{name}-{size}"
    if not (path / "saved_model.pb").exists():
        print(f"building {name} at {size}x{size} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "irc.zoo", name, str(path), "--size", str(size)], check=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    return path


def bench(name: str, size: int, runs: int, models_dir: Path, workdir: Path) -> dict:
    model = saved_model(name, size, models_dir)
    out = {"irc": workdir / f"{name}-irc.tflite", "tf": workdir / f"{name}-tf.tflite"}
    commands = {"irc": irc_command(model, out["irc"]), "tf": tf_command(model, out["tf"])}
    samples = {"irc": [], "tf": []}
    measure(commands["irc"], workdir / f"{name}-irc.log")  # warm-up: the model's files in the page cache
    for i in range(runs):
        for tool in ("irc", "tf"):
            samples[tool].append(measure(commands[tool], workdir / f"{name}-{tool}.log"))
            wall, peak = samples[tool][-1]
            print(f"  {name} run {i + 1} {tool:3s} {wall:7.2f} s {peak:8.0f} MB", file=sys.stderr)
    row = {"model": name, "size": size, "runs": runs}
    for tool in ("irc", "tf"):
        row[f"{tool}_wall_s"] = statistics.median(w for w, _ in samples[tool])
        row[f"{tool}_peak_mb"] = statistics.median(m for _, m in samples[tool])
    row["wall_ratio"] = row["irc_wall_s"] / row["tf_wall_s"]
    row["peak_ratio"] = row["irc_peak_mb"] / row["tf_peak_mb"]
    row["tflite_mb"] = out["irc"].stat().st_size / 2**20
    check = subprocess.run([sys.executable, "-c", COMPARE, str(out["irc"]), str(out["tf"])], capture_output=True,
                           text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), check=True)
    row["max_abs_diff"] = float(check.stdout.split()[-1])
    return row


def table(rows: list[dict]) -> str:
    head = ("| model | irc wall s | TF wall s | wall ratio | irc peak MB | TF peak MB | peak ratio | "
            ".tflite MB | max abs diff |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        wall_ok = "" if r["wall_ratio"] <= WALL_TARGET else " (miss)"
        peak_ok = "" if r["peak_ratio"] <= MEMORY_TARGET else " (miss)"
        lines.append(f"| {r['model']} {r['size']} | {r['irc_wall_s']:.2f} | {r['tf_wall_s']:.2f} | "
                     f"{r['wall_ratio']:.3f}x{wall_ok} | {r['irc_peak_mb']:.0f} | {r['tf_peak_mb']:.0f} | "
                     f"{r['peak_ratio']:.3f}x{peak_ok} | {r['tflite_mb']:.1f} | {r['max_abs_diff']:.2g} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo models")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--runs", type=int, default=3, help="runs of each command per model (the median is shown)")
    parser.add_argument("--models-dir", default=str(Path(tempfile.gettempdir()) / "irc-bench-models"),
                        help="where built SavedModels are cached")
    parser.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)
    models_dir = Path(args.models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    compileall.compile_dir(importlib.util.find_spec("irc").submodule_search_locations[0], quiet=1)
    workdir = Path(tempfile.mkdtemp(prefix="irc-fast-path-"))
    try:
        rows = [bench(name, args.size, args.runs, models_dir, workdir) for name in args.models.split(",")]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"SavedModel -> .tflite, {args.size}x{args.size}, median of {args.runs} runs, whole processes; "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"targets: wall ratio <= {WALL_TARGET}x, peak ratio <= {MEMORY_TARGET}x\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
