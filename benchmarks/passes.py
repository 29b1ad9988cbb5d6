"""How the default pass pipeline scales with graph size: synthetic graphs of 1k, 10k and 100k nodes.

    .venv/bin/python benchmarks/passes.py                       # the tflite pipeline at 1k, 10k, 100k nodes
    .venv/bin/python benchmarks/passes.py --sizes 1000,10000 --pipeline O2 --per-pass

Each graph chains a block shaped like what TF emits for a conv layer, with work for every pass: conv2d,
batch_norm, a mul/add batch norm, relu6 (fold-batchnorm, fuse), x*1 and transpose/reshape pairs (canonicalize), a
constant subexpression (fold-constants), a duplicated exp (cse), an unused branch (dce) and a residual add. The
table gives the pipeline's time per node at each size (pass time, and with the verifier that runs after every
pass); about the same ms per node at every size means linear time. ``--per-pass`` adds each pass's ms per node.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

BLOCK_NODES = 34  # nodes one block adds (checked when building)


def build(nodes: int, channels: int = 4, seed: int = 0):
    """A synthetic graph of about ``nodes`` nodes."""
    from irc.ir.graph import Graph
    from irc.ir.types import DType, TensorType

    rng = np.random.default_rng(seed)
    g = Graph("synthetic")
    x = g.add_input("x", TensorType(DType.f32, (1, 4, 4, channels)))

    def vec(low=-1.0, high=1.0):
        return g.const(rng.uniform(low, high, channels).astype(np.float32))

    ones = g.const(np.ones(channels, np.float32))
    while len(g) + BLOCK_NODES <= nodes:
        start = len(g)
        w = g.const(rng.normal(0, 0.5, (1, 1, channels, channels)).astype(np.float32))
        y = g.op("conv2d", x, w)
        y = g.op("batch_norm", y, vec(0.5, 1.5), vec(), vec(), vec(0.5, 1.5))
        y = g.op("relu6", g.op("mul", y, ones))
        y = g.op("transpose", g.op("transpose", y, perm=(0, 3, 1, 2)), perm=(0, 2, 3, 1))
        y = g.op("reshape", g.op("reshape", y, shape=(1, -1)), shape=(1, 4, 4, channels))
        w2 = g.const(rng.normal(0, 0.5, (1, 1, channels, channels)).astype(np.float32))
        z = g.op("depthwise_conv2d", y, g.const(rng.normal(0, 0.5, (1, 1, channels, 1)).astype(np.float32)))
        scale = g.op("mul", vec(0.5, 1.5), g.op("rsqrt", vec(0.5, 1.5)))  # a constant subexpression
        z = g.op("add", g.op("mul", z, scale), vec())  # batch norm as TF decomposes it
        z = g.op("conv2d", g.op("relu", z), w2)
        twice = g.op("add", g.op("exp", g.op("neg", z)), g.op("exp", g.op("neg", z)))  # duplicates for cse
        g.op("sigmoid", twice)  # unused
        x = g.op("add", x, g.op("tanh", g.op("add", z, twice)))
        assert len(g) - start <= BLOCK_NODES
    g.set_output("y", x)
    return g


def measure(nodes: int, pipeline: str) -> dict:
    from irc.passes import run_pipeline

    graph = build(nodes)
    size = len(graph)
    started = time.perf_counter()
    report = run_pipeline(graph, pipeline, crash_reproducer=False)
    wall = time.perf_counter() - started
    return {
        "nodes": size, "nodes_after": len(graph), "pass_ms": report.pass_seconds * 1e3,
        "verify_ms": report.verify_seconds * 1e3, "wall_ms": wall * 1e3,
        "per_pass_ms": {f"{r.index + 1}. {r.spec}": r.seconds * 1e3 for r in report.records},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="graph sizes in nodes, comma-separated")
    parser.add_argument("--pipeline", default="tflite", help="the pipeline to time (default: tflite)")
    parser.add_argument("--per-pass", action="store_true", help="also show each pass's ms per node")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [measure(n, args.pipeline) for n in sizes]
    print(f"pipeline: {args.pipeline}")
    print(f"{'nodes':>8} {'after':>8} {'passes ms':>10} {'ms/node':>8} {'+verify ms':>11} {'ms/node':>8}")
    for r in rows:
        print(f"{r['nodes']:>8} {r['nodes_after']:>8} {r['pass_ms']:>10.1f} {r['pass_ms'] / r['nodes']:>8.4f} "
              f"{r['wall_ms']:>11.1f} {r['wall_ms'] / r['nodes']:>8.4f}")
    if args.per_pass:
        print("\nms per node, by pass:")
        for name in rows[0]["per_pass_ms"]:
            print(f"  {name:<48}" + "".join(f"{r['per_pass_ms'][name] / r['nodes']:>9.4f}" for r in rows))
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        growth = (last["wall_ms"] / last["nodes"]) / (first["wall_ms"] / first["nodes"])
        print(f"\nms per node grows {growth:.2f}x from {first['nodes']} to {last['nodes']} nodes "
              f"({last['nodes'] / first['nodes']:.0f}x the graph): {'linear' if growth < 2 else 'NOT linear'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"pipeline": args.pipeline, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
