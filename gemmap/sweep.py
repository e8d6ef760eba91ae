"""Parameter sweeps: the cartesian product of memory sizes, fusion policies, dataflows, array
sizes, sequence lengths and BERT hyper-parameters, each point a whole-model mapping + schedule
(:func:`gemmap.api.map_workload`), run in-process, in local processes or on a Dask cluster, and
never losing a finished point.

**Sharing work.** Points are grouped into tasks that share layer shapes (every fusion policy and
every depth of one memory config × model width × sequence length); a worker process keeps one
:class:`~gemmap.cache.SharedSearchCache` per (arch, search options) across all the tasks it runs,
so a shape is searched at most once per process. The driver owns the on-disk
:class:`~gemmap.cache.SearchStore`: it ships the stored results a task needs with the task and
stores the results the task had to search when it comes back, before submitting more tasks.

**Durability.** ``sweep.csv`` is the journal while the sweep runs: each finished point is one
line, written with a single ``os.write`` and ``fsync``-ed before the point is reported, so a
Ctrl-C or a SIGKILL leaves a valid CSV of every reported point (a torn last line, which only a
crash of the machine can leave, is dropped on ``--resume``). A CSV rather than SQLite because it
is the artefact users read and diff, and append + fsync is all the durability a point needs.
At the end the file is rewritten atomically with its rows in the point-key order
(:meth:`Point.sort_key`), so an interrupted-and-resumed sweep and an uninterrupted one write the
same table (but for the timing columns ``search_seconds`` and ``wall_seconds``).

**Columns.** The point (:data:`KEY_FIELDS`; BERT ones empty for an op-list workload, ``dataflow``
is the arch's own, e.g. ``both``, unless ``--dataflow`` restricts it), then whole-model
``cycles``, ``energy_pj``, ``edp`` (pJ·cycle), ``area_mm2`` (:meth:`Arch.area_mm2`),
``dram_bytes`` (Σ per-layer DRAM bytes × repeat), ``proven_optimal`` (every search behind the
point proven), ``status`` (``ok`` or ``error: why`` — e.g. no valid mapping at that size — which
counts as finished), ``search_seconds`` (what the searches behind the point took when they ran;
a cached result keeps its original time) and ``wall_seconds`` (what the point took this time).
"""

from __future__ import annotations

import collections
import contextlib
import csv
import dataclasses
import io
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from gemmap.arch import Arch
from gemmap.cache import SearchStore, SharedSearchCache, StoredResult, cache_key
from gemmap.errors import GemmapError, check_choice, shown
from gemmap.executors import open_executor, run_unordered
from gemmap.report import append_synced, atomic_write, remove_stale_temps, whole_lines
from gemmap.search import SearchOptions, check_workload
from gemmap.specio import build, load_yaml, read_input, read_text, shipped
from gemmap.sweep_layers import LayerJournal, layer_rows
from gemmap.workload import BertSpec, Workload, bert_workload, load_workload

FUSION_ORDER = ("none", "all", "auto")
#: the head dim ``--heads auto`` assumes (BERT's, and every variant of the NAS design space)
AUTO_HEAD_DIM = 64
#: ``--ffn auto`` is this many times the hidden size
AUTO_FFN_RATIO = 4
#: test hook only: seconds each point sleeps in the worker, to interrupt a sweep deterministically
TEST_DELAY_ENV = "GEMMAP_TEST_POINT_DELAY"

KEY_FIELDS = (
    "spad_kib",
    "acc_kib",
    "fusion",
    "seq_len",
    "dataflow",
    "pe_dim",
    "layers",
    "hidden",
    "heads",
    "ffn",
    "batch",
)
VALUE_FIELDS = ("cycles", "energy_pj", "edp", "area_mm2", "dram_bytes", "proven_optimal", "status")
TIMING_FIELDS = ("search_seconds", "wall_seconds")
FIELDS = KEY_FIELDS + VALUE_FIELDS + TIMING_FIELDS
#: points handed to a worker at once, at most (a task is also the unit of durability)
MAX_TASK_POINTS = 24
#: the largest sweep.csv read back by --resume (a row is ~150 bytes: a million points)
MAX_JOURNAL_BYTES = 256 * 1024 * 1024


