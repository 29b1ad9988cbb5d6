"""A layered (Sugiyama-style) layout for drawing graphs top to bottom, in plain Python.

1. Ranks: boxes come in topological order; each box goes one rank below its lowest predecessor, and a box with
   no predecessors is pulled down to just above its first successor.
2. Edges spanning several ranks get a chain of small dummy points, so they bend around boxes instead of
   crossing them.
3. Order within a rank: barycenter sweeps down and up, keeping the order with the fewest edge crossings.
4. x coordinates: each box moves towards the mean x of its neighbours, and an isotonic regression (pool adjacent
   violators) finds the closest positions that keep the order and the spacing. This is exact and linear per rank.

5. Columns: a drawing much taller than wide (a long chain, like MobileNetV2 by layer: 269 x 13786 px in one
   column) is cut into several columns of consecutive ranks, side by side, read left to right. Cuts go where the
   fewest edges cross between ranks, near equal heights; an edge between columns is drawn straight from its
   source to its target.

Everything is deterministic: the same boxes and edges give the same coordinates.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

H_GAP = 18.0  # horizontal space between boxes
V_GAP = 34.0  # vertical space between ranks
DUMMY_WIDTH = 6.0
SWEEPS = 12
MARGIN = 16.0
COLUMN_GAP = 60.0  # horizontal space between columns
WRAP_ABOVE = 1600.0  # drawings taller than this (and ASPECT times taller than wide) go into columns
ASPECT = 1.5  # the height / width a wrapped drawing aims at


@dataclass
class Layout:
    x: dict[str, float]  # box center
    y: dict[str, float]  # box top
    routes: list[tuple[str, str, list[tuple[float, float]]]]  # (src, dst, points from src's bottom to dst's top)
    width: float
    height: float


def layout(boxes: list[tuple[str, float, float]], edges: list[tuple[str, str]]) -> Layout:
    """Places ``boxes`` ((id, width, height), in topological order) and routes ``edges`` ((src, dst) ids)."""
    index = {b[0]: i for i, b in enumerate(boxes)}
    size = {b[0]: (b[1], b[2]) for b in boxes}
    forward = []
    for src, dst in edges:
        if src == dst or src not in index or dst not in index:
            continue
        forward.append((src, dst, False) if index[src] < index[dst] else (dst, src, True))
    rank = _ranks([b[0] for b in boxes], forward)

    # the layered graph: real boxes plus dummy points on long edges
    preds: dict[str, list[str]] = {b[0]: [] for b in boxes}
    succs: dict[str, list[str]] = {b[0]: [] for b in boxes}
    chains = []
    key = {b[0]: float(index[b[0]]) for b in boxes}
    for n, (src, dst, flipped) in enumerate(forward):
        chain = [src]
        for r in range(rank[src] + 1, rank[dst]):
            d = f"~{n}.{r}"
            rank[d], size[d], key[d] = r, (DUMMY_WIDTH, 0.0), index[src] + 0.5
            preds[d], succs[d] = [], []
            chain.append(d)
        chain.append(dst)
        for a, b in itertools.pairwise(chain):
            succs[a].append(b)
            preds[b].append(a)
        chains.append((src, dst, flipped, chain))

    levels: list[list[str]] = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    for node in sorted(rank, key=lambda v: (key[v], v)):
        levels[rank[node]].append(node)
    _order(levels, preds, succs)
    x = _coordinates(levels, preds, succs, size)

    heights = [max((size[v][1] for v in level), default=0.0) for level in levels]
    column = _columns(levels, heights, chains, rank, x, size)
    x, tops, width, height, lefts = _place_columns(levels, heights, column, x, size)
    y = {v: tops[r][0] + (tops[r][1] - size[v][1]) / 2 for r, level in enumerate(levels) for v in level}
    routes = []
    for src, dst, flipped, chain in chains:
        points = [(x[src], y[src] + size[src][1])]
        if column[rank[src]] == column[rank[dst]]:
            for d in chain[1:-1]:  # straight down through a rank's band, so a long edge never crosses a box
                band_top, band_height = tops[rank[d]]
                points += [(x[d], band_top), (x[d], band_top + band_height)]
        else:  # along the gap below the source's rank, up the gutter left of the target's column, and in
            below = tops[rank[src]][0] + tops[rank[src]][1] + V_GAP / 2
            above = tops[rank[dst]][0] - V_GAP / 2
            gutter = lefts[column[rank[dst]]] - COLUMN_GAP / 2
            points += [(x[src], below), (gutter, below), (gutter, above), (x[dst], above)]
        points.append((x[dst], y[dst]))
        routes.append((dst, src, points[::-1]) if flipped else (src, dst, points))
    real = {b[0] for b in boxes}
    return Layout({k: v for k, v in x.items() if k in real}, {k: v for k, v in y.items() if k in real}, routes,
                  width, height)


def _columns(levels, heights, chains, rank, x, size) -> list[int]:
    """The column of each rank: all 0 unless the drawing is much taller than wide (see the module docstring)."""
    height = sum(heights) + V_GAP * max(len(levels) - 1, 0)
    width = max((x[v] + size[v][0] / 2 for v in x), default=0.0) - min((x[v] - size[v][0] / 2 for v in x),
                                                                       default=0.0)
    count = 1
    if height > WRAP_ABOVE and height > ASPECT * width:
        count = min(round(math.sqrt(height / (ASPECT * max(width, 1.0)))) or 1, len(levels))
    if count <= 1:
        return [0] * len(levels)
    crossing = [0] * len(levels)  # crossing[r]: edges between rank r - 1 and rank r
    for src, dst, _, _ in chains:
        for r in range(rank[src] + 1, rank[dst] + 1):
            crossing[r] += 1
    tops = list(itertools.accumulate(h + V_GAP for h in heights))
    cuts, start = [], 1
    for c in range(1, count):
        target = height * c / count
        window = [r for r in range(start, len(levels)) if abs(tops[r - 1] - target) <= height / count / 3]
        if not window:
            continue
        best = min(window, key=lambda r: (crossing[r], abs(tops[r - 1] - target)))
        cuts.append(best)
        start = best + 1
    column, c = [], 0
    for r in range(len(levels)):
        if c < len(cuts) and r == cuts[c]:
            c += 1
        column.append(c)
    return column


def _place_columns(levels, heights, column, x, size):
    """Shifts each column's ranks to the right of the previous column and to the top: (x, rank tops, width,
    height, each column's left edge)."""
    x = dict(x)
    tops: list[tuple[float, float]] = []
    lefts: list[float] = []
    left, width, height = 0.0, 0.0, 2 * MARGIN
    pad = V_GAP / 2 if max(column, default=0) > 0 else 0.0  # room above and below columns for edges between them
    for c in range(max(column, default=0) + 1):
        lefts.append(left + MARGIN)
        ranks = [r for r in range(len(levels)) if column[r] == c]
        members = [v for r in ranks for v in levels[r]]
        if members:
            low = min(x[v] - size[v][0] / 2 for v in members) - MARGIN
            for v in members:
                x[v] = round(x[v] - low + left, 1)
            right = max(x[v] + size[v][0] / 2 for v in members) + MARGIN
        else:
            right = left + 2 * MARGIN
        top = MARGIN + pad
        for r in ranks:
            tops.append((top, heights[r]))
            top += heights[r] + V_GAP
        height = max(height, top - V_GAP + pad + MARGIN)
        width = right
        left = right + COLUMN_GAP - 2 * MARGIN
    return x, tops, width, height, lefts


