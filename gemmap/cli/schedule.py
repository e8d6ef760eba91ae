"""``gemmap schedule``: not implemented yet (see the open issue)."""

from __future__ import annotations

import argparse

from gemmap.errors import GemmapError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schedule", help="(not available yet)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise GemmapError("'gemmap schedule' is not available yet")