# --- points --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Point:
    """One point of a sweep. BERT fields are None for a workload given as an explicit op list."""

    spad_kib: int
    acc_kib: int
    fusion: str
    dataflow: str  # ws, os, or the arch's own (e.g. both)
    pe_dim: int
    seq_len: int | None = None
    layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    ffn: int | None = None
    batch: int | None = None

    def sort_key(self) -> tuple[object, ...]:
        """The order of the final table: the CSV's key columns, left to right."""
        out: list[object] = []
        for f in KEY_FIELDS:
            v = getattr(self, f)
            out.append(FUSION_ORDER.index(v) if f == "fusion" else (-1 if v is None else v))
        return tuple(out)

    def key_row(self) -> dict[str, str]:
        return {f: "" if getattr(self, f) is None else str(getattr(self, f)) for f in KEY_FIELDS}

    @classmethod
    def from_row(cls, row: dict[str, str]) -> Point:
        def num(f: str) -> int | None:
            return int(row[f]) if row[f] else None

        return cls(
            spad_kib=int(row["spad_kib"]), acc_kib=int(row["acc_kib"]), fusion=row["fusion"],
            dataflow=row["dataflow"], pe_dim=int(row["pe_dim"]), seq_len=num("seq_len"), layers=num("layers"),
            hidden=num("hidden"), heads=num("heads"), ffn=num("ffn"), batch=num("batch"),
        )  # fmt: skip

    def shape_group(self) -> tuple[object, ...]:
        """Points with the same group share every layer shape and search (all but fusion, depth)."""
        return (self.spad_kib, self.acc_kib, self.dataflow, self.pe_dim, self.seq_len, self.hidden,
                self.heads, self.ffn, self.batch)  # fmt: skip

    def label(self) -> str:
        parts = [f"spad {self.spad_kib}K acc {self.acc_kib}K", self.fusion]
        if self.layers is not None:
            parts.append(f"L{self.layers} H{self.hidden} A{self.heads} I{self.ffn} S{self.seq_len} B{self.batch}")
        return " ".join(parts)


@dataclasses.dataclass(frozen=True)
class WorkloadSource:
    """A workload a point can be built from: BERT hyper-parameters, or a fixed op list."""

    name: str
    bert: BertSpec | None = None
    explicit: Workload | None = None

    def build(self, p: Point) -> Workload:
        if self.bert is None:
            assert self.explicit is not None
            return self.explicit
        spec = dataclasses.replace(
            self.bert, layers=p.layers, hidden=p.hidden, heads=p.heads, ffn=p.ffn, seq_len=p.seq_len, batch=p.batch
        )
        return bert_workload(spec)


def load_source(path: str | Path) -> tuple[WorkloadSource, dict[str, object]]:
    """The workload at ``path`` (or a shipped one by name) and its YAML data (for the sweep's identity)."""
    path = shipped(path, "workloads")
    data = load_yaml(path)
    if data.get("model") == "bert" or "ops" not in data:
        spec = build(BertSpec, data, str(path))
        return WorkloadSource(spec.name, bert=spec), data
    wl = load_workload(path)
    return WorkloadSource(wl.name, explicit=wl), data


Auto = str  # the literal "auto" in --heads / --ffn lists


@dataclasses.dataclass(frozen=True)
class Grid:
    """The value lists of a sweep; an empty tuple means "the arch's or workload's own value"."""

    spad_kib: tuple[int, ...] = ()
    acc_kib: tuple[int, ...] = ()
    fusion: tuple[str, ...] = ("none",)
    dataflow: tuple[str, ...] = ()
    pe_dim: tuple[int, ...] = ()
    seq_len: tuple[int, ...] = ()
    layers: tuple[int, ...] = ()
    hidden: tuple[int, ...] = ()
    heads: tuple[int | Auto, ...] = ()
    ffn: tuple[int | Auto, ...] = ()
    batch: tuple[int, ...] = ()


def _values(name: str, values: Sequence[int | str], default: int | str | None) -> list:
    if not values:
        return [default]
    for v in values:
        if isinstance(v, bool) or (isinstance(v, int) and v <= 0):
            raise GemmapError(f"--{name.replace('_', '-')}: every value must be a positive whole number, got {v}")
    ints = sorted({v for v in values if isinstance(v, int)})
    return ints + (["auto"] if "auto" in values else [])


