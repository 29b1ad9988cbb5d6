"""How ``irc stats`` prints a Stats: totals, an op histogram with bars, and a per-layer table."""

from __future__ import annotations

from irc.tools import ansi

BAR = 30  # width of the longest histogram bar


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M'."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}{unit}"
    return f"{int(n)}{unit}"


def human_bytes(n: int) -> str:
    for scale, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= scale:
            return f"{n / scale:.3g} {suffix}"
    return f"{n} B"


def format_stats(s, top: int | None = None, color: bool = False) -> str:
    def bold(text: str) -> str:
        return ansi.style(text, bold=True) if color else text

    per = " per example (unknown dimensions counted as 1)" if s.dynamic else ""
    dtypes = ", ".join(f"{human(n)} {d}" for d, n in s.dtypes.items())
    lines = [
        bold(f"graph @{s.graph}: {s.ops} ops in {len(s.layers)} layers, {s.histogram.get('const', 0)} constants"),
        f"parameters  {s.parameters:,}" + (f" ({dtypes})" if dtypes else ""),
        f"size        {human_bytes(s.bytes)} of constants",
        f"MACs        {human(s.macs)}{per}",
        f"FLOPs       {human(s.flops)}{per}",
        "",
        bold("ops"),
    ]
    hist = sorted(((n, op) for op, n in s.histogram.items() if op != "const"), key=lambda x: (-x[0], x[1]))
    width = max((len(op) for _, op in hist), default=0)
    most = max((n for n, _ in hist), default=1)
    for n, op in hist:
        lines.append(f"  {op:<{width}}  {n:>5}  {'#' * max(1, round(n * BAR / most))}")
    lines += ["", bold("layers" if top is None else f"layers (top {top} by MACs)")]
    layers = s.layers if top is None else sorted(s.layers, key=lambda x: (-x.macs, -x.flops))[:top]
    rows = [("layer", "ops", "params", "size", "MACs", "FLOPs")]
    rows += [(x.name, str(x.ops), f"{x.parameters:,}", human_bytes(x.bytes), human(x.macs), human(x.flops))
             for x in layers]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        text = "  " + f"{row[0]:<{widths[0]}}" + "".join(f"  {c:>{w}}" for c, w in zip(row[1:], widths[1:]))
        lines.append(bold(text) if i == 0 else text)
    return "\n".join(lines) + "\n"
