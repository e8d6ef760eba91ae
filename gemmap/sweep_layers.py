"""``sweep_layers.csv``: the layers of every finished sweep point, beside ``sweep.csv``.

A point's row in ``sweep.csv`` holds whole-model totals; here each point's layers follow with what
they are made of (per instance, as ``gemmap map`` reports them). The file is a journal like
``sweep.csv``: a point's layer lines are appended and fsync-ed *before* its ``sweep.csv`` line, so
every finished point has its layers on disk; lines of a point that never finished (an interrupt
between the two) are dropped when the file is rewritten, in ``sweep.csv``'s order, at the end.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from gemmap.mapper import WorkloadResult
from gemmap.report import append_synced, atomic_write, whole_lines
from gemmap.specio import read_input

#: the columns after the point's key columns
LAYER_FIELDS = ("layer", "op", "repeat", "cycles", "energy_pj", "dram_bytes", "bound", "mapping")


def layer_rows(result: WorkloadResult) -> tuple[tuple[str, ...], ...]:
    """The :data:`LAYER_FIELDS` of each layer of ``result``, as text."""
    return tuple(
        (x.name, x.op, str(x.repeat), str(x.cycles), repr(x.energy_pj), str(x.dram_bytes), x.bound,
         x.mapping.summary(result.arch) if x.mapping else x.note)
        for x in result.layers
    )  # fmt: skip


#: the largest sweep_layers.csv read back by --resume (a line is ~150 bytes: millions of layers)
MAX_LAYERS_BYTES = 1024 * 1024 * 1024


class LayerJournal:
    """``sweep_layers.csv`` opened for appending; rows are grouped by their point's key columns."""

    def __init__(self, path: Path, key_fields: Sequence[str], resume: bool) -> None:
        self.path, self.key_fields = path, tuple(key_fields)
        self.fields = self.key_fields + LAYER_FIELDS
        self.rows: dict[tuple[str, ...], list[dict[str, str]]] = {}
        if resume and path.exists():
            self._read()
        else:
            atomic_write(path, self._line(dict(zip(self.fields, self.fields))))
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def _line(self, row: dict[str, str]) -> str:
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=self.fields, lineterminator="\n").writerow(row)
        return buf.getvalue()

    def _read(self) -> None:
        """Earlier lines: complete, well-formed ones only (a torn last line is cut off the file)."""
        data = whole_lines(self.path, read_input(self.path, MAX_LAYERS_BYTES), repair=True)  # never blocks on a FIFO
        lines = data.decode("utf-8", errors="replace").splitlines()
        if not lines or lines[0] != ",".join(self.fields):
            atomic_write(self.path, self._line(dict(zip(self.fields, self.fields))))  # foreign: start it again
            return
        for rec in csv.reader(lines[1:]):
            if len(rec) == len(self.fields):
                row = dict(zip(self.fields, rec))
                self.rows.setdefault(self.key(row), []).append(row)

    def key(self, row: dict[str, str]) -> tuple[str, ...]:
        return tuple(row[f] for f in self.key_fields)

    def append(self, key_row: dict[str, str], layers: Iterable[tuple[str, ...]]) -> None:
        rows = [{**key_row, **dict(zip(LAYER_FIELDS, values))} for values in layers]
        append_synced(self._fd, "".join(self._line(r) for r in rows).encode(), self.path)
        self.rows[self.key(key_row)] = rows

    def close(self) -> None:
        os.close(self._fd)

    def final_text(self, finished: Iterable[dict[str, str]]) -> str:
        """The layers of the ``finished`` points (their ``sweep.csv`` rows), in that order."""
        out = [self._line(dict(zip(self.fields, self.fields)))]
        for point in finished:
            out += [self._line(r) for r in self.rows.get(self.key(point), [])]
        return "".join(out)
