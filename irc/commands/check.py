"""irc check MODEL --target T: which ops the target runs natively, through a fallback, or not at all."""

from __future__ import annotations

import json
import sys

import click

from irc.commands.common import load_model, load_options, progress, write_output

TARGETS = ("tflite", "xla", "cuda", "tpu")  # the built-in targets that run models (plugins add theirs)


@click.command("check")
@click.argument("model", type=click.Path())
@click.option("-t", "--target", default="tflite", show_default=True, metavar="TARGET",
              help=f"The target to check against: {', '.join(TARGETS)}, or a plugin's (see --load).")
@click.option("--strict", is_flag=True, help="Count fallbacks (Flex, CPU kernels) as failures too.")
@click.option("--problems", is_flag=True, help="List only ops that do not run natively.")
@click.option("--json", "as_json", is_flag=True, help="Write the report as JSON, for scripts.")
@click.option("--color/--no-color", default=None, help="Color the output (default: only on a terminal).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report here instead of stdout.")
@load_options
@click.pass_context
def command(ctx, model, target, strict, problems, as_json, color, output, **options):
    """Before converting, list every op of MODEL, grouped by the Keras layer it came from, with whether TARGET
    runs it natively, through a fallback (TFLite's Flex delegate, a CPU kernel) or not at all.

    MODEL is loaded as with --allow-tf-ops, so TensorFlow ops irc does not lower show up in the table (as
    tf.<Op>) instead of stopping the load; they count against the verdict unless --allow-tf-ops is given.

    Exit status: 0 when the model will convert, 1 when it will not (an unsupported op; a TensorFlow op irc does
    not lower, without --allow-tf-ops; with --strict, a fallback too).

    Example: irc check model/ --target tflite --problems
    """
    from irc.tools.check import check_graph

    tf_ops_allowed = options.pop("allow_tf_ops")
    graph = load_model(model, allow_tf_ops=True, **options)
    with progress(f"checking {len(graph)} nodes against {target}"):
        report = check_graph(graph, target, strict=strict, tf_ops_allowed=tf_ops_allowed)
    if as_json:
        text = json.dumps(report.to_json(), indent=2) + "\n"
    else:
        use_color = color if color is not None else (output in (None, "-") and sys.stdout.isatty())
        text = report.format(use_color, problems_only=problems)
    write_output(output, text)
    ctx.exit(0 if report.converts else 1)
