"""What irc knows of TensorFlow's op registry without TensorFlow: the kind of value each attribute name holds,
the input arguments of each op irc lowers, and the lower bounds on their attributes.

A damaged file can store any kind under any name (a ``value`` that is a string, ``strides`` that are floats), or
give a Relu no input; ``decode_node`` checks every node against these tables, so such a node is refused by name
instead of failing somewhere inside its lowering. Kinds are OpDef attribute types; a name TF uses with two kinds
lists both. ``tests/test_tfgraph_defaults.py`` checks the tables against TF's registry: every attribute of the
ops irc lowers is listed, no TF op declares a listed name with a kind the table does not list, and each lowered
op's inputs and attribute minimums are TF's.
"""

from __future__ import annotations

ATTR_KINDS: dict[str, tuple[str, ...]] = {
    # types
    **{name: ("type",) for name in (
        "DstT", "Index", "SrcT", "TI", "Ta", "Taxis", "Tb", "Tblock_shape", "Tcomplex", "Tcond", "Tcrops", "Tdim",
        "Tidx", "Tindex", "Tindices", "Tk", "Tlen", "Tmultiples", "Tpaddings", "Tparams", "Tperm", "Treal", "Tshape",
        "Tshift", "dtype",
        "element_dtype", "index_type", "out_type", "output_type", "shape_type")},
    "T": ("type", "list(type)"),
    "Tout": ("type", "list(type)"),
    "Tin": ("type", "list(type)"),
    "U": ("type", "list(type)"),
    # flags
    **{name: ("bool",) for name in (
        "Truncate", "adj_x", "adj_y", "align_corners", "exclusive", "grad_a", "grad_b", "grad_x", "grad_y",
        "half_pixel_centers", "incompatible_shape_error", "is_training", "keep_dims", "narrow_range",
        "resize_if_index_out_of_bounds", "reverse", "sorted", "transpose_a", "transpose_b", "use_cudnn_on_gpu",
        "validate_indices")},
    # numbers
    **{name: ("int",) for name in (
        "N", "axis", "batch_dims", "begin_mask", "block_size", "ellipsis_mask", "end_mask", "k", "new_axis_mask", "num",
        "num_bits", "num_elements", "num_split", "parallel_iterations", "shrink_axis_mask")},
    **{name: ("float",) for name in ("alpha", "epsilon", "exponential_avg_factor", "max", "min")},
    **{name: ("list(int)",) for name in ("dilations", "explicit_paddings", "ksize", "squeeze_dims", "strides")},
    **{name: ("string",) for name in ("bad_indices_policy", "data_format", "equation", "message", "mode", "padding")},
    **{name: ("func",) for name in ("body", "cond", "else_branch", "then_branch")},
    "branches": ("list(func)",),
    "output_shapes": ("list(shape)",),
    "shape": ("shape",),
    "value": ("tensor",),
}

