"""How long irc takes to load and lower a SavedModel, beside TensorFlow Lite's converter on the same directory.

    .venv/bin/python benchmarks/frontend.py                      # MobileNetV2 and ResNet50 at 224x224
    .venv/bin/python benchmarks/frontend.py --runs 5 --json out.json
    .venv/bin/python benchmarks/frontend.py --cold               # also time both from a fresh process

For each model (built by irc.zoo with seeded random weights and exported once as a SavedModel) it times, in
one process, side by side:
- irc: ``irc.load(dir)``, i.e. reading the SavedModel without TensorFlow and lowering it to irc IR
  (split into the read and the lowering in the table);
- tflite: ``tf.lite.TFLiteConverter.from_saved_model(dir).convert()``.
Each runs once to warm up, then ``--runs`` times alternately; the table gives medians and the ratio
irc / tflite (the target is <= 0.5). ``--cold`` adds the wall time of a fresh Python process doing each
(imports included: irc does not import TensorFlow on this path, the converter does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("mobilenet_v2", "resnet50")


def export(name: str, size: int, workdir: Path) -> Path:
    from irc import zoo

    path = workdir / f"{name}-{size}"
    if not (path / "saved_model.pb").exists():
        zoo.export(zoo.build(name, size=size), path)
    return path


def time_irc(path: Path) -> tuple[float, float, int]:
    """(read seconds, lower seconds, irc node count) for one load."""
    from irc.frontends.lowering import lower_graph
    from irc.frontends.savedmodel_reader import read_savedmodel_fast
    from irc.frontends.tensorflow import graph_name

    start = time.perf_counter()
    tfgraph = read_savedmodel_fast(path)
    read = time.perf_counter()
    graph = lower_graph(tfgraph, name=graph_name(tfgraph))
    return read - start, time.perf_counter() - read, len(graph)


def time_tflite(path: Path) -> tuple[float, int]:
    import tensorflow as tf

    start = time.perf_counter()
    flatbuffer = tf.lite.TFLiteConverter.from_saved_model(str(path)).convert()
    return time.perf_counter() - start, len(flatbuffer)


def cold(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - start


def bench(name: str, path: Path, runs: int, with_cold: bool) -> dict:
    time_irc(path), time_tflite(path)  # warm-up: first calls pay for lazy imports and TF's start-up
    irc_read, irc_lower, tflite = [], [], []
    nodes = size = 0
    for _ in range(runs):
        r, lo, nodes = time_irc(path)
        irc_read.append(r)
        irc_lower.append(lo)
        t, size = time_tflite(path)
        tflite.append(t)
    irc_total = [r + lo for r, lo in zip(irc_read, irc_lower)]
    row = {
        "model": name, "irc_nodes": nodes, "tflite_bytes": size,
        "irc_read_s": statistics.median(irc_read), "irc_lower_s": statistics.median(irc_lower),
        "irc_s": statistics.median(irc_total), "tflite_s": statistics.median(tflite),
    }
    row["ratio"] = row["irc_s"] / row["tflite_s"]
    if with_cold:
        row["irc_cold_s"] = cold(f"import irc; irc.load({str(path)!r})")
        row["tflite_cold_s"] = cold("import tensorflow as tf; "
                                    f"tf.lite.TFLiteConverter.from_saved_model({str(path)!r}).convert()")
        row["cold_ratio"] = row["irc_cold_s"] / row["tflite_cold_s"]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="also time each from a fresh Python process")
    parser.add_argument("--workdir", type=Path, default=None, help="where to keep the exported SavedModels")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    workdir = args.workdir or Path(tempfile.gettempdir()) / "irc-bench-frontend"
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models:
        path = export(name, args.size, workdir)
        rows.append(bench(name, path, args.runs, args.cold))

    print(f"irc load+lower vs TFLiteConverter.convert() on the same SavedModel ({args.size}x{args.size}, "
          f"median of {args.runs}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs)")
    head = f"{'model':<14}{'irc read':>10}{'irc lower':>11}{'irc total':>11}{'tflite':>9}{'ratio':>8}"
    if args.cold:
        head += f"{'irc cold':>10}{'tfl cold':>10}{'ratio':>8}"
    print(head)
    for r in rows:
        line = (f"{r['model']:<14}{r['irc_read_s']:>9.3f}s{r['irc_lower_s']:>10.3f}s{r['irc_s']:>10.3f}s"
                f"{r['tflite_s']:>8.2f}s{r['ratio']:>8.3f}")
        if args.cold:
            line += f"{r['irc_cold_s']:>9.2f}s{r['tflite_cold_s']:>9.2f}s{r['cold_ratio']:>8.3f}"
        print(line)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
