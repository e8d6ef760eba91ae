"""``gemmap export timeloop``: each mapped layer as Timeloop's problem, architecture and mapping files.

For every matmul and conv of a mapped workload: the mapping as a Timeloop nest
(:mod:`gemmap.interop.timeloop_nest`), written as a ``mapping:`` YAML document
(:mod:`gemmap.interop.timeloop_write`), then **read back through gemmap's own Timeloop import**
(:func:`~gemmap.interop.timeloop.parse_yaml` and :func:`~gemmap.interop.convert.convert`, as
``gemmap evaluate`` reads a mapping) and re-costed. A layer whose re-imported cost (cycles, energy,
DRAM bytes) is not identical to the chosen one carries a note saying what the import runs instead --
DOSA's flow, which the import follows, floors matmul tiles to whole DIM blocks, runs every mapping
double-buffered and treats an L2 as a cache.

Files (names of layers made safe for file names): ``arch.yaml``, ``<layer>.problem.yaml``,
``<layer>.map.yaml`` and ``summary.csv`` (one row per layer: gemmap's cost, the Timeloop compact
mapping, and whether the round trip is exact), ready for ``timeloop-model arch.yaml
<layer>.problem.yaml <layer>.map.yaml``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gemmap.arch import Arch
from gemmap.conv import ConvMapping
from gemmap.convmodel import evaluate_of, invalid_reason_of
from gemmap.errors import GemmapError
from gemmap.interop.convert import convert
from gemmap.interop.timeloop import LoopNest, parse_yaml
from gemmap.interop.timeloop_nest import nest_of
from gemmap.interop.timeloop_write import arch_text, dump, mapping_doc, padded_dims, problem_doc
from gemmap.mapping import Mapping
from gemmap.model import Cost
from gemmap.workload import Problem

if TYPE_CHECKING:
    from gemmap.mapper import LayerResult


@dataclasses.dataclass(frozen=True)
class ExportedLayer:
    """One layer's export: gemmap's mapping and cost, the nest written, and the cost gemmap's Timeloop
    import gives the written file (``reimported``); ``notes`` say where the two differ."""

    problem: Problem
    mapping: Mapping | ConvMapping
    cost: Cost
    nest: LoopNest
    reimported: Cost | None  # None: the import's version of the mapping does not fit the arch
    notes: tuple[str, ...]

    @property
    def exact(self) -> bool:
        """The written mapping re-imports to the identical cycles, energy and DRAM bytes."""
        return self.reimported is not None and _key(self.cost) == _key(self.reimported)


def _key(c: Cost) -> tuple[int, float, int]:
    return (c.cycles, c.energy_pj, c.dram_bytes)


def _differences(arch: Arch, ours: Mapping | ConvMapping, theirs: Mapping | ConvMapping) -> list[str]:
    """What DOSA's flow (the import) changes in ``ours``, in words."""
    out = []
    if (ours.db_spad, ours.db_acc) != (theirs.db_spad, theirs.db_acc):
        out.append("double-buffered as the import always runs it")
    if isinstance(ours, Mapping) and isinstance(theirs, Mapping):
        if ours.local != theirs.local:
            out.append(
                f"tile {'x'.join(map(str, ours.local))} floored to DIM blocks {'x'.join(map(str, theirs.local))}"
            )
        if arch.l2 is not None and (ours.l2_factors, ours.l2_order) != (theirs.l2_factors, theirs.l2_order):
            out.append("the L2 as a cache under the software loops")
    return out or ["a different loop order"]


def export_layer(arch: Arch, problem: Problem, mapping: Mapping | ConvMapping, cost: Cost) -> ExportedLayer:
    """Export one mapped layer and check it against gemmap's own import of the written mapping."""
    nest = nest_of(arch, problem, mapping)
    try:
        converted = convert(arch, problem, parse_yaml(mapping_doc(nest)))
    except GemmapError as exc:  # e.g. a non-square conv, which DOSA's tiled_conv call cannot state
        return ExportedLayer(
            problem, mapping, cost, nest, None, (f"gemmap's Timeloop import refuses this file: {exc}",)
        )
    notes = list(converted.notes)
    runs = f"gemmap's Timeloop import runs this file as {converted.mapping.summary(arch)}"
    why = "; ".join(_differences(arch, mapping, converted.mapping))
    reason = invalid_reason_of(arch, problem, converted.mapping)
    reimported = None if reason is not None else evaluate_of(arch, problem, converted.mapping)
    if reimported is None:
        notes.append(f"{runs} ({why}), which cannot run on {arch.name}: {reason}")
    elif _key(cost) != _key(reimported):
        notes.append(
            f"{runs} ({why}): {reimported.cycles:,} cycles, {reimported.energy_pj:,.0f} pJ, "
            f"{reimported.dram_bytes:,} DRAM bytes vs the chosen {cost.cycles:,}, {cost.energy_pj:,.0f}, {cost.dram_bytes:,}"
        )
    return ExportedLayer(problem, mapping, cost, nest, reimported, tuple(notes))