def _ranks(order: list[str], edges) -> dict[str, int]:
    preds: dict[str, list[str]] = {v: [] for v in order}
    succs: dict[str, list[str]] = {v: [] for v in order}
    for src, dst, _ in edges:
        preds[dst].append(src)
        succs[src].append(dst)
    rank = {}
    for v in order:
        rank[v] = max((rank[u] + 1 for u in preds[v]), default=0)
    for v in reversed(order):  # sources sit right above their first user, not at the very top
        if not preds[v] and succs[v]:
            rank[v] = max(min(rank[w] for w in succs[v]) - 1, 0)
    return rank


def _order(levels, preds, succs) -> None:
    best = [list(level) for level in levels]
    best_crossings = _crossings(levels, succs)
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        rng = range(1, len(levels)) if down else range(len(levels) - 2, -1, -1)
        for r in rng:
            neighbour = levels[r - 1] if down else levels[r + 1]
            pos = {v: i for i, v in enumerate(neighbour)}
            links = preds if down else succs
            keys = {}
            for i, v in enumerate(levels[r]):
                near = [pos[u] for u in links[v] if u in pos]
                keys[v] = (sum(near) / len(near) if near else i, i)
            levels[r].sort(key=keys.__getitem__)
        crossings = _crossings(levels, succs)
        if crossings < best_crossings:
            best, best_crossings = [list(level) for level in levels], crossings
        if best_crossings == 0:
            break
    levels[:] = best


def _crossings(levels, succs) -> int:
    total = 0
    for upper, lower in itertools.pairwise(levels):
        pos = {v: i for i, v in enumerate(lower)}
        ends = sorted((i, pos[w]) for i, v in enumerate(upper) for w in succs[v] if w in pos)
        total += _inversions([b for _, b in ends])
    return total


def _inversions(seq: list[int]) -> int:
    if len(seq) < 2:
        return 0
    mid = len(seq) // 2
    left, right = seq[:mid], seq[mid:]
    count = _inversions(left) + _inversions(right)
    left.sort()
    right.sort()
    j = 0
    for value in left:  # pairs (value in left, r in right) with r < value
        while j < len(right) and right[j] < value:
            j += 1
        count += j
    return count


def _coordinates(levels, preds, succs, size) -> dict[str, float]:
    x: dict[str, float] = {}
    for level in levels:
        left = 0.0
        for v in level:
            x[v] = left + size[v][0] / 2
            left += size[v][0] + H_GAP
    for sweep in range(8):
        order = range(len(levels)) if sweep % 2 == 0 else range(len(levels) - 1, -1, -1)
        for r in order:
            level = levels[r]
            links = preds if sweep % 2 == 0 else succs
            desired = []
            for v in level:
                near = [x[u] for u in links[v]] or [x[u] for u in (succs if sweep % 2 == 0 else preds)[v]]
                desired.append(sum(near) / len(near) if near else x[v])
            _place(level, desired, size, x)
    shift = MARGIN - min((x[v] - size[v][0] / 2 for v in x), default=0.0)
    return {v: round(p + shift, 1) for v, p in x.items()}


def _place(level: list[str], desired: list[float], size, x: dict[str, float]) -> None:
    """The positions closest to ``desired`` (least squares) that keep ``level``'s order and spacing."""
    offsets = [0.0]
    for a, b in itertools.pairwise(level):
        offsets.append(offsets[-1] + (size[a][0] + size[b][0]) / 2 + H_GAP)
    targets = [d - o for d, o in zip(desired, offsets)]
    blocks: list[list[float]] = []  # [mean, count]
    for t in targets:
        blocks.append([t, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, count = blocks.pop()
            prev = blocks[-1]
            prev[0] = (prev[0] * prev[1] + mean * count) / (prev[1] + count)
            prev[1] += count
    i = 0
    for mean, count in blocks:
        for _ in range(int(count)):
            x[level[i]] = mean + offsets[i]
            i += 1
