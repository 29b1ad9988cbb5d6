"""irc's quantized TFLite models beside TensorFlow's converter's, side by side in one run.

    .venv/bin/python benchmarks/quantize.py                     # MobileNetV2 224x224 and the digits CNN
    .venv/bin/python benchmarks/quantize.py --size 96 --runs 20  # a quick look
    .venv/bin/python benchmarks/quantize.py --json out.json

MobileNetV2 (irc.zoo, seeded random weights) is converted six ways: float, dynamic-range and full int8, each by
irc (load, ``tflite`` pipeline, ``quantize_graph``, TFLite backend) and by ``tf.lite.TFLiteConverter``, with the
same calibration inputs. For each file the table gives its size and its TFLite interpreter latency: median and
90th percentile wall time and median CPU time of ``--runs`` invokes, the irc and TF models of a mode timed in
alternation so both see the same machine state; ``x TF`` is the median over those pairs of irc's CPU time over
TF's (robust to other load on the machine). MobileNetV2's weights are random (its batch norms calibrated on
random inputs, so its outputs depend on the input, but they mean nothing), so it has no accuracy to measure: the
accuracies come from the digits model.

The digits CNN (``irc.zoo.small_cnn`` trained for seconds on ``sklearn.datasets.load_digits``) gives the
accuracies: float, and irc vs TF for int8 and dynamic-int8, on the 397 held-out digits. The quantization-aware-
trained digits CNN (tests/qat_digits.py, tfmot, built in a subprocess) to int8 by irc (its trained ranges, no
calibration data) and by TF's converter: size, accuracy on the same 397 digits, latency (``--no-qat`` skips it).

A second table (``--aeq-only`` for just this one) sets irc beside Google's AI Edge Quantizer (run on TF's float
.tflite of the same SavedModel, with its recipes) and TF's converter, for every weight scheme more than one of
them offers: weight-only int8 and int4, dynamic int8 and int4, dynamic int4 blockwise. For each model and scheme:
file size, accuracy on the held-out digits (CNN) or the error against TF's float file on held-out inputs
(MobileNetV2: max abs and RMS), and latency as a ratio to AEQ's file (interleaved invokes, 1 thread). One digit
of 397 is 0.25 points, so the CNN's rows also give the accuracy over all 1,797 digits, ``--folds`` models each
holding out one fold, and how often each file predicts what TF's float file predicts. ``--digits-only`` leaves
MobileNetV2 out of both tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
MODES = ("float", "dynamic-int8", "int8")


# ----- conversion ------------------------------------------------------------------------------------------------------
def irc_convert(path: Path, mode: str, calibration: list[dict]) -> tuple[bytes, float]:
    from irc.api import load
    from irc.backends.tflite.backend import emit
    from irc.passes import run_pipeline
    from irc.passes.quantize import quantize_graph

    start = time.perf_counter()
    graph = load(path)
    run_pipeline(graph, "tflite")
    if mode != "float":
        quantize_graph(graph, mode, calibration=calibration if mode == "int8" else None)
    return emit(graph, passes="O0"), time.perf_counter() - start


def tf_convert(path: Path, mode: str, calibration: list[dict]) -> tuple[bytes, float]:
    import tensorflow as tf

    start = time.perf_counter()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(path))
    if mode != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
        converter.representative_dataset = lambda: iter(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert(), time.perf_counter() - start


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ----- running ---------------------------------------------------------------------------------------------------------
class Runner:
    """One TFLite interpreter, allocated once; ``__call__`` runs a float batch (integer I/O converted)."""

    def __init__(self, model: bytes, threads: int):
        import tensorflow as tf

        self.interpreter = tf.lite.Interpreter(model_content=model, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.inp = self.interpreter.get_input_details()[0]
        self.out = self.interpreter.get_output_details()[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if tuple(self.inp["shape"]) != x.shape:
            self.interpreter.resize_tensor_input(self.inp["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self.inp = self.interpreter.get_input_details()[0]
            self.out = self.interpreter.get_output_details()[0]
        self.interpreter.set_tensor(self.inp["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.out["index"])

    def invoke(self) -> tuple[float, float]:
        """(wall, CPU) seconds of one invoke. With one thread the interpreter runs in this thread, so the thread's
        CPU time leaves out the time other processes held the core."""
        wall, cpu = time.perf_counter(), time.thread_time()
        self.interpreter.invoke()
        return time.perf_counter() - wall, time.thread_time() - cpu


def time_pair(a: Runner, b: Runner, x: np.ndarray, warmup: int, runs: int) -> tuple[dict, dict]:
    """Per-invoke wall and CPU seconds of two runners, alternating calls (and their order) so that both see the
    same machine state; ``ratio`` is a's CPU time over b's, per pair."""
    a(x), b(x)
    for _ in range(warmup):
        a.invoke(), b.invoke()
    ta, tb = {"wall": [], "cpu": [], "ratio": []}, {"wall": [], "cpu": []}
    for i in range(runs):
        if i % 2 == 0:
            ra, rb = a.invoke(), b.invoke()
        else:
            rb, ra = b.invoke(), a.invoke()
        for times, (wall, cpu) in ((ta, ra), (tb, rb)):
            times["wall"].append(wall)
            times["cpu"].append(cpu)
        ta["ratio"].append(ra[1] / rb[1])
    return ta, tb


def p90(times: list[float]) -> float:
    return sorted(times)[int(0.9 * (len(times) - 1))]


def mobilenet(size: int, calibration_count: int, warmup: int, runs: int, threads: int, workdir: Path) -> list[dict]:
    from irc import zoo

    model = zoo.build("mobilenet_v2", size=size)
    path = zoo.export(model, workdir / f"mobilenet_v2-{size}")
    from irc.api import load

    rng = np.random.default_rng(0)
    name = load(path).inputs[0].name  # the SavedModel signature's input name, which both converters take
    calibration = [{name: rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)}
                   for _ in range(calibration_count)]
    one = rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    rows = []
    for mode in MODES:
        converted = {}
        for who, convert in (("irc", irc_convert), ("TF", tf_convert)):
            note(f"mobilenet_v2 {size}: {who} {mode}")
            data, seconds = convert(path, mode, calibration)
            converted[who] = (data, seconds)
        runners = {who: Runner(data, threads) for who, (data, _) in converted.items()}
        times = dict(zip(runners, time_pair(runners["irc"], runners["TF"], one, warmup, runs)))
        for who, (data, seconds) in converted.items():
            t = times[who]
            rows.append({
                "model": f"mobilenet_v2 {size}", "mode": mode, "by": who, "bytes": len(data),
                "median_ms": 1e3 * statistics.median(t["wall"]), "p90_ms": 1e3 * p90(t["wall"]),
                "cpu_ms": 1e3 * statistics.median(t["cpu"]),
                "x_tf": statistics.median(times["irc"]["ratio"]) if who == "irc" else 1.0, "convert_s": seconds,
            })
    return rows


def digits(workdir: Path, epochs: int = 8) -> list[dict]:
    from irc import zoo

    trained = zoo.trained_digits(epochs)
    path = zoo.export(trained.model, workdir / "digits")
    calibration = [{"image": trained.x_train[i:i + 1]} for i in range(200)]
    rows = [{"model": "digits cnn", "mode": "float", "by": "keras", "accuracy": trained.accuracy}]
    for mode in MODES:
        for who, convert in (("irc", irc_convert), ("TF", tf_convert)):
            blob, _ = convert(path, mode, calibration)
            out = Runner(blob, 1)(trained.x_test)
            if out.dtype != np.float32:
                raise SystemExit("digits: expected float outputs")
            rows.append({"model": "digits cnn", "mode": mode, "by": who, "bytes": len(blob),
                         "accuracy": float(np.mean(out.argmax(1) == trained.y_test))})
    return rows


def qat(workdir: Path, warmup: int, runs: int) -> list[dict]:
    """The quantization-aware-trained digits CNN (tests/qat_digits.py, built in a subprocess: tfmot needs Keras 2)
    to int8 by irc (its trained ranges, no calibration data) and by TF's converter (``Optimize.DEFAULT``, which
    takes the trained ranges too), accuracy on the same 397 held-out digits, latency interleaved."""
    import subprocess

    import tensorflow as tf

    root = Path(__file__).resolve().parent.parent
    out = workdir / "qat"
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    subprocess.run([sys.executable, str(root / "tests" / "qat_digits.py"), str(out)], env=env, check=True,
                   capture_output=True, timeout=900)
    data = np.load(out / "data.npz")
    x, y = data["x_test"], data["y_test"]
    model = "digits cnn QAT"
    rows = [{"model": model, "mode": "float", "by": "keras", "accuracy": float(data["accuracy"])}]
    ours = irc_convert(out / "saved_model", "int8", None)
    start = time.perf_counter()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(out / "saved_model"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    theirs = (converter.convert(), time.perf_counter() - start)
    runners = {"irc": Runner(ours[0], 1), "TF": Runner(theirs[0], 1)}
    times = dict(zip(runners, time_pair(runners["irc"], runners["TF"], x[:1], warmup, runs)))
    for who, (blob, seconds) in (("irc", ours), ("TF", theirs)):
        predicted = np.concatenate([runners[who](x[i:i + 1]) for i in range(len(x))]).argmax(1)
        t = times[who]
        rows.append({"model": model, "mode": "int8", "by": who, "bytes": len(blob),
                     "median_ms": 1e3 * statistics.median(t["wall"]), "p90_ms": 1e3 * p90(t["wall"]),
                     "cpu_ms": 1e3 * statistics.median(t["cpu"]),
                     "x_tf": statistics.median(times["irc"]["ratio"]) if who == "irc" else 1.0, "convert_s": seconds,
                     "accuracy": float(np.mean(predicted == y))})
    return rows


# ----- against AI Edge Quantizer ---------------------------------------------------------------------------------------
# name -> (irc quantize_graph arguments, AEQ (config kind, bits, granularity), whether TF's converter does it)
SCHEMES = {
    "weight-only int8": ({"mode": "int8-weight-only"}, ("weight_only", 8, "CHANNELWISE"), False),
    "weight-only int4": ({"mode": "int4-weight-only"}, ("weight_only", 4, "CHANNELWISE"), False),
    "dynamic int8": ({"mode": "dynamic-int8"}, ("dynamic", 8, "CHANNELWISE"), True),
    "dynamic int4": ({"mode": "dynamic-int4"}, ("dynamic", 4, "CHANNELWISE"), False),
    "dynamic int4 block 32": ({"mode": "dynamic-int4", "granularity": "blockwise", "block_size": 32},
                              ("dynamic", 4, "BLOCKWISE_32"), False),
    "dynamic int4 block 128": ({"mode": "dynamic-int4", "granularity": "blockwise", "block_size": 128},
                               ("dynamic", 4, "BLOCKWISE_128"), False),
}


def irc_weights(path: Path, options: dict) -> bytes:
    from irc.api import load
    from irc.backends.tflite.backend import emit
    from irc.passes import run_pipeline
    from irc.passes.quantize import quantize_graph

    graph = load(path)
    run_pipeline(graph, "tflite")
    quantize_graph(graph, **options)
    return emit(graph, passes="O0")


def aeq_convert(float_model: bytes, kind: str, bits: int, granularity: str) -> bytes:
    import contextlib
    import io

    from ai_edge_quantizer import qtyping, quantizer

    q = quantizer.Quantizer(bytearray(float_model))
    add = q.add_weight_only_config if kind == "weight_only" else q.add_dynamic_config
    add(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=bits,
        granularity=qtyping.QuantGranularity[granularity])
    with contextlib.redirect_stdout(io.StringIO()):  # its size report
        return bytes(q.quantize(enable_progress_bar=False).quantized_model)


def scheme_files(path: Path, float_model: bytes, scheme: str, calibration: list[dict] | None = None
                 ) -> tuple[dict, str | None]:
    """{who: file} for one scheme (irc; ``irc+cal`` given calibration inputs; AEQ; TF where it offers it), and
    why AEQ failed, if it did."""
    options, (kind, bits, granularity), tf_too = SCHEMES[scheme]
    files, failed = {"irc": irc_weights(path, options)}, None
    if calibration:  # irc rounds the weights to least output error on these inputs (GPTQ; docs/quantization.md)
        files["irc+cal"] = irc_weights(path, {**options, "calibration": calibration})
    try:
        files["AEQ"] = aeq_convert(float_model, kind, bits, granularity)
    except ValueError as e:  # AEQ refuses a model with a layer its blocks do not divide
        failed = str(e).split("Error: ")[-1]
    if tf_too:
        files["TF"] = tf_convert(path, "dynamic-int8", [])[0]
    return files, failed


def versus_aeq(workdir: Path, size: int, warmup: int, runs: int, epochs: int = 8, folds: int = 5,
               mobilenet: bool = True) -> list[dict]:
    """irc, AEQ (and TF where it offers the scheme) per weight scheme, on the digits CNN and MobileNetV2."""
    from irc import zoo

    rows = []
    trained = zoo.trained_digits(epochs)
    digits_calibration = [{"image": trained.x_train[i:i + 1]} for i in range(200)]
    models = [("digits cnn", zoo.export(trained.model, workdir / "aeq-digits"), trained.x_test, trained.x_test[:1],
               digits_calibration)]
    if mobilenet:
        rng = np.random.default_rng(7)  # held-out inputs: not the calibration inputs of the first table
        held_out = rng.uniform(-1, 1, (8, size, size, 3)).astype(np.float32)
        mobilenet_path = zoo.export(zoo.build("mobilenet_v2", size=size), workdir / f"aeq-mobilenet-{size}")
        from irc.api import load

        name = load(mobilenet_path).inputs[0].name
        calibration = [{name: rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)} for _ in range(16)]
        models.append((f"mobilenet_v2 {size}", mobilenet_path, held_out, held_out[:1], calibration))
    for model, path, inputs, one, calibration in models:
        float_model, _ = tf_convert(path, "float", [])
        reference = _outputs(float_model, inputs)
        rows.append(_quality(model, "float", "TF", float_model, reference, reference, trained))
        for scheme in SCHEMES:
            note(f"{model}: {scheme}")
            files, failed = scheme_files(path, float_model, scheme, calibration)
            if failed:
                rows.append({"model": model, "scheme": scheme, "by": "AEQ", "failed": failed})
            runners = {who: Runner(data, 1) for who, data in files.items()}
            other = "AEQ" if "AEQ" in files else "TF" if "TF" in files else None
            times = time_pair(runners["irc"], runners[other], one, warmup, runs)[0] if other else None
            for who, data in files.items():
                row = _quality(model, scheme, who, data, _outputs(data, inputs), reference, trained)
                if who == "irc" and times is not None:
                    row[f"x_{other.lower()}"] = statistics.median(times["ratio"])
                rows.append(row)
    if folds:
        _add_folds(rows, workdir, epochs, folds)
    return rows


def _add_folds(rows: list[dict], workdir: Path, epochs: int, folds: int) -> None:
    """Adds to the digits rows their accuracy over every one of the 1,797 digits, each held out once: ``folds``
    models, each trained on the other folds, every file made from each; and how often the file's prediction is the
    float file's (``agree``). 397 digits alone move by 0.25 points per digit."""
    from irc import zoo

    counts: dict[tuple[str, str], list[int]] = {}  # (scheme, who) -> [correct, agree, total]
    for fold in range(folds):
        note(f"digits cnn: fold {fold + 1} of {folds}")
        trained = zoo.trained_digits(epochs, fold=fold, folds=folds)
        path = zoo.export(trained.model, workdir / f"digits-fold-{fold}")
        float_model, _ = tf_convert(path, "float", [])
        expect = _outputs(float_model, trained.x_test).argmax(1)
        calibration = [{"image": trained.x_train[i:i + 1]} for i in range(200)]
        for scheme in ("float", *SCHEMES):
            files = {"TF": float_model} if scheme == "float" else \
                scheme_files(path, float_model, scheme, calibration)[0]
            for who, data in files.items():
                predicted = _outputs(data, trained.x_test).argmax(1)
                count = counts.setdefault((scheme, who), [0, 0, 0])
                count[0] += int(np.sum(predicted == trained.y_test))
                count[1] += int(np.sum(predicted == expect))
                count[2] += len(predicted)
    for r in rows:
        count = counts.get((r["scheme"], r["by"])) if r["model"] == "digits cnn" else None
        if count:
            r["fold_accuracy"], r["agree"], r["fold_digits"] = count[0] / count[2], count[1] / count[2], count[2]


