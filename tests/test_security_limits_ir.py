"""Issue 14, part D: small IR text and .tflite files that made irc hang, balloon or crash, run as a user would.

Each crafted file is built here and run through the real console script (tests/hostile.py). A hostile one must be
refused with one line naming the file and the place, within 10 s and 300 MB; a legitimate but large one (100,000
graph inputs, one tensor listed as an output 10,000 times) must be read correctly within the same budgets.
"""

from __future__ import annotations

import numpy as np
import pytest

from irc.formats.tflite import flatbuffer
from irc.ir.types import DType
from tests.hostile import MAX_PEAK_MB, MAX_SECONDS, assert_refused, run_irc


def run_ok(args, cwd):
    """Runs irc on a legitimate but large input and checks the promise for it: done, in under 10 s of processor
    time (what the input makes irc do; the shared test machine's wall clock is noise) and in under 300 MB."""
    outcome = run_irc(args, cwd=cwd)
    assert outcome.returncode == 0, outcome.describe()
    assert outcome.cpu_seconds < MAX_SECONDS and outcome.peak_mb < MAX_PEAK_MB, outcome.describe()
    return outcome


# ---- crafted files ---------------------------------------------------------------------------------------------
def many_inputs_irc(count: int) -> str:
    params = ", ".join(f"%x{i}: f32[1]" for i in range(count))
    return f'graph @g({params}) {{\n  %0 = add(%x0, %x{count - 1}) : f32[1]\n  return %0 as "y"\n}}\n'


def tflite_model(tensors, operators, inputs, outputs, codes, buffers=()) -> bytes:
    """A one-subgraph .tflite file, written by irc's own flatbuffer writer (which validates it)."""
    model = flatbuffer.TFLModel(
        operator_codes=[flatbuffer.OperatorCode(code) for code in codes],
        subgraphs=[flatbuffer.SubGraph(tensors=tensors, inputs=inputs, outputs=outputs, operators=operators)],
        buffers=[flatbuffer.Buffer(), *(flatbuffer.Buffer(np.asarray(b)) for b in buffers)])
    return flatbuffer.write_model(model)


def repeated_outputs_tflite(times: int) -> bytes:
    """x -> RELU -> y, with y listed ``times`` times as a subgraph output (TFLite allows it)."""
    tensors = [flatbuffer.Tensor("x", [1, 4]), flatbuffer.Tensor("y", [1, 4])]
    relu = flatbuffer.Operator(0, inputs=[0], outputs=[1])
    return tflite_model(tensors, [relu], inputs=[0], outputs=[1] * times, codes=["RELU"])


def tile_tflite(multiple: int) -> bytes:
    """TILE of a one-element int32 constant by ``multiple``: shape arithmetic the reader evaluates as it reads."""
    tensors = [flatbuffer.Tensor("x", [1], "INT32"), flatbuffer.Tensor("one", [1], "INT32", buffer=1),
               flatbuffer.Tensor("multiples", [1], "INT32", buffer=2),
               flatbuffer.Tensor("tiled", [multiple], "INT32"), flatbuffer.Tensor("y", [1], "INT32")]
    tile = flatbuffer.Operator(0, inputs=[1, 2], outputs=[3])
    # x + tiled[:1]: the tiled constant feeds the graph, as shape arithmetic does
    begin_size = [flatbuffer.Tensor("begin", [1], "INT32", buffer=3), flatbuffer.Tensor("size", [1], "INT32", buffer=4)]
    tensors += begin_size + [flatbuffer.Tensor("head", [1], "INT32")]
    cut = flatbuffer.Operator(1, inputs=[3, 5, 6], outputs=[7])
    add = flatbuffer.Operator(2, inputs=[0, 7], outputs=[4])
    return tflite_model(tensors, [tile, cut, add], inputs=[0], outputs=[4], codes=["TILE", "SLICE", "ADD"],
                        buffers=[np.int32([7]), np.int32([multiple]), np.int32([0]), np.int32([1])])


# ---- IR text -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["dump", "m.irc", "-o", "out.irc"], ["run", "m.irc", "--random", "0"]])
def test_a_hundred_thousand_graph_inputs_read_in_linear_time(command, tmp_path):
    (tmp_path / "m.irc").write_text(many_inputs_irc(100_000))
    run_ok(command, tmp_path)
    if command[0] == "dump":
        text = (tmp_path / "out.irc").read_text()
        assert "%x99999: f32[1]" in text and text.count(": f32[1]") == 100_001


def test_a_five_megabyte_string_literal_costs_about_its_size(tmp_path):
    text = 'graph @g(%x: f32[1]) {\n  %0 = relu(%x) {s = "' + "a" * 5_000_000 + '"} : f32[1]\n  return %0 as "y"\n}\n'
    (tmp_path / "m.irc").write_text(text)
    outcome = run_irc(["verify", "m.irc"], cwd=tmp_path)
    assert_refused(outcome, fragment="m.irc: 'relu': unknown attribute 's'")  # read in full, then verified


