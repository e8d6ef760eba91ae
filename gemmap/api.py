"""The Python API a notebook user calls; the CLI is a thin layer over it.

>>> from gemmap import api
>>> arch = api.load_arch("arch/gemmini.yaml")
>>> bert = api.load_workload("workloads/bert.yaml")
>>> result = api.map_workload(arch, bert, api.SearchOptions(method="heuristic"))
>>> result.total.cycles  # doctest: +SKIP

One given mapping (a Timeloop compact string, a Timeloop mapping YAML path, or a LoopNest):

>>> layer = api.layer_from_spec("matmul M=128 K=768 N=768")
>>> ev = api.evaluate_mapping(arch, layer, "L3[WIO] K12 - L2[WI] N1 K16X - L1[O] K4 C48 P4 C16X - L0[W] P32")
>>> ev.mapping.local, ev.cost.cycles  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from gemmap import conv
from gemmap.arch import Arch, load_arch
from gemmap.conv import ConvMapping, conv_shape
from gemmap.conv_ring import ring_note
from gemmap.convmodel import compulsory_by_tensor, evaluate_of, invalid_reason_of
from gemmap.deploy import DeployResult, deploy
from gemmap.errors import GemmapError, check_choice
from gemmap.interop.convert import convert, parse_layer_spec, timeloop_layer
from gemmap.interop.gemmini_calls import ConvCall, MatmulCall
from gemmap.interop.timeloop import LoopNest, load_mapping
from gemmap.mapper import LayerResult, SearchCache, WorkloadResult, map_layers
from gemmap.mapping import Mapping
from gemmap.model import Cost
from gemmap.pipeline import PipelineResult, pipeline
from gemmap.search import SearchOptions, SearchResult, find_mapping
from gemmap.workload import Problem, Workload, load_workload

FUSION_POLICIES = ("none", "all", "auto")

__all__ = [
    "Arch", "EvaluatedMapping", "LayerResult", "LoopNest", "Problem", "SearchCache", "SearchOptions", "SearchResult",
    "Workload", "WorkloadResult", "evaluate_mapping", "find_mapping", "layer_from_spec", "load_arch", "load_mapping",
    "load_workload", "map_workload", "pipeline", "PipelineResult", "deploy", "DeployResult", "progress",
]  # fmt: skip


def map_workload(
    arch: Arch,
    workload: Workload,
    options: SearchOptions,
    *,
    fusion: str = "none",
    on_layer: Callable[[str], None] | None = None,
    cache: SearchCache | None = None,
) -> WorkloadResult:
    """Map every layer of ``workload``; with the scheduler, non-linear ops and fusion too.

    ``cache`` shares search results between calls (layers of the same shape, sweep points).
    """
    check_choice(fusion, FUSION_POLICIES, "fusion policy")
    try:
        from gemmap.schedule import schedule_workload
    except ImportError:
        if fusion != "none":
            raise GemmapError(f"fusion policy '{fusion}' needs the scheduler, which is not available yet") from None
        layers = map_layers(arch, workload, options, on_layer=on_layer, cache=cache)
        return WorkloadResult(arch, workload.name, options.objective, fusion, layers)
    return schedule_workload(
        arch, workload, options, policy=fusion, on_layer=on_layer, cache=cache
    ).as_workload_result()


#: on a console that is not a terminal (a pipe, a log file), a progress line at most this often (s)
PLAIN_PROGRESS_SECONDS = 10.0


def due_every(seconds: float) -> Callable[[], float | None]:
    """A clock for plain progress lines: each call answers the seconds since it was made when
    ``seconds`` have passed since it last answered so, else None."""
    start = last = time.monotonic()

    def due() -> float | None:
        nonlocal last
        now = time.monotonic()
        if now - last < seconds:
            return None
        last = now
        return now - start

    return due


@contextlib.contextmanager
def _plain_progress(console: Console, total: int, what: str) -> Iterator[Callable[[str], None]]:
    """Progress for a piped or logged run: a line on ``console`` at most every
    ``PLAIN_PROGRESS_SECONDS``, so a long run is never silent."""
    due, done = due_every(PLAIN_PROGRESS_SECONDS), itertools.count()

    def tick(label: str) -> None:
        n, elapsed = next(done), due()
        if elapsed is not None:
            console.print(f"gemmap: {what}: {n}/{total} done, now {label} ({elapsed:.0f} s)", highlight=False)

    yield tick


@contextlib.contextmanager
def progress(console: Console, total: int, what: str) -> Iterator[Callable[[str], None]]:
    """A progress bar on ``console`` (stderr); yields ``tick(label)`` to call before each step. Not
    on a terminal, a plain line every ``PLAIN_PROGRESS_SECONDS`` instead."""
    if not console.is_terminal:
        with _plain_progress(console, total, what) as tick:
            yield tick
        return
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    )  # fmt: skip
    with bar:
        task = bar.add_task(what, total=total)
        started = [False]

        def tick(label: str) -> None:
            if started[0]:
                bar.advance(task)
            started[0] = True
            bar.update(task, description=f"{what}: {label}")

        yield tick
        bar.update(task, completed=total)


# --- one given mapping -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EvaluatedMapping:
    """One Timeloop mapping as Gemmini runs it, and its cost (``gemmap evaluate``).

    ``nest`` is the mapping as given; ``mapping`` the gemmap mapping it converts to (a
    :class:`~gemmap.mapping.Mapping` for a matmul, a :class:`~gemmap.conv.ConvMapping` for a conv);
    ``call`` the ``tiled_matmul``/``tiled_conv`` arguments; ``notes`` what the conversion dropped or
    rounded (:mod:`gemmap.interop.convert`); ``cost`` the model's full breakdown.
    """

    arch: Arch
    problem: Problem
    nest: LoopNest
    mapping: Mapping | ConvMapping
    call: MatmulCall | ConvCall
    notes: tuple[str, ...]
    cost: Cost

    @property
    def dram_compulsory_by_tensor(self) -> dict[str, int]:
        """DRAM bytes each tensor (A inputs, B weights, C outputs) must move at least once."""
        return compulsory_by_tensor(self.arch, self.problem)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: arch, layer, the mapping as given and as run, the call, the cost breakdown."""
        c = self.cost
        p = self.problem
        dims = p.dims if p.conv is None else dict(p.einsum_dims) or dict(zip(conv.DIMS, p.conv.dims))
        call = {"function": "tiled_matmul" if isinstance(self.call, MatmulCall) else "tiled_conv"}
        call.update(dataclasses.asdict(self.call))
        return {
            "arch": self.arch.summary(),
            "layer": {"name": p.name, "op": p.op, "dims": dims, "timeloop_dims": timeloop_layer(p)},
            "timeloop_mapping": self.nest.to_compact(),
            "gemmini_call": call,
            "mapping": {"summary": self.mapping.summary(self.arch), **self.mapping.to_dict(self.arch, p)},
            "loop_nest": self.mapping.loop_nest(self.arch, p),
            "notes": list(self.notes),
            "cost": {
                **c.to_dict(),
                "cycles_breakdown": {
                    "compute": c.compute_cycles,
                    "exposed_transfer": c.exposed_transfer_cycles,
                    "local_transfer": c.local_transfer_cycles,
                    "tile_sequence_floor": c.sequence_cycles,
                    "dram_floor": c.dram_cycles,
                    "strip_memory_cycles": c.strip_cycles,
                    "ideal": c.ideal_cycles,
                },
                "dram_compulsory_by_tensor": self.dram_compulsory_by_tensor,
                "strip_bytes": c.strip_bytes,
            },
        }


