import re
from pathlib import Path

from irc.ops import all_ops
from irc.ops.base import PURE
from irc.ops.tfl import FUSABLE_OPS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "ops.md"


def documented_ops() -> set[str]:
    """Op names in the catalog's "Ops" section: the names before each backticked signature."""
    section = DOCS.read_text().split("## Ops", 1)[1]
    names = set()
    for span in re.findall(r"`([^`]*)`", section, flags=re.DOTALL):
        head = re.split(r"[({]", span, maxsplit=1)[0]
        names.update(n.strip() for n in head.split(",") if re.fullmatch(r"(tfl\.)?[a-z_][a-z0-9_]*", n.strip()))
    return names


def test_every_documented_op_is_registered():
    names = documented_ops()
    assert {"conv2d", "depthwise_conv2d", "reciprocal", "one_hot", "requantize", "const"} <= names
    assert sorted(names - set(all_ops())) == []


def test_every_op_is_documented_and_declared_well():
    documented = documented_ops()
    for name, op in all_ops().items():
        assert op.summary, f"{name} has no summary"
        assert name in documented, f"{name} is not in docs/ops.md"
        assert PURE in op.traits or op.regions, name  # an op with regions is as pure as they are
        for attr, spec in op.attrs.items():
            assert spec.required or spec.check(spec.default) is None, f"{name}.{attr} default is invalid"


def test_core_ops_are_target_neutral_and_tfl_forms_extend_them():
    """No core op carries a fused activation; each tfl.X is core op X plus one, with X's operands and attributes."""
    ops = all_ops()
    for name, op in ops.items():
        assert name.startswith(f"{op.dialect}.") or (op.dialect == "core" and "." not in name), name
        if op.dialect == "core":
            assert not {"activation", "fused_activation"} & set(op.attrs), name
        if op.dialect == "tfl" and op.core is not None:
            core = ops[op.core]
            assert op.operands == core.operands and set(op.attrs) == set(core.attrs) | {"fused_activation"}
    assert {n for n, op in ops.items() if op.dialect == "tfl" and op.core} == {f"tfl.{n}" for n in FUSABLE_OPS}
    # the rest of the dialect are TFLite's fused layers, which extend no single core op
    assert {n for n, op in ops.items() if op.dialect == "tfl" and not op.core} == {"tfl.unidirectional_sequence_lstm"}
