"""Issue 14, part C: small hostile TensorFlow-side files cannot make irc hang, take gigabytes or crash.

Each file is built here, without TensorFlow (tests/tf_crafted.py), and run through the real console script
(tests/hostile.py): the refusal is exit 1, one ``error:`` line naming the file and the place (node, checkpoint
key), within 10 s and 300 MB, so before TensorFlow is ever imported. Where a limit can be raised, an honest input
of that size goes through once it is (``--max-graph-nodes``, ``--max-memory``).
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from irc import limits
from irc.errors import InputError
from irc.formats.tfproto import MESSAGES
from irc.npfiles import load_arrays
from tests import tf_crafted as craft
from tests.hostile import assert_refused, run_irc
from tests.tf_crafted import KERNEL, real_rows, with_entry, zip_bomb

TINY = craft.GOOD_SAVEDMODEL.parent / "tiny.irc"


def dump(tmp_path, model, *options):
    return run_irc([*options, "dump", model, "-o", tmp_path / "out.irc"], cwd=tmp_path)


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---- function inlining ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("calls", ["direct", "partitioned"])
def test_functions_that_call_each_other_twice_twenty_deep_are_refused_before_inlining(tmp_path, calls):
    model = write(tmp_path, "calls.pb", craft.call_tree_graphdef(20, calls=calls))
    assert model.stat().st_size < 5000
    outcome = dump(tmp_path, model)
    assert_refused(outcome, codes=(1,), fragment="inlining the graph's function calls would make 1,048,578 nodes "
                                                 "from the 44 in the input, more than 100 times as many")
    assert "calls.pb" in outcome.stderr and "--max-graph-nodes" in outcome.stderr


def test_recursive_functions_are_refused(tmp_path):
    graph = MESSAGES["GraphDef"].FromString(craft.call_tree_graphdef(2))
    for node in graph.library.function[1].node_def:  # f1 calls f0, which calls f1
        node.op = "f0"
    outcome = dump(tmp_path, write(tmp_path, "recursive.pb", graph.SerializeToString()))
    assert_refused(outcome, codes=(1,), fragment="function 'f0' calls itself (through 'f1')")


def test_a_big_expansion_goes_through_when_the_node_limit_is_given(tmp_path):
    model = write(tmp_path, "calls.pb", craft.call_tree_graphdef(14))  # 16,384 Relus from 46 nodes
    assert_refused(dump(tmp_path, model), codes=(1,), fragment="more than 100 times as many")
    assert_refused(dump(tmp_path, model, "--max-graph-nodes", "10000"), codes=(1,),
                   fragment="would make more than 10,000 nodes")
    outcome = dump(tmp_path, model, "--max-graph-nodes", "100000")
    assert outcome.returncode == 0, outcome.describe()
    assert (tmp_path / "out.irc").read_text().count("= relu(") == 2**14 + 1


def test_inlining_is_counted_from_the_input(tmp_path):
    """In-process: the count is exact and made before any node is, so the limit is met to the node."""
    from irc.frontends.savedmodel_reader import read_graphdef_bytes

    data = craft.call_tree_graphdef(6, fanout=3, leaf_ops=2)  # 3**6 * 2 Relus, 1 caller Relu, the Placeholder
    made = 3**6 * 2 + 2
    with limits.override(max_nodes=made):
        assert len(read_graphdef_bytes(data, "t.pb").nodes) == made
    with limits.override(max_nodes=made - 1), pytest.raises(InputError, match=f"more than {made - 1:,} nodes"):
        read_graphdef_bytes(data, "t.pb")


def test_loops_nested_in_loops_stay_loops(tmp_path):
    """Three While loops nested in one another's bodies, 4,096 trips each (2^36 body runs from 21 nodes), lower
    to three nested while regions: nothing is unrolled, so nothing grows."""
    model = write(tmp_path, "loops.pb", craft.nested_loops_graphdef(3))
    outcome = dump(tmp_path, model)
    assert outcome.returncode == 0, outcome.describe()
    assert outcome.seconds < 10 and outcome.peak_mb < 300, outcome.describe()
    text = (tmp_path / "out.irc").read_text()
    assert text.count("= while(") == 3 and text.count("= relu(") == 2


def test_running_nested_loops_stops_at_the_iteration_limit(tmp_path):
    model = write(tmp_path, "loops.pb", craft.nested_loops_graphdef(3))
    outcome = run_irc(["--max-loop-iterations", "3000", "run", model, "--random", "0"], cwd=tmp_path)
    assert_refused(outcome, codes=(1,), fragment="loops ran more than 3,000 iterations (raise the limit with "
                                                  "--max-loop-iterations or IRC_MAX_LOOP_ITERATIONS")


def test_nested_loops_run_when_the_iteration_limit_allows(tmp_path):
    model = write(tmp_path, "loops.pb", craft.nested_loops_graphdef(2, trips=40))  # 1,600 Relus at run time
    outcome = run_irc(["run", model, "--random", "0"], cwd=tmp_path)
    assert outcome.returncode == 0, outcome.describe()


# ---- constants ----------------------------------------------------------------------------------------------
def test_a_one_value_constant_of_a_huge_shape_is_refused(tmp_path):
    model = write(tmp_path, "splat.pb", craft.const_graphdef((2**28,)))
    assert model.stat().st_size < 200
    assert_refused(dump(tmp_path, model), codes=(1,),
                   fragment="splat.pb: Const node 'big', attribute 'value': tensor would take 1 GiB, over irc's "
                            "memory limit of 256 MiB")


def test_a_splat_constant_goes_through_under_a_raised_memory_limit(tmp_path):
    model = write(tmp_path, "splat.pb", craft.const_graphdef((2**20,)))  # 4 MiB
    assert_refused(dump(tmp_path, model, "--max-memory", "1M"), codes=(1,), fragment="tensor would take 4 MiB")
    assert dump(tmp_path, model, "--max-memory", "8M").returncode == 0


def test_a_constant_whose_bytes_are_in_the_file_is_not_held_to_the_limit(tmp_path):
    values = np.arange(2**19, dtype=np.float32)  # 2 MiB, all in tensor_content
    model = write(tmp_path, "held.pb", craft.const_graphdef(values.shape, content=values.tobytes()))
    outcome = dump(tmp_path, model, "--max-memory", "1M")
    assert outcome.returncode == 0, outcome.describe()


@pytest.mark.parametrize(("shape", "content", "fragment"), [
    ((-3, 4), b"", "tensor has a negative or unknown dimension in shape [-3, 4]"),
    ((2, -1), bytes(8), "tensor has a negative or unknown dimension in shape [2, -1]"),
    ((4, 4), bytes(12), "tensor has 12 bytes of content for float32 shape [4, 4] (64 bytes)"),
])
def test_malformed_constants_are_input_errors(tmp_path, shape, content, fragment):
    model = write(tmp_path, "bad.pb", craft.const_graphdef(shape, content=content))
    assert_refused(dump(tmp_path, model), codes=(1,),
                   fragment=f"bad.pb: Const node 'big', attribute 'value': {fragment}")


# ---- checkpoints --------------------------------------------------------------------------------------------------
def test_the_index_writer_here_makes_indexes_irc_reads(tmp_path):
    """The crafted indexes below differ from a good one only in their defect."""
    model = craft.savedmodel_with_index(tmp_path / "model", craft.table([craft.block(real_rows())]))
    outcome = dump(tmp_path, model)
    assert outcome.returncode == 0, outcome.describe()


CHECKPOINT_DEFECTS = {
    "negative_dim": ({"shape": [-4, 2]}, f"tensor '{KERNEL}' has a negative or unknown dimension in shape [-4, 2]"),
    "negative_offset": ({"offset": -64}, f"tensor '{KERNEL}' has offset -64 and size 32; neither may be negative"),
    "huge_shape": ({"shape": [2**40, 2**40]}, f"tensor '{KERNEL}' has 32 bytes for float32 shape"),
    "past_the_end": ({"offset": 10**12}, f"tensor '{KERNEL}' lies past the end of the file"),
    "other_shard": ({"shard_id": 3}, f"tensor '{KERNEL}' is in shard 3, but the checkpoint has 1"),
    "overlap": ({"offset": 8}, "overlap in the variables data"),
    "strings": ({"dtype": craft.STRING, "shape": [10**9]},
                f"string tensor '{KERNEL}' has 1000000000 strings in 32 bytes"),
}


@pytest.mark.parametrize("defect", sorted(CHECKPOINT_DEFECTS))
def test_checkpoint_entries_are_checked_before_any_tensor_is_read(tmp_path, defect):
    fields, fragment = CHECKPOINT_DEFECTS[defect]
    model = craft.savedmodel_with_index(tmp_path / "model", with_entry(KERNEL, **fields))
    outcome = dump(tmp_path, model)
    assert_refused(outcome, codes=(1,), fragment=fragment)
    assert "variables" in outcome.stderr


def test_an_index_that_names_one_data_block_thousands_of_times_is_refused(tmp_path):
    rows = real_rows() + [(b"w%06d" % i, craft.entry(craft.FLOAT, (1,), 0, 4)) for i in range(3000)]
    index = craft.table([craft.block(rows)], index_targets=[0] * 2000)
    model = craft.savedmodel_with_index(tmp_path / "model", index)
    assert_refused(dump(tmp_path, model), codes=(1,), fragment="overlaps another block or the index")


def test_keys_that_share_a_megabyte_prefix_are_refused_before_they_are_made(tmp_path):
    prefix = b"k" * 2**20
    rows = [(0, b"", craft.header()), (0, prefix, b"")] + [(2**20, b"%05d" % i, b"") for i in range(2000)]
    model = craft.savedmodel_with_index(tmp_path / "model", craft.table([craft.block(rows)]))
    assert (model / "variables" / "variables.index").stat().st_size < 2**20 + 50_000
    assert_refused(dump(tmp_path, model), codes=(1,),
                   fragment="the keys of the table would take 1.95 GiB, over irc's memory limit")


def test_a_key_may_share_only_what_the_key_before_it_has(tmp_path):
    rows = [(0, b"", craft.header()), (0, b"abc", b""), (4000, b"x", b"")]
    model = craft.savedmodel_with_index(tmp_path / "model", craft.table([craft.block(rows)]))
    assert_refused(dump(tmp_path, model), codes=(1,), fragment="corrupt variables index: block entry lies past")


# ---- .npz archives ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gibibyte_bomb(tmp_path_factory):
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    path.write_bytes(zip_bomb(1 << 30))
    assert path.stat().st_size < 1_100_000
    return path


def test_an_npz_that_inflates_to_a_gibibyte_is_refused_as_calibration(tmp_path, gibibyte_bomb):
    outcome = run_irc(["lower", TINY, "--quantize", "int8", "--calibration", gibibyte_bomb, "-o",
                       tmp_path / "m.tflite"], cwd=tmp_path)
    assert_refused(outcome, codes=(1,), fragment="bomb.npz: the calibration data inflated would take 1 GiB, over "
                                                 "irc's memory limit of 256 MiB")
    assert not (tmp_path / "m.tflite").exists()


def test_an_npz_that_inflates_to_a_gibibyte_is_refused_as_weights(tmp_path, gibibyte_bomb):
    elided = TINY.parent.parent / "irc" / "elided_without_weights.irc"
    outcome = run_irc(["dump", elided, "--weights", gibibyte_bomb, "-o", tmp_path / "m.irc"], cwd=tmp_path)
    assert_refused(outcome, codes=(1,), fragment="the weights file inflated would take 1 GiB")


def test_npz_members_are_sized_together_and_the_limit_can_be_raised(tmp_path):
    path = write(tmp_path, "two.npz", zip_bomb(2 << 20, "a.npy") )
    with limits.override(max_memory=1 << 20), pytest.raises(InputError, match="inflated would take 2 MiB"):
        load_arrays(path, "calibration data")
    with limits.override(max_memory=4 << 20):
        assert load_arrays(path, "calibration data")["a"].nbytes == 2 << 20


def test_a_member_that_inflates_past_its_declared_size_is_not_inflated_further(tmp_path):
    """Python's zipfile stops a member at the size the directory declares; the lie is then a CRC or size error."""
    data = bytearray(zip_bomb(4 << 20, shape=(1 << 18, 1, 4)))
    honest = zipfile.ZipFile(io.BytesIO(bytes(data))).infolist()[0]
    central = data.rindex(b"PK\x01\x02")
    # Declare a 1 MiB member in the central directory (zip64 extra field: uncompressed size first).
    extra = data.index(b"\x01\x00", central + 46)
    data[extra + 4:extra + 12] = (1 << 20).to_bytes(8, "little")
    path = write(tmp_path, "liar.npz", bytes(data))
    assert honest.file_size > 4 << 20
    with pytest.raises(InputError) as refused:
        load_arrays(path, "calibration data")
    assert "liar.npz" in str(refused.value) and "\n" not in str(refused.value)
