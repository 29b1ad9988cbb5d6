"""What the fuzz tests (tests/test_fuzz_*.py) share: the budget, the bound on each example, and byte mutations.

The budget is ``IRC_FUZZ_EXAMPLES`` examples per fuzz test (default 200, which keeps the suite fast); run a deeper
search with, for example::

    IRC_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/test_fuzz_*.py -p no:randomly -x

Every example must end, within ``SECONDS`` and ``MEGABYTES`` of Python allocations, in a result or an IrcError:
any other exception fails the test, as does an IrcError with an empty or multi-line message.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from irc.errors import IrcError

CORPUS = Path(__file__).resolve().parent
EXAMPLES = int(os.environ.get("IRC_FUZZ_EXAMPLES", "200"))
SECONDS = 10.0  # generous: the test machine is shared; a hang shows up as minutes, not seconds
MEGABYTES = 256


def fuzz_settings(examples: int = EXAMPLES, **overrides) -> settings:
    """Settings for one fuzz test: the budget, no per-example deadline (``bounded`` checks time itself)."""
    return settings(max_examples=examples, deadline=None, derandomize=False, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much], **overrides)


def bounded(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``'s result, or the IrcError it raised; checks the time and memory it took."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
    except IrcError as error:
        result = error
        text = str(error)
        assert text.strip(), f"{type(error).__name__} with an empty message"
        assert "\n" not in text.strip() or len(text) < 2000, f"a long multi-line message: {text[:300]!r}"
    finally:
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert seconds < SECONDS, f"took {seconds:.1f} s"
    assert peak < MEGABYTES * 2**20, f"allocated {peak / 2**20:.0f} MiB"
    return result


# ---- mutations of a valid file ---------------------------------------------------------------------------------
INTERESTING_INTS = [0, 1, 2, 3, 4, 7, 8, 16, 255, 256, 2**15 - 1, 2**16 - 1, 2**31 - 1, 2**31, 2**32 - 1]


@st.composite
def mutated(draw, seed: bytes, max_edits: int = 8) -> bytes:
    """``seed`` with a few edits: bit flips, overwritten bytes or 32-bit words, cuts, duplications, insertions."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_edits))):
        if not data:
            data += draw(st.binary(min_size=1, max_size=16))
            continue
        kind = draw(st.sampled_from(["flip", "byte", "word", "cut", "truncate", "duplicate", "insert"]))
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "word" and pos + 4 <= len(data):
            value = draw(st.sampled_from(INTERESTING_INTS + [len(data), len(data) - pos]))
            sign = draw(st.sampled_from([1, -1])) if value < 2**31 else 1
            data[pos:pos + 4] = ((sign * value) % 2**32).to_bytes(4, "little")
        elif kind == "cut":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "duplicate":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)
