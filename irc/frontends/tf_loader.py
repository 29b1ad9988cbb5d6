"""The TF path: load a model with TensorFlow, freeze it, and read the frozen GraphDef like the fast path.

TensorFlow and Keras are imported inside functions only. Freezing keeps While/If functional
(``lower_control_flow=False``); the frozen GraphDef is serialised and decoded by the same code as
``read_savedmodel_fast``, so both give the same neutral graph for the same SavedModel.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from irc.errors import InputError, UsageError
from irc.formats import tfproto
from irc.frontends.savedmodel_reader import check_assets, read_graphdef_bytes, saved_layer_names
from irc.frontends.tfattrs import attr_value
from irc.frontends.tfbuild import build_graph, placeholder
from irc.frontends.tfdecode import Damaged, RefError, decode_graph_def
from irc.frontends.tfdefaults import DEFAULTS
from irc.frontends.tfflatten import GraphError
from irc.frontends.tfgraph import FuncRef, TFGraph, split_ref
from irc.limits import check_memory, human

_FROZEN_NAME = re.compile(r"^__inference_(.+)_frozen_\d+$")


def load_tf(model_or_path, signature: str = "serving_default", input_shapes: dict | None = None,
            unsafe: bool = False) -> TFGraph:
    """A SavedModel dir, .keras/.h5 file, frozen .pb, keras.Model, tf.Module or tf.function -> TFGraph."""
    input_shapes = {k: tuple(v) for k, v in (input_shapes or {}).items()}
    if isinstance(model_or_path, (str, os.PathLike)):
        return _load_path(Path(model_or_path), signature, input_shapes, unsafe)
    tf, keras = _import_tf()
    obj = model_or_path
    source = f"<{type(obj).__name__}>"
    if isinstance(obj, keras.Model):
        return _from_keras(obj, source, input_shapes)
    if isinstance(obj, tf.types.experimental.ConcreteFunction):
        return _from_function(obj, source, input_shapes)
    if isinstance(obj, tf.types.experimental.PolymorphicFunction):
        return _from_function(_concrete(obj, input_shapes, source), source, input_shapes)
    if isinstance(obj, tf.Module):
        return _from_module(obj, signature, source, input_shapes)
    raise UsageError(f"cannot load a {type(obj).__name__}: expected a path, keras.Model, tf.Module or tf.function")


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ start-up chatter hides real errors
    import keras
    import tensorflow as tf

    return tf, keras


def _load_path(path: Path, signature, input_shapes, unsafe) -> TFGraph:
    if not path.exists():
        raise InputError("no such file or directory", where=str(path))
    if path.is_dir() or path.name == "saved_model.pb":
        return _from_savedmodel(path if path.is_dir() else path.parent, signature, input_shapes, unsafe)
    suffix = path.suffix.lower()
    if suffix in (".keras", ".h5", ".hdf5"):
        return _from_keras(_load_keras_file(path, unsafe), str(path), input_shapes)
    if suffix in (".pb", ".graphdef"):
        return read_graphdef_bytes(path.read_bytes(), str(path), input_shapes=input_shapes)
    raise InputError("unknown model format (expected a SavedModel directory, .keras, .h5 or .pb)",
                     where=str(path))


# -- Keras files ------------------------------------------------------------------------------------
_MAX_CONFIG_DEPTH = 100  # real Keras configs nest a few dozen levels at most (models in models in layers)
_JSON_EXPANSION = 8  # parsed JSON takes several times its text in Python objects


def _keras_config(path: Path) -> dict | None:
    """The model config stored in a Keras file, read without Keras or TensorFlow (checked before they run)."""
    try:
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as zf:
                info = zf.getinfo("config.json")
                # Sized from the archive's header, before inflating: a small file may inflate to gigabytes.
                check_memory(info.file_size * _JSON_EXPANSION, f"config.json ({human(info.file_size)} uncompressed)",
                             where=str(path))
                text = zf.read(info)
        else:
            import h5py

            with h5py.File(path, "r") as f:
                text = f.attrs.get("model_config")
                if text is None:
                    return None
        config = json.loads(text)
    except RecursionError:
        raise InputError("config.json nests too deeply to be a Keras config", where=str(path)) from None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise InputError(f"not a readable Keras file: {e}", where=str(path)) from None
    depth = _depth(config)
    if depth > _MAX_CONFIG_DEPTH:
        raise InputError(f"the Keras config nests {depth} levels deep (irc reads up to {_MAX_CONFIG_DEPTH})",
                         where=str(path))
    return config


def _depth(config) -> int:
    deepest, todo = 0, [(config, 1)]
    while todo:
        value, depth = todo.pop()
        deepest = max(deepest, depth)
        if depth > _MAX_CONFIG_DEPTH:
            break
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        todo += [(child, depth + 1) for child in children]
    return deepest


def _layer_configs(config):
    """Every serialised object in a Keras config: dicts with a class_name (the config's depth is checked)."""
    todo = [config]
    while todo:
        value = todo.pop()
        if isinstance(value, dict):
            if "class_name" in value:
                yield value
            todo += reversed(list(value.values()))
        elif isinstance(value, list):
            todo += reversed(value)


def _is_keras_module(module) -> bool:
    return module == "keras" or (isinstance(module, str) and module.startswith("keras."))


def _check_safe(path: Path, config) -> None:
    """Refuse code that loading would run: Lambda layers and custom classes irc cannot vouch for. Imports
    Keras only to look up a class a Keras that is already imported may have registered."""
    import sys

    for obj in _layer_configs(config):
        inner = obj.get("config")
        name = inner.get("name", "?") if isinstance(inner, dict) else "?"
        class_name, module = obj["class_name"], obj.get("module", "keras")
        registered = obj.get("registered_name") or class_name
        for key, value in (("class_name", class_name), ("module", module), ("registered_name", registered),
                           ("name", name)):
            if value is not None and not isinstance(value, str):
                raise InputError(f"a Keras config object has a {key} that is a {type(value).__name__}, not a "
                                 "string (a damaged or crafted file)", where=str(path))
        if class_name == "Lambda":
            raise InputError(f"layer '{name}' is a Lambda layer, which runs arbitrary Python code",
                             where=str(path), hint="pass unsafe=True (--unsafe) if you trust this file")
        # Keras 3 configs name each class's module (None for an unregistered custom class); Keras imports it.
        if _is_keras_module(module):
            continue
        keras = sys.modules.get("keras")  # nothing can be registered with a Keras no one has imported
        if keras is None or keras.saving.get_registered_object(registered) is None:
            origin = f" from module '{module}'" if module else ""
            raise InputError(f"layer '{name}' uses custom class '{registered}'{origin}, which is not registered",
                             where=str(path), hint="register it, or pass unsafe=True if you trust this file")


def _load_keras_file(path: Path, unsafe: bool):
    config = _keras_config(path)
    if not unsafe and config is not None:
        _check_safe(path, config)
    _, keras = _import_tf()
    try:
        return keras.models.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as e:  # noqa: BLE001 - Keras raises many kinds; every one means "cannot read this file"
        message = " ".join(str(e).split())
        raise InputError(f"Keras cannot load the model: {message[:400]}", where=str(path)) from None


def _from_keras(model, source: str, input_shapes: dict) -> TFGraph:
    tf, _ = _import_tf()
    try:
        inputs = [(t.name, tuple(t.shape), t.dtype) for t in model.inputs]
    except (AttributeError, ValueError, TypeError):
        inputs = []
    if not inputs:
        if len(input_shapes) != 1:
            raise InputError("the Keras model has no defined inputs", where=source,
                             hint="give input_shapes={name: shape}")
        inputs = [(name, shape, "float32") for name, shape in input_shapes.items()]
    specs = [tf.TensorSpec(input_shapes.get(name, shape), dtype, name=name) for name, shape, dtype in inputs]

    def call(*xs):
        return model(xs[0] if len(xs) == 1 else list(xs), training=False)

    try:
        concrete = tf.function(call).get_concrete_function(*specs)
    except Exception as e:  # noqa: BLE001 - tracing runs the model's Python code
        raise InputError(f"cannot trace the Keras model: {e}", where=source) from None
    names = list(getattr(model, "output_names", None) or [])
    return _from_function(concrete, source, {}, output_names=names, known_layers={l.name for l in model.layers})


# -- SavedModels, modules and functions -------------------------------------------------------------
def _from_savedmodel(path: Path, signature: str, input_shapes: dict, unsafe: bool) -> TFGraph:
    """TensorFlow's own loader: it runs the model's code (TF1 main_op and restore ops, TF2 resource initializers,
    reading assets), so only with ``unsafe``; assets outside the model's assets/ directory are refused even so."""
    if not unsafe:
        from irc.frontends.tensorflow import TF_LOADER_HINT

        raise InputError("loading a SavedModel with TensorFlow's loader needs your permission", where=str(path),
                         hint=TF_LOADER_HINT)
    proto = _proto(path)
    check_assets(path, proto)
    tf, _ = _import_tf()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:  # noqa: BLE001 - TF reports a corrupt SavedModel with many error types
        raise InputError(f"TensorFlow cannot load the SavedModel: {e}", where=str(path)) from None
    sigs = getattr(loaded, "signatures", {})
    if signature not in sigs:
        raise InputError(f"no signature '{signature}'; available: {', '.join(sorted(sigs)) or 'none'}",
                         where=str(path))
    return _from_function(sigs[signature], str(path), input_shapes, known_layers=saved_layer_names(proto))


def _proto(path: Path):
    """The SavedModel message (irc's TF-free declaration), binary or (which TensorFlow also reads) text format."""
    from google.protobuf import text_format

    try:
        if (path / "saved_model.pb").is_file():
            return tfproto.parse("SavedModel", (path / "saved_model.pb").read_bytes())
        _import_tf()
        from tensorflow.core.protobuf import saved_model_pb2

        message = text_format.Parse((path / "saved_model.pbtxt").read_text(), saved_model_pb2.SavedModel())
        return tfproto.parse("SavedModel", message.SerializeToString())
    except (ValueError, OSError, text_format.ParseError) as e:
        raise InputError(f"not a readable SavedModel: {e}", where=str(path)) from None


def _from_module(module, signature: str, source: str, input_shapes: dict) -> TFGraph:
    sigs = getattr(module, "signatures", None) or {}
    if signature in sigs:
        return _from_function(sigs[signature], source, input_shapes)
    fn = getattr(module, signature, None) if signature != "serving_default" else None
    if fn is None and "__call__" in dir(type(module)):
        fn = module.__call__
    if fn is None or not hasattr(fn, "get_concrete_function"):
        raise UsageError(f"the tf.Module has no signature or tf.function '{signature}' and no tf.function __call__")
    return _from_function(_concrete(fn, input_shapes, source), source, input_shapes)


def _concrete(fn, input_shapes: dict, source: str):
    tf, _ = _import_tf()
    sig = getattr(fn, "input_signature", None)
    try:
        if sig is None:
            return fn.get_concrete_function()
        specs = [tf.TensorSpec(input_shapes.get(s.name, s.shape), s.dtype, name=s.name) for s in sig]
        return fn.get_concrete_function(*specs)
    except Exception as e:  # noqa: BLE001 - TF raises many kinds; each one means this input cannot be read
        raise UsageError(f"{source}: cannot trace the tf.function ({e}); give it an input_signature") from None


def _keep_cases_functional(concrete):
    """Freezing lowers a ``Case`` to v1 Switch/Merge control flow even with ``lower_control_flow=False`` (as it
    does not ``If`` and ``While``) unless the op says otherwise: mark each for the freeze, and give back a function
    that puts the marks back as they were."""
    from tensorflow.core.framework import attr_value_pb2

    graphs = [concrete.graph]
    graphs += [f.graph for f in getattr(concrete.graph, "_functions", {}).values() if hasattr(f, "graph")]
    marked = []
    for graph in graphs:
        for op in graph.get_operations():
            if op.type in ("Case", "StatelessCase") and "_lower_using_switch_merge" in op.node_def.attr:
                marked.append((op, op.node_def.attr["_lower_using_switch_merge"].b))
                op._set_attr("_lower_using_switch_merge", attr_value_pb2.AttrValue(b=False))

    def restore():
        for op, value in marked:
            op._set_attr("_lower_using_switch_merge", attr_value_pb2.AttrValue(b=value))

    return restore


def _from_function(concrete, source: str, input_shapes: dict, output_names=(), known_layers=()) -> TFGraph:
    """Freeze a ConcreteFunction and read its GraphDef with the fast path's decoder."""
    _import_tf()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    restore = _keep_cases_functional(concrete)
    try:
        frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False)
    except Exception as e:  # noqa: BLE001 - TF raises many kinds; each one means this input cannot be read
        raise InputError(f"TensorFlow cannot freeze the model: {e}", where=source) from None
    finally:
        restore()
    data = frozen.graph.as_graph_def().SerializeToString()
    try:
        nodes, library = decode_graph_def(tfproto.parse("GraphDef", data))
    except (ValueError, RefError) as e:
        raise InputError(f"cannot read the frozen graph: {e}", where=source) from None

    # Inputs keep their signature names; outputs take the signature's keys.
    spec_names = _input_names(concrete)
    by_name = {n.name: n for n in nodes}
    inputs, args = [], {}
    for i, tensor in enumerate(frozen.inputs):
        ph = by_name[split_ref(tensor.name)[0]]
        name = spec_names.get(ph.name, ph.name)
        inputs.append((name, ph.attrs["dtype"], input_shapes.get(name, ph.attrs.get("shape"))))
        if name != ph.name:
            args[ph.name] = f"{name}:0"
    dropped = {split_ref(t.name)[0] for t in frozen.inputs}
    body = [placeholder(*i) for i in inputs] + [n for n in nodes if n.name not in dropped]
    names = _output_names(concrete, len(frozen.outputs), list(output_names))
    outputs = [(name, t.name) for name, t in zip(names, frozen.outputs)]
    try:
        graph = build_graph(body, library, args, outputs, inputs, {}, source, set(known_layers))
    except (GraphError, RefError, Damaged) as e:
        raise InputError(str(e), where=source) from None
    _restore_function_names(graph)
    _strip_defaults(graph)
    return graph


