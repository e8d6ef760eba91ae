"""Search results that outlive a process: a SearchCache that can be seeded and drained, and an
on-disk SQLite store of them (used by ``gemmap sweep``).

What is stored is the *choice*, not the cost: a :class:`StoredResult` is the chosen mapping's
fields plus how the search got there (method, evaluated, seconds, proven). Loading re-scores the
mapping with :func:`gemmap.model.evaluate`, which is cheap and exact, so a stored result can never
carry a stale cost.

A result is valid for exactly one (arch, search options, shape, full-rows flag): :func:`cache_key`
hashes the *whole* arch spec (every field, not only the two sizes a sweep varies), the whole
:class:`SearchOptions` (method, objective, samples, seed, time limit, dataflow), a hash of the
search and model source (:func:`code_fingerprint`) and :data:`SCHEMA`; the shape
(:meth:`Problem.key`: (M, K, N) for a matmul, the whole conv shape for a conv) and the flag are
the row's own columns.

Where the store lives: by default ``$XDG_CACHE_HOME/gemmap/search-cache.sqlite`` (so
``~/.cache/gemmap``), not the sweep's output directory, because a result depends only on the key
above, never on which sweep asked for it: a second sweep in another directory over overlapping
points then costs nothing but lookups. SQLite because it gives atomic commits (a killed sweep
never leaves a torn entry), concurrent readers and writers across processes and sweeps (WAL and
a busy timeout), and an index for the lookups, from the standard library.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from gemmap.arch import Arch
from gemmap.conv import ConvMapping
from gemmap.convmodel import evaluate_of
from gemmap.errors import GemmapError
from gemmap.mapper import SearchCache
from gemmap.mapping import Mapping
from gemmap.search import SearchOptions, SearchResult, restrict_arch
from gemmap.workload import Problem

#: bump when what a stored result means changes (its fields, or how searches choose)
SCHEMA = 2

#: a :meth:`Problem.key`
Shape = tuple[int, ...]


#: the modules whose code decides which mapping a search picks
_SEARCH_CODE = (
    "arch.py", "workload.py", "mapping.py", "mapspace.py", "model.py", "dma.py",
    "conv.py", "convmodel.py", "convspace.py", "search",
)  # fmt: skip


@functools.cache
def code_fingerprint() -> str:
    """A hash of the source that decides a search's choice, so editing a search or the model
    (even without a version bump) never serves a result the new code would not pick."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in _SEARCH_CODE:
        p = root / name
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            if f.exists():
                h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def cache_key(arch: Arch, options: SearchOptions) -> str:
    """A stable hash of everything besides the shape that a search result depends on."""
    spec = {
        "schema": SCHEMA,
        "code": code_fingerprint(),
        "arch": dataclasses.asdict(arch),
        "options": dataclasses.asdict(options),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gemmap" / "search-cache.sqlite"


@dataclasses.dataclass(frozen=True)
class StoredResult:
    """A search result as stored: the mapping's fields and the search's info (no cost), or the
    one-line reason no mapping exists (``error``; e.g. no whole-row tile fits for fusion)."""

    shape: Shape
    full_rows: bool
    mapping: Mapping | ConvMapping | None
    method: str = ""
    objective: str = ""
    evaluated: int = 0
    seconds: float = 0.0
    proven_optimal: bool = False
    error: str = ""

    @classmethod
    def of(cls, shape: Shape, full_rows: bool, result: SearchResult | str) -> StoredResult:
        if isinstance(result, str):
            return cls(shape, full_rows, None, error=result)
        return cls(
            shape, full_rows, result.mapping, result.method, result.objective,
            result.evaluated, result.seconds, result.proven_optimal,
        )  # fmt: skip

    def mapping_json(self) -> str:
        return json.dumps(None if self.mapping is None else dataclasses.asdict(self.mapping), sort_keys=True)

    @staticmethod
    def _mapping(fields: dict[str, object] | None) -> Mapping | ConvMapping | None:
        if fields is None:
            return None
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        return ConvMapping(**fields) if "tile" in fields else Mapping(**fields)  # type: ignore[arg-type]

    def info_json(self) -> str:
        return json.dumps(
            {"method": self.method, "objective": self.objective, "evaluated": self.evaluated,
             "seconds": self.seconds, "proven_optimal": self.proven_optimal, "error": self.error}, sort_keys=True,
        )  # fmt: skip

    @classmethod
    def from_json(cls, shape: Shape, full_rows: bool, mapping: str, info: str) -> StoredResult:
        i = json.loads(info)
        return cls(
            tuple(shape), full_rows, cls._mapping(json.loads(mapping)), i["method"], i["objective"],
            int(i["evaluated"]), float(i["seconds"]), bool(i["proven_optimal"]), i.get("error", ""),
        )  # fmt: skip

    def restore(self, arch: Arch, options: SearchOptions) -> SearchResult | str:
        """The SearchResult again, its cost re-scored by the model on the arch the search saw
        (or the error message, when the search found no mapping)."""
        if self.mapping is None:
            return self.error
        seen = restrict_arch(arch, options)
        cost = evaluate_of(seen, Problem.from_key(self.shape), self.mapping)
        return SearchResult(
            self.mapping, cost, self.method, self.objective, self.evaluated, self.seconds, self.proven_optimal
        )


class SharedSearchCache(SearchCache):
    """A :class:`~gemmap.mapper.SearchCache` that can be seeded with stored results, that also
    remembers "no mapping" answers (a GemmapError is raised again from the cache), and that can
    log which results one task used (:meth:`recording`), so a sweep can store those it lacks.

    Thread-safe enough for Dask's threaded workers (logs are per thread; a lost race only
    searches a shape twice).
    """

    def __init__(self, arch: Arch, options: SearchOptions) -> None:
        super().__init__(arch, options)
        self._lock = threading.Lock()
        self._known: dict[tuple[Shape, bool], SearchResult | str] = {}
        self._local = threading.local()

    def seed(self, stored: Iterable[StoredResult]) -> None:
        for s in stored:
            key = (s.shape, s.full_rows)
            with self._lock:
                if key in self._known:
                    continue
            result = s.restore(self.arch, self.options)
            with self._lock:
                self._known.setdefault(key, result)

    @contextlib.contextmanager
    def recording(self) -> Iterator[set[tuple[Shape, bool]]]:
        """Log the (shape, full_rows) keys this thread asks for inside the block."""
        log: set[tuple[Shape, bool]] = set()
        self._local.log = log
        try:
            yield log
        finally:
            self._local.log = None

    def _lookup(self, key: tuple[Shape, bool]) -> SearchResult | None:
        with self._lock:
            hit = self._known.get(key)
        if isinstance(hit, str):
            raise GemmapError(hit)
        return hit

    def get(self, problem: Problem, full_rows: bool = False, acc_overlap: bool = False) -> SearchResult:
        if acc_overlap:  # a fused site's second candidate: searched in this process, not stored
            return super().get(problem, full_rows, acc_overlap)
        key = (problem.key(), full_rows)
        log = getattr(self._local, "log", None)
        if log is not None:
            log.add(key)
        hit = self._lookup(key)
        if hit is not None:
            return hit
        try:
            result: SearchResult | str = super().get(problem, full_rows)
        except GemmapError as exc:
            result = str(exc)
        with self._lock:
            self._known.setdefault(key, result)
        hit = self._lookup(key)
        assert hit is not None
        return hit

    def export(self, keys: Iterable[tuple[Shape, bool]]) -> tuple[StoredResult, ...]:
        """The results held for ``keys``, as StoredResults, in key order."""
        with self._lock:
            return tuple(StoredResult.of(shape, full, self._known[(shape, full)]) for shape, full in sorted(keys))

    @property
    def size(self) -> int:
        """Results held (not ``__len__``: callers test a cache with ``cache or SearchCache(...)``)."""
        return len(self._known)


class SearchStore:
    """The on-disk store (SQLite). Only the sweep's driver process opens it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60.0)
        with contextlib.suppress(sqlite3.OperationalError):  # e.g. a network FS without shared memory
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results2 (key TEXT NOT NULL, shape TEXT NOT NULL, full_rows INTEGER NOT NULL,"
            " mapping TEXT NOT NULL, info TEXT NOT NULL, PRIMARY KEY (key, shape, full_rows))"
        )
        self._db.commit()

    @staticmethod
    def _shape_text(shape: Shape) -> str:
        return ",".join(str(int(x)) for x in shape)

    def lookup(self, key: str, shapes: Iterable[Shape]) -> tuple[StoredResult, ...]:
        """Every stored result under ``key`` for any of ``shapes`` (both full-rows flags)."""
        out = []
        for shape in sorted(set(shapes)):
            rows = self._db.execute(
                "SELECT full_rows, mapping, info FROM results2 WHERE key=? AND shape=?", (key, self._shape_text(shape))
            ).fetchall()
            out += [StoredResult.from_json(shape, bool(full), mp, info) for full, mp, info in rows]
        return tuple(out)

    def store(self, key: str, results: Iterable[StoredResult]) -> int:
        """Add ``results`` under ``key`` (ones already there are kept); returns how many were new."""
        rows = [(key, self._shape_text(r.shape), int(r.full_rows), r.mapping_json(), r.info_json()) for r in results]
        if not rows:
            return 0
        before = self._db.total_changes
        with self._db:
            self._db.executemany("INSERT OR IGNORE INTO results2 VALUES (?, ?, ?, ?, ?)", rows)
        return self._db.total_changes - before

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM results2").fetchone()[0])

    def close(self) -> None:
        self._db.close()