# The input arguments of each op irc lowers (OpDef.input_arg; "name*attr": as many inputs as the attribute says,
# a count or a list of types), so a node with the wrong number of inputs is refused before its lowering runs.
_INPUT_GROUPS: list[tuple[list[str], list[str]]] = [
    ([], ["Const", "NoOp", "Placeholder"]),
    (["features"], ["Elu", "LeakyRelu", "Relu", "Relu6", "Selu", "Softplus", "Softsign"]),
    (["input"], [
        "AvgPool3D", "DepthToSpace", "EnsureShape", "FFT", "FFT2D", "IFFT", "IFFT2D", "Identity", "Imag", "MaxPool",
        "MaxPool3D", "PlaceholderWithDefault", "PreventGradient", "Rank", "Real", "Shape", "Size", "Snapshot",
        "SpaceToDepth", "Squeeze", "StopGradient", "TopK",
    ]),
    (["input*N"], ["ShapeN"]),
    (["input*T"], ["IdentityN", "StatelessWhile", "While"]),
    (["input_handle"], ["TensorListElementShape", "TensorListLength"]),
    (["inputs"], ["FakeQuantWithMinMaxArgs"]),
    (["inputs*N"], ["AddN", "Einsum"]),
    (["logits"], ["LogSoftmax", "Softmax"]),
    (["tensor"], ["CheckNumerics"]),
    (["value"], ["AvgPool", "Unpack"]),
    (["values*N"], ["Pack"]),
    (["x"], [
        "Abs", "Cast", "Ceil", "ComplexAbs", "Cos", "Erf", "Erfc", "Exp", "Expm1", "Floor", "Inv", "Log", "Log1p",
        "LogicalNot", "Neg", "OnesLike", "Reciprocal", "Rint", "Round", "Rsqrt", "Sigmoid", "Sign", "Sin", "Sqrt", "Square", "Tanh",
        "ZerosLike",
    ]),
    (["a", "b"], ["MatMul"]),
    (["concat_dim", "values*N"], ["Concat"]),
    (["cond", "input*Tin"], ["If", "StatelessIf"]),
    (["branch_index", "input*Tin"], ["Case", "StatelessCase"]),
    (["dims", "value"], ["Fill"]),
    (["element_shape", "max_num_elements"], ["EmptyTensorList"]),
    (["element_shape", "num_elements"], ["TensorListReserve"]),
    (["images", "size"], ["ResizeBilinear", "ResizeNearestNeighbor"]),
    (["input", "dim"], ["ExpandDims"]),
    (["input", "dimension"], ["ArgMax", "ArgMin"]),
    (["input", "k"], ["TopKV2"]),
    (["input", "fft_length"], ["IRFFT", "IRFFT2D", "RFFT", "RFFT2D"]),
    (["input", "filter"], ["Conv2D", "Conv3D", "DepthwiseConv2dNative"]),
    (["input", "multiples"], ["Tile"]),
    (["x", "axis"], ["Cumsum"]),
    (["input", "paddings"], ["MirrorPad", "Pad"]),
    (["input", "reduction_indices"], ["All", "Any", "Max", "Mean", "Min", "Prod", "Sum"]),
    (["input", "shape"], ["BroadcastTo"]),
    (["input_handle", "element_shape"], ["TensorListPopBack", "TensorListStack"]),
    (["input_handle", "tensor"], ["TensorListPushBack"]),
    (["params", "indices"], ["Gather", "GatherNd"]),
    (["real", "imag"], ["Complex"]),
    (["resource", "indices"], ["ResourceGather", "ResourceGatherNd"]),
    (["s0", "s1"], ["BroadcastArgs"]),
    (["split_dim", "value"], ["Split"]),
    (["tensor", "axis"], ["ReverseV2"]),
    (["tensor", "element_shape"], ["TensorListFromTensor"]),
    (["tensor", "shape"], ["Reshape"]),
    (["value", "bias"], ["BiasAdd", "BiasAddV1"]),
    (["values*N", "axis"], ["ConcatV2"]),
    (["x", "perm"], ["Transpose"]),
    (["x", "y"], [
        "Add", "AddV2", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Div", "DivNoNan", "Equal", "FloorDiv",
        "FloorMod", "Greater", "GreaterEqual", "Less", "LessEqual", "LogicalAnd", "LogicalOr", "Maximum", "Minimum",
        "Mul", "NotEqual", "Pow", "RealDiv", "SquaredDifference", "Sub", "TruncateDiv",
    ]),
    (["condition", "t", "e"], ["Select", "SelectV2"]),
    (["inputs", "min", "max"], ["FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel"]),
    (["input", "begin", "size"], ["Slice"]),
    (["input", "shift", "axis"], ["Roll"]),
    (["input", "start_indices", "size_indices"], ["XlaDynamicSlice"]),
    (["input", "update", "indices"], ["XlaDynamicUpdateSlice"]),
    (["indices", "updates", "shape"], ["ScatterNd"]),
    (["tensor", "indices", "updates"], ["TensorScatterAdd", "TensorScatterUpdate"]),
    (["input", "block_shape", "crops"], ["BatchToSpaceND"]),
    (["input", "block_shape", "paddings"], ["SpaceToBatchND"]),
    (["input", "filter", "out_backprop"], ["Conv2DBackpropInputV2"]),
    (["input", "ksize", "strides"], ["MaxPoolV2"]),
    (["input", "num_lower", "num_upper"], ["MatrixBandPart"]),
    (["input", "paddings", "constant_values"], ["PadV2"]),
    (["input_handle", "index", "element_shape"], ["TensorListGetItem"]),
    (["input_handle", "index", "item"], ["TensorListSetItem"]),
    (["input_handle", "indices", "element_shape"], ["TensorListGather"]),
    (["input_sizes", "filter", "out_backprop"], ["Conv2DBackpropInput", "Conv3DBackpropInputV2"]),
    (["params", "indices", "axis"], ["GatherV2"]),
    (["start", "limit", "delta"], ["Range"]),
    (["t", "clip_value_min", "clip_value_max"], ["ClipByValue"]),
    (["value", "size_splits", "split_dim"], ["SplitV"]),
    (["indices", "depth", "on_value", "off_value"], ["OneHot"]),
    (["input", "begin", "end", "strides"], ["StridedSlice"]),
    (["x", "scale", "offset", "mean", "variance"], ["FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"]),
]
INPUT_ARGS: dict[str, list[str]] = {op: spec for spec, ops in _INPUT_GROUPS for op in ops}

