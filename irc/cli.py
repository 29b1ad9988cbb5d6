"""The ``irc`` command line.

Each subcommand lives in ``irc/commands/<name>.py`` and is imported only when it runs, so ``irc --help`` stays
fast. User errors print one line to stderr and exit 1 (bad input) or 2 (bad usage); ``--debug`` shows the
traceback. Anything else is a bug in irc and says so.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys

import click

from irc import __version__, tfquiet

# name -> (module, one-line help). The help is here so that --help need not import every command.
COMMANDS = {
    "lower": ("irc.commands.lower", "Lower a model to a target: tflite, ir, xla, cuda or tpu."),
    "dump": ("irc.commands.dump", "Print the IR of any model irc reads."),
    "opt": ("irc.commands.opt", "Run a pass pipeline over IR text (like mlir-opt)."),
    "passes": ("irc.commands.passes", "List every pass with its options."),
    "run": ("irc.commands.run", "Run a model in irc's reference interpreter."),
    "verify": ("irc.commands.verify", "Check that an .irc file is valid IR."),
    "diff": ("irc.commands.diff", "Structural (or --numeric) diff of two models."),
    "check": ("irc.commands.check", "Report, per Keras layer, which ops a target can run."),
    "viz": ("irc.commands.viz", "Draw the graph as SVG, PNG, DOT or HTML."),
    "stats": ("irc.commands.stats", "Op histogram, parameters, size and MACs per layer."),
    "quant-report": ("irc.commands.quant_report", "Per-tensor quantization error, worst layers first."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return [name for name, (module, _) in COMMANDS.items() if importlib.util.find_spec(module) is not None]

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, _ = COMMANDS[name]
        if importlib.util.find_spec(module) is None:
            return None
        return importlib.import_module(module).command

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, hoist_global_options(args))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except (Exception, KeyboardInterrupt) as error:  # every failure ends here: one line, the right exit code
            report_error(error, debug=ctx.obj.get("debug", False) if ctx.obj else "--debug" in sys.argv)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds as Ctrl-C does: temporary outputs are removed on the
    way out (irc/outputs.py)."""


def raise_terminated(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated()


def report_error(error: BaseException, debug: bool) -> None:
    from irc.errors import IrcError

    if debug:
        import traceback

        traceback.print_exception(error)
    if isinstance(error, IrcError):
        click.echo(f"error: {one_line(error)}", err=True)
        sys.exit(error.exit_code)
    if isinstance(error, Terminated):
        click.echo("error: terminated by SIGTERM", err=True)
        sys.exit(128 + signal.SIGTERM)
    if isinstance(error, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(130)
    if isinstance(error, MemoryError):  # numpy says what it could not allocate: "Unable to allocate 3.6 PiB ..."
        detail = f": {one_line(error)}" if str(error) else ""
        click.echo(f"error: out of memory{detail}", err=True)
        sys.exit(1)
    hint = "" if debug else " (run with --debug for the traceback)"
    click.echo(f"internal error: this is a bug in irc: {type(error).__name__}: {one_line(error)}{hint}", err=True)
    sys.exit(3)


def one_line(error: BaseException) -> str:
    """The error's message on one line: messages quoted from TensorFlow or numpy may span several."""
    return " ".join(str(error).split())


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="irc")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("-v", "--verbose", count=True, help="Say more about what irc is doing.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or notes; errors only.")
@click.option("--max-memory", metavar="SIZE", envvar="IRC_MAX_MEMORY",
              help="Largest array, string or inflated member an input may make irc build (default 256M).")
@click.option("--max-graph-nodes", "max_nodes", metavar="N", envvar="IRC_MAX_NODES",
              help="Most graph nodes a reader may make, function inlining included (default 2000000).")
@click.option("--max-loop-iterations", "max_loops", metavar="N", envvar="IRC_MAX_LOOP_ITERATIONS",
              help="Most loop iterations irc's interpreter runs in one run, nested loops included (default 1000000).")
@click.option("--load", "--load-pass", "load", multiple=True, metavar="FILE.py",
              help="Load a Python file that adds ops, lowerings, emitters, passes or targets (repeatable).")
@click.pass_context
def main(ctx, debug, verbose, quiet, max_memory, max_nodes, max_loops, load):
    """irc: compile TensorFlow models to TFLite, XLA, CUDA and TPU programs.

    Example: irc lower model/ --emit tflite -o model.tflite
    """
    ctx.ensure_object(dict)
    ctx.obj.update(debug=debug, verbose=verbose, quiet=quiet)
    set_limits(ctx, max_memory, max_nodes, max_loops)
    show_library_notes(quiet)
    if load:
        from irc.registry import load_file

        for path in load:  # before the subcommand parses its options: a plugin's target is a valid --emit
            load_file(path)


def set_limits(ctx, max_memory, max_nodes, max_loops=None) -> None:
    from irc import limits
    from irc.errors import UsageError

    try:
        limits.set_global(max_memory=max_memory and limits.parse_size(max_memory),
                          max_nodes=max_nodes and limits.parse_count(max_nodes, "--max-graph-nodes"),
                          max_loop_iterations=max_loops and limits.parse_count(max_loops, "--max-loop-iterations"))
    except UsageError as error:
        raise click.UsageError(str(error), ctx=ctx) from None


class NoteHandler(logging.Handler):
    """The library's INFO records (a fallback it took, say) as ``note:`` lines on stderr, shown with -v."""

    def emit(self, record: logging.LogRecord) -> None:
        from irc.commands.common import note

        note(f"note: {record.getMessage()}")


def show_library_notes(quiet: bool = False) -> None:
    """The library stays quiet by default; under the CLI its INFO records become notes (none with -q, which also
    hides the library's progress bars)."""
    logger = logging.getLogger("irc")
    if not any(isinstance(h, NoteHandler) for h in logger.handlers):
        logger.addHandler(NoteHandler())
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


GLOBAL_FLAGS = {"--debug", "-v", "-vv", "-vvv", "--verbose", "-q", "--quiet"}
GLOBAL_OPTIONS = {"--max-memory", "--max-graph-nodes", "--max-loop-iterations", "--load", "--load-pass"}  # global options that take a value


def hoist_global_options(args: list[str]) -> list[str]:
    """Global flags and options may also follow the subcommand (``irc lower m/ -v``): moved to the front."""
    args = list(args)
    if "--" in args:
        cut = args.index("--")
        head, tail = args[:cut], args[cut:]
    else:
        head, tail = args, []
    flags, rest = [], []
    items = iter(head)
    for arg in items:
        if arg in GLOBAL_OPTIONS:  # "--max-memory 4G": the value travels with it
            flags += [arg, next(items, "")]
        elif arg in GLOBAL_FLAGS or arg.split("=", 1)[0] in GLOBAL_OPTIONS:
            flags.append(arg)
        else:
            rest.append(arg)
    return flags + rest + tail


def run(argv: list[str] | None = None) -> None:
    """The console entry point."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # not where an embedding program chose otherwise
        signal.signal(signal.SIGTERM, raise_terminated)
    tfquiet.install()
    main.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="irc")


if __name__ == "__main__":
    run()
