"""GraphDef / FunctionDef protos -> neutral TFNode / TFFunction lists (refs normalised, no flattening)."""

from __future__ import annotations

from irc.errors import InputError
from irc.frontends import tfattrs
from irc.frontends.tfdefaults import DEFAULTS
from irc.frontends.tfgraph import TFFunction, TFNode, input_ref, split_ref
from irc.frontends.tfopdefs import input_count, kind_problem, minimum_problem

# Output args of ops with more than one output arg, in order: "name" is one tensor, "name*attr" is a
# list whose length is the int attr (or the length of the type-list attr). An op not listed here is
# assumed to have a single output arg (a tensor or a list), so "node:arg:i" is simply output i.
OUTPUT_ARGS: dict[str, list[str]] = {
    "FusedBatchNorm": ["y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2"],
    "FusedBatchNormV2": ["y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2"],
    "FusedBatchNormV3": ["y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2",
                         "reserve_space_3"],
    "Unique": ["y", "idx"], "UniqueV2": ["y", "idx"],
    "UniqueWithCounts": ["y", "idx", "count"], "UniqueWithCountsV2": ["y", "idx", "count"],
    "ListDiff": ["out", "idx"],
    "TopK": ["values", "indices"], "TopKV2": ["values", "indices"], "ApproxTopK": ["values", "indices"],
    "MaxPoolWithArgmax": ["output", "argmax"],
    "FractionalMaxPool": ["output", "row_pooling_sequence", "col_pooling_sequence"],
    "FractionalAvgPool": ["output", "row_pooling_sequence", "col_pooling_sequence"],
    "BroadcastGradientArgs": ["r0", "r1"],
    "QuantizeV2": ["output", "output_min", "output_max"],
    "Requantize": ["output", "output_min", "output_max"],
    "RequantizationRange": ["output_min", "output_max"],
    "QuantizedConv2D": ["output", "min_output", "max_output"],
    "QuantizedMatMul": ["out", "min_out", "max_out"],
    "QuantizedRelu": ["activations", "min_activations", "max_activations"],
    "NonMaxSuppressionV4": ["selected_indices", "valid_outputs"],
    "NonMaxSuppressionV5": ["selected_indices", "selected_scores", "valid_outputs"],
    "CombinedNonMaxSuppression": ["nmsed_boxes", "nmsed_scores", "nmsed_classes", "valid_detections"],
    "Svd": ["s", "u", "v"], "Qr": ["q", "r"], "Eig": ["e", "v"], "SelfAdjointEigV2": ["e", "v"], "Lu": ["lu", "p"],
    "LSTMBlockCell": ["i", "cs", "f", "o", "ci", "co", "h"],
    "BlockLSTM": ["i", "cs", "f", "o", "ci", "co", "h"], "BlockLSTMV2": ["i", "cs", "f", "o", "ci", "co", "h"],
    "GRUBlockCell": ["r", "u", "c", "h"],
    "CudnnRNN": ["output", "output_h", "output_c", "reserve_space"],
    "CudnnRNNV2": ["output", "output_h", "output_c", "reserve_space", "host_reserved"],
    "CudnnRNNV3": ["output", "output_h", "output_c", "reserve_space", "host_reserved"],
    "TensorListPopBack": ["output_handle", "tensor"],
    "TensorListConcatV2": ["tensor", "lengths"],
    "TensorArrayV3": ["handle", "flow"], "TensorArrayConcatV3": ["value", "lengths"],
    "TensorArrayGradV3": ["grad_handle", "flow_out"],
    "Switch": ["output_false", "output_true"], "Merge": ["output", "value_index"],
    "SparseReshape": ["output_indices", "output_shape"],
    "SparseSlice": ["output_indices", "output_values", "output_shape"],
    "SparseConcat": ["output_indices", "output_values", "output_shape"],
    "SparseFillEmptyRows": ["output_indices", "output_values", "empty_row_indicator", "reverse_index_map"],
    "StringSplit": ["indices", "values", "shape"], "StringSplitV2": ["indices", "values", "shape"],
    "DenseToDenseSetOperation": ["result_indices", "result_values", "result_shape"],
    "RaggedRange": ["rt_nested_splits", "rt_dense_values"],
    "RaggedGather": ["output_nested_splits*OUTPUT_RAGGED_RANK", "output_dense_values"],
    "CTCGreedyDecoder": ["decoded_indices", "decoded_values", "decoded_shape", "log_probability"],
    "CTCBeamSearchDecoder": ["decoded_indices*top_paths", "decoded_values*top_paths",
                             "decoded_shape*top_paths", "log_probability"],
    "SoftmaxCrossEntropyWithLogits": ["loss", "backprop"],
    "SparseSoftmaxCrossEntropyWithLogits": ["loss", "backprop"],
    "StatelessRandomGetKeyCounter": ["key", "counter"],
    "StatelessRandomGetKeyCounterAlg": ["key", "counter", "alg"],
    "LookupTableExportV2": ["keys", "values"],
}