# Lower bounds TF's registry sets on attributes of lowered ops: an int's value, a list's length.
ATTR_MINIMUMS: dict[str, dict[str, int]] = {
    "AddN": {"N": 1}, "Concat": {"N": 2}, "ConcatV2": {"N": 2}, "Einsum": {"N": 1}, "IdentityN": {"T": 1},
    "Pack": {"N": 1}, "ShapeN": {"N": 1}, "Split": {"num_split": 1}, "SplitV": {"num_split": 1},
    "Unpack": {"num": 0}, "AvgPool": {"ksize": 4, "strides": 4}, "MaxPool": {"ksize": 4, "strides": 4},
    "DepthToSpace": {"block_size": 2}, "SpaceToDepth": {"block_size": 2}, "TopK": {"k": 0},
    "AvgPool3D": {"ksize": 5, "strides": 5}, "MaxPool3D": {"ksize": 5, "strides": 5}, "Conv3D": {"strides": 5},
    "Conv3DBackpropInputV2": {"strides": 5}, "Case": {"branches": 1}, "StatelessCase": {"branches": 1},
}

# OpDef attribute type -> the AttrValue field that holds it (lists: the field inside ``list``)
_FIELDS = {"type": "type", "bool": "b", "int": "i", "float": "f", "string": "s", "func": "func", "shape": "shape",
           "tensor": "tensor"}


def kind_problem(name: str, value) -> str | None:
    """Why AttrValue ``value`` cannot be attribute ``name`` (None when it can, or the name is not in the table)."""
    kinds = ATTR_KINDS.get(name)
    held = value.WhichOneof("value")
    if kinds is None or held == "placeholder":  # placeholder: a function attribute bound by its caller
        return None
    for kind in kinds:
        if kind.startswith("list("):
            inside = {f.name for f, _ in value.list.ListFields()}
            if held == "list" and inside <= {_FIELDS[kind[5:-1]]}:
                return None
        elif held == _FIELDS[kind]:
            return None
    words = {field: kind for kind, field in _FIELDS.items()}
    if held == "list":
        inside = sorted(words[f.name] for f, _ in value.list.ListFields())
        held = f"list({', '.join(inside)})" if inside else "list"
    else:
        held = words.get(held, held)
    return f"attribute '{name}' holds a {held}, where TensorFlow expects {' or '.join(kinds)}"


def input_count(op: str, attrs: dict) -> int | None:
    """How many data inputs a node of ``op`` with ``attrs`` has in TensorFlow (None: not known here).
    KeyError names a missing attribute that gives the count."""
    specs = INPUT_ARGS.get(op)
    if specs is None:
        return None
    total = 0
    for spec in specs:
        _, _, count_attr = spec.partition("*")
        if not count_attr:
            total += 1
        elif isinstance(attrs.get(count_attr), list):
            total += len(attrs[count_attr])
        elif isinstance(attrs.get(count_attr), int):
            total += attrs[count_attr]
        else:
            raise KeyError(count_attr)  # TensorFlow requires it: without it the node's inputs are unknown
    return total


def minimum_problem(op: str, attrs: dict) -> str | None:
    """Which attribute of a node of ``op`` is below TF's lower bound for it (None: none is)."""
    for name, least in ATTR_MINIMUMS.get(op, {}).items():
        value = attrs.get(name)
        size = len(value) if isinstance(value, list) else value
        if isinstance(size, int) and size < least:
            what = "has" if isinstance(value, list) else "is"
            amount = f"{size} items" if isinstance(value, list) else str(size)
            return f"attribute '{name}' {what} {amount}; TensorFlow's {op} needs at least {least}"
    return None
