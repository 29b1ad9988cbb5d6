"""Reading the arrays users hand irc (``irc run`` inputs, calibration data, weights sidecars), never with pickle.

``np.load`` unpickles object arrays when asked to, and reads any file without numpy's magic bytes as a pickle;
irc never asks, and refuses such files before numpy sees them, with one InputError naming the file.
"""

from __future__ import annotations

import functools
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from irc import limits
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
        _check_declared_sizes(Path(path), head)
        data = np.load(Path(path), allow_pickle=False)
        if isinstance(data, np.ndarray):
            return data
        with data:
            return {key: data[key] for key in data.files}
    except InputError as e:
        raise error(f"the {what} {e.message}", where=where, hint=e.hint or hint) from None
    except MemoryError:
        raise error(f"the {what} declares an array larger than memory (a corrupt header?)", where=where,
                    hint=hint) from None
    except Exception as e:  # noqa: BLE001 - only numpy runs here; a corrupt header alone raises SyntaxError,
        # tokenize.TokenError, ValueError or EOFError, a corrupt zip BadZipFile, zlib.error or KeyError
        raise error(f"cannot read the {what}: {_reason(e)}", where=where, hint=hint) from None


def _check_declared_sizes(path: Path, head: bytes) -> None:
    """Compare each array's header with the bytes that follow it, before numpy allocates what the header says:
    a 100-byte file must not make irc allocate gigabytes."""
    if head.startswith(NPY_MAGIC):
        _check_header(functools.partial(path.open, "rb"), path.stat().st_size, "")
        return
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        # What the members inflate to, from the archive's directory, before any is inflated: 1 MB of zip can
        # declare (and hold) a gibibyte of zeros. Python's zipfile never inflates a member past its declared size.
        declared = sum(info.file_size for info in infos)
        limits.check_memory(declared, "inflated", backed_by=path.stat().st_size)
        for info in infos:
            _check_header(functools.partial(zf.open, info), info.file_size, f" (array {info.filename!r})")


def _check_header(open_stream, size: int, which: str) -> None:
    with open_stream() as f:
        prefix = f.read(len(NPY_MAGIC) + 6)
    if len(prefix) < len(NPY_MAGIC) + 4 or not prefix.startswith(NPY_MAGIC):
        return  # numpy says what is wrong
    major = prefix[len(NPY_MAGIC)]
    width = 2 if major == 1 else 4
    header = int.from_bytes(prefix[len(NPY_MAGIC) + 2:len(NPY_MAGIC) + 2 + width], "little")
    start = len(NPY_MAGIC) + 2 + width
    if start + header > size:
        raise InputError(f"declares a header of {header} bytes{which}, but holds only {size} (truncated or corrupt)")
    readers = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}
    if major not in readers:
        return
    with open_stream() as f:
        np.lib.format.read_magic(f)
        shape, _, dtype = readers[major](f)
        data_start = f.tell()
    if dtype.hasobject:
        return  # refused by allow_pickle=False
    declared = math.prod(shape) * dtype.itemsize
    if declared > size - data_start:
        raise InputError(f"declares a {dtype} array of shape {shape}{which}, {declared} bytes, but holds only "
                         f"{max(size - data_start, 0)} (truncated or corrupt)")


def _reason(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if "allow_pickle" in text or "pickle" in text:
        return "it holds Python objects, which only pickle can load, and irc never unpickles"
    return text