def _strip_defaults(graph: TFGraph) -> None:
    """Drop attrs equal to their op's default for ops irc has no default table for, as SavedModels do,
    so both paths agree (ops in tfdefaults.DEFAULTS get their defaults filled in on both)."""
    from tensorflow.python.framework import op_def_registry

    defaults: dict[str, dict] = {}
    for node in graph.nodes + [n for fn in graph.functions.values() for n in fn.nodes]:
        if node.op in DEFAULTS:
            continue
        if node.op not in defaults:
            op_def = op_def_registry.get(node.op)
            defaults[node.op] = {a.name: attr_value(tfproto.parse("AttrValue", a.default_value.SerializeToString()))
                                 for a in op_def.attr if a.HasField("default_value")} if op_def else {}
        for key, value in defaults[node.op].items():
            if key in node.attrs and _same(node.attrs[key], value):
                del node.attrs[key]


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return False
    return type(a) is type(b) and a == b


def _input_names(concrete) -> dict[str, str]:
    """Placeholder name -> signature input name, from the structured input signature."""
    tf, _ = _import_tf()
    args, kwargs = concrete.structured_input_signature
    names = {}
    for key, spec in kwargs.items():
        if isinstance(spec, tf.TensorSpec):
            names[spec.name or key] = key
    for spec in tf.nest.flatten(args):
        if isinstance(spec, tf.TensorSpec) and spec.name:
            names[spec.name] = spec.name
    return names


