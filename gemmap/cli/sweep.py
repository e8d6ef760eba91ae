"""``gemmap sweep``: whole-model mapping + schedule over the cartesian product of memory sizes,
fusion policies, dataflows, array sizes, sequence lengths and BERT hyper-parameters."""

from __future__ import annotations

import argparse
import contextlib
import stat
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from gemmap import api, specio
from gemmap.arch import DEFAULT_ARCH, load_arch
from gemmap.cache import default_cache_path
from gemmap.cli.common import add_search_args, flag_number, parse_list, search_options, warn_unusual
from gemmap.errors import GemmapError, shown
from gemmap.report import eng, print_table

EXAMPLES = """examples:
  gemmap sweep workloads/bert.yaml --arch arch/gemmini-transformer.yaml --spad-kib 32,64,128,256 \\
      --acc-kib 32,64,128,256 --fusion none,auto --objective latency --out out/sweep
  gemmap sweep workloads/bert.yaml --spad-kib 64,256 --acc-kib 64,256 --workers 2 --out out/s2
  gemmap sweep workloads/bert.yaml --spad-kib 64,256 --acc-kib 64,256 --scheduler tcp://10.0.0.5:8786 --out out/s3
  gemmap sweep workloads/bert.yaml --out out/nas --layers 1,2,3,4,5,6,7,8,9,10,11,12 \\
      --hidden 128,256,384,512,640,768 --heads auto --ffn auto --seq-len 64,128,256,512 --workers 2

Lists are comma-separated; a list left out means the arch's or workload's own value. --heads auto
is hidden/64 (BERT's head dim 64) and --ffn auto is 4*hidden. Re-running into the same --out needs
--resume (skip finished points) or --overwrite. sweep.csv gets one line per finished point as it
finishes (fsync-ed), and is rewritten in key order at the end; search results are kept in a
persistent cache (--cache), so a second sweep over overlapping points is nearly free.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="latency / energy / EDP across SRAM sizes, fusion policies and BERT variants",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("workload", help="workload YAML (e.g. workloads/bert.yaml)")
    p.add_argument("--arch", default=str(DEFAULT_ARCH), help="architecture YAML (default: arch/gemmini.yaml)")
    g = p.add_argument_group("grid (comma-separated lists)")
    g.add_argument("--spad-kib", metavar="LIST", help="scratchpad sizes in KiB (default: the arch's)")
    g.add_argument("--acc-kib", metavar="LIST", help="accumulator sizes in KiB (default: the arch's)")
    g.add_argument("--fusion", metavar="LIST", default="none", help="fusion policies: none, all, auto (default: none)")
    g.add_argument("--dataflow", metavar="LIST", help="dataflows: ws, os (default: what the arch allows)")
    g.add_argument("--pe-dim", metavar="LIST", help="systolic array sizes DIM (DIM x DIM PEs; default: the arch's)")
    g.add_argument("--seq-len", metavar="LIST", help="BERT sequence lengths")
    g.add_argument("--layers", metavar="LIST", help="BERT encoder depths")
    g.add_argument("--hidden", metavar="LIST", help="BERT hidden sizes")
    g.add_argument("--heads", metavar="LIST", help="BERT attention heads, or 'auto' (hidden/64)")
    g.add_argument("--ffn", metavar="LIST", help="BERT FFN sizes, or 'auto' (4*hidden)")
    g.add_argument("--batch", metavar="LIST", help="batch sizes")
    add_search_args(p)
    r = p.add_argument_group("running")
    r.add_argument("--out", metavar="DIR", required=True, help="output directory (sweep.csv, plots)")
    r.add_argument("--workers", metavar="N", default="1", help="local worker processes (default: 1, in-process)")
    r.add_argument("--scheduler", metavar="ADDRESS", help="run on the Dask cluster at ADDRESS (needs gemmap[dask])")
    again = r.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the sweep in --out, skipping finished points")
    again.add_argument("--overwrite", action="store_true", help="start again even if --out has a sweep")
    r.add_argument("--cache", metavar="FILE", help=f"persistent search cache (default: {default_cache_path()})")
    r.add_argument("--no-cache", action="store_true", help="do not read or write the persistent search cache")
    r.add_argument("--no-plots", action="store_true", help="write sweep.csv only")
    r.add_argument("--tolerance", metavar="FRAC", default="0.05", help="'near best' latency tolerance (default: 0.05)")
    p.set_defaults(run=run)


def parse_words(text: str | None, option: str) -> tuple[str, ...]:
    if text is None:
        return ()
    items = tuple(t.strip() for t in text.split(","))
    if not text.strip() or any(not t for t in items):
        raise GemmapError(f"{option}: expected a comma-separated list, got '{shown(text)}'")
    return items


def cache_file(text: str) -> Path:
    """``--cache FILE``: a file (new, or a regular one), not a folder, FIFO or device."""
    if not text.strip():
        raise GemmapError("--cache: give a file name, not an empty string")
    path = Path(text)
    with contextlib.suppress(FileNotFoundError):
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise GemmapError(f"--cache {shown(text)}: it is {specio.kind_of(mode)}; give a file name")
    return path


def run(args: argparse.Namespace) -> int:
    from gemmap.sweep import Grid, Sweep, run_sweep
    from gemmap.sweep_report import heatmaps, no_heatmap_reason, no_pareto_reason, pareto_plot

    grid = Grid(
        spad_kib=parse_list(args.spad_kib, "--spad-kib", specio.SRAM_KIB),
        acc_kib=parse_list(args.acc_kib, "--acc-kib", specio.SRAM_KIB),
        fusion=parse_words(args.fusion, "--fusion"),
        dataflow=parse_words(args.dataflow, "--dataflow"),
        pe_dim=parse_list(args.pe_dim, "--pe-dim", specio.ARRAY_DIM),
        seq_len=parse_list(args.seq_len, "--seq-len", specio.TENSOR_DIM),
        layers=parse_list(args.layers, "--layers", specio.LAYERS),
        hidden=parse_list(args.hidden, "--hidden", specio.TENSOR_DIM),
        heads=parse_list(args.heads, "--heads", specio.TENSOR_DIM, allow_auto=True),
        ffn=parse_list(args.ffn, "--ffn", specio.TENSOR_DIM, allow_auto=True),
        batch=parse_list(args.batch, "--batch", specio.BATCH),
    )
    workers = flag_number(specio.parse_int, args.workers, specio.WORKERS, "--workers")
    tolerance = flag_number(specio.parse_float, args.tolerance, specio.TOLERANCE, "--tolerance")
    if args.scheduler is not None and workers != 1:
        raise GemmapError("--workers and --scheduler exclude each other (the cluster has its own workers)")
    options = search_options(args)
    if not args.out.strip():
        raise GemmapError("--out: give a folder name, not an empty string")
    cache = None if args.no_cache else cache_file(args.cache) if args.cache is not None else default_cache_path()
    base = load_arch(args.arch)
    warn_unusual(base, [*grid.spad_kib, *grid.acc_kib])
    sweep = Sweep(
        workload_path=args.workload, arch=base, options=options, grid=grid, out_dir=Path(args.out),
        workers=workers, scheduler=args.scheduler, resume=args.resume, overwrite=args.overwrite, cache_path=cache,
    )  # fmt: skip
    console = Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    )  # fmt: skip
    task = None
    plain = not console.is_terminal  # piped or logged: a line every PLAIN_PROGRESS_SECONDS instead of a bar
    due = api.due_every(api.PLAIN_PROGRESS_SECONDS)

    def on_start(total: int, done: int) -> None:
        nonlocal task
        if not plain:
            stack.enter_context(bar)  # only now: a failed start prints nothing but its error line
            task = bar.add_task("sweep", total=total, completed=done)
        if done:
            console.print(f"resuming: {done} of {total} points already finished")

    def on_point(result, done: int, total: int) -> None:
        if not plain:
            bar.update(task, completed=done, description=f"sweep: {result.point.label()}")
        elif due() is not None:
            console.print(f"gemmap: sweep: {done}/{total} points done, last {result.point.label()}", highlight=False)

    with contextlib.ExitStack() as stack:
        outcome = run_sweep(sweep, on_point=on_point, on_start=on_start)
    out = Path(args.out)
    written = [outcome.csv_path, outcome.csv_path.with_name("sweep_layers.csv")]
    if not args.no_plots:
        written += heatmaps(outcome.rows, out, options.objective) + pareto_plot(outcome.rows, out, options.objective)
    print_summary(outcome, tolerance)
    failed = sum(1 for r in outcome.rows if r["status"] != "ok")
    console.print(
        f"{outcome.points} points ({outcome.skipped} finished before, {outcome.computed} computed, {failed} without a"
        f" valid mapping) in {outcome.seconds:.1f} s; "
        + (f"{outcome.stored_searches} new search results cached in {cache}" if cache else "persistent cache off")
    )
    console.print("wrote " + ", ".join(str(p) for p in written))
    if not args.no_plots:
        for reason in filter(None, (no_heatmap_reason(outcome.rows), no_pareto_reason(outcome.rows))):
            console.print(reason)
    return 0


def print_summary(outcome, tolerance: float) -> None:
    from gemmap.sweep_report import picks, variant_label

    rows = outcome.rows
    chosen = picks(rows, tolerance) + picks(rows, tolerance, by_fusion=False)
    if not chosen:
        return
    variants = len({p.variant for p in chosen})
    caption = None
    if len(chosen) > 24:
        chosen = [p for p in chosen if p.fusion == "any"][:24]
        shown = f"{len(chosen)} of {variants} variants shown" if len(chosen) < variants else "all variants shown"
        caption = f"{shown}, best over fusion policies only; every point is in sweep.csv"
    table = Table(title=f"best latency, and the smallest configuration within {tolerance:.0%} of it", caption=caption)
    for col in (
        "variant",
        "fusion",
        "best (spad/acc KiB)",
        "cycles",
        "smallest near best",
        "cycles",
        "area mm²",
        "energy",
    ):
        table.add_column(col)
    for p in chosen:
        b, s = p.best, p.smallest
        table.add_row(
            variant_label(p.variant), p.fusion, f"{b['spad_kib']}/{b['acc_kib']}", eng(int(b["cycles"])),
            f"{s['spad_kib']}/{s['acc_kib']}" + (f" {s['fusion']}" if p.fusion == "any" else ""),
            eng(int(s["cycles"])), f"{float(s['area_mm2']):.3f}", eng(float(s["energy_pj"]) * 1e-12, "J"),
        )  # fmt: skip
    print_table(table)
