"""The TensorFlow frontend: any TF model irc reads -> irc Graph.

Two steps: a reader gives the neutral flat TF graph (``tfgraph.TFGraph``), then ``lowering.lower_graph``
turns each TF op into irc ops. A SavedModel directory is read without TensorFlow when the fast reader can
(``fast=None`` tries it and, only with ``unsafe``, falls back to TensorFlow's loader, which runs the model's code,
logging why at INFO, which ``irc -v`` shows; ``fast=True`` insists, ``fast=False`` skips it and needs ``unsafe``); Keras files and objects, tf.Modules, tf.functions and frozen
GraphDefs go through ``tf_loader``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from irc.errors import UsageError
from irc.frontends.lowering import lower_graph
from irc.frontends.tfgraph import TFGraph
from irc.ir.graph import Graph

log = logging.getLogger(__name__)
TF_LOADER_HINT = ("TensorFlow's own SavedModel loader may read it, but it runs the model's code (initializers, "
                  "restore ops, assets): pass --unsafe (unsafe=True) if you trust the model")


def lower_tf(model: Any, signature: str = "serving_default", input_shapes: Mapping[str, tuple] | None = None,
             allow_tf_ops: bool = False, unsafe: bool = False, fast: bool | None = None) -> Graph:
    """Reads ``model`` (a path or a Keras/TF object) and lowers it to an irc Graph.

    ``input_shapes`` fixes inputs' dims by signature input name; an unknown batch dim is otherwise the
    symbolic dim ``batch``. ``allow_tf_ops`` keeps ops irc cannot lower as opaque ``tf.<Op>`` nodes instead of
    raising UnsupportedOpError.
    """
    tfgraph = read_tf(model, signature=signature, input_shapes=input_shapes, unsafe=unsafe, fast=fast)
    return lower_graph(tfgraph, input_shapes=input_shapes, allow_tf_ops=allow_tf_ops or unsafe,
                       name=graph_name(tfgraph), unsafe=unsafe)


def read_tf(model: Any, signature: str = "serving_default", input_shapes: Mapping[str, tuple] | None = None,
            unsafe: bool = False, fast: bool | None = None) -> TFGraph:
    """The neutral TF graph of ``model``; see ``lower_tf`` for ``fast``."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        saved_model = path.is_dir() or path.name == "saved_model.pb"
        if saved_model and fast is not False:
            from irc.frontends.savedmodel_reader import FastPathUnsupported, read_savedmodel_fast

            try:
                return read_savedmodel_fast(path, signature)  # input shapes are applied (and checked) by lowering
            except FastPathUnsupported as e:
                if fast:
                    raise
                if not tensorflow_installed():
                    raise FastPathUnsupported(e.message, where=e.where, hint="TensorFlow's loader may read it: pip "
                                              "install 'irc[tf]', then pass --unsafe if you trust the model (it "
                                              "runs the model's code)") from None
                if not unsafe:  # TensorFlow's loader runs the model's own code: never without the user's word
                    raise FastPathUnsupported(f"irc's TF-free reader cannot read this SavedModel: {e.message}",
                                              where=e.where, hint=TF_LOADER_HINT) from None
                log.info("fast path cannot read %s (%s); using TensorFlow's loader (--unsafe)", model, e.message)
        elif fast:
            raise UsageError(f"the TF-free fast path reads SavedModel directories only, not {path}")
        if saved_model:
            input_shapes = None  # the signature's shapes, so lowering can check --input-shape against them
    from irc.frontends.tf_loader import load_tf

    return load_tf(model, signature=signature, input_shapes=dict(input_shapes or {}), unsafe=unsafe)


def tensorflow_installed() -> bool:
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except ImportError:
        return False


def graph_name(tfgraph: TFGraph) -> str:
    """A graph name from the model's source: the file or directory name, else ``main``."""
    source = tfgraph.source.rstrip("/\\")
    if not source or source.startswith("<"):
        return "main"
    stem = Path(source).name
    if stem == "saved_model.pb":
        stem = Path(source).parent.name
    stem = re.sub(r"\.(keras|h5|hdf5|pb)$", "", stem)
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    return name if name and not name[0].isdigit() else f"m_{name}"
