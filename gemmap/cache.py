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
from gemmap.convmodel import evaluate_of, invalid_reason_of
from gemmap.errors import GemmapError, shown, warn
from gemmap.mapper import SearchCache
from gemmap.mapping import Mapping
from gemmap.search import SearchOptions, SearchResult, restrict_arch
from gemmap.workload import Problem

#: bump when what a stored result means changes (its fields, or how searches choose)
SCHEMA = 3

#: a :meth:`Problem.key`
Shape = tuple[int, ...]


#: the modules whose code decides which mapping a search picks
_SEARCH_CODE = (
    "arch.py", "workload.py", "mapping.py", "mapspace.py", "model.py", "dma.py", "tagqueue.py", "warm.py",
    "conv.py", "convmodel.py", "convspace.py", "conv_ring.py", "conv_tiler.py", "convseq.py", "tileseq.py",
    "strips.py", "interop/convert.py", "search",
)  # fmt: skip


def _sources_hash(names: tuple[str, ...]) -> str:
    """A hash of the named modules and packages of gemmap (``"."``: all of it), each file with its path."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in names:
        p = root / name
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            if f.exists():
                h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


@functools.cache
def code_fingerprint() -> str:
    """A hash of the source that decides a search's choice, so editing a search or the model
    (even without a version bump) never serves a result the new code would not pick."""
    return _sources_hash(_SEARCH_CODE)


@functools.cache
def source_fingerprint() -> str:
    """A hash of all of gemmap's source: what a prediction of a measured run depends on (the model,
    the conversion of mappings and the predictor alike), for ``gemmap calibrate``'s points journal."""
    return _sources_hash((".",))


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
        """Decode a stored row; any malformed part raises (ValueError, TypeError, KeyError, ...)."""
        i = json.loads(info)
        fields = (i["method"], i["objective"], i["evaluated"], i["seconds"], i["proven_optimal"], i["error"])
        types = (str, str, int, float, bool, str)
        if not all(type(v) is t or (t is float and type(v) is int) for v, t in zip(fields, types)):
            raise TypeError("stored search info of the wrong types")
        return cls(tuple(shape), full_rows, cls._mapping(json.loads(mapping)), *fields)

    def serves(self, arch: Arch, options: SearchOptions) -> bool:
        """Whether this result may answer for its own shape under ``arch`` and ``options``: from the
        same method and objective, its mapping of the shape's kind (GEMM or conv), valid for the shape
        on the arch the search saw (tiles within the dims and the memories), whole output rows where
        ``full_rows`` asks for them, and costed without error. Anything else is never served."""
        if self.mapping is None:
            return bool(self.error) and not self.method
        try:
            problem = Problem.from_key(self.shape)
            if (self.method, self.objective) != (options.method, options.objective):
                return False
            if isinstance(self.mapping, ConvMapping) != (problem.conv is not None):
                return False
            if self.full_rows and (isinstance(self.mapping, ConvMapping) or self.mapping.local[2] != problem.N):
                return False
            if self.evaluated < 0 or not 0 <= self.seconds < float("inf"):
                return False
            seen = restrict_arch(arch, options)
            if invalid_reason_of(seen, problem, self.mapping) is not None:
                return False
            evaluate_of(seen, problem, self.mapping)
        except Exception:  # noqa: BLE001 - a cache entry that cannot even be checked is not served
            return False
        return True

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


#: the table of :data:`SCHEMA` and its columns (``checksum``: :func:`_checksum` of the others)
TABLE = "results3"
COLUMNS = ("key", "shape", "full_rows", "mapping", "info", "checksum")


def _checksum(key: str, shape: str, full_rows: int, mapping: str, info: str) -> str:
    """What a row must carry to be served: a hash of the key it answers, its shape, flag and payload,
    so a damaged, edited or swapped row is recognised and ignored."""
    return hashlib.sha256("\0".join((key, shape, str(full_rows), mapping, info)).encode()).hexdigest()


