"""Arguments and helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from gemmap.arch import DEFAULT_ARCH, Arch, load_arch
from gemmap.errors import GemmapError
from gemmap.search import METHODS, OBJECTIVES, SearchOptions


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got '{text}'")
    return value


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 0, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 0, got '{text}'")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return value


def int_list(text: str) -> list[int]:
    """'32,64,128' → [32, 64, 128]; every entry a positive whole number."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of positive whole numbers, got '{text}'")
    return [positive_int(t) for t in items]


def choice_list(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        from gemmap.errors import did_you_mean

        items = [t.strip() for t in text.split(",")]
        for t in items:
            if t not in choices:
                raise argparse.ArgumentTypeError(
                    f"unknown value '{t}'{did_you_mean(t, choices)}; choose from {', '.join(choices)}"
                )
        return items

    return parse


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


def arch_from_args(args: argparse.Namespace) -> Arch:
    arch = load_arch(args.arch)
    arch = arch.with_overrides(spad_kib=getattr(args, "spad_kib", None), acc_kib=getattr(args, "acc_kib", None))
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
