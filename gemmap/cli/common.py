"""Arguments and helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gemmap.arch import DEFAULT_ARCH, Arch, load_arch
from gemmap.errors import GemmapError
from gemmap.search import METHODS, OBJECTIVES, SearchOptions
from gemmap.workload import Overrides


def _number(text: str, kind: type[int] | type[float], ok, what: str) -> int | float:
    """Parse ``text`` as ``kind`` and require ``ok(value)``, else an argparse error naming ``what``."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
    return value


def positive_int(text: str) -> int:
    return int(_number(text, int, lambda v: v > 0, "a positive whole number"))


def nonnegative_int(text: str) -> int:
    return int(_number(text, int, lambda v: v >= 0, "a whole number ≥ 0"))


def positive_float(text: str) -> float:
    return float(_number(text, float, lambda v: v > 0, "a positive number"))


def int_list(text: str) -> list[int]:
    """'32,64,128' → [32, 64, 128]; every entry a positive whole number."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of positive whole numbers, got '{text}'")
    return [positive_int(t) for t in items]


def add_workload_args(p: argparse.ArgumentParser, seq_len: bool = True) -> None:
    """The model-family overrides: --phase, --kv-len, --batch (and --seq-len unless the command
    takes a list of them)."""
    g = p.add_argument_group("workload overrides (model families)")
    g.add_argument("--phase", choices=("prefill", "decode"), help="decoder phase (model: gpt, llama)")
    if seq_len:
        g.add_argument("--seq-len", type=positive_int, help="sequence length (prefill tokens; bert, gpt, llama)")
    g.add_argument("--kv-len", type=positive_int, help="cached tokens a decode step attends to (gpt, llama)")
    g.add_argument("--batch", type=positive_int, help="sequences (or images) per step")


def overrides_from_args(args: argparse.Namespace) -> Overrides:
    seq = getattr(args, "seq_len", None)
    return Overrides(
        seq_len=seq if isinstance(seq, int) else None, batch=args.batch, phase=args.phase, kv_len=args.kv_len
    )


def add_arch_args(p: argparse.ArgumentParser, sizes: bool = True) -> None:
    p.add_argument("--arch", default=str(DEFAULT_ARCH), help="architecture YAML (default: arch/gemmini.yaml)")
    if sizes:
        p.add_argument("--spad-kib", type=positive_int, help="override the scratchpad size (KiB)")
        p.add_argument("--acc-kib", type=positive_int, help="override the accumulator size (KiB)")
    p.add_argument("--dataflow", choices=("ws", "os"), help="restrict to one dataflow (default: what the arch allows)")


def add_search_args(p: argparse.ArgumentParser, default_method: str = "optimal") -> None:
    p.add_argument("--search", choices=METHODS, default=default_method, help=f"mapper (default: {default_method})")
    p.add_argument("--objective", choices=OBJECTIVES, default="edp", help="what to minimize (default: edp)")
    p.add_argument("--samples", type=positive_int, help="samples for --search random (default: 10000)")
    p.add_argument("--seed", type=nonnegative_int, help="random seed for --search random (default: 0)")
    p.add_argument(
        "--time-limit",
        type=positive_float,
        help="seconds per layer for --search optimal; best-so-far is reported as not proven",
    )


#: what a real Gemmini can be built with, roughly: outside it the model still runs, but says so once
REAL_DIM = (2, 256)
REAL_SRAM_KIB = (1, 64 * 1024)


def warn_unusual(arch: Arch, sram_kib: Sequence[float] = ()) -> None:
    """One line on stderr when the array or an SRAM (the arch's, or any of ``sram_kib``) is far
    outside what any Gemmini has been built with."""
    odd = [f"{n} {v:g}" for n, v in (("array rows", arch.dim_rows), ("array cols", arch.dim_cols))
           if not REAL_DIM[0] <= v <= REAL_DIM[1]]  # fmt: skip
    sizes = [arch.scratchpad.kib, arch.accumulator.kib, *sram_kib]
    odd += [f"an SRAM of {v:g} KiB" for v in dict.fromkeys(sizes) if not REAL_SRAM_KIB[0] <= v <= REAL_SRAM_KIB[1]]
    if odd:
        print(f"gemmap: warning: {', '.join(odd)}: far outside any real Gemmini (arrays {REAL_DIM[0]}-{REAL_DIM[1]} "
              f"per side, SRAMs 1 KiB-64 MiB); the model runs, but nothing has validated it there", file=sys.stderr)  # fmt: skip


def arch_from_args(args: argparse.Namespace) -> Arch:
    arch = load_arch(args.arch)
    arch = arch.with_overrides(spad_kib=getattr(args, "spad_kib", None), acc_kib=getattr(args, "acc_kib", None))
    warn_unusual(arch)
    if args.dataflow and args.dataflow not in arch.dataflows:
        raise GemmapError(f"{args.arch}: {arch.name} does not support dataflow {args.dataflow}")
    return arch.with_overrides(dataflow=args.dataflow) if args.dataflow else arch


def search_options(args: argparse.Namespace, dataflow: str | None = None) -> SearchOptions:
    """SearchOptions from the flags; a flag the chosen method does not use is an error, not ignored."""
    used_by = {"samples": "random", "seed": "random", "time_limit": "optimal"}
    for flag, method in used_by.items():
        if getattr(args, flag) is not None and args.search != method:
            raise GemmapError(f"--{flag.replace('_', '-')} applies to --search {method}, not --search {args.search}")
    return SearchOptions(
        method=args.search,
        objective=args.objective,
        samples=10_000 if args.samples is None else args.samples,
        seed=0 if args.seed is None else args.seed,
        time_limit=args.time_limit,
        dataflow=dataflow,
    )
