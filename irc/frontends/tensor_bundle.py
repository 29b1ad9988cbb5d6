"""Read a TF tensor bundle (a checkpoint: ``prefix.index`` + ``prefix.data-NNNNN-of-NNNNN``) without TF.

The index is a LevelDB-format table: key "" holds a BundleHeaderProto, every other key a
BundleEntryProto saying where the tensor's bytes lie in which data shard. Index blocks and every
numeric tensor are checked against their CRC32C, as TensorFlow checks them (tensors with
google-crc32c's C implementation: ~40 ms for ResNet50's 100 MB).
"""

from __future__ import annotations

import itertools
import math
import mmap
import os
import struct
from pathlib import Path

import google_crc32c
import numpy as np

from irc import limits
from irc.errors import InputError
from irc.formats import tfproto
from irc.frontends import tfattrs

_MAGIC = 0xDB4775248B80FB57  # LevelDB table magic number, the footer's last 8 bytes
_FOOTER = 48
_NO_COMPRESSION, _SNAPPY = 0, 1
_OWN_MAPPING = 1 << 16  # tensors from this many bytes are mapped, smaller ones read
_SNAPPY_RATIO = 32  # snappy's best case is a 64-byte copy from a 2-byte tag


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def data_crc32c(data) -> int:
    """CRC32C of a large bytes-like object (an mmap view included), fed to the C implementation in chunks."""
    view = memoryview(data).cast("B")
    checksum = google_crc32c.Checksum()
    for start in range(0, len(view), _CRC_CHUNK):
        checksum.update(bytes(view[start:start + _CRC_CHUNK]))  # google_crc32c takes bytes only
    return int.from_bytes(checksum.digest(), "big")


_CRC_CHUNK = 1 << 22