def _outputs(model: bytes, inputs: np.ndarray) -> np.ndarray:
    runner = Runner(model, 1)
    return np.concatenate([runner(inputs[i:i + 1]) for i in range(len(inputs))])


def _quality(model: str, scheme: str, who: str, data: bytes, out: np.ndarray, reference: np.ndarray, trained) -> dict:
    row = {"model": model, "scheme": scheme, "by": who, "bytes": len(data)}
    if model == "digits cnn":
        row["accuracy"] = float(np.mean(out.argmax(1) == trained.y_test))
    err = out.astype(np.float64) - reference
    row["max_abs"], row["rms"] = float(np.abs(err).max()), float(np.sqrt(np.mean(err ** 2)))
    return row


def aeq_table(rows: list[dict]) -> str:
    folds = next((r["fold_digits"] for r in rows if "fold_digits" in r), None)
    head = "| model | scheme | by | size KB | accuracy (397) | max abs err | RMS err | latency x AEQ |"
    if folds:
        head += f" accuracy, k-fold ({folds}) | agrees with float |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['model']} | {r['scheme']} | {r['by']} | fails: {r['failed']} | | | | |"
                         + (" | |" if folds else ""))
            continue
        acc = f"{r['accuracy']:.2%}" if "accuracy" in r else ""
        ratio = f"{r['x_aeq']:.2f}" if "x_aeq" in r else f"{r['x_tf']:.2f} (x TF)" if "x_tf" in r else ""
        line = (f"| {r['model']} | {r['scheme']} | {r['by']} | {r['bytes'] / 1024:.1f} | {acc} | "
                f"{r['max_abs']:.2g} | {r['rms']:.2g} | {ratio} |")
        if folds:
            line += (f" {r['fold_accuracy']:.2%} | {r['agree']:.2%} |" if "fold_accuracy" in r else " | |")
        lines.append(line)
    return "\n".join(lines)