def test_a_five_megabyte_string_of_escapes_with_a_bad_one_at_the_end(tmp_path):
    text = 'graph @g(%x: f32[1]) {\n  %0 = relu(%x) {s = "' + "\\n" * 2_500_000 + '\\q"} : f32[1]\n  return %0 as "y"\n}\n'
    (tmp_path / "m.irc").write_text(text)
    outcome = run_irc(["dump", "m.irc"], cwd=tmp_path)
    assert_refused(outcome, fragment="m.irc:2:")
    assert len(outcome.stderr) < 300  # the literal is not repeated in the message


@pytest.mark.parametrize("literal, at, fragment", [  # ``at``: where in the literal the error must point
    ("dense<i8[2] [300, -300]>", "300", "300 is out of range for i8 (-128 to 127)"),
    ("dense<u8[2] [255, -1]>", "-1", "-1 is out of range for u8 (0 to 255)"),
    ("dense<i64[1] [9223372036854775808]>", "9223", "9223372036854775808 is out of range for i64"),
    ("dense<i64[1] [" + "9" * 5000 + "]>", "9", "9" * 37 + "... is out of range for i64"),
    ("dense<i32[2] [nan, 1]>", "nan", "an i32 tensor holds integers, not nan"),
    ("dense<i32[1] [1.5]>", "1.5", "an i32 tensor holds integers, not 1.5"),
    ("dense<bool[2] [true, 2]>", "2]", "a bool tensor holds true or false, not 2"),
    ("dense<f16[2] [65504.0, 65520.0]>", "65520", "65520.0 overflows f16 to infinity"),
    ("dense<bf16[1] [3.4e38]>", "3.4e38", "3.4e38 overflows bf16 to infinity"),
    ("dense<f32[1] [1e39]>", "1e39", "1e39 overflows f32 to infinity"),
    ("dense<f64[1] [1e400]>", "1e400", "1e400 overflows f64 to infinity"),
    ("dense<str[1] [1]>", "1]", "a str tensor holds strings, not 1"),
    ("dense<f32[1] [" + "[" * 50_000 + "1.0" + "]" * 50_000 + "]>", "[[", "unexpected '['"),
    ("dense<f32[2] [1.0, 2.0, 3.0]>", "3.0", "tensor has more than 2 values"),
])
def test_tensor_literals_are_exact_or_refused_where_they_stand(literal, at, fragment, tmp_path):
    prefix = "  %0 = const() {value = "
    (tmp_path / "m.irc").write_text(f'graph @g() {{\n{prefix}{literal}}} : f32[1]\n  return %0 as "y"\n}}\n')
    column = len(prefix) + literal.index(at, literal.index("] [") + 3) + 1
    outcome = run_irc(["dump", "m.irc"], cwd=tmp_path)
    assert_refused(outcome, codes=(1,), fragment=f"m.irc:2:{column}: {fragment}")


@pytest.mark.parametrize("attr, fragment", [
    ("{shape = [99999999999999999999999, 4]}", "m.irc:2:30: integer 99999999999999999999999 does not fit in 64 bits"),
    ("{shape = [1e400, 4]}", "m.irc:2:30: 1e400 is beyond the range of a 64-bit float"),
])
def test_attribute_numbers_fit_64_bits(attr, fragment, tmp_path):
    (tmp_path / "m.irc").write_text(f'graph @g(%x: f32[1,4]) {{\n  %0 = reshape(%x) {attr} : f32[1,4]\n'
                                    f'  return %0 as "y"\n}}\n')
    assert_refused(run_irc(["dump", "m.irc"], cwd=tmp_path), codes=(1,), fragment=fragment)


def test_an_opaque_ops_attribute_nested_50000_deep(tmp_path):
    """An opaque op keeps attributes it does not know, which the printer walks recursively: nesting is bounded."""
    deep = "[" * 50_000 + "1" + "]" * 50_000
    (tmp_path / "m.irc").write_text(f'graph @g(%x: f32[1]) {{\n  %0 = "tf.Foo"(%x) {{node_def = b64"", deep = {deep}}}'
                                    f' : f32[1]\n  return %0 as "y"\n}}\n')
    outcome = run_irc(["dump", "m.irc"], cwd=tmp_path)
    assert_refused(outcome, codes=(1,), fragment="m.irc:2:50014: attribute lists nest more than 32 deep")


def test_literals_at_every_dtypes_bounds_read_exactly():
    from irc.ir.parser import parse

    cases = {"i8": [-128, 127], "u8": [0, 255], "i16": [-32768, 32767], "i32": [-2**31, 2**31 - 1],
             "i64": [-2**63, 2**63 - 1], "bool": [True, False],
             # the largest finite value, one that rounds down to it, and infinity written as such
             "f16": [65504.0, -65519.0, "inf"], "bf16": [3.3895313892515355e38, 3.3961e38, "-inf"],
             "f32": [3.4028234663852886e38, -3.4028235e38, "nan"], "f64": [1.7976931348623157e308, "-inf"]}
    for dtype, values in cases.items():
        items = ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in values)
        g = parse(f'graph @g() {{\n  %0 = const() {{value = dense<{dtype}[{len(values)}] [{items}]>}} : '
                  f'{dtype}[{len(values)}]\n  return %0 as "y"\n}}\n')
        got = g.outputs["y"].constant
        want = np.array([float(v) if isinstance(v, str) else v for v in values], DType.parse(dtype).numpy)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (dtype, got, want)
        if dtype[0] in "fb" and dtype != "bool":
            assert np.isfinite(got.astype(np.float64)).tolist() == [not isinstance(v, str) for v in values]


