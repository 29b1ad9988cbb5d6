"""Reading the arrays users hand irc (``irc run`` inputs, calibration data, weights sidecars), never with pickle.

``np.load`` unpickles object arrays when asked to, and reads any file without numpy's magic bytes as a pickle;
irc never asks, and refuses such files before numpy sees them, with one InputError naming the file.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from irc.errors import InputError

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"


def load_arrays(path: str | os.PathLike, what: str, error: type[InputError] = InputError,
                hint: str | None = None) -> np.ndarray | dict[str, np.ndarray]:
    """The array of a .npy file, or the arrays of an .npz file by name; ``what`` names the file in messages.

    Everything that goes wrong is an ``error`` (an InputError class) naming ``path``, with ``hint`` attached.
    """
    where = str(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
    except FileNotFoundError:
        raise error(f"no such {what} file", where=where) from None
    except OSError as e:
        raise error(f"cannot read the {what}: {e.strerror or e}", where=where) from None
    if not head.startswith((NPY_MAGIC, ZIP_MAGIC)):
        found = "it is empty" if not head else f"it starts with {head!r}"
        raise error(f"the {what} is not a .npy or .npz file ({found})", where=where, hint=hint)
    try:
        data = np.load(Path(path), allow_pickle=False)
        if isinstance(data, np.ndarray):
            return data
        with data:
            return {key: data[key] for key in data.files}
    except MemoryError:
        raise error(f"the {what} declares an array larger than memory (a corrupt header?)", where=where,
                    hint=hint) from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, NotImplementedError) as e:
        raise error(f"cannot read the {what}: {_reason(e)}", where=where, hint=hint) from None


def _reason(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if "allow_pickle" in text or "pickle" in text:
        return "it holds Python objects, which only pickle can load, and irc never unpickles"
    return text
