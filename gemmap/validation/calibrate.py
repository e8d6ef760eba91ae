"""Fit named physical parameters of an arch to a user's measured runs, with k-fold held-out error.

Only the fields in :data:`CALIBRATABLE` can be fitted, each within physical bounds; nothing else of
the arch moves. The fit minimizes the mean absolute log error ``mean |ln(predicted / measured)|``
(over- and under-prediction weigh the same, large and small layers alike) with a bounded,
derivative-free search (Powell, in log-parameter space, stopping at 1 % in the parameters and 0.1 %
in the loss) from a few starts: the defaults and seeded random points. A row the predictor cannot
predict at some parameter values counts as a factor-10 error there (:data:`FAIL_PENALTY`); rows it
cannot predict with the defaults are left out.

Held-out error: the usable rows are split into ``folds`` seeded random folds; each fold is
predicted with the parameters fitted on the others (a search started from the fit on all rows),
and the statistics are taken over all the held-out predictions together. Predictions are cached
per parameter point, so the fits reuse each other's evaluations. The cost is the number of
parameter points, each a prediction of every used row.

The defaults of the shipped arch YAMLs come from cited sources and are never fitted to
``../shared/validation`` (DESIGN §5); this is for users with their own measurements.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence

import numpy as np
import yaml

from gemmap.arch import Arch
from gemmap.errors import GemmapError, did_you_mean
from gemmap.executors import Executor, open_executor, run_unordered
from gemmap.specio import build
from gemmap.validation.data import MeasuredRun, Prediction
from gemmap.validation.journal import PointJournal
from gemmap.validation.stats import ErrorStats, error_stats

# field path in the arch -> (lowest, highest) physically meaningful value. Only quantities the sources
# leave uncertain are here; bus widths and array sizes are fixed by the RTL. pe_array.latency_cycles is
# left out: it scales with the array (2 x DIM) and one file's rows ran on several arrays.
CALIBRATABLE: dict[str, tuple[float, float]] = {
    "dram.latency_cycles": (5.0, 1000.0),  # round trip of one DMA request to memory (L2 hit .. DRAM row miss)
    "dram.bytes_per_cycle": (1.0, 64.0),  # sustained bandwidth of DRAM (of L2 misses when there is an L2)
    "dram.miss_bytes_per_cycle": (0.5, 64.0),  # of first fills that miss a memory-side cache (the slower rate wins)
    "software.matmul_tile_issue_cycles": (1.0, 2000.0),  # host cycles to issue one matmul tile
    "software.conv_tile_issue_cycles": (1.0, 5000.0),  # host cycles to issue one conv tile
}

FAIL_PENALTY = math.log(10.0)

ArchPredictor = Callable[[MeasuredRun, Arch], Prediction]


# --- parameters on an arch ---------------------------------------------------------------------


def get_param(arch: Arch, name: str) -> float | int:
    """The value of the dotted field ``name`` (e.g. 'dram.bytes_per_cycle') of ``arch``."""
    obj: object = arch
    for part in name.split("."):
        if not dataclasses.is_dataclass(obj) or part not in {f.name for f in dataclasses.fields(obj)}:
            raise GemmapError(f"the arch has no field '{name}'")
        obj = getattr(obj, part)
    if isinstance(obj, bool) or not isinstance(obj, int | float):
        raise GemmapError(f"arch field '{name}' is not a number")
    return obj


def _replace(obj: object, parts: Sequence[str], value: float | int) -> object:
    if len(parts) == 1:
        return dataclasses.replace(obj, **{parts[0]: value})  # type: ignore[type-var]
    return dataclasses.replace(obj, **{parts[0]: _replace(getattr(obj, parts[0]), parts[1:], value)})  # type: ignore[type-var]


def with_params(arch: Arch, names: Sequence[str], values: Sequence[float]) -> Arch:
    """A copy of ``arch`` with each named field set (whole-number fields rounded), validated by pydantic."""
    for name, value in zip(names, values, strict=True):
        typed = round(value) if isinstance(get_param(arch, name), int) else float(value)
        try:
            arch = _replace(arch, name.split("."), typed)  # type: ignore[assignment]
        except (ValueError, TypeError) as exc:
            raise GemmapError(f"arch field '{name}' cannot be {typed}: {str(exc).splitlines()[0]}") from None
    return arch


def resolve_params(arch: Arch, names: Sequence[str] | None) -> list[str]:
    """The parameters to fit: ``names`` (each checked against CALIBRATABLE and the arch), or every
    CALIBRATABLE field this arch has."""
    if names is None:
        found = [n for n in CALIBRATABLE if _has(arch, n)]
        if not found:
            raise GemmapError(f"the arch has none of the calibratable fields: {', '.join(CALIBRATABLE)}")
        return found
    if not names:
        raise GemmapError("--params: give at least one parameter")
    for n in names:
        if n not in CALIBRATABLE:
            raise GemmapError(
                f"cannot calibrate '{n}'{did_you_mean(n, CALIBRATABLE)}; choose from {', '.join(CALIBRATABLE)}"
            )
        get_param(arch, n)
    if len(set(names)) != len(names):
        raise GemmapError("--params: a parameter is named twice")
    return list(names)


def _has(arch: Arch, name: str) -> bool:
    try:
        get_param(arch, name)
    except GemmapError:
        return False
    return True


# --- fitting ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FittedParam:
    name: str
    default: float
    fitted: float
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class Calibration:
    params: tuple[FittedParam, ...]
    rows: int  # data rows in the file
    used: int  # rows fitted: usable, measured and predictable with the defaults
    folds: int
    seed: int
    default_error: ErrorStats  # the defaults, on the used rows
    fit_error: ErrorStats  # fitted on all used rows, evaluated on them (in-sample)
    heldout_error: ErrorStats  # each fold predicted by the fit on the other folds
    fold_values: tuple[tuple[float, ...], ...]  # the fitted values of each fold's fit
    evaluations: int  # parameter points predicted (each over all used rows)

    def to_dict(self) -> dict[str, object]:
        return {
            "params": [dataclasses.asdict(p) for p in self.params],
            "rows": self.rows,
            "used": self.used,
            "folds": self.folds,
            "seed": self.seed,
            "default_error": self.default_error.to_dict(),
            "fit_error": self.fit_error.to_dict(),
            "heldout_error": self.heldout_error.to_dict(),
            "fold_values": [list(v) for v in self.fold_values],
            "evaluations": self.evaluations,
        }


class _Evaluator:
    """Predictions of all usable rows per (rounded) parameter point, cached (and journaled, when a
    :class:`~gemmap.validation.journal.PointJournal` is given); losses and statistics are taken over
    the rows in ``view`` (indices into the usable rows: those predictable with the defaults)."""

    def __init__(self, arch: Arch, names: Sequence[str], runs: Sequence[MeasuredRun], predictor: ArchPredictor,
                 on_eval: Callable[[str], None] | None, executor: Executor,
                 journal: PointJournal | None = None) -> None:  # fmt: skip
        self.arch, self.names, self.runs, self.predictor, self.on_eval = arch, list(names), runs, predictor, on_eval
        self.executor, self.journal = executor, journal
        self.cache: dict[tuple[float, ...], np.ndarray] = dict(journal.points) if journal is not None else {}
        self.integer = [isinstance(get_param(arch, n), int) for n in names]
        self.select(np.arange(len(runs)))

    def key(self, values: Sequence[float]) -> tuple[float, ...]:
        return tuple(float(round(v)) if i else float(f"{v:.6g}") for v, i in zip(values, self.integer))

    def all_predictions(self, values: Sequence[float]) -> np.ndarray:
        """Predicted cycles per usable row at ``values`` (NaN where the predictor gives none)."""
        key = self.key(values)
        if key not in self.cache:
            if self.on_eval:
                self.on_eval(", ".join(f"{n}={v:g}" for n, v in zip(self.names, key)))
            out = _predict_all(self.executor, self.predictor, with_params(self.arch, self.names, key), self.runs)
            if self.journal is not None:
                self.journal.add(key, out)
            self.cache[key] = out
        return self.cache[key]

    def predictions(self, values: Sequence[float]) -> np.ndarray:
        """:meth:`all_predictions` of the rows in ``view``."""
        return self.all_predictions(values)[self.view]

    def loss(self, values: Sequence[float], rows: np.ndarray) -> float:
        pred = self.predictions(values)[rows]
        err = np.abs(np.log(pred / self.measured[rows]))
        return float(np.where(np.isnan(err), FAIL_PENALTY, err).mean())

    def select(self, view: np.ndarray) -> None:
        """Take losses and statistics over the usable rows ``view`` from now on."""
        self.view = view
        self.measured = np.array([self.runs[i].measured for i in view], dtype=np.float64)


def _cycles(p: Prediction) -> float:
    """A prediction's cycles, NaN when it has none (not ok, missing or not positive)."""
    return float(p.predicted) if p.status == "ok" and p.predicted is not None and p.predicted > 0 else math.nan


