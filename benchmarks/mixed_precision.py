"""Automatic mixed precision (``irc lower --max-error``) beside all-int8 and all-int16x8, in one run.

    .venv/bin/python benchmarks/mixed_precision.py                          # MobileNetV2 224, then the digits CNN
    .venv/bin/python benchmarks/mixed_precision.py --size 96 --max-error 0.02 --json out.json

For MobileNetV2 (irc.zoo: seeded random weights, batch norms calibrated on random inputs) calibrated on
``--calibration`` uniform [-1, 1] inputs, as benchmarks/quantize.py does, each file is irc's (load, ``tflite``
pipeline, quantize, TFLite backend) and is run in TFLite's interpreter (1 thread) on ``--test`` held-out inputs of
the same kind. Its output error is against irc's float file on those inputs: the RMS error divided by the float
output's range (the metric ``--max-error`` bounds, there measured on the calibration inputs in irc's reference
interpreter) and the max |error|. ``ms`` is the median invoke time, the files taking turns. The digits CNN (trained in seconds on
``sklearn.datasets.load_digits``) adds accuracies on its 397 held-out digits. The chosen recipes are printed after
the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def convert(path: Path, scheme: str, calibration: list[dict], max_error: float | None = None):
    """(tflite bytes, recipe TOML or None, seconds)."""
    from irc.api import load
    from irc.backends.tflite.backend import emit
    from irc.passes import run_pipeline
    from irc.passes.quantize import load_calibration, quantize_graph
    from irc.passes.quantize.mixed import auto_quantize

    start = time.perf_counter()
    graph = load(path)
    run_pipeline(graph, "tflite")
    recipe = None
    if scheme == "auto":
        samples = load_calibration(calibration, graph)
        choice = auto_quantize(graph, samples, "int8", max_error=max_error, log=lambda line: note(f"  {line}"),
                               progress=False)
        recipe = choice.recipe.to_toml(choice.summary())
    elif scheme != "float":
        quantize_graph(graph, scheme, calibration=calibration)
    return emit(graph, passes="O0"), recipe, time.perf_counter() - start


class Runner:
    def __init__(self, model: bytes):
        import tensorflow as tf

        self.interpreter = tf.lite.Interpreter(model_content=model, num_threads=1)
        self.interpreter.allocate_tensors()
        self.inp = self.interpreter.get_input_details()[0]
        self.out = self.interpreter.get_output_details()[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if tuple(self.inp["shape"]) != x.shape:
            self.interpreter.resize_tensor_input(self.inp["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self.inp, self.out = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
        self.interpreter.set_tensor(self.inp["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.out["index"]).copy()


def errors(got: np.ndarray, want: np.ndarray) -> dict:
    err = got.astype(np.float64) - want
    span = float(want.max() - want.min()) or 1.0
    return {"rel_rmse": float(np.sqrt(np.mean(err * err)) / span), "max_abs": float(np.abs(err).max())}


def mobilenet(size: int, count: int, test: int, bounds: list[float], runs: int, workdir: Path) -> tuple[list, dict]:
    from irc import zoo
    from irc.api import load

    path = zoo.export(zoo.build("mobilenet_v2", size=size), workdir / f"mobilenet_v2-{size}")
    name = load(path).inputs[0].name
    rng = np.random.default_rng(0)
    calibration = [{name: rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)} for _ in range(count)]
    held_out = [rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32) for _ in range(test)]
    rows, recipes, runners, reference = [], {}, [], None
    for scheme, bound in [("float", None), ("int8", None), ("int16x8", None)] + [("auto", b) for b in bounds]:
        note(f"mobilenet_v2 {size}: {scheme} {bound or ''}")
        blob, recipe, seconds = convert(path, scheme, calibration, bound)
        runner = Runner(blob)
        outputs = np.concatenate([runner(x) for x in held_out])
        if reference is None:
            reference = outputs.astype(np.float64)
        label = f"max-error {bound:.2%}" if scheme == "auto" else scheme
        if recipe:
            recipes[f"mobilenet_v2 {size} {label}"] = recipe
        rows.append({"model": f"mobilenet_v2 {size}", "scheme": label, "bytes": len(blob), "convert_s": seconds,
                     **errors(outputs, reference)})
        runners.append(runner)
    for row, ms in zip(rows, round_robin_ms(runners, held_out[0], runs)):
        row["ms"] = ms
    return rows, recipes


def round_robin_ms(runners: list[Runner], x: np.ndarray, runs: int) -> list[float]:
    """Median invoke milliseconds of each runner, the runners taking turns so that all see the same load."""
    times: list[list[float]] = [[] for _ in runners]
    for runner in runners:
        runner(x)
    for _ in range(runs):
        for runner, seen in zip(runners, times):
            start = time.perf_counter()
            runner.interpreter.invoke()
            seen.append(time.perf_counter() - start)
    return [1e3 * statistics.median(seen) for seen in times]


def digits(max_error: float, workdir: Path) -> tuple[list, dict]:
    from irc import zoo

    trained = zoo.trained_digits()
    path = zoo.export(trained.model, workdir / "digits")
    calibration = [{"image": trained.x_train[i:i + 1]} for i in range(200)]
    rows, recipes, reference = [], {}, None
    for scheme in ("float", "int8", "int16x8", "auto"):
        note(f"digits: {scheme}")
        blob, recipe, seconds = convert(path, scheme, calibration, max_error)
        out = Runner(blob)(trained.x_test)
        if reference is None:
            reference = out.astype(np.float64)
        label = f"max-error {max_error:.2%}" if scheme == "auto" else scheme
        if recipe:
            recipes[f"digits {label}"] = recipe
        rows.append({"model": "digits cnn", "scheme": label, "bytes": len(blob), "convert_s": seconds,
                     "accuracy": float(np.mean(out.argmax(1) == trained.y_test)), **errors(out, reference)})
    return rows, recipes


def table(rows: list[dict]) -> str:
    head = (f"{'model':<18} {'scheme':<17} {'size KB':>9} {'rel RMSE':>9} {'max |err|':>10} {'ms':>8} "
            f"{'convert s':>9} {'accuracy':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        ms = f"{r['ms']:8.2f}" if "ms" in r else f"{'':>8}"
        acc = f"{r['accuracy']:9.2%}" if "accuracy" in r else f"{'':>9}"
        lines.append(f"{r['model']:<18} {r['scheme']:<17} {r['bytes'] / 1024:9.1f} {r['rel_rmse']:9.3%} "
                     f"{r['max_abs']:10.3g} {ms} {r['convert_s']:9.1f} {acc}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224, help="MobileNetV2 input size")
    parser.add_argument("--calibration", type=int, default=8, help="MobileNetV2 calibration inputs")
    parser.add_argument("--test", type=int, default=8, help="MobileNetV2 held-out inputs")
    parser.add_argument("--max-error", type=float, nargs="+", default=[0.03, 0.01],
                        help="MobileNetV2's bounds (0.03 = 3%%), one search each")
    parser.add_argument("--digits-max-error", type=float, default=0.001, help="the digits CNN's bound")
    parser.add_argument("--runs", type=int, default=20, help="timed invokes per file")
    parser.add_argument("--no-digits", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and recipes as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows, recipes = mobilenet(args.size, args.calibration, args.test, args.max_error, args.runs, Path(tmp))
        if not args.no_digits:
            more, more_recipes = digits(args.digits_max_error, Path(tmp))
            rows += more
            recipes.update(more_recipes)
    print(f"TFLite interpreter, 1 thread; MobileNetV2 calibrated on {args.calibration} inputs, errors on "
          f"{args.test} held-out ones; errors against irc's float file")
    print(table(rows))
    for name, text in recipes.items():
        entries = text.count("[[layers]]")
        print(f"\n# {name}: {entries} entr(ies)\n{text if entries <= 12 else _short(text)}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "recipes": recipes}, indent=2))
    return 0


def _short(text: str) -> str:
    """A long recipe's comment, default and scheme counts."""
    lines = text.splitlines()
    counts: dict[str, int] = {}
    for line in lines:
        if line.startswith("scheme = "):
            counts[line[9:].strip('"')] = counts.get(line[9:].strip('"'), 0) + 1
    head = [line for line in lines if line.startswith(("#", "default"))]
    return "\n".join(head + [f"# ... {n} layer(s) -> {scheme}" for scheme, n in counts.items()])


if __name__ == "__main__":
    sys.exit(main())
