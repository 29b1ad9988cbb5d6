"""Observers: what calibration records about one float tensor, and the range [lo, hi] it chooses from that.

- ``minmax``: the smallest and largest value seen (TensorFlow's converter does this).
- ``percentile[:P]``: the P-th percentile of the values at each end (default 99.99), ignoring rare outliers.
- ``mse``: the clipping range that minimizes the mean squared quantization error over the values seen (a search
  over thresholds on |x|, so an outlier on one side does not cost the other side its resolution).

The last two look at a uniform random sample of every value seen (at most ``SAMPLE_SIZE`` of them, kept by
halving the acceptance rate whenever the sample fills), so memory stays bounded on any amount of calibration
data. Sampling is seeded: the same data gives the same ranges.
"""

from __future__ import annotations

import math

import numpy as np

from irc.errors import UsageError

SAMPLE_SIZE = 1 << 16
OBSERVERS = ("minmax", "percentile", "mse")


class Observer:
    """Accumulates statistics of one tensor over calibration batches."""

    def __init__(self):
        self.lo = math.inf
        self.hi = -math.inf
        self.count = 0

    def observe(self, array: np.ndarray) -> None:
        array = np.asarray(array)
        if array.size == 0:
            return
        mask = np.isfinite(array)
        finite = array if mask.all() else array[mask]
        if finite.size:
            self.lo = min(self.lo, float(finite.min()))
            self.hi = max(self.hi, float(finite.max()))
        self.count += array.size
        self._observe(finite)

    def _observe(self, finite: np.ndarray) -> None:
        pass

    @property
    def seen(self) -> bool:
        return self.lo <= self.hi

    def range(self) -> tuple[float, float]:
        """The range to quantize to; (0, 0) when nothing finite was seen."""
        return (self.lo, self.hi) if self.seen else (0.0, 0.0)


class MinMax(Observer):
    name = "minmax"


class _Sampling(Observer):
    """Keeps a uniform random sample of the values seen."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self._rng = np.random.default_rng(seed)
        self._rate = 1.0
        self._parts: list[np.ndarray] = []
        self._kept = 0

    def _observe(self, finite: np.ndarray) -> None:
        flat = finite.reshape(-1).astype(np.float32, copy=False)
        if self._rate < 1.0:
            flat = flat[self._rng.random(flat.size) < self._rate]
        self._parts.append(flat.copy())
        self._kept += flat.size
        while self._kept > SAMPLE_SIZE:
            sample = self.sample()
            sample = sample[self._rng.random(sample.size) < 0.5]
            self._parts, self._kept, self._rate = [sample], sample.size, self._rate / 2

    def sample(self) -> np.ndarray:
        if len(self._parts) != 1:
            self._parts = [np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)]
        return self._parts[0]


class Percentile(_Sampling):
    name = "percentile"

    def __init__(self, percentile: float = 99.99, seed: int = 0):
        super().__init__(seed)
        if not 50.0 < percentile <= 100.0:
            raise UsageError(f"observer percentile must be in (50, 100], got {percentile}")
        self.percentile = percentile

    def range(self):
        sample = self.sample()
        if not self.seen or sample.size == 0:
            return super().range()
        lo, hi = np.percentile(sample, [100.0 - self.percentile, self.percentile])
        # the exact extremes bound the estimate (a small sample may miss neither end)
        return max(float(lo), self.lo), min(float(hi), self.hi)


class MeanSquaredError(_Sampling):
    """Searches clipping thresholds t on |x|: the range [max(lo, -t), min(hi, t)] with the least
    quantize-dequantize error over the sample (a magnitude threshold trims either side's outliers)."""

    name = "mse"
    levels = 255  # int8; the int16 search would pick the full range anyway

    def __init__(self, steps: int = 80, seed: int = 0):
        super().__init__(seed)
        self.steps = steps

    def range(self):
        sample = self.sample().astype(np.float64)
        if not self.seen or sample.size == 0:
            return super().range()
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)
        peak = max(-lo, hi)
        if peak == 0.0:
            return super().range()
        best, best_err = (lo, hi), math.inf
        for t in np.geomspace(peak, peak / 50, self.steps):
            clo, chi = max(lo, -t), min(hi, t)
            scale = (chi - clo) / self.levels
            if scale <= 0:
                continue
            zero = np.round(-clo / scale)
            q = np.clip(np.round(sample / scale) + zero, 0, self.levels)
            err = float(np.mean(((q - zero) * scale - sample) ** 2))
            if err < best_err:
                best, best_err = (clo, chi), err
        return best


def make_observer(spec: str):
    """A factory of observers from ``minmax``, ``percentile``, ``percentile:99.9`` or ``mse``."""
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    if name == "minmax" and not arg:
        return MinMax
    if name == "percentile":
        try:
            percentile = float(arg) if arg else 99.99
        except ValueError:
            raise UsageError(f"bad observer {spec!r}", hint="write percentile:99.9") from None
        Percentile(percentile)  # checks the value now, not in the middle of calibration
        return lambda: Percentile(percentile)
    if name == "mse" and not arg:
        return MeanSquaredError
    raise UsageError(f"unknown observer {spec!r}", hint="observers: minmax, percentile[:P], mse")