def _predict_chunk(task: tuple[ArchPredictor, Arch, int, Sequence[MeasuredRun]]) -> tuple[int, list[float]]:
    """(start, cycles) of the runs of one chunk on one arch (a worker task: module level, picklable)."""
    predictor, arch, start, runs = task
    return start, [_cycles(predictor(run, arch)) for run in runs]


def _predict_all(executor: Executor, predictor: ArchPredictor, arch: Arch, runs: Sequence[MeasuredRun]) -> np.ndarray:
    """Predicted cycles of every run on ``arch``, in chunks over the executor's slots (NaN: none)."""
    out = np.full(len(runs), np.nan)
    size = max(-(-len(runs) // max(executor.slots, 1)), 1)
    tasks = ((predictor, arch, start, runs[start : start + size]) for start in range(0, len(runs), size))
    for start, values in run_unordered(executor, _predict_chunk, tasks):
        out[start : start + len(values)] = values
    return out


def _fit(ev: _Evaluator, rows: np.ndarray, bounds: Sequence[tuple[float, float]], starts: np.ndarray,
         max_evals: int, xtol: float = 1e-4, ftol: float = 1e-6) -> np.ndarray:  # fmt: skip
    """The best point of a bounded Powell search in log space from each start, whole-number fields polished."""
    from scipy.optimize import minimize

    lo = np.log([b[0] for b in bounds])
    hi = np.log([b[1] for b in bounds])

    def objective(u: np.ndarray) -> float:
        return ev.loss(np.exp(np.clip(u, lo, hi)), rows)

    best_x, best = np.exp(starts[0]), math.inf
    for u0 in starts:
        x = np.exp(u0)
        for _ in range(3):  # Powell, then whole-number fields one step at a time, until neither moves
            res = minimize(objective, np.log(x), method="Powell", bounds=list(zip(lo, hi)),
                           options={"xtol": xtol, "ftol": ftol, "maxfev": max_evals})  # fmt: skip
            x = np.array(ev.key(np.exp(np.clip(res.x, lo, hi))))
            polished = _polish_integers(ev, rows, x, bounds)
            if np.array_equal(polished, x):
                break
            x = polished
        value = ev.loss(x, rows)
        if value < best - 1e-12:
            best_x, best = x, value
    return best_x


def _polish_integers(
    ev: _Evaluator, rows: np.ndarray, x: np.ndarray, bounds: Sequence[tuple[float, float]]
) -> np.ndarray:
    """Coordinate descent over the whole-number fields in steps of ±1 (the continuous search sees plateaus there)."""
    x = x.copy()
    current = ev.loss(x, rows)
    for _ in range(1000):
        moved = False
        for k, integer in enumerate(ev.integer):
            if not integer:
                continue
            for step in (1.0, -1.0):
                y = x.copy()
                y[k] = min(max(x[k] + step, math.ceil(bounds[k][0])), math.floor(bounds[k][1]))
                value = ev.loss(y, rows)
                if value < current - 1e-12:
                    x, current, moved = y, value, True
                    break
        if not moved:
            break
    return x


def usable_runs(runs: Sequence[MeasuredRun]) -> list[MeasuredRun]:
    """The runs a calibration can use: read without a problem and measured."""
    return [r for r in runs if r.status == "ok" and r.measured is not None]


def calibrate(
    runs: Sequence[MeasuredRun],
    arch: Arch,
    predictor: ArchPredictor,
    params: Sequence[str] | None = None,
    *,
    folds: int = 5,
    seed: int = 0,
    starts: int = 3,
    max_evals: int = 200,
    xtol: float = 1e-2,
    ftol: float = 1e-3,
    on_eval: Callable[[str], None] | None = None,
    workers: int = 1,
    journal: PointJournal | None = None,
) -> Calibration:
    """Fit ``params`` (dotted arch fields from CALIBRATABLE; default: all the arch has) to ``runs``.

    ``predictor(run, arch)`` predicts the cycles of one run under its mapping on ``arch``; with
    ``workers`` > 1 each parameter point's rows are predicted by that many local processes (the
    predictor must then be picklable, a module-level function, and a script must call this under
    ``if __name__ == "__main__":``, as for any process pool). ``journal`` keeps every predicted
    point (and supplies those of an interrupted run: :mod:`gemmap.validation.journal`); the result
    is the same with or without either.
    """
    names = resolve_params(arch, params)
    bounds = [CALIBRATABLE[n] for n in names]
    defaults = [float(get_param(arch, n)) for n in names]
    for n, d, (lo, hi) in zip(names, defaults, bounds):
        if not lo <= d <= hi:
            raise GemmapError(f"arch field '{n}' = {d:g} is outside its calibration bounds [{lo:g}, {hi:g}]")
    if folds < 2:
        raise GemmapError(f"--folds: need at least 2 folds, got {folds}")
    usable = usable_runs(runs)
    if journal is not None and journal.rows != len(usable):
        raise GemmapError(f"the calibration journal has {journal.rows} rows, the data {len(usable)}")
    plan = _Plan(tuple(names), tuple(bounds), tuple(defaults), folds, seed, starts, max_evals, xtol, ftol)
    with open_executor(workers, preload=("gemmap.validation.predict",)) as executor:
        return _calibrate(_Evaluator(arch, names, usable, predictor, on_eval, executor, journal), runs, plan)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What :func:`calibrate` fits and how: the fields, their bounds and defaults, the folds and the search."""

    names: tuple[str, ...]
    bounds: tuple[tuple[float, float], ...]
    defaults: tuple[float, ...]
    folds: int
    seed: int
    starts: int
    max_evals: int
    xtol: float
    ftol: float


def _calibrate(ev: _Evaluator, runs: Sequence[MeasuredRun], plan: _Plan) -> Calibration:
    """The fit on all rows, each fold's fit and the error statistics (:func:`calibrate`)."""
    names, bounds, defaults, folds = plan.names, plan.bounds, plan.defaults, plan.folds
    max_evals, xtol, ftol = plan.max_evals, plan.xtol, plan.ftol
    at_default = ev.all_predictions(defaults)
    keep = np.flatnonzero(~np.isnan(at_default))
    if len(keep) < folds:
        raise GemmapError(
            f"only {len(keep)} rows can be predicted with the defaults; {folds} folds need at least {folds}"
        )
    ev.select(keep)
    used = [ev.runs[i] for i in keep]
    rng = np.random.default_rng(plan.seed)
    lo, hi = np.log([b[0] for b in bounds]), np.log([b[1] for b in bounds])
    start_points = np.vstack(
        [np.log(defaults)[None, :], rng.uniform(lo, hi, size=(max(plan.starts - 1, 0), len(names)))]
    )
    everything = np.arange(len(used))
    fitted = _fit(ev, everything, bounds, start_points, max_evals, xtol, ftol)
    order = rng.permutation(len(used))
    heldout = np.full(len(used), np.nan)
    fold_values = []
    warm = np.log(fitted)[None, :]  # each fold's fit starts from the fit on all rows
    for test in np.array_split(order, folds):
        train = np.setdiff1d(everything, test)
        values = _fit(ev, train, bounds, warm, max_evals, xtol, ftol)
        fold_values.append(tuple(float(v) for v in values))
        heldout[test] = ev.predictions(values)[test]
    measured = [r.measured for r in used]

    def stats(pred: np.ndarray) -> ErrorStats:
        return error_stats(measured, [None if math.isnan(p) else float(p) for p in pred])

    return Calibration(
        params=tuple(FittedParam(n, d, float(f), b[0], b[1]) for n, d, f, b in zip(names, defaults, fitted, bounds)),
        rows=len(runs),
        used=len(used),
        folds=folds,
        seed=plan.seed,
        default_error=stats(ev.predictions(defaults)),
        fit_error=stats(ev.predictions(fitted)),
        heldout_error=stats(heldout),
        fold_values=tuple(fold_values),
        evaluations=len(ev.cache),
    )


# --- the fitted arch YAML ---------------------------------------------------------------------


def _value_text(value: float, integer: bool) -> str:
    return str(round(value)) if integer else f"{value:.6g}"


def fitted_yaml(base_text: str, arch: Arch, cal: Calibration, data_name: str) -> str:
    """``base_text`` (the base arch's YAML) with each fitted field set and commented; missing fields are added.

    Works on the text so the base file's comments and order stay; handles the block style of
    ``arch/*.yaml`` (one ``key: value`` per line, nested sections by indentation).
    """
    lines = base_text.splitlines()
    for p in cal.params:
        integer = isinstance(get_param(arch, p.name), int)
        value = _value_text(p.fitted, integer)
        note = f"# fitted by gemmap calibrate on {data_name} ({cal.used} rows), default was {_value_text(p.default, integer)}"
        lines = _set_field(lines, p.name.split("."), value, note)
    header = (
        f"# Calibrated by gemmap calibrate on {data_name}: {cal.used} rows, {cal.folds}-fold held-out "
        f"MAPE {_pct(cal.heldout_error.mape)} (defaults {_pct(cal.default_error.mape)}, in-sample {_pct(cal.fit_error.mape)})."
    )
    text = "\n".join([header, *lines]) + "\n"
    check = build(Arch, yaml.safe_load(text), "calibrated arch")
    for p in cal.params:
        if not math.isclose(
            float(get_param(check, p.name)), float(_value_text(p.fitted, isinstance(get_param(arch, p.name), int)))
        ):
            raise GemmapError(f"cannot write '{p.name}' into the arch YAML (only block-style YAML is edited)")
    return text


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}%"


_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w-]*):(?P<rest>.*)$")


