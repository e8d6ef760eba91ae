"""Timeloop input documents: a layer's problem, gemmap's architecture as Timeloop's v0.4 tree, a mapping.

* **Problem**: Timeloop's CNN-layer einsum over dims C, K, R, S, N, P, Q (output channels named K as in
  DOSA's Gemmini data and gemmap's mapping import, where Timeloop's own example names them M), with
  Wstride/Hstride/Wdilation/Hdilation; a matmul is the layer P = M, C = K, K = N, the rest 1. Timeloop
  has no padding: its input is the window the outputs read, halo included.
* **Architecture** (``architecture: version: 0.4, nodes: [...]`` with ``!Container``/``!Component``
  nodes): DRAM -> (shared L2) -> Scratchpad (inputs, weights; rows of DIM bytes) -> DIM columns, each
  with its slice of the Accumulator (outputs, int32) -> DIM rows of PEs, each a weight register and an
  int8 MAC. Both fan-outs are along X, as in DOSA's Gemmini architecture, so a mapping's spatial
  loops are ``...X`` (what gemmap's importer reads).
* **Mapping**: the ``mapping:`` list -- per level a ``datatype`` directive (keep/bypass), a
  ``temporal`` one and, where the level fans out, a ``spatial`` one; ``factors`` for every dim and
  ``permutation`` innermost first. Spatial directives target the level above the fan-out (Timeloop's
  rule: "spatial sub-nests must target the parent hardware level").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from gemmap.arch import Arch
from gemmap.interop.convert import timeloop_layer
from gemmap.interop.timeloop import DATASPACES, Loop, LoopNest
from gemmap.interop.timeloop_nest import covered
from gemmap.workload import Problem

#: the YAML target of each of DOSA's levels (what ``DEFAULT_LEVEL_NAMES`` reads back)
TARGETS = {"L3": "DRAM", "L2": "Scratchpad", "L1": "Accumulator", "L0": "Registers"}
DATASPACE_NAMES = {"W": "Weights", "I": "Inputs", "O": "Outputs"}
#: the CNN layer's dims in the order Timeloop's example problem lists them (K for its M)
DIMS = ("C", "K", "R", "S", "N", "P", "Q")


def dump(doc: dict[str, Any], header: Sequence[str] = ()) -> str:
    """``doc`` as safe YAML under ``# header`` lines (leaf lists and maps in flow style)."""
    lines = "".join(f"# {line}\n" for line in header)
    return lines + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)


# --- problem -----------------------------------------------------------------------------


def problem_doc(problem: Problem, nest: LoopNest) -> dict[str, Any]:
    """The layer as Timeloop's CNN-layer problem; sizes padded up to what the nest covers."""
    c = problem.conv
    stride, dilation = (1, 1) if c is None else (c.stride, c.dilation)
    sizes = covered(problem, nest)
    shape = {
        "name": "CNN_Layer",
        "dimensions": list(DIMS),
        "coefficients": [{"name": n, "default": 1} for n in ("Wstride", "Hstride", "Wdilation", "Hdilation")],
        "data_spaces": [
            {"name": "Weights", "projection": [[["C"]], [["K"]], [["R"]], [["S"]]]},
            {
                "name": "Inputs",
                "projection": [
                    [["N"]],
                    [["C"]],
                    [["R", "Wdilation"], ["P", "Wstride"]],
                    [["S", "Hdilation"], ["Q", "Hstride"]],
                ],
            },
            {"name": "Outputs", "projection": [[["N"]], [["K"]], [["Q"]], [["P"]]], "read_write": True},
        ],
    }
    instance: dict[str, int] = {d: sizes[d] for d in DIMS}
    instance.update(Wstride=stride, Hstride=stride, Wdilation=dilation, Hdilation=dilation)
    return {"problem": {"version": 0.4, "shape": shape, "instance": instance}}


def padded_dims(problem: Problem, nest: LoopNest) -> dict[str, tuple[int, int]]:
    """Dims whose last tile is partial: dim -> (layer size, size the problem file states)."""
    sizes = covered(problem, nest)
    return {d: (n, sizes[d]) for d, n in timeloop_layer(problem).items() if sizes[d] != n}


# --- mapping -----------------------------------------------------------------------------


def _factors(loops: Sequence[Loop]) -> str:
    bounds = {loop.dim: loop.bound for loop in loops}
    assert len(bounds) == len(loops), "one loop per dim and kind at a level"
    return " ".join(f"{d}={bounds.get(d, 1)}" for d in DIMS)


def _permutation(loops: Sequence[Loop]) -> str:
    """Innermost first (Timeloop's order), then the dims without a loop."""
    inner_first = [loop.dim for loop in reversed(loops)]
    return "".join(inner_first + [d for d in DIMS if d not in inner_first])


def mapping_doc(nest: LoopNest) -> dict[str, Any]:
    """The nest as Timeloop's ``mapping:`` list (module docstring)."""
    entries: list[dict[str, Any]] = []
    for level in nest.levels:
        target = TARGETS[level.name]
        keep = [DATASPACE_NAMES[d] for d in DATASPACES if d in level.keeps]
        bypass = [DATASPACE_NAMES[d] for d in DATASPACES if d not in level.keeps]
        entries.append({"target": target, "type": "datatype", "keep": keep, "bypass": bypass})
        temporal = [loop for loop in level.loops if not loop.spatial and loop.bound > 1]
        entries.append(
            {"target": target, "type": "temporal", "factors": _factors(temporal), "permutation": _permutation(temporal)}
        )
        spatial = [loop for loop in level.loops if loop.spatial and loop.bound > 1]
        if spatial:
            entries.append(
                {
                    "target": target,
                    "type": "spatial",
                    "factors": _factors(spatial),
                    "permutation": _permutation(spatial),
                    "split": len(DIMS),
                }
            )
    return {"mapping": entries}


