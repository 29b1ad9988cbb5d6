"""The kind of value each TF attribute name holds, as TensorFlow's op registry declares it.

A damaged file can store any kind under any name (a ``value`` that is a string, ``strides`` that are floats);
``decode_node`` checks the attributes of every node against this table, so such a node is refused by name
instead of failing somewhere inside its lowering. Kinds are OpDef attribute types; a name TF uses with two
kinds lists both. ``tests/test_tfgraph_defaults.py`` checks the table against TF's registry: every attribute of
the ops irc lowers is listed, and no TF op declares a listed name with a kind the table does not list.
"""

from __future__ import annotations

ATTR_KINDS: dict[str, tuple[str, ...]] = {
    # types
    **{name: ("type",) for name in (
        "DstT", "Index", "SrcT", "TI", "Ta", "Taxis", "Tb", "Tblock_shape", "Tcond", "Tcrops", "Tdim", "Tidx",
        "Tindex", "Tindices", "Tlen", "Tmultiples", "Tpaddings", "Tparams", "Tperm", "Tshape", "dtype",
        "element_dtype", "index_type", "out_type", "output_type", "shape_type")},
    "T": ("type", "list(type)"),
    "Tout": ("type", "list(type)"),
    "Tin": ("type", "list(type)"),
    "U": ("type", "list(type)"),
    # flags
    **{name: ("bool",) for name in (
        "Truncate", "adj_x", "adj_y", "align_corners", "grad_a", "grad_b", "grad_x", "grad_y", "half_pixel_centers",
        "incompatible_shape_error", "is_training", "keep_dims", "resize_if_index_out_of_bounds", "transpose_a",
        "transpose_b", "use_cudnn_on_gpu", "validate_indices")},
    # numbers
    **{name: ("int",) for name in (
        "N", "axis", "batch_dims", "begin_mask", "block_size", "ellipsis_mask", "end_mask", "new_axis_mask", "num",
        "num_elements", "num_split", "parallel_iterations", "shrink_axis_mask")},
    **{name: ("float",) for name in ("alpha", "epsilon", "exponential_avg_factor")},
    **{name: ("list(int)",) for name in ("dilations", "explicit_paddings", "ksize", "squeeze_dims", "strides")},
    **{name: ("string",) for name in ("data_format", "equation", "message", "mode", "padding")},
    **{name: ("func",) for name in ("body", "cond", "else_branch", "then_branch")},
    "output_shapes": ("list(shape)",),
    "shape": ("shape",),
    "value": ("tensor",),
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
