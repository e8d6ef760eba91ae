"""The Python API a notebook user calls; the CLI is a thin layer over it.

>>> from gemmap import api
>>> arch = api.load_arch("arch/gemmini.yaml")
>>> bert = api.load_workload("workloads/bert.yaml")
>>> result = api.map_workload(arch, bert, api.SearchOptions(method="heuristic"))
>>> result.total.cycles  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from gemmap.arch import Arch, load_arch
from gemmap.errors import GemmapError, check_choice
from gemmap.mapper import LayerResult, SearchCache, WorkloadResult, map_layers
from gemmap.search import SearchOptions, SearchResult, find_mapping
from gemmap.workload import Workload, load_workload

FUSION_POLICIES = ("none", "all", "auto")

__all__ = [
    "Arch", "LayerResult", "SearchCache", "SearchOptions", "SearchResult", "Workload", "WorkloadResult",
    "find_mapping", "load_arch", "load_workload", "map_workload", "progress",
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


@contextlib.contextmanager
def progress(console: Console, total: int, what: str) -> Iterator[Callable[[str], None]]:
    """A progress bar on ``console`` (stderr); yields ``tick(label)`` to call before each step."""
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
