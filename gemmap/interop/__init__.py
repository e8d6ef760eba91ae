"""Reading mappings written by other tools (Timeloop, DOSA) into gemmap's neutral loop nest."""

from __future__ import annotations

from gemmap.interop.timeloop import (
    DATASPACES,
    DEFAULT_LEVEL_NAMES,
    DIMS,
    Level,
    Loop,
    LoopNest,
    check_covers,
    load_mapping,
    parse_compact,
    parse_yaml,
)

__all__ = [
    "DATASPACES",
    "DEFAULT_LEVEL_NAMES",
    "DIMS",
    "Level",
    "Loop",
    "LoopNest",
    "check_covers",
    "load_mapping",
    "parse_compact",
    "parse_yaml",
]