def expand(grid: Grid, arch: Arch, source: WorkloadSource) -> tuple[Point, ...]:
    """Every point of ``grid`` in table order; invalid combinations are a GemmapError."""
    if not grid.fusion:
        raise GemmapError("--fusion: the list of fusion policies is empty")
    for f in grid.fusion:
        check_choice(f, FUSION_ORDER, "fusion policy")
    for df in grid.dataflow:
        check_choice(df, ("ws", "os"), "dataflow")
        if df not in arch.dataflows:
            raise GemmapError(f"--dataflow: {arch.name} does not support dataflow {df} ({arch.pe_array.dataflow})")
    spads = _values("spad_kib", grid.spad_kib, arch.scratchpad.kib)
    accs = _values("acc_kib", grid.acc_kib, arch.accumulator.kib)
    dims = _values("pe_dim", grid.pe_dim, arch.dim_rows)
    flows = sorted(set(grid.dataflow)) or [arch.pe_array.dataflow]
    fusions = sorted(set(grid.fusion), key=FUSION_ORDER.index)
    b = source.bert
    if b is None:
        for name in ("seq_len", "layers", "hidden", "heads", "ffn", "batch"):
            if getattr(grid, name):
                raise GemmapError(f"--{name.replace('_', '-')} applies to BERT workloads only, not {source.name}")
        mem = itertools.product(spads, accs, fusions, flows, dims)
        return tuple(sorted((Point(s, a, f, df, d) for s, a, f, df, d in mem), key=Point.sort_key))
    for name in ("heads", "ffn"):
        bad = [v for v in getattr(grid, name) if isinstance(v, str) and v != "auto"]
        if bad:
            raise GemmapError(f"--{name}: expected whole numbers or 'auto', got '{bad[0]}'")
    seqs = _values("seq_len", grid.seq_len, b.seq_len)
    layers = _values("layers", grid.layers, b.layers)
    hiddens = _values("hidden", grid.hidden, b.hidden)
    heads = _values("heads", grid.heads, b.heads)
    ffns = _values("ffn", grid.ffn, b.ffn)
    batches = _values("batch", grid.batch, b.batch)
    points = []
    seen = set()
    for s, a, f, df, d, seq, lay, h, hd, ff, bt in itertools.product(
        spads, accs, fusions, flows, dims, seqs, layers, hiddens, heads, ffns, batches
    ):
        if hd == "auto":
            if h % AUTO_HEAD_DIM:
                raise GemmapError(f"--heads auto needs hidden to be a multiple of {AUTO_HEAD_DIM}, got hidden {h}")
            hd = h // AUTO_HEAD_DIM
        ff = AUTO_FFN_RATIO * h if ff == "auto" else ff
        if h % hd:
            raise GemmapError(f"--heads {hd} does not divide --hidden {h} (head dim must be whole); try --heads auto")
        p = Point(s, a, f, df, d, seq, lay, h, hd, ff, bt)
        if p not in seen:
            seen.add(p)
            points.append(p)
    return tuple(sorted(points, key=Point.sort_key))


def point_arch(base: Arch, p: Point) -> Arch:
    """The arch of one point (the same check of its sizes as ``map --spad-kib`` makes)."""
    try:
        return base.with_overrides(spad_kib=p.spad_kib, acc_kib=p.acc_kib, pe_dim=p.pe_dim)
    except GemmapError as exc:
        raise GemmapError(f"{p.label()}: {exc}") from None


def point_options(base: SearchOptions, p: Point) -> SearchOptions:
    return dataclasses.replace(base, dataflow=p.dataflow if p.dataflow in ("ws", "os") else None)


# --- the work a worker does ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PointResult:
    """One finished point: whole-model totals, or why it could not be mapped."""

    point: Point
    status: str  # "ok", or "error: <one line>"
    area_mm2: float
    cycles: int | None = None
    energy_pj: float | None = None
    dram_bytes: int | None = None
    proven_optimal: bool | None = None
    search_seconds: float = 0.0
    wall_seconds: float = 0.0
    #: the point's layers, :data:`gemmap.sweep_layers.LAYER_FIELDS` each (none when it failed)
    layers: tuple[tuple[str, ...], ...] = ()

    def row(self) -> dict[str, str]:
        row = self.point.key_row()
        ok = self.cycles is not None and self.energy_pj is not None
        row.update(
            cycles=str(self.cycles) if ok else "",
            energy_pj=repr(self.energy_pj) if ok else "",
            edp=repr(self.energy_pj * self.cycles) if ok else "",  # type: ignore[operator]
            area_mm2=repr(round(self.area_mm2, 6)),
            dram_bytes=str(self.dram_bytes) if ok else "",
            proven_optimal="" if self.proven_optimal is None else str(self.proven_optimal).lower(),
            status=self.status,
            search_seconds=f"{self.search_seconds:.4f}",
            wall_seconds=f"{self.wall_seconds:.4f}",
        )
        return row


