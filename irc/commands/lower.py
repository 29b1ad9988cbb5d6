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

QUANTIZE_MODES = ("float16", "dynamic-int8", "int8", "int16x8")


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
                   "quantization-aware-trained model needs none (it only fills ranges the model lacks).")
@click.option("--observer", type=click.Choice(["minmax", "percentile", "mse"]), default="minmax", show_default=True,
              help="How calibration picks activation ranges.")
@click.option("--int8-io", is_flag=True, help="Make the model's own inputs and outputs integer (int8 quantization).")
@click.option("--keep-float", multiple=True, metavar="SELECTOR",
              help="Leave matching layers in float: a Keras layer or node name, /regex/ or op:TYPE (repeatable).")
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
def command(model, target, output, quantize, calibration, observer, int8_io, keep_float, layout, tpu_address,
            precision, jit, batch_sizes, fast, force, **options):
    """Lower MODEL (SavedModel dir, .keras, .h5, .pb, .tflite or .irc) to a target."""
    from irc.backends import get_backend

    backend = get_backend(target)
    if output is None and target != "ir":
        example = "" if backend.writes == "directory" else f" model.{target}"
        raise UsageError(f"--emit {target} writes a {backend.writes}: give it with -o{example}")
    if backend.writes == "directory" and output == "-":
        raise UsageError(f"--emit {target} writes a directory, which cannot go to stdout: give one with -o")
    if (calibration or int8_io or keep_float) and quantize not in ("int8", "int16x8", "dynamic-int8"):
        raise UsageError("--calibration, --int8-io and --keep-float go with --quantize int8, int16x8 or dynamic-int8")
    check_output(output, backend.writes, force)  # before hours of work, not after
    graph = load_model(model, fast=fast, **options)
    note(f"loaded {model}: {len(graph)} nodes")
    if quantize in ("int8", "int16x8") and not calibration and not any(n.op == "fake_quant" for n in graph.nodes):
        # a quantization-aware-trained model carries its ranges in fake-quant ops; any other model needs data
        raise UsageError(f"--quantize {quantize} needs calibration data: --calibration DATA.npz")
    with progress("optimizing"):
        run_options(graph, backend.default_pipeline, **options)
    gc.collect()  # erased nodes sit in node <-> value cycles: free the weights passes replaced before emitting
    backend_quantize = None
    if quantize == "float16" and target == "tflite":
        backend_quantize = "float16"  # TFLite's float16 weights + DEQUANTIZE are the backend's own layout
    elif quantize:
        from irc.passes.quantize import load_calibration, quantize_graph

        # Checked against the graph's inputs before any calibration work starts.
        samples = load_calibration(calibration, graph) if calibration else None
        quantize_graph(graph, quantize, calibration=samples, observer=observer, int8_io=int8_io,
                       keep_float=keep_float)
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
