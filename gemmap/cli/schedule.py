"""``gemmap schedule``: fused vs unfused schedules, site by site (DESIGN §7, §8).

With one configuration: a table of the sites (unfused and fused cycles, energy, DRAM bytes, the
time breakdown and the verdict) and the totals of the ``none``, ``all`` and ``auto`` policies;
``--json`` writes the §8 record. With lists (``--seq-len``, ``--acc-kib``, ``--spad-kib``): one
row per configuration with each site's verdict and margin, and ``--json`` writes
``{"points": [{"seq_len", "acc_kib", "spad_kib", "sites", "total"}, ...]}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gemmap import api, specio
from gemmap.arch import DEFAULT_ARCH, Arch, load_arch
from gemmap.cli.common import (
    add_search_args,
    add_workload_args,
    list_type,
    overrides_from_args,
    search_options,
    warn_unusual,
)
from gemmap.errors import GemmapError
from gemmap.mapper import SearchCache
from gemmap.report import check_output_file, compact_table, eng, print_table, write_json
from gemmap.schedule import POLICIES, ScheduleResult, fusion_sites, schedule_workload
from gemmap.search import SearchOptions, check_workload
from gemmap.specio import load_yaml, shipped
from gemmap.workload import Overrides, load_workload

EXAMPLES = """examples:
  gemmap schedule workloads/bert.yaml --arch arch/gemmini-transformer.yaml
  gemmap schedule workloads/bert.yaml --arch arch/gemmini-transformer.yaml --search heuristic --json out/s.json --plot out/s
  gemmap schedule workloads/bert.yaml --arch arch/gemmini-transformer.yaml --acc-kib 64,128,256 --seq-len 128,512,2048
  gemmap schedule workloads/gpt2.yaml --arch arch/gemmini-transformer.yaml --phase decode --kv-len 1024
  gemmap schedule workloads/bert.yaml --arch arch/gemmini-transformer.yaml --search heuristic --ratio-plot out/ratio
