"""Very large and very deep graphs: a 10k-node chain and a 100k-node graph go through dump, opt -O2 and lower to
TFLite (and back) without recursion-limit errors, at Python's default recursion limit.

Each graph is written as .irc text and run through the CLI in-process, as a user would; the 100k-node runs take
about a minute each (most of it parsing 4 MB of text) and are marked slow. Size limits: constant folding leaves
results above its max-size alone without computing them.
"""

from __future__ import annotations

import sys
import time
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

from irc.cli import main
from irc.ir.interpreter import random_inputs, run
from irc.ir.parser import parse
from irc.ir.printer import print_graph
from irc.passes import run_pipeline
from tests.tflite_subprocess import run_tflite

CONST = "%c = const() {value = dense<f32[8] [0.5, -0.25, 0.125, 1.0, -1.0, 0.75, 0.0, 2.0]>} : f32[8]"


def chain(n: int) -> str:
    """``n`` nodes, each reading the one before: tanh, add, relu, mul, sigmoid, over and over."""
    lines = ["graph @chain(%x: f32[1,8]) {", "  " + CONST]
    prev = "%x"
    ops = ["tanh", "add", "relu", "mul", "sigmoid"]
    for i in range(n - 1):
        op = ops[i % len(ops)]
        operands = f"{prev}, %c" if op in ("add", "mul") else prev
        lines.append(f"  %{i} = {op}({operands}) : f32[1,8]")
        prev = f"%{i}"
    return "\n".join([*lines, f"  return {prev} as \"y\"", "}", ""])


def dag(n: int) -> str:
    """``n`` nodes, each reading the one before and one up to 13 back: deep and full of joins."""
    lines = ["graph @dag(%x: f32[1,8]) {", "  " + CONST]
    values = ["%x"]
    for i in range(n - 1):
        a, b = values[-1], values[max(0, len(values) - 2 - i % 13)]
        kind = i % 4
        if kind == 0:
            lines.append(f"  %{i} = add({a}, {b}) : f32[1,8]")
        elif kind == 1:
            lines.append(f"  %{i} = tanh({a}) : f32[1,8]")
        elif kind == 2:
            lines.append(f"  %{i} = mul({a}, %c) : f32[1,8]")
        else:
            lines.append(f"  %{i} = maximum({a}, {b}) : f32[1,8]")
        values.append(f"%{i}")
    return "\n".join([*lines, f"  return {values[-1]} as \"y\", {values[len(values) // 2]} as \"mid\"", "}", ""])


def invoke(*args) -> float:
    """Runs one command in-process; returns its time in seconds. Fails on any error (a RecursionError included)."""
    started = time.perf_counter()
    result = CliRunner().invoke(main, [str(a) for a in args])
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output[-2000:]
    return round(seconds, 2)


def check_same_numbers(original, path) -> None:
    """The graph in ``path`` (irc text) computes what ``original`` computes, on random inputs."""
    feed = random_inputs(original, seed=0)
    want = run(original, feed)
    got = run(parse(path.read_text(), str(path)), feed)
    for name, array in want.items():
        np.testing.assert_allclose(got[name], array, rtol=1e-4, atol=1e-5)


def dump_and_opt(text: str, tmp_path, record_property) -> None:
    assert sys.getrecursionlimit() <= 1000  # Python's default: nothing may raise it to get through
    model = tmp_path / "model.irc"
    model.write_text(text)
    record_property("dump", invoke("dump", model, "-o", tmp_path / "dump.irc"))
    record_property("opt -O2", invoke("opt", model, "-O2", "-o", tmp_path / "opt.irc"))
    original = parse(text, "model.irc")
    assert (tmp_path / "dump.irc").read_text() == print_graph(original)
    check_same_numbers(original, tmp_path / "opt.irc")


def lower_and_read_back(text: str, tmp_path, record_property) -> None:
    assert sys.getrecursionlimit() <= 1000
    model = tmp_path / "model.irc"
    model.write_text(text)
    record_property("lower tflite", invoke("lower", model, "--emit", "tflite", "-o", tmp_path / "m.tflite"))
    record_property("dump .tflite", invoke("dump", tmp_path / "m.tflite", "-o", tmp_path / "back.irc"))
    original = parse(text, "model.irc")
    check_same_numbers(original, tmp_path / "back.irc")
    # and in TFLite's own interpreter (a child process: a kernel abort fails this test, not pytest)
    feed = random_inputs(original, seed=0)
    want = run(original, feed)
    got = run_tflite(tmp_path / "m.tflite", feed)
    for name, array in want.items():
        np.testing.assert_allclose(got[name], array, rtol=1e-4, atol=1e-5)


def test_a_10k_node_chain_through_dump_and_opt(tmp_path, record_property):
    dump_and_opt(chain(10_000), tmp_path, record_property)


def test_a_10k_node_chain_lowered_to_tflite_and_read_back(tmp_path, record_property):
    lower_and_read_back(chain(10_000), tmp_path, record_property)


@pytest.mark.slow
def test_a_100k_node_graph_through_dump_and_opt(tmp_path, record_property):
    dump_and_opt(dag(100_000), tmp_path, record_property)


@pytest.mark.slow
def test_a_100k_node_graph_lowered_to_tflite_and_read_back(tmp_path, record_property):
    lower_and_read_back(dag(100_000), tmp_path, record_property)


def test_a_10k_node_chain_through_every_pass_and_the_verifier():
    graph = parse(chain(10_000), "chain.irc")
    report = run_pipeline(graph, "O3,tflite,xla,cuda")
    assert report.records and len(graph) > 5000


def test_folding_leaves_huge_results_alone():
    """broadcast_to of a small constant to 10^10 elements: fold-constants keeps the node and allocates nothing."""
    graph = parse("""graph @g(%x: f32[1]) {
      %c = const() {value = dense<f32[1] [2.0]>} : f32[1]
      %0 = broadcast_to(%c) {shape = [100000, 100000]} : f32[100000,100000]
      %1 = sum(%0) {axes = [0, 1]} : f32[]
      %2 = add(%x, %1) : f32[1]
      return %2 as "y"
    }""", "huge.irc")
    tracemalloc.start()
    try:
        run_pipeline(graph, "fold-constants{max-size=1000000}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "broadcast_to" in graph.op_histogram()
    assert peak < 64 * 2**20
