"""irc quant-report MODEL --calibration data.npz: per-tensor quantization error, worst layers first."""

from __future__ import annotations

import json

import click

from irc.commands.common import load_model, load_options, note, progress, write_output
from irc.commands.lower import check_weight_options, weight_options
from irc.errors import UsageError


def _range(spec: str) -> tuple[str, tuple[float, float]]:
    selector, sep, bounds = spec.rpartition("=")
    try:
        lo, hi = (float(b) for b in bounds.split(","))
    except ValueError:
        lo = hi = None
    if not sep or not selector or lo is None or not lo <= hi:
        raise UsageError(f"bad --range {spec!r}", hint="write LAYER=LO,HI, e.g. conv1=0,6")
    return selector, (lo, hi)


@click.command("quant-report")
@click.argument("model", type=click.Path())
@click.option("--calibration", type=click.Path(dir_okay=False), required=True, metavar="DATA.npz",
              help="Calibration inputs: arrays keyed by input name (samples along the first axis), or one array.")
@click.option("--mode", type=click.Choice(["int8", "int16x8", "dynamic-int8", "float16", "int8-weight-only",
                                          "int4-weight-only", "dynamic-int4"]), default=None,
              help="The quantization to measure (default int8; with --recipe, it replaces the recipe's default).")
@click.option("--recipe", default=None, metavar="FILE",
              help="Measure a scheme per layer from a TOML or JSON recipe (docs/quantization.md).")
@weight_options
@click.option("--observer", default="minmax", show_default=True, metavar="NAME",
              help="How calibration picks ranges: minmax, percentile[:P] or mse.")
@click.option("--keep-float", multiple=True, metavar="SELECTOR",
              help="Leave matching layers in float: a Keras layer or node name, an op type (op:softmax) or a "
                   "regular expression (/block_.*/) (repeatable).")
@click.option("--range", "ranges", multiple=True, metavar="LAYER=LO,HI",
              help="Override a calibrated range before quantizing, to try a fix (repeatable).")
@click.option("--samples", type=click.IntRange(min=1), default=None, metavar="N",
              help="Compare on the first N calibration samples (all are used to calibrate).")
@click.option("--limit", type=click.IntRange(min=0), default=25, show_default=True, metavar="N",
              help="Show the N worst tensors (0: all).")
@click.option("--passes", default="tflite", show_default=True, metavar="PIPELINE",
              help="Pipeline run before quantizing (the TFLite backend's by default).")
@click.option("--json", "as_json", is_flag=True, help="Write every tensor's errors as JSON.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@load_options
def command(model, calibration, mode, recipe, observer, keep_float, ranges, samples, limit, passes, as_json, output,
            granularity, block_size, **options):
    """Quantize MODEL and report, for every quantized tensor, its error against the float model.

    Two errors per tensor: the one the layer itself adds (its weights and output range, given the inputs it
    really gets; rows are sorted by it, worst first) and the end-to-end one at that tensor. Each is an SQNR in
    dB (higher is better) and an RMSE relative to the float tensor's range. Layers are named by their Keras
    layer names.

    \b
    Examples:
      irc quant-report model/ --calibration data.npz --keep-float classifier
      irc quant-report model/ --calibration data.npz --recipe mixed.toml
    """
    from irc.ops.tf_policy import check_graph_may_run
    from irc.passes import run_pipeline
    from irc.passes.quantize import load_calibration
    from irc.passes.quantize.observers import make_observer
    from irc.passes.quantize.report import quant_report

    make_observer(observer)
    check_weight_options(mode, granularity, block_size)
    overrides = dict(_range(spec) for spec in ranges)
    if recipe:
        from irc.passes.quantize.recipe import load_recipe

        recipe = load_recipe(recipe)  # checked before the model is loaded
    elif mode is None:
        mode = "int8"
    graph = load_model(model, **options)
    check_graph_may_run(graph, where=model)  # calibration runs the model
    data = load_calibration(calibration, graph)  # checked before any work
    note(f"{len(data)} calibration sample(s)")
    if passes and passes != "O0":
        with progress("optimizing"):
            run_pipeline(graph, passes)
    report = quant_report(graph, data, mode=mode, observer=observer, keep_float=keep_float, overrides=overrides,
                          samples=samples, recipe=recipe or None,
                          granularity=granularity, block_size=block_size)
    if as_json:
        write_output(output, json.dumps(report.to_json(), indent=2) + "\n")
    else:
        write_output(output, report.text(limit or None))