"""

RATIO_SEQ_LENS = (128, 256, 512, 1024, 2048, 4096)
RATIO_ACC_KIB = (64, 128, 256)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schedule", help="fused vs unfused schedules (matmul+Softmax/LayerNorm/GELU), site by site",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("workload", help="workload YAML (e.g. workloads/bert.yaml)")
    p.add_argument("--arch", default=str(DEFAULT_ARCH), help="architecture YAML (default: arch/gemmini.yaml)")
    p.add_argument("--spad-kib", type=list_type(specio.SRAM_KIB), help="scratchpad size(s) in KiB, comma-separated")
    p.add_argument("--acc-kib", type=list_type(specio.SRAM_KIB), help="accumulator size(s) in KiB, comma-separated")
    p.add_argument(
        "--seq-len", type=list_type(specio.TENSOR_DIM), help="sequence length(s), comma-separated (bert, gpt, llama)"
    )
    p.add_argument("--dataflow", choices=("ws", "os"), help="restrict to one dataflow (default: what the arch allows)")
    add_search_args(p)
    add_workload_args(p, seq_len=False)
    p.add_argument("--json", metavar="FILE", help="write the result as JSON")
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="write FILE.png and FILE.svg: per-site time breakdown and a one-layer Gantt "
        "(with lists, one per configuration: FILE-seq512-acc64.png, ...)",
    )
    p.add_argument("--ratio-plot", metavar="FILE", help="write FILE.png/.svg: fused/unfused latency per site vs sequence "
                   f"length (--seq-len, default {','.join(map(str, RATIO_SEQ_LENS))}) for the --acc-kib sizes "
                   f"(default {','.join(map(str, RATIO_ACC_KIB))})")  # fmt: skip
    p.set_defaults(run=run)


class Runner:
    """Schedules configurations, sharing one search cache per (spad, acc) arch."""

    def __init__(self, base: Arch, workload_path: str, options: SearchOptions, overrides: Overrides) -> None:
        self.base, self.path, self.options, self.overrides = base, workload_path, options, overrides
        self._caches: dict[tuple[int | None, int | None], tuple[Arch, SearchCache]] = {}
        self._done: dict[tuple[int | None, int | None, int | None], ScheduleResult] = {}

    def arch(self, spad: int | None, acc: int | None) -> tuple[Arch, SearchCache]:
        if (spad, acc) not in self._caches:
            arch = self.base.with_overrides(spad_kib=spad, acc_kib=acc)
            self._caches[spad, acc] = (arch, SearchCache(arch, self.options))
        return self._caches[spad, acc]

    def run(self, seq: int | None, spad: int | None, acc: int | None, tick) -> ScheduleResult:
        key = (seq, spad, acc)
        if key not in self._done:
            arch, cache = self.arch(spad, acc)
            workload = load_workload(self.path, overrides=dataclasses.replace(self.overrides, seq_len=seq))
            self._done[key] = schedule_workload(arch, workload, self.options, "auto", on_layer=tick, cache=cache)
        return self._done[key]


def _verdict(ratio: float | None, fused: bool) -> str:
    if ratio is None:
        return "infeasible"
    return f"{'fused' if fused else 'unfused'} {ratio - 1:+.1%}"


#: the site table's columns that go first on a narrow terminal
SITE_DROPPABLE = ("mapping", "DRAM", "energy", "norm", "memory", "compute")


def site_table(r: ScheduleResult) -> Table:
    t = compact_table(
        f"{r.workload_name} on {r.arch.name} (acc {r.arch.accumulator.kib} KiB, spad {r.arch.scratchpad.kib} KiB): "
        f"fused vs unfused per site, one instance; chosen for {r.objective}",
        (
            "site",
            "x",
            "schedule",
            "cycles",
            "compute",
            "memory",
            "norm",
            "energy",
            "DRAM",
            "latency",
            "chosen",
            "mapping",
        ),
        left=("site", "schedule", "mapping", "chosen"),
    )
    for s, fuse in zip(r.sites, r.auto_choice):
        for name, sched in (("unfused", s.unfused), ("fused", s.fused)):
            first = name == "unfused"
            if sched is None:
                t.add_row("", "", name, "-", "", "", "", "", "", "", "", s.reason)
                continue
            change = "" if first else f"{s.ratio('latency') - 1:+.1%}"  # type: ignore[operator]
            t.add_row(
                s.site.name if first else "", str(s.site.repeat) if first else "", name, eng(sched.cycles),
                eng(sched.compute_cycles), eng(sched.memory_cycles), eng(sched.norm_cycles), eng(sched.energy_pj * 1e-12, "J"),
                eng(sched.dram_bytes, "B"), change, (f"<- {r.objective}" if sched.fused == fuse else ""),
                sched.matmul.mapping.summary(r.arch),
            )  # fmt: skip
        t.add_section()
    return t


def totals_table(r: ScheduleResult) -> Table:
    t = compact_table("whole workload", ("policy", "cycles", "energy", "EDP", "vs none"), left=("policy",))
    none = r.total("none")
    for p in POLICIES:
        x = r.total(p)
        t.add_row(
            p,
            eng(x.cycles, digits=4),
            eng(x.energy_pj * 1e-12, "J", 4),
            eng(x.edp * 1e-12, "J·cyc", 4),
            f"{x.cycles / none.cycles - 1:+.2%} cycles",
        )
    return t


def sweep_table(points: list[tuple[tuple[int | None, int | None, int | None], ScheduleResult]]) -> Table:
    first = points[0][1]
    t = Table(
        title=f"{first.workload_name} on {first.arch.name}: verdict per site (fused/unfused latency - 1, objective {first.objective})"
    )
    for c in ("seq", "acc KiB", "spad KiB"):
        t.add_column(c, justify="right")
    for s in first.sites:
        t.add_column(s.site.name)
    t.add_column("auto vs none", justify="right")
    for (seq, _, _), r in points:
        verdicts = {s.site.name: _verdict(s.ratio("latency"), f) for s, f in zip(r.sites, r.auto_choice)}
        gain = r.total("auto").cycles / r.total("none").cycles - 1
        t.add_row(str(seq or "-"), str(r.arch.accumulator.kib), str(r.arch.scratchpad.kib),
                  *[verdicts.get(s.site.name, "-") for s in first.sites], f"{gain:+.2%}")  # fmt: skip
    return t


def run(args: argparse.Namespace) -> int:
    for value, flag in ((args.json, "--json"), (args.plot, "--plot"), (args.ratio_plot, "--ratio-plot")):
        if value is not None:
            check_output_file(value, flag)  # a typo fails now, not after the searches
    base = load_arch(args.arch)
    warn_unusual(base, [*(args.spad_kib or ()), *(args.acc_kib or ())])
    if args.dataflow and args.dataflow not in base.dataflows:
        raise GemmapError(f"{args.arch}: {base.name} does not support dataflow {args.dataflow}")
    options = search_options(args, args.dataflow)
    seqs: list[int | None] = list(args.seq_len or [None])
    spads: list[int | None] = list(args.spad_kib or [None])
    accs: list[int | None] = list(args.acc_kib or [None])
    overrides = overrides_from_args(args, seq_len=False)
    workload = load_workload(args.workload, overrides=dataclasses.replace(overrides, seq_len=seqs[0]))
    if not fusion_sites(workload)[0]:
        raise GemmapError(f"{args.workload}: workload '{workload.name}' has no fusion site (no Softmax, LayerNorm or GELU "
                          "after a matmul); nothing to schedule — use 'gemmap map'")  # fmt: skip
    for seq in seqs:  # every sequence length's layers are checked before the first search
        check_workload(
            base, load_workload(args.workload, overrides=dataclasses.replace(overrides, seq_len=seq)), options
        )
    runner = Runner(base, args.workload, options, overrides)
    console = Console(stderr=True)
    grid = list(itertools.product(seqs, spads, accs))
    per_point = len(workload.problems)
    with api.progress(console, total=len(grid) * per_point, what="scheduling") as tick:
        points = [((seq, spad, acc), runner.run(seq, spad, acc, tick)) for seq, spad, acc in grid]
    if len(points) == 1:
        result = points[0][1]
        print_table(site_table(result), droppable=SITE_DROPPABLE)
        print_table(totals_table(result))
        if args.json:
            seq_len = seqs[0] if seqs[0] is not None else load_yaml(shipped(args.workload, "workloads")).get("seq_len")
            write_json(args.json, {**result.to_json(), "search": options.method, "seq_len": seq_len})
    else:
        print_table(sweep_table(points))
        if args.json:
            write_json(args.json, {"search": options.method, "objective": options.objective, "points": [
                {"seq_len": seq, "acc_kib": r.arch.accumulator.kib, "spad_kib": r.arch.scratchpad.kib,
                 "sites": r.to_json()["sites"], "total": r.to_json()["total"]} for (seq, _, _), r in points]})  # fmt: skip
    if args.plot:
        plot_points(points, args.plot, console)
    if args.ratio_plot:
        ratio_plot(runner, args, console)
    return 0


def plot_points(points: list[tuple[tuple[int | None, int | None, int | None], ScheduleResult]], path: str,
                console: Console) -> None:  # fmt: skip
    """One ``--plot`` figure per configuration: FILE itself for one, else FILE-seq512-acc64 and so on
    (only the values that vary)."""
    from gemmap.schedule_plots import plot_schedule

    base = Path(path)
    base = base.with_suffix("") if base.suffix.lower() in (".png", ".svg") else base
    varies = [len({key[i] for key, _ in points}) > 1 for i in range(3)]
    for key, result in points:
        tag = "".join(f"-{name}{v}" for name, v, vary in zip(("seq", "spad", "acc"), key, varies) if vary)
        for written in plot_schedule(result, base.with_name(base.name + tag)):
            console.print(f"wrote {written}")


def ratio_plot(runner: Runner, args: argparse.Namespace, console: Console) -> None:
    from gemmap.schedule_plots import plot_ratio

    seqs = list(args.seq_len) if args.seq_len and len(args.seq_len) > 1 else list(RATIO_SEQ_LENS)
    accs = list(args.acc_kib or RATIO_ACC_KIB)
    spad = args.spad_kib[0] if args.spad_kib else None
    series: dict[str, dict[int, list[tuple[int, float | None]]]] = {}
    overrides = dataclasses.replace(overrides_from_args(args, seq_len=False), seq_len=seqs[0])
    nproblems = len(load_workload(args.workload, overrides=overrides).problems)
    with api.progress(console, total=len(seqs) * len(accs) * nproblems, what="ratio plot") as tick:
        for acc, seq in itertools.product(accs, seqs):
            r = runner.run(seq, spad, acc, tick)
            for s in r.sites:
                series.setdefault(s.site.name, {}).setdefault(acc, []).append((seq, s.ratio("latency")))
    title = f"{runner.base.name}, search {runner.options.method}: fused / unfused latency per site"
    for written in plot_ratio(series, title, args.ratio_plot):
        console.print(f"wrote {written}")