# --- architecture ------------------------------------------------------------------------


class _Node:
    """A v0.4 tree node: a YAML mapping written with its tag (``!Container`` or ``!Component``)."""

    def __init__(self, tag: str, body: dict[str, Any]) -> None:
        self.tag, self.body = tag, body


class _TreeDumper(yaml.SafeDumper):
    """SafeDumper that writes :class:`_Node` as a tagged mapping (no Python object tags)."""


_TreeDumper.add_representer(_Node, lambda dumper, node: dumper.represent_mapping(node.tag, node.body))


def _keep(*names: str) -> dict[str, Any]:
    keep = [DATASPACE_NAMES[d] for d in names]
    bypass = [DATASPACE_NAMES[d] for d in DATASPACES if d not in names]
    return {"dataspace": {"keep": keep, "bypass": bypass}}


def arch_text(arch: Arch) -> str:
    """``arch`` as Timeloop's v0.4 architecture tree (module docstring), with a comment header."""
    t = arch.datatypes
    bits = 8
    nodes: list[_Node] = [
        _Node(
            "!Container",
            {
                "name": "system",
                "attributes": {"technology": "45nm", "global_cycle_seconds": 1.0 / (arch.frequency_mhz * 1e6)},
            },
        ),
        _Node(
            "!Component",
            {
                "name": "DRAM",
                "class": "DRAM",
                "attributes": {"type": "LPDDR4", "width": round(arch.dram.bytes_per_cycle * bits), "datawidth": bits},
            },
        ),
    ]
    if arch.l2 is not None:
        width = round(arch.l2.local_bytes_per_cycle * bits)
        nodes.append(
            _Node(
                "!Component",
                {
                    "name": "SharedL2",
                    "class": "SRAM",
                    "attributes": {
                        "depth": arch.l2.bytes * bits // width,
                        "width": width,
                        "datawidth": bits,
                        "n_banks": arch.l2.banks,
                    },
                    "constraints": _keep("W", "I", "O"),
                },
            )
        )
    nodes += [
        _Node("!Container", {"name": "gemmini"}),
        _Node(
            "!Component",
            {
                "name": "Scratchpad",
                "class": "SRAM",
                "attributes": {
                    "depth": arch.spad_rows,
                    "width": arch.dim_cols * t.input_bytes * bits,
                    "datawidth": t.input_bytes * bits,
                    "n_banks": arch.scratchpad.banks,
                    "multiple_buffering": 2,
                },
                "constraints": _keep("W", "I"),
            },
        ),
        _Node("!Container", {"name": "columns", "spatial": {"meshX": arch.dim_cols}}),
        _Node(
            "!Component",
            {
                "name": "Accumulator",
                "class": "SRAM",
                "attributes": {
                    "depth": arch.acc_rows,
                    "width": t.acc_bytes * bits,
                    "datawidth": t.acc_bytes * bits,
                    "n_banks": arch.accumulator.banks,
                    "multiple_buffering": 2,
                },
                "constraints": _keep("O"),
            },
        ),
        _Node("!Container", {"name": "rows", "spatial": {"meshX": arch.dim_rows}}),
        _Node(
            "!Component",
            {
                "name": "Registers",
                "class": "regfile",
                "attributes": {"depth": 1, "width": t.weight_bytes * bits, "datawidth": t.weight_bytes * bits},
                "constraints": _keep("W"),
            },
        ),
        _Node("!Component", {"name": "MACC", "class": "intmac", "attributes": {"datawidth": t.input_bytes * bits}}),
    ]
    header = [
        f"{arch.name} as Timeloop's v0.4 architecture tree, written by 'gemmap export timeloop'.",
        f"{arch.dim_rows}x{arch.dim_cols} weight-stationary array; scratchpad {arch.scratchpad.kib} KiB "
        f"({arch.spad_rows} rows of {arch.dim_cols} B), accumulator {arch.accumulator.kib} KiB "
        f"({arch.acc_rows} rows of {arch.dim_cols} x {t.acc_bytes} B, one column's slice per instance).",
        "Both fan-outs (columns: K of the scratchpad level; rows: C of the accumulator level) are along X,",
        "as in DOSA's Gemmini architecture. Energies come from Accelergy's plug-ins, not from gemmap's arch file.",
        "multiple_buffering 2: LoopMatmul and LoopConv double-buffer the scratchpad and accumulator (as the import assumes).",
    ]
    if arch.l2 is not None:
        header.append(
            f"SharedL2 ({arch.l2.kib} KiB): gemmap models it as a cache under the software loops; "
            "the mappings give it no directive, so Timeloop warns, sets its factors to 1 and keeps all data there."
        )
    body = yaml.dump({"architecture": {"version": 0.4, "nodes": nodes}}, Dumper=_TreeDumper, sort_keys=False)
    return "".join(f"# {line}\n" for line in header) + body
