"""Which weight schemes LiteRT runs: op x bits x granularity x weight-only/dynamic, on both interpreters.

    .venv/bin/python benchmarks/weight_support.py            # a markdown table
    .venv/bin/python benchmarks/weight_support.py --json out.json

For every op that irc quantizes weights of (``irc.passes.quantize.weights.OPS``), a one-layer Keras model is
lowered by irc, its weights quantized with each scheme *whatever* ``SUPPORTED`` says, emitted, and run by
ai_edge_litert's Interpreter and by tf.lite.Interpreter (1 thread). A scheme runs when both interpreters load and
invoke the file and their output is within ``TOLERANCE`` (of the float output's range) of irc's reference
interpreter on the same quantized graph, which computes in float with the rounded weights: a kernel that ignores
per-channel or block scales shows up as a large error, not only a crash. ``SUPPORTED`` in weights.py is this
table; tests/test_quantize_weights.py checks that every supported scheme still runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# error of the interpreter's output against irc's reference on the same quantized graph, relative to the float
# output's range: weight-only files must match closely; dynamic ones add on-the-fly int8 activation rounding
TOLERANCE = {False: 1e-3, True: 0.08}


def keras_model(op: str):
    """A one-layer model whose weights are those of ``op`` (after irc's tflite pipeline)."""
    import keras

    layers = keras.layers
    if op == "gather":
        ids = keras.Input((6,), batch_size=1, dtype="int32", name="ids")
        return keras.Model(ids, layers.Embedding(96, 256, name="embedding")(ids))
    if op in ("conv2d", "depthwise_conv2d"):
        x = keras.Input((8, 8, 16), batch_size=1, name="x")
        layer = layers.Conv2D(32, 3, name="conv") if op == "conv2d" else layers.DepthwiseConv2D(3, name="dw")
        return keras.Model(x, layer(x))
    if op == "matmul":
        x = keras.Input((256,), batch_size=1, name="x")
        return keras.Model(x, layers.Dense(64, name="dense")(x))
    if op == "batch_matmul":
        x = keras.Input((4, 256), batch_size=1, name="x")
        return keras.Model(x, layers.EinsumDense("bti,io->bto", output_shape=(4, 64), name="einsum")(x))
    raise ValueError(op)


def sample(graph, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for v in graph.inputs:
        shape = tuple(int(d) for d in v.type.shape)
        out[v.name] = (rng.integers(0, 96, shape).astype(np.int32) if v.type.dtype.is_integer
                       else rng.standard_normal(shape).astype(np.float32))
    return out


@functools.cache
def _lowered(op: str):
    import keras

    from irc.api import load
    from irc.backends.tflite.backend import prepare

    keras.utils.set_random_seed(0)
    return prepare(load(keras_model(op)))


def lowered(op: str):
    """A copy of the model after the tflite pipeline, and its one ``op`` node (whose weights get quantized)."""
    graph = _lowered(op).copy()
    nodes = [n for n in graph.nodes if n.core_op == op]
    if len(nodes) != 1:
        raise RuntimeError(f"expected one {op} node after the pipeline, got {[n.op for n in graph.nodes]}")
    return graph, nodes[0]


INTERPRETERS = ("litert", "tf.lite")
_pool = None  # a worker process for the interpreters: some files crash them (a segfault kills the process)


def interpreter(name: str):
    if name == "litert":
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    import tensorflow as tf

    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
    return tf.lite.Interpreter


def run_isolated(name: str, data: bytes, inputs: dict) -> np.ndarray:
    """``run_tflite`` with interpreter ``name`` in a worker process; RuntimeError if it crashed."""
    global _pool
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import get_context

    if _pool is None:
        _pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"))
    try:
        return _pool.submit(run_tflite, name, data, inputs).result()
    except BrokenProcessPool:
        _pool = None
        raise RuntimeError("the interpreter crashed") from None


def run_tflite(name: str, data: bytes, inputs: dict) -> np.ndarray:
    cls = interpreter(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.tflite"
        path.write_bytes(data)
        it = cls(model_path=str(path), num_threads=1)
        it.allocate_tensors()
        runner = it.get_signature_runner()
        out = runner(**inputs)
        return np.asarray(next(iter(out.values())))


def try_scheme(op: str, bits: int, granularity: str, dynamic: bool, block_size: int | None = None) -> dict:
    """Quantize ``op``'s weights with the scheme (bypassing SUPPORTED) and run the file on both interpreters."""
    from irc.backends.tflite.backend import emit
    from irc.ir.interpreter import run
    from irc.passes.quantize.weights import WeightScheme, _quantize_node, channel_axis

    graph, node = lowered(op)
    inputs = sample(graph)
    (expect_float,) = run(graph, inputs).values()
    scheme = WeightScheme(bits, granularity, block_size if granularity == "blockwise" else None, dynamic)
    w = node.operands[1 if op != "gather" else 0]
    axis = channel_axis(node)
    if granularity != "per-tensor" and axis is None or granularity == "blockwise" and (
            w.type.rank != 2 or w.type.shape[1 - axis] % block_size):
        return {"runs": False, "why": "not representable"}
    _quantize_node(graph, node, scheme)
    (expect,) = run(graph, inputs).values()
    span = float(np.ptp(expect_float)) or 1.0
    result = {"runs": True}
    try:
        data = emit(graph, passes="O0")
    except Exception as e:  # noqa: BLE001 (a table of what happens)
        return {"runs": False, "why": f"emit: {e}"}
    for name in INTERPRETERS:
        try:
            got = run_isolated(name, data, inputs)
        except Exception as e:  # noqa: BLE001
            _fail(result, f"{name}: {str(e).splitlines()[0][:120]}")
            continue
        err = float(np.abs(got.reshape(expect.shape) - expect).max()) / span
        result[name] = err
        if not err <= TOLERANCE[dynamic]:
            _fail(result, f"{name}: error {err:.3g} of the output range")
    result["weight error"] = float(np.abs(expect - expect_float).max()) / span
    return result


def _fail(result: dict, why: str) -> None:
    result["runs"] = False
    result["why"] = f"{result['why']}; {why}" if "why" in result else why


def matrix(block_sizes=(32, 64, 128, 256)) -> list[dict]:
    from irc.passes.quantize.weights import BITS, GRANULARITIES, OPS

    rows = []
    for op in OPS:
        for bits in BITS:
            for dynamic in (False, True):
                for granularity in GRANULARITIES:
                    sizes = block_sizes if granularity == "blockwise" else (None,)
                    for size in sizes:
                        r = try_scheme(op, bits, granularity, dynamic, size)
                        rows.append({"op": op, "bits": bits, "granularity": granularity, "block_size": size,
                                     "dynamic": dynamic, **r})
                        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| op | bits | kind | granularity | runs | litert err | tf.lite err | why not |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        gran = r["granularity"] + (f" {r['block_size']}" if r["block_size"] else "")
        litert, tfl = (f"{r[k]:.2g}" if k in r else "" for k in ("litert", "tf.lite"))
        lines.append(f"| {r['op']} | {r['bits']} | {'dynamic' if r['dynamic'] else 'weight-only'} | {gran} | "
                     f"{'yes' if r['runs'] else 'no'} | {litert} | {tfl} | {r.get('why', '')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = matrix()
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
