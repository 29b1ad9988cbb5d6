"""The fast path: a TF2 SavedModel directory (or a frozen GraphDef) -> TFGraph, without TensorFlow.

A signature is served by a call ``StatefulPartitionedCall(inputs..., captures...)`` in the MetaGraph's
graph; its function (the signature wrapper) is the body irc flattens. The captures are bound the way
TF's loader binds them: the SavedObjectGraph lists the objects each concrete function captures
(``bound_inputs``), and a variable object's value is found in the checkpoint by walking the
checkpoint's object graph from the root by child names.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePath

from irc.errors import InputError
from irc.formats import tfproto
from irc.frontends import tfattrs
from irc.frontends.tensor_bundle import TensorBundle
from irc.frontends.tfbuild import build_graph, constant, placeholder
from irc.frontends.tfdecode import Damaged, Library, RefError, decode_graph_def, decode_node, located
from irc.frontends.tfflatten import CALL_OPS, CorruptGraph, GraphError
from irc.frontends.tfgraph import TFGraph, split_ref


class FastPathUnsupported(InputError):
    """A valid model that uses something the fast path cannot read yet; TF's loader may read it."""


def read_graphdef_bytes(data: bytes, source: str, outputs: list[str] | None = None,
                        input_shapes: dict[str, tuple] | None = None) -> TFGraph:
    """A frozen GraphDef. Inputs are its Placeholders; outputs the given tensors, else the data
    outputs nothing consumes."""
    try:
        proto = tfproto.parse("GraphDef", data)
        nodes, library = decode_graph_def(proto)
    except InputError as e:
        raise located(e, source) from None
    except (ValueError, RefError) as e:
        raise InputError(f"not a readable GraphDef: {e}", where=source) from None
    if not nodes:
        raise InputError("the GraphDef has no nodes", where=source)
    input_shapes = input_shapes or {}
    inputs = [(n.name, n.attrs.get("dtype", "float32"), input_shapes.get(n.name, n.attrs.get("shape")))
              for n in nodes if n.op == "Placeholder"]
    body = [n for n in nodes if n.op != "Placeholder"] + [placeholder(*i) for i in inputs]
    if outputs is None:
        outputs = _sink_outputs(nodes)
    try:
        named = [(ref if split_ref(ref)[1] else split_ref(ref)[0], ref) for ref in outputs]
        return build_graph(body, library, {}, named, inputs, {}, source, set())
    except (GraphError, RefError, Damaged) as e:
        raise InputError(str(e), where=source) from None
    except InputError as e:
        raise located(e, source) from None


def _sink_outputs(nodes) -> list[str]:
    """Outputs of data nodes no other node reads (Identity counts as a reader of its input)."""
    used = {split_ref(r)[0] for n in nodes for r in n.inputs}
    return [f"{n.name}:0" for n in nodes if n.name not in used and n.op not in ("NoOp", "Placeholder")]


def read_savedmodel_fast(path, signature: str = "serving_default",
                         input_shapes: dict[str, tuple] | None = None) -> TFGraph:
    """Read one signature of a TF2 SavedModel directory without importing TensorFlow."""
    root = Path(path)
    if root.name == "saved_model.pb" and root.is_file():
        root = root.parent
    pb = root / "saved_model.pb"
    if not root.exists():
        raise InputError("no such file or directory", where=str(root))
    if not pb.is_file():
        if (root / "saved_model.pbtxt").is_file():
            raise FastPathUnsupported("text-format SavedModels are not read by the fast path", where=str(root))
        raise InputError("not a SavedModel directory (no saved_model.pb)", where=str(root))
    try:
        model = tfproto.parse("SavedModel", pb.read_bytes())
    except ValueError as e:
        raise InputError(f"corrupt or truncated saved_model.pb: {e}", where=str(pb)) from None
    check_assets(root, model)
    reader = _Reader(root, pb, model)
    try:
        return reader.read(signature, input_shapes or {})
    except InputError as e:
        raise located(e, str(pb)) from None
    except (CorruptGraph, Damaged) as e:
        raise InputError(f"damaged graph: {e}", where=str(pb)) from None
    except (GraphError, RefError) as e:
        raise FastPathUnsupported(str(e), where=str(pb)) from None
    except (KeyError, IndexError, ValueError) as e:  # a proto that parsed but does not hang together
        raise InputError(f"inconsistent saved_model.pb ({type(e).__name__}: {e}); truncated?",
                         where=str(pb)) from None


