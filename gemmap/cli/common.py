"""Arguments and helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from gemmap import specio
from gemmap.arch import DEFAULT_ARCH, Arch, load_arch
from gemmap.errors import GemmapError, shown, warn
from gemmap.search import METHODS, OBJECTIVES, SearchOptions
from gemmap.workload import Overrides


def _bounded(parse, bound: specio.Bound, name: str):
    """An argparse ``type``: ``parse(text, bound)`` with its ValueError as argparse's one-line error."""

    def convert(text: str):
        try:
            return parse(text, bound)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


def bounded_int(bound: specio.Bound):
    """A whole number within ``bound`` (gemmap/specio.py states each range and why)."""
    return _bounded(specio.parse_int, bound, "whole number")


def bounded_float(bound: specio.Bound):
    """A finite number within ``bound``."""
    return _bounded(specio.parse_float, bound, "number")


sram_kib = bounded_int(specio.SRAM_KIB)
positive_int = bounded_int(specio.Bound(1, 2**31 - 1, ""))
nonnegative_int = bounded_int(specio.Bound(0, 2**31 - 1, ""))
samples_int = bounded_int(specio.SAMPLES)
seed_int = bounded_int(specio.SEED)
seconds_float = bounded_float(specio.SECONDS)
workers_int = bounded_int(specio.WORKERS)


def parse_list(text: str | None, option: str, bound: specio.Bound, allow_auto: bool = False) -> tuple:
    """'32,64' → (32, 64); None → (); every entry a whole number within ``bound`` (or ``auto`` when
    allowed), else one line naming ``option`` (raised as a GemmapError)."""
    if text is None:
        return ()
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise GemmapError(f"{option}: expected a comma-separated list of whole numbers, got '{shown(text)}'")
    out: list[int | str] = []
    for t in items:
        if allow_auto and t == "auto":
            out.append("auto")
            continue
        try:
            out.append(specio.parse_int(t, bound))
        except ValueError as exc:
            raise GemmapError(f"{option}: {exc}{' or auto' if allow_auto else ''}") from None
    return tuple(out)


def flag_number(parse, text: str, bound: specio.Bound, option: str):
    """``parse(text, bound)`` (:func:`specio.parse_int` or :func:`specio.parse_float`), a bad value
    one line naming ``option``."""
    try:
        return parse(text, bound)
    except ValueError as exc:
        raise GemmapError(f"{option}: {exc}") from None


def list_type(bound: specio.Bound):
    """An argparse ``type`` for :func:`parse_list`."""

    def parse(text: str) -> list[int]:
        try:
            return list(parse_list(text, "", bound))
        except GemmapError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(": ")) from None

    parse.__name__ = "list"
    return parse


def parse_names(text: str | None, option: str) -> list[str] | None:
    """'a, b,a' → ['a', 'b'] (None when not given); an empty list or entry is an error."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise GemmapError(f"{option}: expected a comma-separated list of names, got '{shown(text)}'")
    return list(dict.fromkeys(items))


def add_workload_args(p: argparse.ArgumentParser, seq_len: bool = True) -> None:
    """The model-family overrides: --phase, --kv-len, --batch (and --seq-len unless the command
    takes a list of them)."""
    g = p.add_argument_group("workload overrides (model families)")
    g.add_argument("--phase", choices=("prefill", "decode"), help="decoder phase (model: gpt, llama)")
    if seq_len:
        g.add_argument(
            "--seq-len", type=bounded_int(specio.TENSOR_DIM), help="sequence length (prefill tokens; bert, gpt, llama)"
        )
    g.add_argument(
        "--kv-len", type=bounded_int(specio.TENSOR_DIM), help="cached tokens a decode step attends to (gpt, llama)"
    )
    g.add_argument("--batch", type=bounded_int(specio.BATCH), help="sequences (or images) per step")


def overrides_from_args(args: argparse.Namespace, seq_len: bool = True) -> Overrides:
    """The flags of :func:`add_workload_args` (``seq_len`` as it was given to it)."""
    return Overrides(seq_len=args.seq_len if seq_len else None, batch=args.batch, phase=args.phase, kv_len=args.kv_len)


def add_arch_args(p: argparse.ArgumentParser, sizes: bool = True) -> None:
    p.add_argument("--arch", default=str(DEFAULT_ARCH), help="architecture YAML (default: arch/gemmini.yaml)")
    if sizes:
        p.add_argument("--spad-kib", type=sram_kib, help="override the scratchpad size (KiB)")
        p.add_argument("--acc-kib", type=sram_kib, help="override the accumulator size (KiB)")
    p.add_argument("--dataflow", choices=("ws", "os"), help="restrict to one dataflow (default: what the arch allows)")


def add_search_args(p: argparse.ArgumentParser, default_method: str = "optimal") -> None:
    p.add_argument("--search", choices=METHODS, default=default_method, help=f"mapper (default: {default_method})")
    p.add_argument("--objective", choices=OBJECTIVES, default="edp", help="what to minimize (default: edp)")
    p.add_argument("--samples", type=samples_int, help="samples for --search random (default: 10000)")
    p.add_argument("--seed", type=seed_int, help="random seed for --search random (default: 0)")
    p.add_argument(
        "--time-limit",
        type=seconds_float,
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
        warn(f"{', '.join(odd)}: far outside any real Gemmini (arrays {REAL_DIM[0]}-{REAL_DIM[1]} per side, "
             "SRAMs 1 KiB-64 MiB); the model runs, but nothing has validated it there")  # fmt: skip


def arch_from_args(args: argparse.Namespace) -> Arch:
    arch = load_arch(args.arch)
    arch = arch.with_overrides(spad_kib=getattr(args, "spad_kib", None), acc_kib=getattr(args, "acc_kib", None))
    warn_unusual(arch)
    if args.dataflow and args.dataflow not in arch.dataflows:
        raise GemmapError(f"{shown(args.arch)}: {arch.name} does not support dataflow {args.dataflow}")
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