@dataclasses.dataclass(frozen=True)
class Task:
    """Points for one worker, with the stored search results they can reuse (by cache key)."""

    arch: Arch
    options: SearchOptions
    source: WorkloadSource
    points: tuple[Point, ...]
    seeds: tuple[tuple[str, tuple[StoredResult, ...]], ...] = ()
    test_delay: float = 0.0


@dataclasses.dataclass(frozen=True)
class TaskResult:
    results: tuple[PointResult, ...]
    fresh: tuple[tuple[str, tuple[StoredResult, ...]], ...]


#: per-process search caches, by cache key (least recently used dropped first)
_PROCESS_CACHES: collections.OrderedDict[str, SharedSearchCache] = collections.OrderedDict()
_MAX_PROCESS_CACHES = 128


def process_cache(key: str, arch: Arch, options: SearchOptions) -> SharedSearchCache:
    """This process's search cache for one (arch, options), kept across tasks."""
    cache = _PROCESS_CACHES.get(key)
    if cache is None:
        cache = _PROCESS_CACHES[key] = SharedSearchCache(arch, options)
        while len(_PROCESS_CACHES) > _MAX_PROCESS_CACHES:
            _PROCESS_CACHES.popitem(last=False)
    else:
        with contextlib.suppress(KeyError):
            _PROCESS_CACHES.move_to_end(key)
    return cache


def run_point(task: Task, p: Point, cache: SharedSearchCache, arch: Arch, options: SearchOptions) -> PointResult:
    from gemmap import api  # deferred: api pulls in rich

    start = time.perf_counter()
    if task.test_delay:
        time.sleep(task.test_delay)
    try:
        workload = task.source.build(p)
        result = api.map_workload(arch, workload, options, fusion=p.fusion, cache=cache)
    except GemmapError as exc:
        message = " ".join(str(exc).split())
        return PointResult(p, f"error: {message}", arch.area_mm2(), wall_seconds=time.perf_counter() - start)
    searches = {id(x.search): x.search for x in result.layers if x.search is not None}
    total = result.total
    return PointResult(
        point=p,
        status="ok",
        area_mm2=arch.area_mm2(),
        cycles=total.cycles,
        energy_pj=total.energy_pj,
        dram_bytes=sum(x.dram_bytes * x.repeat for x in result.layers),
        proven_optimal=all(s.proven_optimal for s in searches.values()) if searches else None,
        search_seconds=sum(s.seconds for s in searches.values()),
        wall_seconds=time.perf_counter() - start,
        layers=layer_rows(result),
    )


def run_task(task: Task) -> TaskResult:
    """Map every point of ``task`` (in a worker). Pure but for the per-process search caches.

    Returns, with the points, every search result the task used that was not in its seeds (found
    in this process's cache or searched), so the driver can store them."""
    seeds = dict(task.seeds)
    results = []
    used: dict[str, tuple[SharedSearchCache, set[tuple[tuple[int, ...], bool]]]] = {}
    for p in task.points:
        try:
            arch = point_arch(task.arch, p)
        except GemmapError as exc:
            results.append(PointResult(p, f"error: {exc}", 0.0))
            continue
        options = point_options(task.options, p)
        key = cache_key(arch, options)
        cache = process_cache(key, arch, options)
        if key not in used:
            cache.seed(seeds.get(key, ()))
            used[key] = (cache, set())
        with cache.recording() as log:
            results.append(run_point(task, p, cache, arch, options))
        used[key][1].update(log)
    fresh = []
    for key, (cache, log) in used.items():
        have = {(s.shape, s.full_rows) for s in seeds.get(key, ())}
        if log - have:
            fresh.append((key, cache.export(log - have)))
    return TaskResult(tuple(results), tuple(fresh))


def make_tasks(points: Sequence[Point], max_points: int = MAX_TASK_POINTS) -> list[tuple[Point, ...]]:
    """Group points that share shapes (see :meth:`Point.shape_group`), in table order."""
    groups: dict[tuple[object, ...], list[Point]] = {}
    for p in sorted(points, key=Point.sort_key):
        groups.setdefault(p.shape_group(), []).append(p)
    tasks = []
    for members in groups.values():
        for i in range(0, len(members), max_points):
            tasks.append(tuple(members[i : i + max_points]))
    return tasks


