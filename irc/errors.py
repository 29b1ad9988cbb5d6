"""One error hierarchy for every user-facing failure.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``:
1 for a bad input, 2 for bad usage. Anything that is not an IrcError is a bug in irc.
"""

from __future__ import annotations


class IrcError(Exception):
    """Base of every error irc reports to a user."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class UsageError(IrcError):
    """Bad command-line usage: an unknown option, a bad option value."""

    exit_code = 2


class InputError(IrcError):
    """A file or model irc was given cannot be read: missing, corrupt, wrong format."""


class ParseError(InputError):
    """IR text that does not parse; ``where`` is ``file:line:column``."""


class VerifyError(IrcError):
    """IR that breaks an invariant; the message names the node."""


class UnsupportedOpError(InputError):
    """Ops a frontend or backend cannot handle; lists every offending op type once."""


class PipelineError(UsageError):
    """A pass pipeline string that names an unknown pass or a bad option."""


class PassError(IrcError):
    """A pass that raised or broke the verifier; carries the reproducer path."""


class QuantizationError(InputError):
    """Calibration data or quantization settings that cannot be used."""


class TargetError(IrcError):
    """A backend cannot emit the graph (size limit, unsupported op on a target)."""


class OutputError(IrcError):
    """An output the operating system will not let irc write: permissions, a read-only or full file system."""
