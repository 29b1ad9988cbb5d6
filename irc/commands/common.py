"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import contextlib
import functools
import sys

import click

from irc.outputs import write_output  # noqa: F401 (the commands write through it; it lives with the library)


def load_options(func):
    """The options every command that reads a model takes."""
    options = [
        click.option("--signature", default="serving_default", show_default=True,
                     help="SavedModel signature to lower."),
        click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=D0,D1,...",
                     help="Fix an input's unknown dimensions, e.g. input_1=1,224,224,3 (repeatable)."),
        click.option("--allow-tf-ops", is_flag=True,
                     help="Keep ops irc cannot lower as opaque tf.<Op> nodes, and run such nodes through TensorFlow "
                          "(never ops that touch files, the network or the process: see --unsafe)."),
        click.option("--unsafe", is_flag=True,
                     help="Trust the model and run its code: Keras Lambda layers and custom objects, TensorFlow's "
                          "SavedModel loader (initializers, assets) and every TensorFlow op. Implies --allow-tf-ops."),
        click.option("--weights", "weights", type=click.Path(dir_okay=False), default=None,
                     help="For .irc input: the .npz of elided constants written by 'irc dump --save-weights'."),
    ]

    @functools.wraps(func)
    def with_permission(*args, **kwargs):
        # Opaque TF ops run only as far as these flags allow, in whatever the command runs (docs/security.md).
        from irc.ops.tf_policy import permitted

        with permitted(kwargs.get("allow_tf_ops", False), kwargs.get("unsafe", False)):
            return func(*args, **kwargs)

    for option in reversed(options):
        with_permission = option(with_permission)
    return with_permission


def load_model(path, signature="serving_default", input_shapes=(), allow_tf_ops=False, unsafe=False, weights=None,
               fast=None, **_ignored):
    """Loads any model irc reads, with a progress note on a terminal."""
    from irc.api import load, parse_input_shapes

    with progress(f"loading {path}"):
        return load(path, signature=signature, input_shapes=parse_input_shapes(list(input_shapes)),
                    allow_tf_ops=allow_tf_ops, unsafe=unsafe, weights=weights, fast=fast)


def ctx_flag(name: str) -> bool:
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if ctx.obj and name in ctx.obj:
            return ctx.obj[name]
        ctx = ctx.parent
    return False


@contextlib.contextmanager
def progress(message: str):
    """A spinner on stderr while a long stage runs, only when stderr is a terminal and not --quiet."""
    if ctx_flag("quiet") or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


def note(message: str, level: int = 1) -> None:
    """A line on stderr shown with -v (level 1) or -vv (level 2)."""
    ctx = click.get_current_context(silent=True)
    verbose = 0
    while ctx is not None:
        if ctx.obj and "verbose" in ctx.obj:
            verbose = ctx.obj["verbose"]
            break
        ctx = ctx.parent
    if verbose >= level and not ctx_flag("quiet"):
        click.echo(message, err=True)


def force_option(func):
    """``--force``: let an output replace what is in its way (see irc/outputs.py for what never is)."""
    return click.option("--force", is_flag=True,
                         help="Replace an existing output that is in the way: a non-empty directory, or a directory "
                              "where a file goes (never a link or a device).")(func)


def check_output(path, kind: str = "file", force: bool = False) -> None:
    """Refuses an output path before the work that produces it starts; ``-`` (stdout) and no path pass."""
    if path not in (None, "-"):
        from irc.outputs import check_output as check

        check(path, kind, force)