def _output_names(concrete, count: int, preferred: list[str]) -> list[str]:
    structured = concrete.structured_outputs
    if isinstance(structured, dict):
        return sorted(structured)  # the order tf.nest.flatten gives the outputs
    if len(preferred) == count:
        return preferred
    return [f"output_{i}" for i in range(count)]


def _restore_function_names(graph: TFGraph) -> None:
    """Freezing renames functions ``__inference_<name>_frozen_<n>``; give them back their names."""
    renames = {}
    for name in graph.functions:
        match = _FROZEN_NAME.match(name)
        if match and match.group(1) not in graph.functions:
            renames[name] = match.group(1)
    if not renames:
        return
    graph.functions = {renames.get(k, k): fn for k, fn in graph.functions.items()}
    for fn in graph.functions.values():
        fn.name = renames.get(fn.name, fn.name)
    for node in graph.nodes + [n for fn in graph.functions.values() for n in fn.nodes]:
        for key, value in node.attrs.items():
            if isinstance(value, FuncRef) and value.name in renames:
                node.attrs[key] = FuncRef(renames[value.name], value.attrs)
            elif isinstance(value, list) and any(isinstance(v, FuncRef) for v in value):
                node.attrs[key] = [FuncRef(renames.get(v.name, v.name), v.attrs) for v in value]