def check_aeq(rows: list[dict]) -> list[str]:
    """For every scheme both tools offer: irc's file no larger and no less accurate than AEQ's."""
    by = {(r["model"], r["scheme"], r["by"]): r for r in rows}
    failures = []
    for (model, scheme, who), r in by.items():
        theirs = by.get((model, scheme, "AEQ"))
        if who not in ("irc", "irc+cal") or theirs is None or "failed" in theirs:
            continue
        if r["bytes"] > theirs["bytes"]:
            failures.append(f"{model} {scheme}: irc {r['bytes']} bytes, AEQ {theirs['bytes']}")
        # accuracy is judged on all 1,797 digits (k-fold) when measured: on the 397 held-out digits alone one digit
        # is 0.25 points, well inside the noise (binomial standard error about 0.8 points), so a difference there is
        # printed as a note, not a failure
        if "fold_accuracy" not in r and "accuracy" in r and r["accuracy"] < theirs["accuracy"]:
            failures.append(f"{model} {scheme}: irc accuracy {r['accuracy']:.2%}, AEQ {theirs['accuracy']:.2%}")
        if "fold_accuracy" in r and r["accuracy"] < theirs["accuracy"]:
            print(f"note: {model} {scheme}: on the 397 held-out digits irc ({who}) {r['accuracy']:.2%}, "
                  f"AEQ {theirs['accuracy']:.2%}")
        if "fold_accuracy" in r and r["fold_accuracy"] < theirs["fold_accuracy"]:
            failures.append(f"{model} {scheme}: irc k-fold accuracy {r['fold_accuracy']:.2%}, AEQ "
                            f"{theirs['fold_accuracy']:.2%}")
        if "accuracy" not in r and r["rms"] > theirs["rms"] * 1.05:
            failures.append(f"{model} {scheme}: irc RMS error {r['rms']:.3g}, AEQ {theirs['rms']:.3g}")
    return failures


