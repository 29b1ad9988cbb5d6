"""irc lower MODEL --emit tflite -o model.tflite: the main job.

Load the model, run the target's default pipeline (or the one given with --passes/--pipeline/-O), quantize if
asked, and hand the graph to the backend, which writes its output atomically.
"""

from __future__ import annotations

import gc

import click

from irc.backends import BUILTIN_BACKENDS
from irc.commands.common import check_output, force_option, load_model, load_options, note, progress
from irc.commands.pipeline import pipeline_options, run_options
from irc.errors import UsageError

QUANTIZE_MODES = ("float16", "dynamic-int8", "int8", "int16x8", "int8-weight-only", "int4-weight-only", "dynamic-int4")
WEIGHT_MODES = ("int8-weight-only", "int4-weight-only", "dynamic-int4")  # irc/passes/quantize/weights.py


def weight_options(command):
    """--granularity and --block-size, for the weight modes."""
    command = click.option("--block-size", type=click.IntRange(32, 256), default=None, metavar="N",
                           help="Weights per block with --granularity blockwise: 32, 64, 128 or 256.")(command)
    return click.option("--granularity", type=click.Choice(["per-tensor", "per-channel", "blockwise"]), default=None,
                        help="Weight modes: one scale per tensor, per output channel (default) or per block of "
                             "--block-size inputs.")(command)


def check_weight_options(quantize: str | None, granularity: str | None, block_size: int | None) -> None:
    """The weight options' combination, checked before the model is loaded."""
    if (granularity or block_size) and quantize not in WEIGHT_MODES:
        raise UsageError(f"--granularity and --block-size go with --quantize {', '.join(WEIGHT_MODES)}")
    if quantize in WEIGHT_MODES:
        from irc.passes.quantize.weights import scheme_for_mode

        scheme_for_mode(quantize, granularity, block_size)


def _fraction(ctx, param, value):
    """``0.01`` or ``1%``."""
    if value is None:
        return None
    text = value.strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise UsageError(f"--max-error: {value!r} is not a number (write e.g. 0.01 or 1%)") from None
    if not 0 < number < float("inf"):
        raise UsageError(f"--max-error must be above 0, not {value!r}")
    return number


def _size(ctx, param, value):
    from irc.limits import parse_size

    return None if value is None else parse_size(value, "--target-size")


@click.command("lower")
@click.argument("model", type=click.Path())
@click.option("--emit", "target", default="tflite", show_default=True, metavar="TARGET",
              help=f"What to produce: {', '.join(BUILTIN_BACKENDS)}, or a plugin's target (see --load).")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Output file (tflite, ir; '-' for stdout) or directory (xla, cuda, tpu). IR goes to stdout "
                   "without it. An existing file is replaced; an existing non-empty directory only with --force.")
@click.option("--quantize", type=click.Choice(QUANTIZE_MODES), default=None, help="Quantize before emitting.")
@click.option("--calibration", type=click.Path(dir_okay=False), default=None, metavar="DATA.npz",
              help="Calibration inputs for int8/int16x8: arrays keyed by input name, or one array. A "
                   "quantization-aware-trained model needs none (it only fills ranges the model lacks). With the "
                   "weight-only and int4 modes, fully-connected weights round to least error on them (GPTQ).")
@click.option("--observer", type=click.Choice(["minmax", "percentile", "mse"]), default="minmax", show_default=True,
              help="How calibration picks activation ranges.")
@click.option("--int8-io", is_flag=True, help="Make the model's own inputs and outputs integer (int8 quantization).")
@weight_options
@click.option("--keep-float", multiple=True, metavar="SELECTOR",
              help="Leave matching layers in float: a Keras layer or node name, /regex/ or op:TYPE (repeatable).")
@click.option("--recipe", default=None, metavar="FILE",
              help="A scheme per layer, from a TOML or JSON recipe (docs/quantization.md); --quantize replaces its "
                   "default.")
