"""The tpu target: the rendered program passes ruff, runs as a subprocess under the default strategy (no TPU
here), shards batches, and writes outputs that match TensorFlow's."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from test_backend_xla import MODELS, RTOL, model_case  # shared model cases, loaded once per process

from irc.ir.graph import Graph
from irc.ir.types import DType, TensorType

tf = pytest.importorskip("tensorflow")


EXAMPLES = 3  # with --batch-size 2: one full batch and one padded one


def assert_close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-4) -> float:
    assert got.shape == want.shape, (got.shape, want.shape)
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    scale = float(np.max(np.abs(want)))
    assert err <= rtol * scale or err == 0.0, f"max abs error {err} for values up to {scale}"
    return err


def run_program(directory, inputs: dict, *args: str, timeout: int = 300) -> tuple[dict, str]:
    np.savez(directory / "in.npz", **inputs)
    cmd = [sys.executable, str(directory / "run_tpu.py"), "--input", str(directory / "in.npz"),
           "--output", str(directory / "out.npz"), *args]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(directory / "out.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}, done.stderr


def ruff_check(path):
    ruff = [sys.executable, "-m", "ruff"]  # a dev dependency: the generated program must pass it
    done = subprocess.run([*ruff, "check", "--isolated", "--no-cache", str(path)], check=False, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def examples(graph: Graph, count: int, seed: int = 0) -> dict:
    """``count`` examples per input, along a new first axis (the graph's own batch dim replaced)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for v in graph.inputs:
        shape = (count,) + tuple(d if isinstance(d, int) else 1 for d in v.type.shape[1:])
        if v.type.dtype.is_float:
            arrays[v.name] = rng.standard_normal(shape).astype(v.type.dtype.numpy)
        else:
            arrays[v.name] = rng.integers(0, 10, shape).astype(v.type.dtype.numpy)
    return arrays


def dense_graph() -> Graph:
    """A model built for one example at a time: the program runs it over groups of that size."""
    r = np.random.default_rng(0)
    g = Graph("dense")
    x = g.add_input("x", TensorType(DType.f32, (1, 6)))
    h = g.op("tfl.matmul", x, g.const(r.standard_normal((6, 8)).astype(np.float32)),
             g.const(r.standard_normal(8).astype(np.float32)), fused_activation="relu")
    g.set_output("y", g.op("softmax", h))
    return g


def test_program_text_and_weights(tmp_path):
    from irc.backends import tpu

    program = tpu.emit(dense_graph(), passes="", output=tmp_path / "out", tpu="grpc://10.1.2.3:8470", batch_size=16)
    text = (tmp_path / "out" / "run_tpu.py").read_text()
    assert text == program.source
    for needle in ("TPUClusterResolver", "tf.distribute.TPUStrategy(resolver)", "strategy.run(",
                   "experimental_distribute_dataset", "strategy.scope()", "def model(w, x):",
                   'default="grpc://10.1.2.3:8470"', "default=16", "MODEL_BATCH = 1"):
        assert needle in text, needle
    with np.load(tmp_path / "out" / "weights.npz", allow_pickle=False) as data:
        assert sorted(data.files) == sorted(program.weights)
    ruff_check(tmp_path / "out" / "run_tpu.py")


def test_program_runs_without_a_tpu(tmp_path):
    from irc.backends import tfemit, tpu

    g = dense_graph()
    tpu.emit(g, passes="", output=tmp_path)
    inputs = {"x": np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32)}
    # nothing listens on port 9: the program says so and runs under the default strategy
    got, log = run_program(tmp_path, inputs, "--tpu", "127.0.0.1:9", "--batch-size", "2")
    assert "cannot reach 127.0.0.1:9" in log and "default strategy" in log
    model = tfemit.build(g)
    want = np.concatenate([model.run({"x": row[None]})["y"] for row in inputs["x"]])
    assert_close(got["y"], want)


def test_unsupported_dtype_is_refused():
    from irc.backends import tpu
    from irc.errors import TargetError

    g = Graph("f64")
    x = g.add_input("x", TensorType(DType.f64, (2,)))
    g.set_output("y", g.op("exp", x))
    assert [s for _, s, _ in tpu.check(g)] == ["unsupported"]
    with pytest.raises(TargetError, match="float64"):
        tpu.emit(g, passes="")