def _split_comment(rest: str) -> tuple[str, str]:
    """(value, comment) of the text after 'key:'; a '#' after whitespace starts the comment."""
    m = re.search(r"(^|\s)#", rest)
    return (rest[: m.start()].strip(), rest[m.end() :].strip()) if m else (rest.strip(), "")


def _children(lines: list[str], start: int, end: int, indent: int) -> list[tuple[int, int, str]]:
    """(line index, indent, key) of the direct children of the block lines[start:end] whose parent is at ``indent``."""
    out: list[tuple[int, int, str]] = []
    for i in range(start, end):
        text = lines[i]
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        ind = len(text) - len(text.lstrip(" "))
        if ind <= indent:
            break
        m = _KEY.match(text)
        if m and ind == (out[0][1] if out else ind):
            out.append((i, ind, m["key"]))
    return out


def _set_field(lines: list[str], path: Sequence[str], value: str, note: str) -> list[str]:
    """``lines`` with the field at ``path`` set to ``value`` and commented with ``note`` (added if absent)."""
    start, end, indent = 0, len(lines), -1
    for depth, key in enumerate(path):
        children = _children(lines, start, end, indent)
        match = next(((i, ind) for i, ind, k in children if k == key), None)
        if match is None:  # add the key (and the sections below it) at the end of this block
            pad = children[0][1] if children else indent + 2
            new = [f"{' ' * (pad + 2 * k)}{sub}:" for k, sub in enumerate(path[depth:])]
            new[-1] += f" {value}  {note}"
            at = _block_end(lines, start, end, indent)
            return lines[:at] + new + lines[at:]
        i, ind = match
        if depth == len(path) - 1:
            old_value, old_comment = _split_comment(lines[i][ind + len(key) + 1 :])
            if not old_value:
                raise GemmapError(f"arch YAML: '{'.'.join(path)}' is a section, not a number")
            keep = f"; the default's source: {old_comment}" if old_comment else ""  # its continuation lines follow
            return lines[:i] + [f"{' ' * ind}{key}: {value}  {note}{keep}"] + lines[i + 1 :]
        start, end, indent = i + 1, _block_end(lines, i + 1, end, ind), ind
    return lines


def _block_end(lines: list[str], start: int, end: int, indent: int) -> int:
    """The index after the last line of the block that starts at ``start`` with children deeper than ``indent``."""
    last = start
    for i in range(start, end):
        text = lines[i]
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        if len(text) - len(text.lstrip(" ")) <= indent:
            break
        last = i + 1
    return last
