"""Text for a PipelineReport: the ``--timing`` table and the op-count note."""

from __future__ import annotations


def _stats_text(stats: dict[str, int]) -> str:
    return ", ".join(f"{count} {what}" for what, count in sorted(stats.items()) if count)


def timing_table(report) -> str:
    total = report.pass_seconds + report.verify_seconds
    rows = [(f"{r.index + 1}. {r.spec}", r.seconds, _stats_text(r.stats) or ("changed" if r.changed else "-"))
            for r in report.records]
    if report.verify_seconds:
        rows.append(("(verifier)", report.verify_seconds, ""))
    width = max([len(name) for name, _, _ in rows] + [len("pass"), len("total")])
    lines = [f"{'pass':<{width}}  {'time (ms)':>10}  {'share':>6}  changes"]
    for name, seconds, what in rows:
        share = 100.0 * seconds / total if total else 0.0
        lines.append(f"{name:<{width}}  {seconds * 1e3:>10.2f}  {share:>5.1f}%  {what}".rstrip())
    lines.append(f"{'total':<{width}}  {total * 1e3:>10.2f}  {100.0 if total else 0.0:>5.1f}%")
    return "\n".join(lines)


def op_count_note(report, limit: int = 8) -> str:
    before, after = report.ops_before, report.ops_after
    n_before, n_after = sum(before.values()), sum(after.values())
    deltas = sorted(((after.get(op, 0) - before.get(op, 0), op) for op in set(before) | set(after)),
                    key=lambda d: (-abs(d[0]), d[1]))
    changes = [f"{op} {before.get(op, 0)}->{after.get(op, 0)}" for delta, op in deltas if delta][:limit]
    text = f"{n_before} -> {n_after} nodes"
    return f"{text} ({', '.join(changes)})" if changes else text
