"""The parameter points a calibration has predicted, kept on disk so an interrupted fit resumes.

``gemmap calibrate`` predicts every used row at each parameter point its search visits (seconds a
point on a large file, hundreds of points). Each finished point is appended to a JSON-lines file next
to the output, flushed and fsync-ed, so a run stopped at any moment (Ctrl-C, a killed job) loses at
most the point in progress; ``--resume`` reads the points back and the deterministic search walks the
same path, predicting only the points it had not reached. The file's first line is a header with a
key (a hash of what the predictions depend on: the data file, the base arch, the fitted fields and
gemmap's model code); a journal of other data or code is never reused. A finished calibration removes
its journal.

Format (one JSON object a line)::

    {"gemmap": "calibrate-points", "version": 1, "key": "<sha256>", "rows": 121}
    {"point": [30.0, 7.111], "predicted": [2494912.0, null, ...]}

``predicted`` holds one value per usable row, in file order, ``null`` where the predictor gave none.
A last line cut short by a crash is ignored.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from gemmap.errors import GemmapError
from gemmap.report import shown

KIND = "calibrate-points"
VERSION = 1


def journal_path(out: Path) -> Path:
    """Where the journal of a calibration writing ``out`` lives: beside it, ``<out>.points.jsonl``."""
    return out.with_name(out.name + ".points.jsonl")


def journal_key(parts: Iterable[bytes | str]) -> str:
    """A hash of what a point's predictions depend on (each part length-prefixed, so parts cannot run together)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


class PointJournal:
    """The append-only journal of one calibration (module docstring). ``points`` holds what it had
    when opened and what was added since; :meth:`add` appends a finished point."""

    def __init__(self, path: Path, key: str, rows: int, points: dict[tuple[float, ...], np.ndarray]) -> None:
        self.path, self.key, self.rows = path, key, rows
        self.points = points

    @classmethod
    def open(cls, path: Path, key: str, rows: int, *, resume: bool, overwrite: bool) -> PointJournal:
        """The journal at ``path``: read back with ``resume``; started afresh (on its first point) with
        ``overwrite`` or when there is none. An existing one without either flag, or one of other data or
        code, is a one-line error."""
        points: dict[tuple[float, ...], np.ndarray] = {}
        if path.exists() and not overwrite:
            if not resume:
                raise GemmapError(
                    f"{shown(str(path))} holds the points of an unfinished calibration: add --resume to continue it, "
                    "or --overwrite to start again"
                )
            points = _read(path, key, rows)
        return cls(path, key, rows, points)

    def add(self, point: tuple[float, ...], predicted: np.ndarray) -> None:
        """Append one finished point (flushed and fsync-ed before returning); the first point of a fresh
        journal writes its header first, replacing any file there (nothing is written before)."""
        line = {"point": list(point), "predicted": [None if math.isnan(x) else float(x) for x in predicted]}
        fresh = not self.points
        if fresh:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w" if fresh else "a", encoding="utf-8") as f:
            if fresh:
                f.write(json.dumps({"gemmap": KIND, "version": VERSION, "key": self.key, "rows": self.rows}) + "\n")
            f.write(json.dumps(line) + "\n")
            _sync(f)
        self.points[point] = predicted

    def remove(self) -> None:
        """Delete the journal (the calibration it served is written)."""
        self.path.unlink(missing_ok=True)


def _sync(f) -> None:
    f.flush()
    os.fsync(f.fileno())


def _read(path: Path, key: str, rows: int) -> dict[tuple[float, ...], np.ndarray]:
    """The points of the journal at ``path``; a one-line error if it is not one of this calibration."""
    where = shown(str(path))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GemmapError(f"{where}: cannot read the calibration journal ({exc})") from None
    try:
        header = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("gemmap") != KIND or header.get("version") != VERSION:
        raise GemmapError(f"{where} is not a gemmap calibration journal: use --overwrite to start again")
    if header.get("key") != key or header.get("rows") != rows:
        raise GemmapError(
            f"{where} was written for other data, arch, fields or gemmap code: use --overwrite to start again"
        )
    points: dict[tuple[float, ...], np.ndarray] = {}
    for number, text in enumerate(lines[1:], start=2):
        try:
            entry = json.loads(text)
            point = tuple(float(x) for x in entry["point"])
            predicted = np.array([math.nan if x is None else float(x) for x in entry["predicted"]], dtype=np.float64)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            if number == len(lines):
                break  # a last line cut short by a crash
            raise GemmapError(
                f"{where} line {number}: not a calibration point: use --overwrite to start again"
            ) from None
        if len(predicted) != rows:
            raise GemmapError(f"{where} line {number}: {len(predicted)} predictions, expected {rows}")
        points[point] = predicted
    return points


__all__ = ["PointJournal", "journal_key", "journal_path"]