# ---- irc run -----------------------------------------------------------------------------------------------------
BROADCAST = """graph @g(%x: f32[1]) {
  %0 = broadcast_to(%x) {shape = [16384, 16384]} : f32[16384,16384]
  return %0 as "y"
}
"""


def test_run_sizes_each_result_before_computing_it(tmp_path):
    (tmp_path / "m.irc").write_text(BROADCAST)
    outcome = run_irc(["run", "m.irc", "--random", "0"], cwd=tmp_path)
    assert_refused(outcome, codes=(1,), fragment="broadcast_to")
    assert "1 GiB, over irc's memory limit of 256 MiB" in outcome.stderr, outcome.describe()


def test_raising_max_memory_lets_an_honest_computation_through(tmp_path):
    (tmp_path / "m.irc").write_text(BROADCAST.replace("16384", "4096"))  # 64 MiB
    refused = run_irc(["--max-memory", "32M", "run", "m.irc", "--random", "0"], cwd=tmp_path)
    assert_refused(refused, codes=(1,), fragment="over irc's memory limit of 32 MiB")
    outcome = run_irc(["--max-memory", "128M", "run", "m.irc", "--random", "0"], cwd=tmp_path)
    assert outcome.returncode == 0 and "y: float32[4096, 4096]" in outcome.stdout, outcome.describe()


def test_random_inputs_are_sized_before_they_are_made(tmp_path):
    (tmp_path / "m.irc").write_text('graph @g(%x: f32[4611686018427387904,4]) {\n  %0 = relu(%x) : '
                                    'f32[4611686018427387904,4]\n  return %0 as "y"\n}\n')
    outcome = run_irc(["run", "m.irc", "--random", "0"], cwd=tmp_path)
    assert_refused(outcome, codes=(1,), fragment="m.irc: random input 'x' (f32[4611686018427387904, 4]) would take")


def test_a_negative_random_seed_is_bad_usage(tmp_path):
    (tmp_path / "m.irc").write_text(BROADCAST.replace("16384", "2"))
    outcome = run_irc(["run", "m.irc", "--random", "-1"], cwd=tmp_path)
    assert_refused(outcome, codes=(2,), fragment="--random")


# ---- .tflite -----------------------------------------------------------------------------------------------------
def test_one_tensor_listed_as_an_output_ten_thousand_times(tmp_path):
    (tmp_path / "m.tflite").write_bytes(repeated_outputs_tflite(10_000))
    run_ok(["dump", "m.tflite", "-o", "m.irc"], tmp_path)
    text = (tmp_path / "m.irc").read_text()
    assert text.count(' as "y') == 10_000 and 'as "y_1_9999"' in text


def test_tflite_shape_arithmetic_is_evaluated_only_at_the_size_of_shapes(tmp_path):
    """A TILE of a constant into 2^28 elements: the reader leaves it to run time (where it is sized) instead of
    computing a gigabyte while reading; a small one is evaluated and read as before."""
    (tmp_path / "m.tflite").write_bytes(tile_tflite(2**28))
    run_ok(["dump", "m.tflite", "-o", "m.irc"], tmp_path)
    assert "tile(" in (tmp_path / "m.irc").read_text()
    outcome = run_irc(["run", "m.tflite", "--random", "0"], cwd=tmp_path)
    assert_refused(outcome, codes=(1,), fragment="m.tflite: running node 'tile' at tiled: its result (i32[268435456]) "
                                                 "would take 1 GiB, over irc's memory limit of 256 MiB")
    (tmp_path / "small.tflite").write_bytes(tile_tflite(3))
    assert "y: int32[1] [" in run_ok(["run", "small.tflite", "--random", "0"], tmp_path).stdout


def test_a_shape_operand_of_a_million_values_is_refused_by_operator(tmp_path):
    tensors = [flatbuffer.Tensor("x", [1, 4]), flatbuffer.Tensor("shape", [1 << 20], "INT32", buffer=1),
               flatbuffer.Tensor("y", [4])]
    reshape = flatbuffer.Operator(0, inputs=[0, 1], outputs=[2])
    (tmp_path / "m.tflite").write_bytes(tflite_model(tensors, [reshape], inputs=[0], outputs=[2], codes=["RESHAPE"],
                                                     buffers=[np.ones(1 << 20, np.int32)]))
    outcome = run_irc(["dump", "m.tflite"], cwd=tmp_path)
    assert_refused(outcome, codes=(1,), fragment="m.tflite: operator 0 (RESHAPE): its new shape has 1,048,576 values")
