"""The Python API, mirroring the CLI: ``irc.load``, ``irc.run``, ``irc.lower``, ``irc.diff``.

The examples below use a graph written in irc's text form, so they run without TensorFlow:

>>> import irc
>>> g = irc.parse('''
... graph @small(%x: f32[2]) {
...   %one = const() {value = dense<f32[2] [1.0, 1.0]>} : f32[2]
...   %0 = mul(%x, %one) : f32[2]
...   %1 = relu(%0) : f32[2]
...   return %1 as "y"
... }''')
>>> irc.run(g, {"x": [-1.5, 2.0]})["y"].tolist()
[0.0, 2.0]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from irc.errors import InputError, UsageError
from irc.ir.graph import Graph

MODEL_KINDS = "a SavedModel directory, .keras, .h5, .pb, .tflite or .irc file"


def model_kind(path: Path) -> str:
    """What kind of model file ``path`` is: savedmodel, keras, h5, graphdef, tflite or irc.

    >>> model_kind(Path("mobilenet.tflite")), model_kind(Path("model.keras"))
    ('tflite', 'keras')
    """
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            return "savedmodel"
        raise InputError("directory is not a SavedModel (it has no saved_model.pb)", where=str(path))
    suffix = path.suffix.lower()
    kinds = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", ".pb": "graphdef", ".tflite": "tflite", ".irc": "irc"}
    if suffix in kinds:
        return kinds[suffix]
    raise InputError(f"cannot tell what kind of model this is (expected {MODEL_KINDS})", where=str(path))


def load(
    model: Any,
    *,
    signature: str = "serving_default",
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    allow_tf_ops: bool = False,
    unsafe: bool = False,
    weights: str | os.PathLike | None = None,
    fast: bool | None = None,
) -> Graph:
    """Loads any model irc reads (a path, a Keras model, a tf.Module or a tf.function) into an irc Graph.

    ``allow_tf_ops`` keeps ops irc cannot lower as opaque ``tf.<Op>`` nodes (except ops that touch files, the
    network or the process). ``unsafe`` trusts the model: Keras Lambda layers and custom objects, TensorFlow's own
    SavedModel loader (which runs the model's initializers) and every TF op; it implies ``allow_tf_ops``.
    See docs/security.md.
    """
    allow_tf_ops = allow_tf_ops or unsafe
    if isinstance(model, Graph):
        return model
    if not isinstance(model, (str, os.PathLike)):
        from irc.frontends.tensorflow import lower_tf

        return lower_tf(model, signature=signature, input_shapes=input_shapes, allow_tf_ops=allow_tf_ops,
                        unsafe=unsafe)
    path = Path(model)
    if not path.exists():
        raise InputError("no such file or directory", where=str(path))
    kind = model_kind(path)
    if kind == "irc":
        return load_irc(path, weights)
    if kind == "tflite":
        from irc.frontends.tflite import read_tflite

        return read_tflite(path)
    from irc.frontends.tensorflow import lower_tf

    return lower_tf(path, signature=signature, input_shapes=input_shapes, allow_tf_ops=allow_tf_ops, unsafe=unsafe,
                    fast=fast)


def load_irc(path: Path, weights: str | os.PathLike | None = None) -> Graph:
    """An .irc file, parsed and verified: IR that breaks an invariant is refused here, naming the file.

    Elided constants are restored from ``weights``, else from the weights file the dump records beside it
    (``// weights: NAME``, written by ``irc dump -o``). Without either they stay elided: the graph can be printed,
    verified, drawn and counted, but running, emitting or a pass that reads such a constant asks for the weights.
    """
    from irc.errors import VerifyError
    from irc.ir.parser import parse
    from irc.ir.verify import verify

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not irc text (byte {e.start} is not UTF-8)", where=str(path)) from None
    recorded = None
    if weights is None:  # a dump written with -o names the weights file beside it
        from irc.ir.weights_file import find_recorded

        weights = recorded = find_recorded(path, text)
    arrays = load_weights(weights) if weights else None
    graph = parse(text, source=str(path), weights=arrays)
    if recorded is not None:
        from irc.ir.weights_file import check_resolved

        check_resolved(graph, recorded, path)
    try:
        verify(graph, elided_ok=True)
    except VerifyError as e:
        e.where = str(path)
        raise
    return graph


def load_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A weights sidecar written by ``irc dump --save-weights``: an .npz keyed by constant hash (no pickle)."""
    from irc.npfiles import load_arrays

    hint = "give the .npz that 'irc dump --save-weights' wrote"
    arrays = load_arrays(path, "weights file", hint=hint)
    if isinstance(arrays, np.ndarray):
        raise InputError("the weights file holds one array (a .npy), not constants keyed by hash", where=str(path),
                         hint=hint)
    return arrays


def run(graph: Graph, inputs, observer=None, *, allow_tf_ops: bool = False, unsafe: bool = False
        ) -> dict[str, np.ndarray]:
    """Runs a graph in the reference interpreter; ``inputs`` is a dict by input name, a list, or one array.

    Opaque ``tf.<Op>`` nodes run through TensorFlow only with ``allow_tf_ops`` (never ops that touch files, the
    network or the process) or ``unsafe`` (every op); otherwise one InputError names them before anything runs.

    >>> import irc, numpy as np
    >>> g = irc.parse('''
    ... graph @neg(%x: f32[3]) {
    ...   %0 = neg(%x) : f32[3]
    ...   return %0 as "y"
    ... }''')
    >>> run(g, np.array([1.0, -2.0, 0.5], np.float32))["y"].tolist()
    [-1.0, 2.0, -0.5]
    """
    from irc.ir.interpreter import run as interpret
    from irc.ops.tf_policy import check_graph_may_run, permitted

    with permitted(allow_tf_ops, unsafe):
        check_graph_may_run(graph)
        return interpret(graph, inputs, observer)


def lower(model: Any, emit: str = "tflite", *, output: str | os.PathLike | None = None, passes: str | None = None,
          quantize: str | None = None, force: bool = False, **load_options):
    """Loads ``model``, runs the target's default pipeline (or ``passes``) and emits it; writes it to ``output``
    when given. A Graph given as ``model`` is left unchanged.

    Returns the emitted artifact: bytes for tflite, the Graph for ir, a callable for xla. ``output`` never
    replaces a non-empty directory, or a directory with a file, unless ``force`` (see irc/outputs.py).
    Calibration runs opaque TF ops only as ``load_options`` (``allow_tf_ops``, ``unsafe``) allow.

    >>> import irc
    >>> g = irc.parse('''
    ... graph @small(%x: f32[2]) {
    ...   %one = const() {value = dense<f32[2] [1.0, 1.0]>} : f32[2]
    ...   %0 = mul(%x, %one) : f32[2]
    ...   return %0 as "y"
    ... }''')
    >>> optimized = lower(g, emit="ir", passes="O1")
    >>> [node.op for node in optimized.nodes], len(g)      # x * 1 folded away; g itself is unchanged
    ([], 2)
    >>> lower(g, emit="tflite")[4:8]                       # a TFLite flatbuffer's file identifier
    b'TFL3'
    """
    from irc.backends import get_backend
    from irc.ops.tf_policy import permitted

    backend = get_backend(emit)
    if output is not None:
        from irc.outputs import check_output

        check_output(output, backend.writes, force)  # before the work, not after
    graph = load(model, **load_options)
    with permitted(load_options.get("allow_tf_ops", False), load_options.get("unsafe", False)):
        artifact = backend.emit(graph, {"passes": passes, "quantize": quantize})
    if output is not None:
        backend.write(artifact, output, force=force)
    return artifact


def diff(a: Any, b: Any, **options):
    """A structural diff of two graphs (anything ``load`` takes); see ``irc diff``."""
    from irc.tools.diff import diff_graphs

    return diff_graphs(load(a), load(b), **options)


def parse_input_shapes(specs: list[str]) -> dict[str, tuple[int, ...]]:
    """``NAME=1,224,224,3`` strings (as given to --input-shape) to a dict.

    >>> parse_input_shapes(["image=1,224,224,3", "mask=1,224"])
    {'image': (1, 224, 224, 3), 'mask': (1, 224)}
    """
    shapes = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            shape = None
        if not sep or not name or shape is None or any(d <= 0 for d in shape):
            raise UsageError(f"bad --input-shape {spec!r}", hint="write NAME=1,224,224,3")
        shapes[name] = shape
    return shapes