# --- the journal --------------------------------------------------------------------------


def _csv_line(row: dict[str, str]) -> bytes:
    buf = io.StringIO()
    csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n").writerow(row)
    return buf.getvalue().encode()


def _header() -> bytes:
    return (",".join(FIELDS) + "\n").encode()


def read_manifest(path: Path) -> dict[str, object]:
    """``sweep.json``, checked: a JSON object with an ``identity`` object and the ``fields`` list;
    anything else is one line naming the file."""
    try:
        data = json.loads(read_text(path))
    except (json.JSONDecodeError, RecursionError):
        data = None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("identity"), dict)
        or not isinstance(data.get("fields"), list)
    ):
        raise GemmapError(f"--resume: {shown(str(path))} is damaged (not a sweep manifest); use a new --out")
    if data["fields"] != list(FIELDS):
        raise GemmapError(f"--resume: {shown(str(path))} is from another gemmap version (its columns differ)")
    return data


def read_rows(path: Path, *, repair: bool = False) -> list[dict[str, str]]:
    """The finished rows of a sweep CSV; with ``repair``, a torn last line is cut off the file."""
    data = whole_lines(path, read_input(path, MAX_JOURNAL_BYTES), repair)
    name = shown(str(path))
    try:
        lines = data.decode().splitlines()
    except UnicodeDecodeError:
        raise GemmapError(f"{name}: damaged (not UTF-8 text); use a new --out") from None
    if not lines or lines[0] != ",".join(FIELDS):
        raise GemmapError(f"{name}: not a sweep table of this gemmap version (its header differs); use a new --out")
    rows = []
    for n, rec in enumerate(csv.reader(lines[1:]), start=2):
        if len(rec) != len(FIELDS):
            raise GemmapError(f"{name}: line {n} has {len(rec)} fields, expected {len(FIELDS)}")
        row = dict(zip(FIELDS, rec))
        try:
            Point.from_row(row)
            _check_values(row)
        except (ValueError, TypeError):
            raise GemmapError(f"{name}: line {n} is damaged (not a finished sweep point)") from None
        rows.append(row)
    return rows


def _check_values(row: dict[str, str]) -> None:
    """ValueError unless a row's values are what :meth:`PointResult.row` writes (numbers where the
    point is ``ok``), so a damaged line is refused on ``--resume`` rather than plotted."""
    if row["status"] != "ok":
        if not row["status"].startswith("error: "):
            raise ValueError("status")
        return
    int(row["cycles"]), int(row["dram_bytes"])
    if not all(math.isfinite(float(row[f])) for f in ("energy_pj", "edp", "area_mm2")):
        raise ValueError("non-finite")
    if row["proven_optimal"] not in ("true", "false", ""):
        raise ValueError("proven_optimal")


class Journal:
    """``sweep.csv`` opened for appending, one fsync-ed line per finished point."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.rows: dict[Point, dict[str, str]] = {}
        if resume and path.exists():
            for row in read_rows(path, repair=True):
                self.rows[Point.from_row(row)] = row
        else:
            atomic_write(path, _header().decode())
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def append(self, row: dict[str, str]) -> None:
        append_synced(self._fd, _csv_line(row), self.path)
        self.rows[Point.from_row(row)] = row

    def close(self) -> None:
        os.close(self._fd)

    def final_text(self) -> str:
        ordered = sorted(self.rows.items(), key=lambda kv: kv[0].sort_key())
        return _header().decode() + "".join(_csv_line(r).decode() for _, r in ordered)


# --- the driver ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A whole sweep request."""

    workload_path: str
    arch: Arch
    options: SearchOptions
    grid: Grid
    out_dir: Path
    workers: int = 1
    scheduler: str | None = None
    resume: bool = False
    overwrite: bool = False
    cache_path: Path | None = None  # None: no persistent cache


@dataclasses.dataclass(frozen=True)
class SweepOutcome:
    csv_path: Path
    rows: tuple[dict[str, str], ...]
    points: int
    skipped: int  # finished before (--resume)
    computed: int
    stored_searches: int  # search results newly written to the persistent cache
    seconds: float