class _Reader:
    def __init__(self, root: Path, pb: Path, model):
        self.root, self.pb, self.where = root, pb, str(pb)
        metas = list(model.meta_graphs)
        if not metas:
            raise InputError("saved_model.pb holds no MetaGraph (truncated?)", where=self.where)
        self.meta = next((m for m in metas if "serve" in m.meta_info_def.tags), metas[0])
        self.objects = self.meta.object_graph_def
        self.bundle: TensorBundle | None = None

    def read(self, signature: str, input_shapes: dict) -> TFGraph:
        sigs = tfproto.entries(self.meta.signature_def)
        if signature not in sigs:
            names = sorted(k for k in sigs if not k.startswith("__"))
            raise InputError(f"no signature '{signature}'; available: {', '.join(names) or 'none'}",
                             where=str(self.root))
        sig = sigs[signature]
        self._check_layout(sig, f"signature '{signature}'")
        graph_nodes = {n.name: n for n in self.meta.graph_def.node}
        out_infos = sorted(tfproto.entries(sig.outputs).items())
        in_infos = tfproto.entries(sig.inputs)
        if not all(in_infos) or not all(key for key, _ in out_infos):
            raise InputError(f"signature '{signature}' has an input or output without a name (damaged file?)",
                             where=self.where)
        call = self._call_node(signature, out_infos, graph_nodes)
        self._check_layout(call, f"node '{call.name}'")
        fname = decode_node(call).attrs["f"].name
        library = Library(self.meta.graph_def.library)
        if fname not in library:
            raise InputError(f"signature function '{fname}' is missing from the library", where=self.where)
        wrapper = library[fname]

        captures = list(tfproto.entries(self.objects.concrete_functions).get(fname, _NoCaptures).bound_inputs)
        n_user = len(call.input) - len(captures)
        if n_user < 0 or len(call.input) != len(wrapper.inputs):
            raise InputError(f"signature '{signature}' does not match its function '{fname}'", where=self.where)
        placeholder_of = {split_ref(info.name)[0]: key for key, info in in_infos.items()}
        args, body, inputs, variables = {}, [], [], {}
        for i, ref in enumerate(call.input[:n_user]):
            key = placeholder_of.get(split_ref(ref)[0])
            if key is None:
                raise FastPathUnsupported(f"signature '{signature}' input {i} ('{ref}') is not a signature "
                                          "input", where=self.where)
            info = in_infos[key]
            shape = input_shapes.get(key, tfattrs.shape(info.tensor_shape))
            inputs.append((key, tfattrs.dtype_name(info.dtype), shape))
            body.append(placeholder(*inputs[-1]))
            args[wrapper.inputs[i][0]] = f"{key}:0"
        for (arg, _), node_id in zip(wrapper.inputs[n_user:], captures):
            value, dtype = self._capture(node_id, graph_nodes)
            body.append(constant(arg, value, dtype))
            args[arg] = f"{arg}:0"
            variables[f"{arg}:0"] = (dtype, value.shape)
        body += wrapper.nodes
        outputs = [(key, wrapper.outputs[split_ref(info.name)[1]][1]) for key, info in out_infos]
        graph = build_graph(body, library, args, outputs, inputs, variables, str(self.root),
                            saved_layer_names(self.meta))
        for name in library.decoded:  # every function the graph uses, now that it is flat
            self._check_layout(library.protos[name], f"function {name}")
        return graph

    def _check_layout(self, message, what: str) -> None:
        try:
            tfproto.check_layout(message, what)
        except ValueError as e:
            raise InputError(f"unreadable saved_model.pb: {e} (a damaged file?)", where=self.where) from None

    def _call_node(self, signature, out_infos, graph_nodes):
        names = {split_ref(info.name)[0] for _, info in out_infos}
        if not out_infos or any(not info.name for _, info in out_infos):
            raise FastPathUnsupported(f"signature '{signature}' has no plain tensor outputs", where=self.where)
        if len(names) != 1:
            raise FastPathUnsupported(f"signature '{signature}' outputs come from several nodes", where=self.where)
        call = graph_nodes.get(names.pop())
        if call is None or call.op not in CALL_OPS:
            raise FastPathUnsupported(f"signature '{signature}' is not a function call (a TF1 SavedModel?)",
                                      where=self.where)
        return call

    def _capture(self, node_id: int, graph_nodes):
        """The value of a captured object: a variable from the checkpoint or a saved constant."""
        obj = self.objects.nodes[node_id]
        self._check_layout(obj, f"saved object {node_id}")
        kind = obj.WhichOneof("kind")
        if kind == "variable":
            key = self._checkpoint_keys().get(node_id)
            if key is None:
                raise InputError(f"variable '{obj.variable.name}' has no value in the checkpoint",
                                 where=str(self.root / "variables"))
            return self._bundle().read(key), tfattrs.dtype_name(obj.variable.dtype)
        if kind == "constant" and obj.constant.operation in graph_nodes:
            node = decode_node(graph_nodes[obj.constant.operation])
            return node.attrs["value"], node.attrs["dtype"]
        raise FastPathUnsupported(f"the signature captures a {kind or 'unknown object'} (object {node_id}); "
                                  "only variables and constants are read", where=self.where)

    def _bundle(self) -> TensorBundle:
        if self.bundle is None:
            self.bundle = TensorBundle(self.root / "variables" / "variables")
        return self.bundle

    def _checkpoint_keys(self) -> dict[int, str]:
        """SavedObjectGraph node id -> checkpoint key of its value, matched from the root by child name."""
        if hasattr(self, "_keys"):
            return self._keys
        bundle = self._bundle()
        if "_CHECKPOINTABLE_OBJECT_GRAPH" not in bundle:
            raise FastPathUnsupported("the checkpoint has no object graph (a TF1 checkpoint?)",
                                      where=str(bundle.prefix) + ".index")
        try:
            graph = bundle.read("_CHECKPOINTABLE_OBJECT_GRAPH")
            if graph.dtype != object or graph.shape != ():
                raise ValueError(f"the object graph is a {graph.dtype} tensor of shape {list(graph.shape)}, not a string")
            ckpt = tfproto.parse("TrackableObjectGraph", graph[()])
            tfproto.check_layout(ckpt, "the object graph")
        except ValueError as e:
            raise InputError(f"unreadable checkpoint: {e}", where=str(bundle.prefix)) from None
        self._keys, seen, todo = {}, set(), [(0, 0)]
        while todo:
            saved_id, ckpt_id = todo.pop()
            if saved_id in seen or ckpt_id >= len(ckpt.nodes) or saved_id >= len(self.objects.nodes):
                continue
            seen.add(saved_id)
            ckpt_node = ckpt.nodes[ckpt_id]
            for attr in ckpt_node.attributes:
                if attr.name == "VARIABLE_VALUE":
                    self._keys[saved_id] = attr.checkpoint_key
            ckpt_children = {c.local_name: c.node_id for c in ckpt_node.children}
            for child in self.objects.nodes[saved_id].children:
                if child.local_name in ckpt_children:
                    todo.append((child.node_id, ckpt_children[child.local_name]))
        return self._keys