# ----- report ------------------------------------------------------------------------------------------------------
def table(rows: list[dict]) -> str:
    head = f"{'model':<18} {'mode':<13} {'by':<5} {'size KB':>9} {'x float':>8} {'median ms':>10} {'p90 ms':>8} " \
           f"{'CPU ms':>8} {'x TF':>6} {'convert s':>9} {'accuracy':>9}"
    lines = [head, "-" * len(head)]
    base = {(r["model"], r["by"]): r["bytes"] for r in rows if r["mode"] == "float" and "bytes" in r}
    for r in rows:
        size = f"{r['bytes'] / 1024:9.1f}" if "bytes" in r else f"{'':>9}"
        ratio = f"{r['bytes'] / base[(r['model'], r['by'])]:8.2f}" if (r["model"], r["by"]) in base else f"{'':>8}"
        if "median_ms" in r:
            timing = f"{r['median_ms']:10.2f} {r['p90_ms']:8.2f} {r['cpu_ms']:8.2f} {r['x_tf']:6.2f}"
            timing += f" {r['convert_s']:9.1f}"
        else:
            timing = f"{'':>10} {'':>8} {'':>8} {'':>6} {'':>9}"
        acc = f"{r['accuracy']:9.2%}" if "accuracy" in r else f"{'':>9}"
        lines.append(f"{r['model']:<18} {r['mode']:<13} {r['by']:<5} {size} {ratio} {timing} {acc}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224, help="MobileNetV2 input size")
    parser.add_argument("--calibration", type=int, default=16, help="calibration samples")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="TFLite interpreter threads")
    parser.add_argument("--no-digits", action="store_true", help="skip the digits accuracy table")
    parser.add_argument("--no-aeq", action="store_true", help="skip the table against AI Edge Quantizer")
    parser.add_argument("--aeq-only", action="store_true", help="only the table against AI Edge Quantizer")
    parser.add_argument("--digits-only", action="store_true", help="only the digits CNNs, no MobileNetV2")
    parser.add_argument("--no-qat", action="store_true", help="skip the quantization-aware-trained digits CNN")
    parser.add_argument("--folds", type=int, default=5,
                        help="digits accuracy against AEQ also over all 1,797 digits, N-fold (0: skip)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    import tensorflow as tf

    rows, aeq_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.aeq_only:
            if not args.digits_only:
                rows = mobilenet(args.size, args.calibration, args.warmup, args.runs, args.threads, Path(tmp))
            if not args.no_digits:
                rows += digits(Path(tmp))
            if not args.no_qat:
                rows += qat(Path(tmp), args.warmup, args.runs)
        if not args.no_aeq:
            aeq_rows = versus_aeq(Path(tmp), args.size, args.warmup, args.runs, folds=args.folds,
                                  mobilenet=not args.digits_only)
    print(f"TFLite interpreter, {args.threads} thread(s); TensorFlow {tf.__version__}; {platform.processor() or ''} "
          f"{os.cpu_count()} CPUs; MobileNetV2 calibrated on {args.calibration} inputs")
    failures = []
    if rows:
        print(table(rows))
        failures += check(rows)
    if aeq_rows:
        print("\nagainst AI Edge Quantizer (on TF's float .tflite) and TF's converter, 1 thread:")
        print(aeq_table(aeq_rows))
        failures += check_aeq(aeq_rows)
    for line in failures:
        print(f"FAIL {line}")
    if args.json:
        args.json.write_text(json.dumps(rows + aeq_rows, indent=2))
    return 1 if failures else 0


def check(rows: list[dict]) -> list[str]:
    """The issue's bars: int8 file <= 0.3x float, int8 latency <= 1.05x TF's; digits accuracy within bounds."""
    by = {(r["model"], r["mode"], r["by"]): r for r in rows}
    failures = []
    for (model, mode, who), r in by.items():
        if model.startswith("mobilenet") and mode == "int8" and who == "irc":
            if r["bytes"] > 0.3 * by[(model, "float", "irc")]["bytes"]:
                failures.append(f"{model}: int8 file is {r['bytes'] / by[(model, 'float', 'irc')]['bytes']:.2f}x float")
            if r["x_tf"] > 1.05:
                failures.append(f"{model}: int8 latency {r['x_tf']:.2f}x TF's")
    if ("digits cnn", "float", "keras") in by:
        base = by[("digits cnn", "float", "keras")]["accuracy"]
        for mode in ("int8", "dynamic-int8"):
            ours, theirs = by[("digits cnn", mode, "irc")]["accuracy"], by[("digits cnn", mode, "TF")]["accuracy"]
            if ours < base - 0.01 or ours < theirs - 0.005:
                failures.append(f"digits {mode}: irc {ours:.2%}, TF {theirs:.2%}, float {base:.2%}")
    if ("digits cnn QAT", "int8", "irc") in by:  # the issue's bar: within 0.2 points of TF's converter
        ours, theirs = by[("digits cnn QAT", "int8", "irc")], by[("digits cnn QAT", "int8", "TF")]
        if abs(ours["accuracy"] - theirs["accuracy"]) > 0.002 or ours["bytes"] > theirs["bytes"]:
            failures.append(f"QAT int8: irc {ours['accuracy']:.2%} {ours['bytes']} bytes, TF {theirs['accuracy']:.2%} "
                            f"{theirs['bytes']} bytes")
    return failures


if __name__ == "__main__":
    sys.exit(main())