# ----- real models ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=sorted(MODELS))
def program_run(request, zoo_models, tmp_path_factory):
    """Each zoo model's program, run once as a subprocess on a few examples."""
    from irc.backends import tpu

    case = model_case(zoo_models, request.param)
    out = tmp_path_factory.mktemp(case.name)
    tpu.emit(case.graph, output=out)
    inputs = examples(case.graph, EXAMPLES)
    got, log = run_program(out, inputs, "--batch-size", "2")
    return case, out, got, log, case.reference(inputs)


def test_model_program_matches_tensorflow(program_run):
    case, _, got, log, want = program_run
    assert "no TPU reachable" in log and "default strategy" in log
    assert set(got) == set(want)
    errors = {name: assert_close(got[name], want[name], RTOL.get(case.name, 1e-4)) for name in want}
    print(f"tpu {case.name}: max abs errors {errors}")


def test_model_program_passes_ruff(program_run):
    ruff_check(program_run[1] / "run_tpu.py")


# ----- resolver failures: each one message and the default strategy, exit 0 ------------------------------------------
def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dense_program(tmp_path_factory):
    from irc.backends import tfemit, tpu

    g = dense_graph()
    out = tmp_path_factory.mktemp("dense")
    tpu.emit(g, passes="", output=out)
    inputs = {"x": np.random.default_rng(2).standard_normal((3, 6)).astype(np.float32)}
    model = tfemit.build(g)
    want = np.concatenate([model.run({"x": row[None]})["y"] for row in inputs["x"]])
    return out, inputs, want


def loopback_env(monkeypatch, metadata: str) -> None:
    """Points the Cloud TPU client's metadata server and API discovery at loopback addresses only."""
    monkeypatch.setenv("GCE_METADATA_HOST", metadata)
    monkeypatch.setenv("TPU_API_DISCOVERY_URL", f"http://127.0.0.1:{free_port()}/discovery")
    monkeypatch.delenv("TPU_NAME", raising=False)


def assert_fell_back(log: str, fragment: str) -> None:
    notes = [line for line in log.splitlines() if line.startswith("run_tpu.py: no TPU reachable")]
    assert len(notes) == 1 and fragment in notes[0] and notes[0].endswith("running under the default strategy"), log
    assert "Traceback" not in log, log


def test_refused_address_falls_back(dense_program, monkeypatch):
    out, inputs, want = dense_program
    loopback_env(monkeypatch, f"127.0.0.1:{free_port()}")
    port = free_port()
    got, log = run_program(out, inputs, "--tpu", f"grpc://127.0.0.1:{port}")
    assert_fell_back(log, f"cannot reach grpc://127.0.0.1:{port}")
    assert_close(got["y"], want)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_tpu_name_without_metadata_server_falls_back(dense_program, monkeypatch, how):
    out, inputs, want = dense_program
    loopback_env(monkeypatch, f"127.0.0.1:{free_port()}")  # refused: as off Google Cloud
    if how == "env":
        monkeypatch.setenv("TPU_NAME", "my-tpu")
    got, log = run_program(out, inputs, *(["--tpu", "my-tpu"] if how == "flag" else []))
    assert_fell_back(log, "cannot resolve TPU 'my-tpu': the GCE metadata server is unreachable")
    assert_close(got["y"], want)


def test_unknown_tpu_name_falls_back(dense_program, monkeypatch):
    """A metadata server answers (project and zone), but the name cannot be looked up."""
    import http.server
    import threading

    asked = []

    class Metadata(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # http.server calls it by this name
            asked.append(self.path)
            body = {"/computeMetadata/v1/project/project-id": b"demo-project",
                    "/computeMetadata/v1/instance/zone": b"projects/1/zones/us-central1-b"}.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out, inputs, want = dense_program
        loopback_env(monkeypatch, f"127.0.0.1:{server.server_port}")
        got, log = run_program(out, inputs, "--tpu", "no-such-tpu")
    finally:
        server.shutdown()
    assert "/computeMetadata/v1/project/project-id" in asked
    assert_fell_back(log, "cannot resolve TPU 'no-such-tpu'")
    assert_close(got["y"], want)
