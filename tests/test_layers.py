"""irc's layers (docs/architecture.md): a module imports only from its own layer and the layers below it, the
frontends and the backends never import each other, and only the CLI imports click. Every import counts, those
inside functions too: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "irc"

# Lowest first. A unit is a subpackage (irc/passes) or a top-level module (irc/errors.py); "irc" is the package's
# __init__ (the version and lazy attributes).
LAYERS = [
    {"irc", "errors", "limits", "outputs", "npfiles", "registry", "tfquiet"},  # base: no irc dependencies but each other
    {"formats"},  # file formats irc both reads and writes
    {"ir", "ops"},  # the graph and its ops (a graph infers its types through the op registry)
    {"passes"},
    {"frontends", "backends"},  # the two never import each other
    {"tools"},
    {"api", "zoo"},
    {"commands", "cli"},
]
LEVEL = {unit: level for level, units in enumerate(LAYERS) for unit in units}
SIBLINGS_APART = {frozenset({"frontends", "backends"})}
CLI_ONLY = {"click"}
CLI_UNITS = {"commands", "cli"}


def unit_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or not ((PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file()):
        return "irc"  # the package itself, or an attribute of it (irc.__version__)
    return parts[1]


def imports(path: Path) -> list[tuple[str, int]]:
    """(module, line) for every import in the file, nested ones included; ``from irc import x`` is irc.x."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "irc":
                found += [(f"irc.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((node.module, node.lineno))
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = unit_of(module_name(path))
        assert source in LEVEL, f"{path}: unit {source!r} has no layer in docs/architecture.md and this test"
        for module, line in imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            top = module.split(".")[0]
            if top in CLI_ONLY and source not in CLI_UNITS:
                problems.append(f"{where}: imports {module}; only irc/commands and irc/cli.py may")
            if top != "irc":
                continue
            target = unit_of(module)
            if target == source:
                continue
            if target not in LEVEL:
                problems.append(f"{where}: imports {module}, which has no layer")
            elif LEVEL[target] > LEVEL[source]:
                problems.append(f"{where}: {source} imports {module} from a higher layer ({target})")
            elif frozenset({source, target}) in SIBLINGS_APART:
                problems.append(f"{where}: {source} imports {module}: {source} and {target} must not depend on "
                                "each other (shared code goes below both, e.g. irc/formats)")
    return problems


def test_every_import_respects_the_layers():
    assert violations() == []


def test_the_checker_sees_lazy_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from irc.commands.common import note\n    import click\n")
    assert imports(probe) == [("irc.commands.common", 2), ("click", 3)]


def test_the_layers_are_the_documented_ones():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for units in LAYERS:
        for unit in units - {"irc"}:
            assert f"`{unit}`" in text, f"docs/architecture.md does not place `{unit}`"


# ----- one implementation of each piece of shared logic -------------------------------------------------------------
def functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_dead_node_removal_is_written_once():
    # Rewriter.erase_dead is the rewrite driver's incremental step (it erases what one rewrite left unused and
    # keeps the worklist right), not a whole-graph liveness walk.
    allowed = {("irc/ir/liveness.py", "live_nodes"), ("irc/ir/liveness.py", "remove_dead"),
               ("irc/passes/rewrite.py", "erase_dead")}
    found = {(str(p.relative_to(ROOT)), name) for p in PACKAGE.rglob("*.py") for name in functions(p)
             if "dead" in name.lower() or "live" in name.lower()}
    assert found <= allowed, sorted(found - allowed)
    for user in ("irc/passes/dce.py", "irc/frontends/lowering/__init__.py", "irc/frontends/tflite.py",
                 "irc/backends/tfemit/codegen.py", "irc/backends/tflite/backend.py"):
        assert any(m == "irc.ir.liveness" for m, _ in imports(ROOT / user)), user


def test_quantization_parameters_are_broadcast_in_one_place():
    found = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") for name in functions(p)
             if "broadcast_params" in name or "param_arrays" in name}
    assert found == {"irc/ops/quant.py"}


def test_the_tflite_reader_derives_its_op_names_from_the_writers_table():
    from irc.formats.tflite import opnames
    from irc.frontends import tflite as reader

    tree = ast.parse((PACKAGE / "frontends" / "tflite.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # no hand-written TFLITE_NAME -> irc op table
        if isinstance(node, ast.Dict) and node.keys and all(isinstance(k, ast.Constant) for k in node.keys):
            keys = [k.value for k in node.keys]
            values = [v.value for v in node.values if isinstance(v, ast.Constant)]
            assert not (all(isinstance(k, str) and k.isupper() for k in keys) and len(values) == len(keys)
                        and any(v in opnames.UNARY or v in opnames.BINARY for v in values)), \
                f"frontends/tflite.py:{node.lineno} mirrors a table of irc/formats/tflite/opnames.py"
    for table in ("ARITHMETIC", "BINARY", "UNARY", "REDUCE"):
        assert getattr(reader, f"_{table}") == opnames.inverse(getattr(opnames, table))
