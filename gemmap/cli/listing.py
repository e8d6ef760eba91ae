"""``gemmap list``: the architectures and workloads that ship with gemmap, found by name."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from gemmap.arch import load_arch
from gemmap.report import compact_table, print_table
from gemmap.specio import SHIPPED
from gemmap.workload import load_workload

EXAMPLES = """examples:
  gemmap list
  gemmap map llama2-7b --arch gemmini-transformer     # any listed name works where a path does
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="the built-in architectures and workloads", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.set_defaults(run=run)


def _title(text: str) -> str:
    """What the file is: its leading comment up to the first parenthesis or colon."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first.startswith("#"):
        return ""
    return re.split(r" \(|:", first.lstrip("# "), maxsplit=1)[0].strip()


def _arch_facts(path: Path) -> str:
    a = load_arch(path)
    l2 = f", L2 {a.l2.kib} KiB" if a.l2 else ""
    return (f"{a.dim_rows}x{a.dim_cols} {'/'.join(a.dataflows)}, spad {a.scratchpad.kib:g} KiB, "
            f"acc {a.accumulator.kib:g} KiB{l2}, {a.frequency_mhz:g} MHz")  # fmt: skip


def _workload_facts(path: Path) -> str:
    w = load_workload(path)
    return f"{len(w.problems)} matmul/conv layers, {len(w.nonlinear)} non-linear ops"


def run(args: argparse.Namespace) -> int:
    for kind in ("arch", "workloads"):
        table = compact_table(f"built-in {'architectures' if kind == 'arch' else 'workloads'}",
                              ("name", "what", "facts"), left=("name", "what", "facts"))  # fmt: skip
        facts = _arch_facts if kind == "arch" else _workload_facts
        for path in sorted((SHIPPED / kind).glob("*.yaml")):
            table.add_row(path.stem, _title(path.read_text(encoding="utf-8")), facts(path))
        print_table(table)
    return 0
