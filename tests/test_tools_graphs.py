"""Graphs shared by the tools tests (diff, check, viz, stats): small, built in code, with Keras-like locations."""

from __future__ import annotations

import random

import numpy as np

from irc.ir.graph import Graph, Location


def mini_resnet(blocks: int = 3, channels: int = 8, seed: int = 0, fused: bool = False) -> Graph:
    """A small ResNet: stem conv, ``blocks`` residual blocks, global average pool, dense, softmax.

    ``fused=True`` builds what a converter makes of it: bias and ReLU fused into the convolutions (the bias as a
    third operand, ReLU as ``tfl.conv2d {fused_activation = "relu"}``), with the same locations on the fused nodes.
    """
    rng = np.random.default_rng(seed)
    g = Graph("mini_resnet")
    x = g.add_input("image", _t((1, 16, 16, 3)))

    def w(*shape):
        return g.const(rng.standard_normal(shape).astype(np.float32) * 0.1)

    def conv(v, cin, cout, layer, relu=True):
        names = [f"model/{layer}/Conv2D", f"model/{layer}/BiasAdd"] + ([f"model/{layer}/Relu"] if relu else [])
        filt, bias = w(3, 3, cin, cout), w(cout)
        if fused:
            loc = Location(tuple(names), (layer,))
            attrs = {"padding": "SAME", "fused_activation": "relu"} if relu else {"padding": "SAME"}
            return g.add("tfl.conv2d" if relu else "conv2d", [v, filt, bias], attrs, loc=loc).result
        y = g.op("conv2d", v, filt, padding="SAME", loc=Location.of(names[0], layer))
        y = g.op("add", y, bias, loc=Location.of(names[1], layer))
        return g.op("relu", y, loc=Location.of(names[2], layer)) if relu else y

    h = conv(x, 3, channels, "stem")
    for b in range(blocks):
        y = conv(h, channels, channels, f"block{b}_conv1")
        y = conv(y, channels, channels, f"block{b}_conv2", relu=False)
        h = g.op("add", h, y, loc=Location.of(f"model/block{b}_add/add", f"block{b}_add"))
        h = g.op("relu", h, loc=Location.of(f"model/block{b}_out/Relu", f"block{b}_out"))
    h = g.op("mean", h, axes=(1, 2), loc=Location.of("model/pool/Mean", "pool"))
    h = g.op("matmul", h, w(channels, 4), loc=Location.of("model/dense/MatMul", "dense"))
    h = g.op("softmax", h, loc=Location.of("model/dense/Softmax", "dense"))
    g.set_output("probs", h)
    return g


def _t(shape):
    from irc.ir.types import DType, TensorType

    return TensorType(DType.f32, shape)


def renumbered(graph: Graph, seed: int = 0) -> Graph:
    """The same graph built in a different (random, still topological) order, so every value prints renumbered."""
    rng = random.Random(seed)
    new = Graph(graph.name)
    mapping = {}
    for v in graph.inputs:
        mapping[v] = new.add_input(v.name, v.type)
    waiting = {n: len({id(v.producer) for v in n.operands if v.producer is not None}) for n in graph.nodes}
    ready = [n for n, count in waiting.items() if count == 0]
    while ready:
        node = ready.pop(rng.randrange(len(ready)))
        clone = new.add(node.op, [mapping[v] for v in node.operands], dict(node.attrs),
                        types=[r.type for r in node.results], loc=node.loc)
        for old, fresh in zip(node.results, clone.results):
            mapping[old] = fresh
        for user in {id(u): u for r in node.results for u in r.users}.values():
            waiting[user] -= 1
            if waiting[user] == 0:
                ready.append(user)
    for name, v in graph.outputs.items():
        new.set_output(name, mapping[v])
    return new