def export_layers(arch: Arch, layers: Sequence[LayerResult]) -> tuple[ExportedLayer, ...]:
    """Every matmul and conv row of a mapped workload (rows without a mapping, i.e. non-linear ops,
    have no Timeloop einsum and are left out)."""
    out = []
    for layer in layers:
        if layer.mapping is None or layer.problem is None or layer.search is None:
            continue
        out.append(export_layer(arch, layer.problem, layer.mapping, layer.search.cost))
    return tuple(out)


def file_stem(name: str, taken: set[str]) -> str:
    """``name`` safe as a file name (``[A-Za-z0-9_.-]``), made unique against ``taken`` (updated)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".") or "layer"
    unique, i = stem, 2
    while unique.lower() in taken:
        unique, i = f"{stem}_{i}", i + 1
    taken.add(unique.lower())
    return unique


def _problem_header(layer: ExportedLayer) -> list[str]:
    p = layer.problem
    lines = [
        f"layer '{p.name}' ({p.op}, {p.repeat} instance(s)), written by 'gemmap export timeloop'.",
        "Timeloop's dims: "
        + (
            "a matmul is P = M, C = K, K = N (the rest 1)."
            if p.conv is None
            else "P output columns, Q output rows, R kernel columns, S kernel rows, K/C output/input channels, "
            f"N batch. No padding in Timeloop: the input is the window the outputs read (padding {p.conv.padding})."
        ),
    ]
    for d, (size, padded) in padded_dims(p, layer.nest).items():
        lines.append(
            f"{d} = {padded}, not {size}: the last tile is partial (Gemmini pads it); Timeloop's factors must "
            "multiply to the size exactly."
        )
    return lines


def _mapping_header(arch: Arch, layer: ExportedLayer) -> list[str]:
    c = layer.cost
    lines = [
        f"gemmap's mapping of layer '{layer.problem.name}' on {arch.name}: {layer.mapping.summary(arch)}",
        f"Timeloop compact form: {layer.nest.to_compact()}",
        f"gemmap's cost (one instance): {c.cycles:,} cycles, {c.energy_pj:,.1f} pJ, {c.dram_bytes:,} DRAM bytes",
        "Targets are the levels of arch.yaml; permutations innermost first; spatial directives target the",
        "level above the fan-out. 'gemmap evaluate --mapping THIS_FILE' reads it back.",
    ]
    lines += [f"note: {note}" for note in layer.notes]
    return lines


def summary_csv(arch: Arch, layers: Sequence[ExportedLayer], stems: Sequence[str]) -> str:
    """One row per layer: files, gemmap's cost, the re-imported cost, the compact mapping."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["layer", "op", "repeat", "problem_file", "mapping_file", "cycles", "energy_pj", "dram_bytes",
         "reimported_cycles", "reimported_energy_pj", "reimported_dram_bytes", "round_trip", "timeloop_mapping",
         "gemmap_mapping"]
    )  # fmt: skip
    for layer, stem in zip(layers, stems, strict=True):
        c, r = layer.cost, layer.reimported
        back = ("", "", "") if r is None else (r.cycles, r.energy_pj, r.dram_bytes)
        w.writerow(
            [layer.problem.name, layer.problem.op, layer.problem.repeat, f"{stem}.problem.yaml", f"{stem}.map.yaml",
             c.cycles, c.energy_pj, c.dram_bytes, *back,
             "exact" if layer.exact else "differs", layer.nest.to_compact(), layer.mapping.summary(arch)]
        )  # fmt: skip
    return buf.getvalue()


def export_files(arch: Arch, layers: Sequence[ExportedLayer]) -> dict[str, str]:
    """File name -> text of every file of the export (module docstring)."""
    files = {"arch.yaml": arch_text(arch)}
    taken = {"arch", "summary"}
    stems = []
    for layer in layers:
        stem = file_stem(layer.problem.name, taken)
        stems.append(stem)
        files[f"{stem}.problem.yaml"] = dump(problem_doc(layer.problem, layer.nest), _problem_header(layer))
        files[f"{stem}.map.yaml"] = dump(mapping_doc(layer.nest), _mapping_header(arch, layer))
    files["summary.csv"] = summary_csv(arch, layers, stems)
    return files