def unmask_crc(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def snappy_decompress(data: bytes) -> bytes:
    """Snappy raw format: a varint length, then literals and back-references."""
    size, pos = _varint(data, 0)
    if size > _SNAPPY_RATIO * len(data):  # no snappy encoder gets near this ratio: a lying header
        raise ValueError(f"snappy block declares {size} bytes from {len(data)}")
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal; long ones keep their length in the next 1-4 bytes
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(data[pos:pos + extra], "little")
                pos += extra
            length += 1
            out += data[pos:pos + length]
            pos += length
        else:
            if kind == 1:
                length, offset = ((tag >> 2) & 7) + 4, ((tag >> 5) << 8) | data[pos]
                pos += 1
            else:
                width = 2 if kind == 2 else 4
                length, offset = (tag >> 2) + 1, int.from_bytes(data[pos:pos + width], "little")
                pos += width
            if offset == 0 or offset > len(out):
                raise ValueError("bad snappy back-reference")
            piece = out[len(out) - offset:len(out) - offset + length]  # a copy may overlap its own output:
            out += (piece * (length // len(piece) + 1))[:length]  # it repeats the last `offset` bytes
        if len(out) > size:
            raise ValueError("snappy data is longer than it declares")
    if len(out) != size:
        raise ValueError("snappy data has the wrong length")
    return bytes(out)


def _block(buf: bytes, handle: tuple[int, int]) -> bytes:
    offset, size = handle
    if offset + size + 5 > len(buf):
        raise ValueError("block lies past the end of the file")
    data, kind = buf[offset:offset + size], buf[offset + size]
    (masked,) = struct.unpack_from("<I", buf, offset + size + 1)
    if crc32c(buf[offset:offset + size + 1]) != unmask_crc(masked):
        raise ValueError("block checksum mismatch")
    if kind == _SNAPPY:
        return snappy_decompress(data)
    if kind != _NO_COMPRESSION:
        raise ValueError(f"unknown block compression {kind}")
    return data


def _block_rows(block: bytes):
    """(shared, unshared start, unshared end, value start, value end) of each entry of one block, checked
    against the block: keys are prefix-compressed against the previous key, and may share only what it has."""
    if len(block) < 4:
        raise ValueError("block is too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * num_restarts
    if end < 0:
        raise ValueError("block has more restart points than bytes")
    pos, key_length = 0, 0
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        if shared > key_length or pos + unshared + vlen > end:
            raise ValueError("block entry lies past its key or its block")
        yield shared, pos, pos + unshared, pos + unshared, pos + unshared + vlen
        key_length = shared + unshared
        pos += unshared + vlen


def _key_bytes(block: bytes) -> int:
    """Bytes the keys of one block take once their shared prefixes are spelled out (a few kilobytes can share a
    megabyte prefix thousands of times): counted before any key is made."""
    return sum(shared + end - start for shared, start, end, _, _ in _block_rows(block))


def _block_entries(block: bytes):
    """Key/value pairs of one block."""
    key = b""
    for shared, start, end, vstart, vend in _block_rows(block):
        key = key[:shared] + block[start:end]
        yield key, block[vstart:vend]


def _handle(data: bytes, pos: int = 0) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(data, pos)
    size, pos = _varint(data, pos)
    return (offset, size), pos


def read_table(buf: bytes, where: str = "the table") -> dict[bytes, bytes]:
    """All key/value pairs of a LevelDB-format table. Its data blocks must lie one after another before the index
    block, as every table writer leaves them: an index that names one block many times would have it read as
    often. The keys' size is checked against the memory limit before they are made."""
    if len(buf) < _FOOTER or struct.unpack_from("<Q", buf, len(buf) - 8)[0] != _MAGIC:
        raise ValueError("not a table file (bad footer)")
    footer = buf[len(buf) - _FOOTER:]
    _, pos = _handle(footer)  # the metaindex block: unused
    index_handle, _ = _handle(footer, pos)
    blocks, end = [], 0
    for _, value in _block_entries(_block(buf, index_handle)):
        handle = _handle(value)[0]
        if handle[0] < end or handle[0] + handle[1] + 5 > index_handle[0]:
            raise ValueError(f"data block at byte {handle[0]} overlaps another block or the index")
        end = handle[0] + handle[1] + 5
        blocks.append(_block(buf, handle))
    limits.check_memory(sum(map(_key_bytes, blocks)), "the keys of the table", where=where, backed_by=len(buf))
    table = {}
    for data in blocks:
        table.update(_block_entries(data))
    return table


class TensorBundle:
    """A checkpoint's tensors by key; values are read on request."""

    def __init__(self, prefix: str | Path):
        self.prefix = Path(prefix)
        index = Path(f"{prefix}.index")
        try:
            table = read_table(index.read_bytes(), str(index))
            header = tfproto.parse("BundleHeaderProto", table.pop(b""))
            self.entries = {k.decode(): tfproto.parse("BundleEntryProto", v) for k, v in table.items()}
            for key, entry in self.entries.items():
                tfproto.check_layout(entry, f"entry '{key}'")
        except FileNotFoundError:
            raise InputError("variables index file is missing", where=str(index)) from None
        except (ValueError, KeyError, struct.error) as e:
            raise InputError(f"corrupt variables index: {e}", where=str(index)) from None
        if header.endianness != 0:
            raise InputError("big-endian checkpoints are not supported", where=str(index))
        self.num_shards = header.num_shards
        self._check_entries(str(index))

    def _check_entries(self, where: str) -> None:
        """Each entry's place and size, before any tensor is read: its shape has no negative dimension, its size
        is what its shape and dtype take (TensorFlow's reader checks the same), it lies in an existing shard and
        inside that file, and no two entries share bytes. TensorFlow would read overlapping entries, but its
        writer never makes them, and they would let a small data file be read as many tensors as the index
        names."""
        spans: dict[int, list[tuple[int, int, str]]] = {}
        for key, entry in self.entries.items():
            dims = [d.size for d in entry.shape.dim]
            if any(d < 0 for d in dims) or entry.shape.unknown_rank:
                raise InputError(f"tensor '{key}' has a negative or unknown dimension in shape {dims}", where=where)
            if not 0 <= entry.shard_id < self.num_shards:
                raise InputError(f"tensor '{key}' is in shard {entry.shard_id}, but the checkpoint has "
                                 f"{self.num_shards}", where=where)
            if entry.offset < 0 or entry.size < 0:
                raise InputError(f"tensor '{key}' has offset {entry.offset} and size {entry.size}; neither may be "
                                 "negative", where=where)
            if len(entry.slices):
                continue  # refused when read
            np_type = tfattrs.numpy_type(entry.dtype)
            count = math.prod(dims)
            if np_type is object and count > entry.size:  # each string takes at least a byte for its length
                raise InputError(f"string tensor '{key}' has {count} strings in {entry.size} bytes", where=where)
            if np_type not in (None, object) and count * np.dtype(np_type).itemsize != entry.size:
                raise InputError(f"tensor '{key}' has {entry.size} bytes for {np.dtype(np_type)} shape {dims}",
                                 where=where)
            if entry.size:
                spans.setdefault(entry.shard_id, []).append((entry.offset, entry.offset + entry.size, key))
        for shard, shard_spans in spans.items():
            shard_spans.sort()
            for (_, end, first), (start, _, second) in itertools.pairwise(shard_spans):
                if start < end:
                    raise InputError(f"tensors '{first}' and '{second}' overlap in the variables data", where=where)
            path = self.shard_path(shard)
            if path.is_file() and shard_spans[-1][1] > path.stat().st_size:
                raise InputError(f"tensor '{shard_spans[-1][2]}' lies past the end of the file (truncated?)",
                                 where=str(path))

    def shard_path(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}")

    def _tensor_bytes(self, key: str, shard: int, offset: int, size: int):
        """One tensor's bytes. A large tensor gets a read-only mapping of its own, paged in when first used and
        unmapped with the last array that uses it: one mapping of the whole shard would keep every weight
        resident while any one of them lives (a graph whose passes rewrote the weights would hold both)."""
        path = self.shard_path(shard)
        try:
            with open(path, "rb") as f:
                if offset + size > os.fstat(f.fileno()).st_size:
                    raise InputError(f"tensor '{key}' lies past the end of the file (truncated?)", where=str(path))
                if size < _OWN_MAPPING:
                    data = os.pread(f.fileno(), size, offset)
                    if len(data) != size:
                        raise InputError(f"tensor '{key}' lies past the end of the file (truncated?)",
                                         where=str(path))
                    return data
                start = offset - offset % mmap.ALLOCATIONGRANULARITY
                mapped = mmap.mmap(f.fileno(), offset + size - start, access=mmap.ACCESS_READ, offset=start)
                return memoryview(mapped)[offset - start:]
        except OSError as e:
            raise InputError(f"cannot read variables data: {e.strerror}", where=str(path)) from None

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def read(self, key: str) -> np.ndarray:
        entry = self.entries.get(key)
        if entry is None:
            raise InputError(f"checkpoint has no tensor '{key}'", where=f"{self.prefix}.index")
        if len(entry.slices):
            raise InputError(f"tensor '{key}' is saved in slices, which irc cannot read",
                             where=f"{self.prefix}.index")
        where = str(self.shard_path(entry.shard_id))
        dims = tfattrs.shape(entry.shape) or ()
        try:
            np_type = tfattrs.numpy_dtype(entry.dtype)
        except ValueError as e:
            raise InputError(f"tensor '{key}': {e}", where=where) from None
        count = math.prod(dims)
        data = self._tensor_bytes(key, entry.shard_id, entry.offset, entry.size)
        if np_type == np.dtype(object):
            values, checked = _strings(bytes(data), dims, key, where)
        else:
            values, checked = np.frombuffer(data, np_type, count).reshape(dims), data
        if data_crc32c(checked) != unmask_crc(entry.crc32c):
            raise InputError(f"tensor '{key}' fails its checksum: the variables data is corrupt", where=where)
        return values


def _strings(data: bytes, dims: tuple, key: str, where: str) -> tuple[np.ndarray, bytes]:
    """A string tensor (varint lengths, a masked CRC32C of the lengths, then the bytes), and the bytes its
    checksum covers: TensorFlow sums each length as a 4-byte integer (8 bytes past 4 GiB), not as its varint."""
    count = math.prod(dims)
    try:
        lengths, pos = [], 0
        for _ in range(count):
            n, pos = _varint(data, pos)
            lengths.append(n)
        checked = [struct.pack("<I" if n < 2**32 else "<Q", n) for n in lengths]
        if count:
            checked.append(data[pos:pos + 4])
            pos += 4
        values = []
        for n in lengths:
            values.append(data[pos:pos + n])
            pos += n
    except ValueError:
        raise InputError(f"string tensor '{key}' is truncated", where=where) from None
    if pos != len(data):
        raise InputError(f"string tensor '{key}' has the wrong size", where=where)
    out = np.empty(count, dtype=object)
    out[:] = values
    return out.reshape(dims), b"".join(checked) + data[len(data) - sum(lengths):]
