"""irc run MODEL --input NAME=FILE.npy -o out.npz: run a model in the reference interpreter."""

from __future__ import annotations

import io
from pathlib import Path

import click
import numpy as np

from irc.commands.common import load_model, load_options, write_output
from irc.errors import InputError, UsageError


def read_inputs(specs: tuple[str, ...], graph) -> dict | list:
    """``NAME=FILE.npy`` specs (or one bare ``FILE.npy`` for a single-input model) to arrays."""
    named, bare = {}, []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if sep and not Path(spec).exists():
            named[name] = _read_array(path)
        else:
            bare.append(_read_array(spec))
    if bare and (named or len(bare) != 1 or len(graph.inputs) != 1):
        raise UsageError("give inputs as NAME=FILE.npy (a bare FILE.npy only for a single-input model)")
    return bare if bare else named


def _read_array(path: str) -> np.ndarray:
    from irc.npfiles import load_arrays

    array = load_arrays(path, "input array", hint="write it with numpy.save(path, array)")
    if isinstance(array, dict):
        raise InputError(f"an .npz archive of {len(array)} arrays, not one .npy array", where=path,
                         hint="give each input as NAME=FILE.npy")
    return array


@click.command("run")
@click.argument("model", type=click.Path())
@click.option("-i", "--input", "inputs", multiple=True, metavar="NAME=FILE.npy",
              help="An input array (repeatable); omit NAME= for a single-input model.")
@click.option("--random", "random_seed", type=int, default=None, metavar="SEED",
              help="Run on deterministic random inputs instead of --input files.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the outputs to this .npz file.")
@load_options
def command(model, inputs, random_seed, output, **options):
    """Run MODEL in irc's reference interpreter and print or save its outputs."""
    from irc.ir.interpreter import random_inputs, run
    from irc.ops.tf_policy import check_graph_may_run

    graph = load_model(model, **options)
    check_graph_may_run(graph, where=model)  # before TensorFlow is imported to run any of it
    if inputs and random_seed is not None:
        raise UsageError("give either --input or --random, not both")
    if not inputs and random_seed is None:
        raise UsageError("give the model's inputs with --input NAME=FILE.npy (or --random SEED)")
    if random_seed is not None and random_seed < 0:
        raise UsageError(f"--random: the seed is a whole number from 0 up, not {random_seed}")
    feed = read_inputs(inputs, graph) if random_seed is None else None
    try:
        outputs = run(graph, random_inputs(graph, random_seed) if feed is None else feed)
    except InputError as error:  # name the model as well as the node or input
        error.where = f"{model}: {error.where}" if error.where else model
        raise
    if output is not None:  # "" too: refused as an output path, not skipped
        buffer = io.BytesIO()
        np.savez(buffer, **outputs)
        write_output(output, buffer.getvalue())
        return
    for name, array in outputs.items():
        flat = np.asarray(array).ravel()
        preview = np.array2string(flat[:6], precision=5, separator=", ")
        click.echo(f"{name}: {array.dtype}{list(array.shape)} {preview}{' ...' if flat.size > 6 else ''}")
