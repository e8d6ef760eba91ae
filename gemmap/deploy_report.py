"""Tables (≤ 100 columns) of ``gemmap deploy``."""

from __future__ import annotations

from rich.table import Table

from gemmap.deploy import MIB, DeployResult, PlanResult
from gemmap.report import compact_table, eng

GIB = 1 << 30

#: groups listed in full up to this many; beyond, the first and last ones
MAX_ROWS = 16


def group_table(r: DeployResult) -> Table:
    """The chosen plan's groups: units, weights, load time from storage, compute time."""
    p = r.best
    table = compact_table(
        f"{r.workload_name} on {r.arch.name}: {len(p.groups)} group(s), {p.plan.mode}",
        ("#", "units", "n", "weights", "load", "compute"),
        left=("units",),
    )
    shown = list(enumerate(p.groups))
    if len(shown) > MAX_ROWS:
        shown = shown[: MAX_ROWS // 2] + [(-1, None)] + shown[-MAX_ROWS // 2 :]
    for i, g in shown:
        if g is None:
            table.add_row("…", f"{len(p.groups) - MAX_ROWS} more", "", "", "", "")
            continue
        span = g.units[0].name if len(g.units) == 1 else f"{g.units[0].name}…{g.units[-1].name}"
        table.add_row(
            str(i),
            span,
            str(len(g.units)),
            f"{g.weight_bytes / MIB:.1f} MiB",
            eng(g.load_s, "s"),
            eng(g.compute_s, "s"),
        )
    table.caption = (
        f"weights {r.total_weight_bytes / GIB:.2f} GiB, memory for them {r.weight_memory / GIB:.2f} GiB; "
        f"resident: KV cache {r.resident.kv_bytes / MIB:.1f} MiB, activations {r.resident.activation_bytes / MIB:.1f} "
        f"MiB; storage {eng(r.storage_bytes_per_s, 'B/s')}, {eng(r.storage_latency_s, 's')} per access"
    )
    return table


def plan_table(r: DeployResult) -> Table:
    """Optimal and greedy plans per mode, the early-exit plan, against unlimited memory."""
    exits = r.early_exit is not None
    cols = ["plan", "groups", "latency", "overhead"] + (["expected"] if exits else [])
    table = compact_table(
        f"{r.workload_name}: latency per pass (one inference; one token when decoding)", cols, left=("plan",)
    )

    def row(name: str, p: PlanResult | None) -> None:
        if p is None:
            table.add_row(name, "-", "none fits", "-", *(["-"] if exits else []))
            return
        over = p.plan.latency_s / r.unlimited_latency_s - 1
        extra = [eng(p.plan.expected_latency_s, "s")] if exits else []
        table.add_row(name, str(len(p.groups)), eng(p.plan.latency_s, "s"), f"{over:+.1%}", *extra)

    for mode, p in r.per_mode.items():
        row(f"optimal, {mode}" + (" (chosen)" if p is r.best else ""), p)
        row(f"greedy, {mode}", r.greedy.get(mode))
    if r.early_exit is not None:
        row(f"least expected latency, {r.early_exit.plan.mode}", r.early_exit)
    extra = [eng(r.unlimited_expected_s, "s")] if exits else []
    table.add_row("unlimited memory", "1", eng(r.unlimited_latency_s, "s"), "+0.0%", *extra)
    if r.fits:
        table.caption = "the weights fit: loaded once, nothing streamed per pass"
    return table