@click.option("--max-error", callback=_fraction, default=None, metavar="E",
              help="Automatic mixed precision: give the layers with the worst quantization error more bits "
                   "(int16x8, then float) until the output error on the calibration data is at most E: the RMS "
                   "difference from the float model divided by the float output's range (0.01 or 1%).")
@click.option("--target-size", callback=_size, default=None, metavar="SIZE",
              help="Automatic mixed precision: the most bytes the quantized weights may take (e.g. 4M); without "
                   "--max-error, spend them on the worst layers.")
@click.option("--write-recipe", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the recipe used (the one --max-error chose) as TOML; with --max-error it goes next to "
                   "the output by default (model.recipe.toml).")
@click.option("--layout", type=click.Choice(["nhwc", "nchw"]), default=None, help="cuda: data layout to emit.")
@click.option("--tpu", "tpu_address", default=None, metavar="ADDRESS", help="tpu: the TPU to connect to.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default=None,
              help="cuda: compute and weights in this precision (default fp32).")
@click.option("--jit", is_flag=True, default=None, help="cuda: compile the GPU function with XLA.")
@click.option("--batch", "batch_sizes", default=None, metavar="N[,N...]",
              help="xla: the batch sizes to write HLO and StableHLO for (default 1).")
@click.option("--fast/--no-fast", default=None,
              help="Read SavedModels without TensorFlow (default: when the model allows; else, only with --unsafe, "
                   "TensorFlow's loader).")
@force_option
@load_options
@pipeline_options
def command(model, target, output, quantize, calibration, observer, int8_io, keep_float, recipe, max_error,
            target_size, write_recipe, granularity, block_size, layout, tpu_address, precision, jit, batch_sizes, fast, force, **options):
    """Lower MODEL (SavedModel dir, .keras, .h5, .pb, .tflite or .irc) to a target."""
    from irc.backends import get_backend

    backend = get_backend(target)
    if output is None and target != "ir":
        example = "" if backend.writes == "directory" else f" model.{target}"
        raise UsageError(f"--emit {target} writes a {backend.writes}: give it with -o{example}")
    if backend.writes == "directory" and output == "-":
        raise UsageError(f"--emit {target} writes a directory, which cannot go to stdout: give one with -o")
    plan = _Plan.check(quantize, calibration, int8_io, keep_float, recipe, max_error, target_size, write_recipe,
                       output)
    check_weight_options(quantize, granularity, block_size)
    check_output(output, backend.writes, force)  # before hours of work, not after
    check_output(plan.write_recipe, "file", force)
    graph = load_model(model, fast=fast, **options)
    note(f"loaded {model}: {len(graph)} nodes")
    if plan.needs_data and not calibration and not any(n.op == "fake_quant" for n in graph.nodes):
        # a quantization-aware-trained model carries its ranges in fake-quant ops; any other model needs data
        raise UsageError(f"{plan.needs_data} needs calibration data: --calibration DATA.npz")
    with progress("optimizing"):
        run_options(graph, backend.default_pipeline, **options)
    gc.collect()  # erased nodes sit in node <-> value cycles: free the weights passes replaced before emitting
    backend_quantize = None
    recipe_text = None
    if quantize == "float16" and target == "tflite" and plan.recipe is None:
        backend_quantize = "float16"  # TFLite's float16 weights + DEQUANTIZE are the backend's own layout
        recipe_text = 'default = "float16"\n'
    elif plan.search:
        from irc.passes.quantize import load_calibration
        from irc.passes.quantize.mixed import auto_quantize

        samples = load_calibration(calibration, graph)
        choice = auto_quantize(graph, samples, quantize, max_error=max_error, target_size=target_size,
                               recipe=plan.recipe, keep_float=keep_float, observer=observer, int8_io=int8_io,
                               log=note)
        recipe_text = choice.recipe.to_toml(choice.summary())
    elif quantize or plan.recipe:
        from irc.passes.quantize import _recipe, load_calibration, quantize_graph

        # Checked against the graph's inputs before any calibration work starts.
        samples = load_calibration(calibration, graph) if calibration else None
        quantize_graph(graph, quantize, calibration=samples, observer=observer, int8_io=int8_io,
                       keep_float=keep_float, recipe=plan.recipe,
                       granularity=granularity, block_size=block_size)
        recipe_text = _recipe(quantize, plan.recipe, keep_float).to_toml()
    target_options = {"passes": "O0", "quantize": backend_quantize}  # the pipeline ran above
    if layout is not None:
        target_options["layout"] = layout
    if tpu_address is not None:
        target_options["tpu"] = tpu_address
    for key, value in (("precision", precision), ("jit", jit), ("batch", batch_sizes)):
        if value not in (None, False):
            target_options[key] = value
    for line in backend.notes(graph) if hasattr(backend, "notes") else ():
        click.echo(f"irc: note: {line}", err=True)  # one line, whatever the verbosity
    if target == "tflite":
        target_options["allow_tf_ops"] = options.get("allow_tf_ops", False) or options.get("unsafe", False)
    with progress(f"writing {target}"):
        backend.write(backend.emit(graph, target_options), "-" if output is None else output, force=force)
    if output not in (None, "-"):
        note(f"wrote {output}")
    if plan.write_recipe and recipe_text is not None:
        from irc.outputs import atomic_file

        with atomic_file(plan.write_recipe, force=force) as tmp:
            tmp.write_text(recipe_text, encoding="utf-8")
        note(f"wrote {plan.write_recipe}")