class SearchStore:
    """The on-disk store (SQLite). Only the sweep's driver process opens it.

    It never stops a run and never changes an answer: a file that is not a sound store of this
    schema is moved aside (``NAME.damaged``) once with a one-line warning and rebuilt; a read-only
    or full store keeps serving what it holds and stops storing (one warning); one that cannot be
    opened at all is off (one warning). A row whose checksum, decoding or mapping check fails
    (:meth:`StoredResult.serves`) is ignored and counted; :meth:`close` reports the count.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.ignored = 0
        self.writable = True
        self._db: sqlite3.Connection | None = None
        try:
            self._db = self._open()
        except _Damaged as exc:
            self._move_aside(str(exc))
        except (sqlite3.Error, OSError) as exc:
            self._off(f"cannot be opened ({exc})")

    def _open(self) -> sqlite3.Connection:
        if self.path.exists() and not self.path.is_file():
            raise OSError(f"it is {'a directory' if self.path.is_dir() else 'not a regular file'}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=60.0)
        try:
            with contextlib.suppress(sqlite3.OperationalError):  # e.g. a network FS without shared memory
                db.execute("PRAGMA journal_mode=WAL")
            check = db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise _Damaged("it fails SQLite's integrity check")
            columns = tuple(r[1] for r in db.execute(f"PRAGMA table_info({TABLE})"))
            if columns and columns != COLUMNS:
                raise _Damaged(f"its table {TABLE} has other columns")
            if not columns:
                try:
                    db.execute(
                        f"CREATE TABLE {TABLE} (key TEXT NOT NULL, shape TEXT NOT NULL, full_rows INTEGER NOT NULL,"
                        " mapping TEXT NOT NULL, info TEXT NOT NULL, checksum TEXT NOT NULL,"
                        " PRIMARY KEY (key, shape, full_rows))"
                    )
                    db.commit()
                except sqlite3.OperationalError as exc:
                    raise OSError(f"it is read-only or full and has no table yet ({exc})") from None
        except sqlite3.DatabaseError as exc:
            db.close()
            if isinstance(exc, sqlite3.OperationalError):
                raise
            raise _Damaged(str(exc)) from None
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self, why: str) -> None:
        aside = self.path.with_name(self.path.name + ".damaged")
        try:
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            self._db = self._open()
        except (OSError, sqlite3.Error, _Damaged) as exc:
            self._off(f"is damaged ({why}) and cannot be rebuilt ({exc})")
            return
        warn(f"search cache {shown(str(self.path))} was damaged ({why}); moved to {shown(aside.name)} and rebuilt")

    def _off(self, why: str) -> None:
        self._db = None
        self.writable = False
        warn(f"search cache {shown(str(self.path))} {shown(why)}; running without it")

    @staticmethod
    def _shape_text(shape: Shape) -> str:
        return ",".join(str(int(x)) for x in shape)

    def lookup(self, key: str, shapes: Iterable[Shape]) -> tuple[StoredResult, ...]:
        """Every stored result under ``key`` for any of ``shapes`` (both full-rows flags) whose
        checksum holds and that decodes; others are counted in :attr:`ignored`."""
        if self._db is None:
            return ()
        out = []
        try:
            for shape in sorted(set(shapes)):
                text = self._shape_text(shape)
                rows = self._db.execute(
                    f"SELECT full_rows, mapping, info, checksum FROM {TABLE} WHERE key=? AND shape=?", (key, text)
                ).fetchall()
                for full, mp, info, check in rows:
                    try:
                        if check != _checksum(key, text, full, mp, info) or full not in (0, 1):
                            raise ValueError("checksum")
                        out.append(StoredResult.from_json(shape, bool(full), mp, info))
                    except Exception:  # noqa: BLE001 - an undecodable entry is ignored, never served
                        self.ignored += 1
        except sqlite3.Error as exc:
            self._off(f"failed while reading ({exc})")
            return ()
        return tuple(out)

    def results_for(self, arch: Arch, options: SearchOptions, shapes: Iterable[Shape]) -> tuple[StoredResult, ...]:
        """The stored results for ``shapes`` that may serve ``arch`` and ``options``
        (:meth:`StoredResult.serves`); the rest are counted in :attr:`ignored`."""
        found = self.lookup(cache_key(arch, options), shapes)
        good = tuple(r for r in found if r.serves(arch, options))
        self.ignored += len(found) - len(good)
        return good

    def store(self, key: str, results: Iterable[StoredResult]) -> int:
        """Add ``results`` under ``key``, replacing a row of the same shape and flag (one that was
        ignored as damaged: a sound one is served, so never searched and stored again); returns how
        many were written. A read-only or full store stops storing with one warning; the run goes on."""
        rows = []
        for r in results:
            shape, full, mp, info = self._shape_text(r.shape), int(r.full_rows), r.mapping_json(), r.info_json()
            rows.append((key, shape, full, mp, info, _checksum(key, shape, full, mp, info)))
        if not rows or self._db is None or not self.writable:
            return 0
        before = self._db.total_changes
        try:
            with self._db:
                self._db.executemany(f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            self.writable = False
            warn(f"search cache {shown(str(self.path))}: cannot store new results ({exc}); reading it only")
            return 0
        return self._db.total_changes - before

    def __len__(self) -> int:
        if self._db is None:
            return 0
        return int(self._db.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])

    def close(self) -> None:
        if self.ignored:
            warn(
                f"search cache {shown(str(self.path))}: {self.ignored} damaged or foreign entries ignored "
                "(searched again)"
            )
        if self._db is not None:
            self._db.close()
            self._db = None


class _Damaged(Exception):
    """The store file is not a sound store of this schema (moved aside and rebuilt)."""
