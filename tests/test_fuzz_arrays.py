"""Fuzzing the array readers: calibration data (``--calibration``), ``irc run`` inputs and ``--weights`` files.

Any bytes in the file give checked arrays or an IrcError naming the file, and never unpickle anything (the seeds
include a pickle that prints a marker when loaded). Arrays of any dtype, shape and name, given as a file or in
memory, are checked against the model's inputs the same way. The budget is tests/bad_inputs/fuzzing.py's.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from irc.errors import IrcError
from irc.ir.interpreter import bind_inputs
from irc.ir.parser import parse
from irc.npfiles import load_arrays
from irc.passes.quantize import load_calibration
from tests.bad_inputs.fuzzing import CORPUS, bounded, fuzz_settings, mutated

GRAPH = parse((CORPUS / "good" / "tiny.irc").read_text(), "tiny.irc")  # one input, x: f32[1,4]
SEEDS = [path.read_bytes() for path in [CORPUS / "good" / "calibration.npz", CORPUS / "inputs" / "truncated.npy",
                                        CORPUS / "calibration" / "pickled_object.npz",
                                        CORPUS / "inputs" / "pickled_object.npy"]]
SEEDS.append(SEEDS[1] + bytes(8))  # a whole .npy: the truncated one with its missing bytes back
MARKER = "IRC-UNPICKLED-THIS-FILE"


def in_a_file(data: bytes, suffix: str, fn, *args):
    """``fn(path, *args)`` on ``data`` written to a file; nothing it prints may be the unpickling marker."""
    printed = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(printed):
        path = Path(tmp) / f"fuzz{suffix}"
        path.write_bytes(data)
        result = bounded(fn, path, *args)
    assert MARKER not in printed.getvalue()
    if isinstance(result, IrcError):
        assert str(path) in str(result), f"the error does not name the file: {result}"
    return result


def check_samples(result) -> None:
    if isinstance(result, IrcError):
        return
    assert result and all(set(sample) == {"x"} for sample in result)
    for sample in result:
        assert sample["x"].shape == (1, 4), sample["x"].shape


@fuzz_settings()
@given(st.sampled_from(SEEDS).flatmap(mutated), st.sampled_from([".npz", ".npy"]))
def test_calibration_files(data, suffix):
    check_samples(in_a_file(data, suffix, load_calibration, GRAPH))


@fuzz_settings()
@given(st.sampled_from(SEEDS).flatmap(mutated))
def test_run_inputs_and_weights_files(data):
    arrays = in_a_file(data, ".npy", load_arrays, "input array")
    if isinstance(arrays, np.ndarray):
        bound = bounded(bind_inputs, GRAPH, [arrays])
        assert isinstance(bound, IrcError) or next(iter(bound.values())).shape == (1, 4)
    elif isinstance(arrays, dict):
        assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())


names = st.sampled_from(["x", "y", "", "x.npy", "arr_0", "\u00e9"]) | st.text(max_size=4)
arrays = hnp.arrays(hnp.scalar_dtypes() | hnp.unicode_string_dtypes(), hnp.array_shapes(min_dims=0, max_dims=4,
                                                                                          max_side=5))


@fuzz_settings()
@given(st.dictionaries(names, arrays, max_size=3) | arrays)
def test_any_arrays_in_memory(source):
    check_samples(bounded(load_calibration, source, GRAPH))


@fuzz_settings()
@given(st.dictionaries(names.filter(lambda n: n and "/" not in n and n not in ("file", "allow_pickle")), arrays,
                      max_size=3))  # np.savez's own parameter names cannot be array names
def test_any_arrays_in_an_npz(source):
    buffer = io.BytesIO()
    np.savez(buffer, **source)
    check_samples(in_a_file(buffer.getvalue(), ".npz", load_calibration, GRAPH))