class RefError(ValueError):
    """A FunctionDef reference irc cannot map to an output index."""


class Damaged(ValueError):
    """A graph no TensorFlow loader accepts either: a damaged or hand-made file."""


class DanglingRef(RefError, Damaged):
    """A reference to no node, output or return value."""


class BadNode(Damaged):
    """A node TensorFlow's op registry rules out: an attribute of the wrong kind, the wrong number of inputs."""


def _unique_names(nodes: list[TFNode], where: str) -> list[TFNode]:
    names = set()
    for node in nodes:
        if node.name in names:
            raise Damaged(f"{where}: two nodes are named '{node.name}'")
        names.add(node.name)
    return nodes


def decode_node(proto, ref=None) -> TFNode:
    """NodeDef -> TFNode; ``ref`` rewrites each data input (FunctionDef bodies), control inputs dropped."""
    inputs = [i if ref is None else ref(i) for i in proto.input if not i.startswith("^")]
    if ref is None:
        inputs = [input_ref(*split_ref(i)) for i in inputs]
    # "_" attrs are TF-internal notes (_output_shapes, _read_only_resource_inputs...) that differ
    # between a SavedModel and a frozen graph of the same model; irc infers shapes itself.
    attrs = {}
    for entry in proto.attr:
        # An AttrValue with nothing set (a damaged file) counts as missing, so the lowering names the attribute.
        if entry.key.startswith("_") or entry.value.WhichOneof("value") is None:
            continue
        problem = kind_problem(entry.key, entry.value)
        if problem:
            raise BadNode(f"{proto.op} node '{proto.name}': {problem}")
        try:
            attrs[entry.key] = tfattrs.attr_value(entry.value)
        except InputError as e:  # a tensor too big or malformed: say which node holds it
            raise InputError(f"{proto.op} node '{proto.name}', attribute '{entry.key}': {e.message}",
                             hint=e.hint) from None
    problem = minimum_problem(proto.op, attrs)
    if problem:
        raise BadNode(f"{proto.op} node '{proto.name}': {problem}")
    try:
        expected = input_count(proto.op, attrs)
    except KeyError as missing:
        raise BadNode(f"{proto.op} node '{proto.name}' has no attribute {missing}, which gives its number of "
                      "inputs") from None
    if expected is not None and expected != len(inputs):
        has = f"{len(inputs)} input" + ("" if len(inputs) == 1 else "s")
        raise BadNode(f"{proto.op} node '{proto.name}' has {has}; TensorFlow's {proto.op} takes {expected}")
    for key, value in DEFAULTS.get(proto.op, {}).items():
        if key not in attrs:
            attrs[key] = list(value) if isinstance(value, list) else value
    return TFNode(proto.name, proto.op, inputs, attrs, proto.device, node_def=proto.SerializeToString())


def _arg_width(spec: str, attrs: dict) -> tuple[str, int]:
    name, _, count_attr = spec.partition("*")
    if not count_attr:
        return name, 1
    count = attrs.get(count_attr, 1)
    return name, len(count) if isinstance(count, list) else int(count)