def layer_from_spec(text: str) -> Problem:
    """A layer from an inline spec, e.g. ``"matmul M=128 K=768 N=768"`` or ``"conv C=64 K=64 P=56 Q=56
    R=3 S=3 stride=1 padding=1"`` (names as in a workload file; strict, one-line errors)."""
    return parse_layer_spec(text)


def evaluate_mapping(arch: Arch, problem: Problem, mapping: str | Path | LoopNest) -> EvaluatedMapping:
    """Cost one given mapping of ``problem`` on ``arch``: a Timeloop compact string, a Timeloop mapping
    YAML path (``.yaml``/``.yml``) or a parsed :class:`LoopNest`, converted as DOSA's flow hands it to
    Gemmini (:mod:`gemmap.interop.convert`). A GemmapError (one line) when it cannot run."""
    nest = mapping if isinstance(mapping, LoopNest) else load_mapping(mapping)
    converted = convert(arch, problem, nest)
    m = converted.mapping
    reason = invalid_reason_of(arch, problem, m)
    if reason is not None:
        raise GemmapError(f"mapping {m.summary(arch)} cannot run on {arch.name}: {reason}")
    notes = converted.notes
    if isinstance(m, ConvMapping):
        ring = ring_note(arch, conv_shape(problem, arch), m.tile)
        notes = notes + ((ring,) if ring is not None else ())
    return EvaluatedMapping(arch, problem, nest, m, converted.call, notes, evaluate_of(arch, problem, m))