_ASSETS_KEY = "saved_model_assets"  # the TF1 collection of AssetFileDefs


def asset_filenames(model) -> list[str]:
    """The file names of every asset a SavedModel message lists (its MetaGraphs' AssetFileDefs, TF2 and TF1)."""
    names = []
    for meta in model.meta_graphs:
        names += [asset.filename for asset in meta.asset_file_def]
        for entry in meta.collection_def:
            if entry.key == _ASSETS_KEY:
                for packed in entry.value.any_list.value:
                    try:
                        names.append(tfproto.parse("AssetFileDef", packed.value).filename)
                    except ValueError as e:
                        raise InputError(f"unreadable asset entry in saved_model.pb: {e}") from None
    return names


def check_assets(root: Path, model) -> None:
    """Refuses a SavedModel whose assets are not regular files inside its ``assets/`` directory: TensorFlow's
    loader joins the name to ``assets/`` (an absolute name replaces it) and reads whatever is there."""
    assets = root / "assets"
    base = os.path.realpath(assets)
    for name in asset_filenames(model):
        where = f"{root}: asset {name!r}"
        if not name or os.path.isabs(name) or PurePath(name).is_absolute() or ".." in PurePath(name).parts \
                or "\0" in name:
            raise InputError("the asset's path leaves the model's assets/ directory", where=where)
        real = os.path.realpath(assets / name)
        if os.path.commonpath([real, base]) != base:
            raise InputError("the asset's path resolves outside the model's assets/ directory (a symlink?)",
                             where=where)
        try:
            mode = os.stat(real).st_mode
        except OSError:
            continue  # a missing asset: TensorFlow's loader reports it, if it is used at all
        if not stat.S_ISREG(mode):
            raise InputError("the asset is not a regular file (a device, pipe or directory)", where=where)


def saved_layer_names(model_or_meta) -> set[str]:
    """Keras names its variables ``layer/weight``: the names of layers with weights, to tag nodes."""
    metas = list(getattr(model_or_meta, "meta_graphs", [model_or_meta]))
    return {o.variable.name.split("/")[0] for m in metas for o in m.object_graph_def.nodes
            if o.WhichOneof("kind") == "variable" and "/" in o.variable.name}


class _NoCaptures:
    bound_inputs = ()
