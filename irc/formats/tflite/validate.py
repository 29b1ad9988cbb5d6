"""Consistency checks of a TFLite model held as ``flatbuffer`` dataclasses.

``problems`` lists what is wrong, one line each (indices out of range, unknown op codes or tensor types,
constant data whose size does not match its tensor's shape, options of the wrong table); ``check`` raises the
first as an InputError. The reader checks every file it parses; the writer refuses models with problems.
"""

from __future__ import annotations

import math
from collections import Counter

from irc.errors import InputError
from irc.formats.tflite import schema


def check(model, source: str) -> None:
    found = problems(model)
    if found:
        raise InputError(summary(found), where=source)


def summary(found: list[str]) -> str:
    """The first problem, and how many more there are."""
    more = len(found) - 1
    return found[0] + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def problems(model) -> list[str]:
    out = []
    if model.version != schema.SCHEMA_VERSION:
        out.append(f"schema version {model.version}, expected {schema.SCHEMA_VERSION}")
    if not model.subgraphs:
        out.append("the model has no subgraphs")
    ops = [_op_name(i, oc, out) for i, oc in enumerate(model.operator_codes)]
    for s, sg in enumerate(model.subgraphs):
        _subgraph_problems(model, s, sg, ops, out)
    for i, sig in enumerate(model.signature_defs):
        what = f"signature {sig.signature_key!r}"
        if not 0 <= sig.subgraph_index < len(model.subgraphs):
            out.append(f"{what} refers to subgraph {sig.subgraph_index} but the model has "
                       f"{len(model.subgraphs)} subgraphs")
            continue
        n = len(model.subgraphs[sig.subgraph_index].tensors)
        for kind, names in [("input", sig.inputs), ("output", sig.outputs)]:
            for name, index in names.items():
                if not 0 <= index < n:
                    out.append(f"{what} {kind} {name!r} refers to tensor {index} but its subgraph has {n} tensors")
    return out


def _op_name(i: int, oc, out: list[str]) -> str | None:
    """Record what is wrong with operator code `i`; return its op name when known."""
    code = oc.builtin_code
    if not isinstance(code, str) or code not in schema.BUILTIN_OPERATOR.codes:
        out.append(f"operator code {i} has unknown builtin operator {code}")
        return None
    if code == "CUSTOM" and not oc.custom_code:
        out.append(f"operator code {i} is CUSTOM but has no custom_code")
    return code


def _subgraph_problems(model, s: int, sg, ops: list[str | None], out: list[str]) -> None:
    prefix = f"subgraph {s} " if s else ""
    n = len(sg.tensors)

    def bad(index: int) -> bool:
        return not 0 <= index < n

    for i, t in enumerate(sg.tensors):
        what = f"{prefix}tensor {i} ({t.name!r})"
        if not isinstance(t.type, str) or t.type not in schema.TENSOR_TYPE.codes:
            out.append(f"{what} has unknown type {t.type}")
        if not 0 <= t.buffer < len(model.buffers):
            out.append(f"{what} refers to buffer {t.buffer} but the model has {len(model.buffers)} buffers")
        elif t.buffer and model.buffers[t.buffer].nbytes:
            _data_size_problem(what, t, model.buffers[t.buffer].nbytes, out)
        if t.shape_signature is not None and len(t.shape_signature) != len(t.shape):
            out.append(f"{what} has shape {t.shape} but shape signature {t.shape_signature}")
        q = t.quantization
        if q is not None and q.scale and len(q.zero_point) not in (0, len(q.scale)):
            out.append(f"{what} has {len(q.scale)} quantization scales but {len(q.zero_point)} zero points")
    for kind, indices in [("input", sg.inputs), ("output", sg.outputs)]:
        for index in indices:
            if bad(index):
                out.append(f"{prefix}{kind} {index} is not a tensor of the subgraph ({n} tensors)")
    for index in sorted(i for i, times in Counter(sg.inputs).items() if times > 1):
        out.append(f"{prefix}tensor {index} is listed as an input more than once")
    for k, op in enumerate(sg.operators):
        what = f"{prefix}operator {k}"
        if not 0 <= op.opcode_index < len(ops):
            out.append(f"{what} refers to operator code {op.opcode_index} but the model has {len(ops)} operator codes")
        else:
            _options_problem(what, ops[op.opcode_index], op.builtin_options, len(model.subgraphs), out)
        for kind, indices, optional in [("input", op.inputs, True), ("output", op.outputs, False),
                                        ("intermediate", op.intermediates, False)]:
            for index in indices:
                if bad(index) and not (optional and index == -1):
                    out.append(f"{what} has {kind} tensor {index} but the subgraph has {n} tensors")


def _data_size_problem(what: str, t, nbytes: int, out: list[str]) -> None:
    size = schema.TYPE_SIZES.get(t.type) if isinstance(t.type, str) else None
    if size is None:  # strings and handles have no fixed size
        return
    if any(d < 0 for d in t.shape):
        out.append(f"{what} holds data but its shape {t.shape} has a negative dimension")
        return
    count = math.prod(t.shape)
    allowed = {count * size}
    if t.type in ("INT4", "UINT4"):
        allowed.add((count + 1) // 2)  # two per byte when packed
    if t.type == "INT2":
        allowed.add((count + 3) // 4)
    if nbytes not in allowed:
        out.append(f"{what} has shape {t.shape} of {t.type} ({count * size} bytes) but buffer {t.buffer} "
                   f"holds {nbytes} bytes")


def _options_problem(what: str, op: str | None, opts, n_subgraphs: int, out: list[str]) -> None:
    if opts is None or op is None or op == "CUSTOM":
        return
    expected = schema.options_table(op)
    if opts.TABLE.name != expected:
        out.append(f"{what} ({op}) has {opts.TABLE.name}, expected {expected or 'no options'}")
    for f in opts.TABLE.fields:  # If/While/Call... name other subgraphs
        if "subgraph" in f.name:
            value = getattr(opts, f.name)
            for index in value if isinstance(value, tuple) else (value,):
                if not 0 <= index < n_subgraphs:
                    out.append(f"{what} ({op}) {f.name} is {index} but the model has {n_subgraphs} subgraphs")