class _Plan:
    """The quantization options, checked together before the model is loaded."""

    def __init__(self, recipe, search: bool, write_recipe: str | None, needs_data: str | None):
        self.recipe, self.search, self.write_recipe = recipe, search, write_recipe
        self.needs_data = needs_data  # what needs calibration data, unless the model is quantization-aware-trained

    @classmethod
    def check(cls, quantize, calibration, int8_io, keep_float, recipe_path, max_error, target_size, write_recipe,
              output) -> _Plan:
        recipe = None
        if recipe_path:
            from irc.passes.quantize.recipe import load_recipe

            recipe = load_recipe(recipe_path)  # its keys, schemes and regexes: before the model is loaded
        search = max_error is not None or target_size is not None
        default = quantize or (recipe.default if recipe else None)
        if (calibration or int8_io or keep_float or write_recipe) and not (quantize or recipe):
            raise UsageError("--calibration, --int8-io, --keep-float and --write-recipe go with --quantize or "
                             "--recipe")
        if quantize == "float16" and (calibration or int8_io or keep_float) and not recipe:
            raise UsageError("--calibration, --int8-io and --keep-float go with --quantize int8, int16x8 or "
                             "dynamic-int8")
        if int8_io and default not in ("int8", "int16x8"):
            raise UsageError("--int8-io goes with int8 or int16x8 quantization (--quantize, or the recipe's default)")
        if search and default not in ("int8", "int16x8"):
            raise UsageError("--max-error and --target-size start from --quantize int8 or int16x8")
        static = default in ("int8", "int16x8") or (recipe is not None and recipe.with_default(quantize).static())
        needs_data = None
        if static:
            needs_data = f"--quantize {default}" if default in ("int8", "int16x8") else f"the recipe {recipe_path}"
        if search and not calibration:  # the search measures errors on it, QAT model or not
            raise UsageError("--max-error and --target-size need calibration data: --calibration DATA.npz")
        if search and not write_recipe:
            if output in (None, "-"):
                raise UsageError("--max-error writes the recipe it chose: name it with --write-recipe FILE")
            from pathlib import Path

            write_recipe = str(Path(output).with_suffix(".recipe.toml"))
        return cls(recipe, search, write_recipe, needs_data)
