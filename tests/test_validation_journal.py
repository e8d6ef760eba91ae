"""``gemmap calibrate`` over worker processes and across an interruption: the same fit as one
uninterrupted in-process run, the journal's format and its one-line refusals."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from gemmap.arch import load_arch
from gemmap.cli import main
from gemmap.errors import GemmapError
from gemmap.validation.calibrate import calibrate, usable_runs, with_params
from gemmap.validation.journal import PointJournal, journal_key, journal_path
from tests.test_validation_cli import (  # noqa: F401 (fake_predictor_module: a fixture)
    ROWS_16,
    data_csv,
    fake_predict,
    fake_predictor_module,
    synthetic_runs,
)

PREDICT = functools.partial(fake_predict, tiler=False)  # module level: picklable for the workers
PARAM = ["dram.bytes_per_cycle"]


@pytest.fixture(scope="module")
def runs():
    return synthetic_runs(with_params(load_arch(), PARAM, [5.5]))


@pytest.fixture(scope="module")
def reference(runs):
    return calibrate(runs, load_arch(), PREDICT, PARAM, folds=3)


def test_workers_fit_exactly_as_in_process(runs, reference):
    assert calibrate(runs, load_arch(), PREDICT, PARAM, folds=3, workers=2) == reference


class Stop(Exception):
    pass


def test_interrupted_fit_resumes_to_the_same_result_predicting_only_new_points(tmp_path, runs, reference):
    path = tmp_path / "fit.yaml.points.jsonl"
    rows = len(usable_runs(runs))
    seen = []

    def stop_after(limit):
        def tick(text):
            if len(seen) == limit:
                raise Stop
            seen.append(text)

        return tick

    journal = PointJournal.open(path, "k", rows, resume=False, overwrite=False)
    with pytest.raises(Stop):
        calibrate(runs, load_arch(), PREDICT, PARAM, folds=3, on_eval=stop_after(7), journal=journal)
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 7 and json.loads(lines[0]) == {"gemmap": "calibrate-points", "version": 1, "key": "k",
                                                             "rows": rows}  # fmt: skip
    first = json.loads(lines[1])
    assert rows == 11 and len(first["predicted"]) == rows  # row 2 has no measurement: not usable

    with pytest.raises(GemmapError, match="unfinished calibration: add --resume .* or --overwrite"):
        PointJournal.open(path, "k", rows, resume=False, overwrite=False)
    with pytest.raises(GemmapError, match="other data, arch, fields or gemmap code"):
        PointJournal.open(path, "other", rows, resume=True, overwrite=False)

    resumed = PointJournal.open(path, "k", rows, resume=True, overwrite=False)
    assert len(resumed.points) == 7
    new = []
    again = calibrate(runs, load_arch(), PREDICT, PARAM, folds=3, on_eval=new.append, journal=resumed)
    assert again == reference
    assert len(new) == reference.evaluations - 7  # the kept points are not predicted again
    assert len(resumed.points) == reference.evaluations


def test_a_torn_last_line_is_dropped_and_a_bad_one_inside_refused(tmp_path):
    path = tmp_path / "j.jsonl"
    journal = PointJournal.open(path, "k", 2, resume=False, overwrite=False)
    journal.add((1.0,), np.array([3.0, np.nan]))
    journal.add((2.0,), np.array([4.0, 5.0]))
    text = path.read_text()
    path.write_text(text[:-9])  # a crash in the middle of the last line
    kept = PointJournal.open(path, "k", 2, resume=True, overwrite=False).points
    assert list(kept) == [(1.0,)] and np.array_equal(kept[(1.0,)], [3.0, np.nan], equal_nan=True)
    path.write_text(text.replace('"point"', '"pont"', 1))
    with pytest.raises(GemmapError, match="line 2: not a calibration point"):
        PointJournal.open(path, "k", 2, resume=True, overwrite=False)
    path.write_text("not json\n")
    with pytest.raises(GemmapError, match="is not a gemmap calibration journal"):
        PointJournal.open(path, "k", 2, resume=True, overwrite=False)
    fresh = PointJournal.open(path, "k", 2, resume=False, overwrite=True)  # nothing is written before a point
    assert fresh.points == {} and path.read_text() == "not json\n"
    fresh.add((1.0,), np.array([1.0, 2.0]))
    assert path.read_text().count("\n") == 2


def test_journal_key_separates_its_parts():
    assert journal_key(["ab", "c"]) != journal_key(["a", "bc"])
    assert journal_key([b"x"]) == journal_key(["x"])


@pytest.mark.usefixtures("fake_predictor_module")
def test_calibrate_cli_keeps_points_only_until_the_fit_is_written(tmp_path, capsys):
    runs = synthetic_runs(with_params(load_arch(), PARAM, [5.5]))
    rows = [r.split(",") for r in ROWS_16]
    for fields, run in zip(rows, runs):
        fields[-1] = repr(run.measured)
    data = data_csv(tmp_path, [",".join(f) for f in rows])
    out = tmp_path / "fitted.yaml"
    args = ["calibrate", str(data), "--out", str(out), "--params", PARAM[0], "--folds", "2"]
    kept = journal_path(out)
    kept.write_text("left by an interrupted run\n")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        "fitted.yaml.points.jsonl holds the points of an unfinished calibration" in err and len(err.splitlines()) == 1
    )
    assert main([*args, "--resume"]) == 2 and "not a gemmap calibration journal" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0 and out.exists() and not kept.exists()
    assert main([*args, "--resume"]) == 0  # nothing to resume: a fresh fit
    assert main([*args, "--workers", "0"]) == 2 and "--workers" in capsys.readouterr().err