def identity(sweep: Sweep, workload_data: dict[str, object]) -> dict[str, object]:
    """What must match for ``--resume`` to continue a sweep (the grid itself may grow)."""
    return {
        "workload": json.loads(json.dumps(workload_data, default=str)),
        "arch": json.loads(json.dumps(dataclasses.asdict(sweep.arch), default=str)),
        "search": {k: v for k, v in dataclasses.asdict(sweep.options).items() if k != "dataflow"},
    }


def _needed_shapes(source: WorkloadSource, points: Sequence[Point]) -> set[tuple[int, ...]]:
    shapes: set[tuple[int, ...]] = set()
    for p in points:
        shapes |= {q.key() for q in source.build(p).problems}
    return shapes


def run_sweep(sweep: Sweep, on_point: Callable[[PointResult, int, int], None] | None = None,
              on_start: Callable[[int, int], None] | None = None) -> SweepOutcome:  # fmt: skip
    """Run (or resume) ``sweep``; ``on_start(total, done)`` once, ``on_point(result, done, total)``
    after each point is on disk."""
    started = time.perf_counter()
    source, workload_data = load_source(sweep.workload_path)
    points = expand(sweep.grid, sweep.arch, source)
    for p in points:  # fail fast on sizes that cannot hold one block or are too large, before anything runs
        check_workload(point_arch(sweep.arch, p), source.build(p), point_options(sweep.options, p))
    out = Path(sweep.out_dir)
    csv_path, manifest_path = out / "sweep.csv", out / "sweep.json"
    ident = identity(sweep, workload_data)
    if sweep.resume and csv_path.exists():
        if not manifest_path.exists():
            raise GemmapError(f"--resume: {shown(str(out))} has a sweep.csv but no sweep.json; use a new --out")
        if read_manifest(manifest_path)["identity"] != ident:
            raise GemmapError(
                f"--resume: {shown(str(out))} holds a sweep of a different workload, arch or search; use a new --out"
            )
    elif csv_path.exists() and not sweep.overwrite:
        raise GemmapError(
            f"{shown(str(csv_path))} exists; pass --resume to continue that sweep or --overwrite to start again"
        )
    test_delay = float(os.environ.get(TEST_DELAY_ENV, "0") or 0)

    with open_executor(sweep.workers, sweep.scheduler, preload=("gemmap.sweep", "gemmap.api")) as ex:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out)  # left by a run killed inside an atomic write
        atomic_write(manifest_path, json.dumps({"identity": ident, "fields": FIELDS}, indent=1) + "\n")
        journal = Journal(csv_path, sweep.resume)
        layer_journal = LayerJournal(out / "sweep_layers.csv", KEY_FIELDS, sweep.resume)
        store = SearchStore(sweep.cache_path) if sweep.cache_path is not None else None
        try:
            done_before = set(journal.rows)
            pending = [p for p in points if p not in done_before]
            total = len(points)
            done = total - len(pending)
            if on_start:
                on_start(total, done)
            stored = 0

            def tasks() -> Iterator[Task]:
                for members in make_tasks(pending):
                    seeds: tuple[tuple[str, tuple[StoredResult, ...]], ...] = ()
                    if store is not None:
                        seen = {(point_arch(sweep.arch, p), point_options(sweep.options, p)) for p in members}
                        by_key = {cache_key(a, o): (a, o) for a, o in seen}
                        shapes = _needed_shapes(source, members)
                        seeds = tuple((k, store.results_for(*by_key[k], shapes)) for k in sorted(by_key))
                    yield Task(sweep.arch, sweep.options, source, members, seeds, test_delay)

            for res in run_unordered(ex, run_task, tasks()):
                if store is not None:
                    for key, fresh in res.fresh:
                        stored += store.store(key, fresh)
                for r in res.results:
                    layer_journal.append(r.point.key_row(), r.layers)  # before the point's own line
                    journal.append(r.row())
                    done += 1
                    if on_point:
                        on_point(r, done, total)
            atomic_write(csv_path, journal.final_text())
            rows = tuple(journal.rows[p] for p in sorted(journal.rows, key=Point.sort_key))
            atomic_write(out / "sweep_layers.csv", layer_journal.final_text(rows))
        finally:
            journal.close()
            layer_journal.close()
            if store is not None:
                store.close()
    return SweepOutcome(
        csv_path, rows, len(points), len(points) - len(pending), len(pending), stored, time.perf_counter() - started
    )