class RefResolver:
    """Maps FunctionDef refs ``node:out_arg:i`` to ``node:k`` for one function body."""

    def __init__(self, nodes: dict[str, TFNode], func_outputs: dict[str, list[str]], where: str):
        self.nodes = nodes  # name -> decoded node (op and attrs are enough)
        self.func_outputs = func_outputs  # library function name -> its output arg names
        self.where = where
        self.seen_args: dict[str, str] = {}  # op not in OUTPUT_ARGS -> the one arg name seen

    def index(self, node_name: str, arg: str, i: int) -> int:
        node = self.nodes.get(node_name)
        if node is None:
            raise DanglingRef(f"{self.where}: input refers to unknown node '{node_name}'")
        if node.op in self.func_outputs:  # a direct call of a library function: one tensor per arg
            names = self.func_outputs[node.op]
            if arg not in names:
                raise DanglingRef(f"{self.where}: function '{node.op}' has no output '{arg}'")
            return names.index(arg) + i
        specs = OUTPUT_ARGS.get(node.op)
        if specs is None:
            first = self.seen_args.setdefault(node.op, arg)
            if first != arg:
                raise RefError(f"{self.where}: op {node.op} has output args '{first}' and '{arg}'; "
                               "irc does not know their layout")
            return i
        start = 0
        for spec in specs:
            name, width = _arg_width(spec, node.attrs)
            if name == arg:
                return start + i
            start += width
        raise RefError(f"{self.where}: op {node.op} (node '{node_name}') has no output arg '{arg}'")

    def __call__(self, ref: str) -> str:
        parts = ref.split(":")
        if len(parts) == 1:  # a function argument
            return ref
        if len(parts) == 3 and parts[2].isdigit():
            return input_ref(parts[0], self.index(parts[0], parts[1], int(parts[2])))
        raise DanglingRef(f"{self.where}: malformed reference '{ref}'")


def decode_function(proto, func_outputs: dict[str, list[str]]) -> TFFunction:
    sig = proto.signature
    where = f"function {sig.name}"
    for arg in list(sig.input_arg) + list(sig.output_arg):
        if arg.number_attr or arg.type_list_attr:
            raise RefError(f"{where}: list argument '{arg.name}' is not supported")
    # Decode the nodes first (without inputs) so refs can look up each producer's op and attrs.
    nodes = _unique_names([decode_node(n, ref=lambda r: r) for n in proto.node_def], where)
    resolver = RefResolver({n.name: n for n in nodes}, func_outputs, where)
    for node in nodes:
        node.inputs = [resolver(i) for i in node.inputs]
    ret = {e.key: e.value for e in proto.ret}
    outputs = []
    for arg in sig.output_arg:
        if arg.name not in ret:
            raise DanglingRef(f"{where}: output '{arg.name}' has no return value")
        name, idx = split_ref(resolver(ret[arg.name]))
        outputs.append((arg.name, f"{name}:{idx}"))
    inputs = [(a.name, tfattrs.dtype_name(a.type)) for a in sig.input_arg]
    return TFFunction(sig.name, inputs, outputs, nodes)


class Library:
    """The function library of a GraphDef; each FunctionDef is decoded on first use."""

    def __init__(self, library):
        self.protos = {f.signature.name: f for f in library.function}
        self.func_outputs = {name: [a.name for a in f.signature.output_arg] for name, f in self.protos.items()}
        self.decoded: dict[str, TFFunction] = {}
        self.node_count = sum(len(f.node_def) for f in self.protos.values())  # as the file holds them

    def __contains__(self, name: str) -> bool:
        return name in self.protos


    def __getitem__(self, name: str) -> TFFunction:
        if name not in self.decoded:
            self.decoded[name] = decode_function(self.protos[name], self.func_outputs)
        return self.decoded[name]


def located(error: InputError, where: str) -> InputError:
    """``error`` with the file named, when the decoder that raised it (a node's tensor) did not know the file."""
    return error if error.where else type(error)(error.message, where=where, hint=error.hint)


def decode_graph_def(graph_def) -> tuple[list[TFNode], Library]:
    return _unique_names([decode_node(n) for n in graph_def.node], "graph"), Library(graph_def.library)
