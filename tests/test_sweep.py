"""``gemmap sweep``: same table in-process, with worker processes and on Dask; nothing lost when
killed; --resume; the persistent search cache; monotonicity in SRAM size; bad input."""

from __future__ import annotations

import csv
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gemmap.arch import load_arch
from gemmap.cache import SearchStore, SharedSearchCache, StoredResult, cache_key
from gemmap.cli import main
from gemmap.errors import GemmapError
from gemmap.search import SearchOptions, find_mapping
from gemmap.sweep import FIELDS, TEST_DELAY_ENV, TIMING_FIELDS, Grid, Sweep, read_rows, run_sweep
from gemmap.workload import Problem
from tests.conftest import ROOT

TINY = str(ROOT / "workloads" / "bert-tiny.yaml")
TRANSFORMER = str(ROOT / "arch" / "gemmini-transformer.yaml")
GRID = ["--spad-kib", "32,64", "--acc-kib", "16,64", "--fusion", "none,auto", "--seq-len", "64,128"]
DETERMINISTIC = [f for f in FIELDS if f not in TIMING_FIELDS]


def sweep(out: Path, *extra: str, cache: Path | None = None) -> int:
    args = ["sweep", TINY, "--arch", TRANSFORMER, *GRID, "--search", "heuristic", "--out", str(out), "--no-plots"]
    args += ["--cache", str(cache)] if cache else ["--no-cache"]
    return main([*args, *extra])


def table(out: Path) -> list[tuple[str, ...]]:
    """sweep.csv without the timing columns; asserts a well-formed file with unique points."""
    text = (out / "sweep.csv").read_text()
    assert text.endswith("\n")
    rows = list(csv.DictReader(text.splitlines()))
    keys = [tuple(r[f] for f in FIELDS[:11]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate points"
    assert all(None not in r.values() and len(r) == len(FIELDS) for r in rows), "half-written row"
    return [tuple(r[f] for f in DETERMINISTIC) for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[tuple[str, ...]]:
    out = tmp_path_factory.mktemp("ref")
    assert sweep(out) == 0
    return table(out)


def test_reference_table_shape(reference):
    assert len(reference) == 2 * 2 * 2 * 2
    row = dict(zip(DETERMINISTIC, reference[0]))
    assert (row["spad_kib"], row["acc_kib"], row["fusion"], row["seq_len"]) == ("32", "16", "none", "64")
    assert row["status"] == "ok" and int(row["cycles"]) > 0
    assert float(row["edp"]) == pytest.approx(float(row["energy_pj"]) * int(row["cycles"]))
    assert [r[DETERMINISTIC.index("fusion")] for r in reference[:4]] == ["none", "none", "auto", "auto"]


def test_workers_and_dask_give_identical_tables(tmp_path, reference):
    assert sweep(tmp_path / "w2", "--workers", "2") == 0
    assert table(tmp_path / "w2") == reference
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, threads_per_worker=2, dashboard_address=None) as cluster:
        assert sweep(tmp_path / "dask", "--scheduler", cluster.scheduler_address) == 0
    assert table(tmp_path / "dask") == reference


def test_persistent_cache_makes_second_sweep_free(tmp_path, reference):
    db = tmp_path / "cache.sqlite"
    arch = load_arch(TRANSFORMER)
    grid = Grid(spad_kib=(32, 64), acc_kib=(16, 64), fusion=("none", "auto"), seq_len=(64, 128))

    def run(out: str):
        return run_sweep(Sweep(TINY, arch, SearchOptions(method="heuristic"), grid, tmp_path / out, cache_path=db))

    first = run("a")
    assert first.stored_searches > 0 and len(SearchStore(db)) == first.stored_searches
    second = run("b")
    assert second.stored_searches == 0  # every search came from the store
    assert table(tmp_path / "a") == table(tmp_path / "b") == reference


def test_stored_result_is_rescored_exactly(transformer_arch):
    options = SearchOptions(method="heuristic")
    problem = Problem("p", 128, 256, 384)
    result = find_mapping(transformer_arch, problem, options)
    stored = StoredResult.from_json(
        (128, 256, 384),
        False,
        *(lambda s: (s.mapping_json(), s.info_json()))(StoredResult.of((128, 256, 384), False, result)),
    )
    again = stored.restore(transformer_arch, options)
    assert again.mapping == result.mapping and again.cost == result.cost and again.method == "heuristic"
    # "no mapping" answers are cached too, and raise again
    cache = SharedSearchCache(transformer_arch, options)
    cache.seed([StoredResult((8, 8, 8), True, None, error="no whole-row tile fits")])
    with pytest.raises(GemmapError, match="no whole-row tile fits"):
        cache.get(Problem("q", 8, 8, 8), full_rows=True)
    # the key covers the whole arch, not just the sizes
    faster = transformer_arch.with_overrides(stationary_overlap=not transformer_arch.pe_array.stationary_overlap)
    assert cache_key(transformer_arch, options) != cache_key(faster, options)
    assert cache_key(transformer_arch, options) != cache_key(
        transformer_arch, SearchOptions(method="heuristic", seed=1)
    )


def _interrupt(tmp_path: Path, sig: int, workers: str, reference, group: bool = False) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "gemmap.cli", "sweep", TINY, "--arch", TRANSFORMER, *GRID, "--search", "heuristic",
           "--out", str(out), "--no-plots", "--no-cache", "--workers", workers]  # fmt: skip
    env = {**os.environ, TEST_DELAY_ENV: "0.25"}
    log = tmp_path / "stderr.txt"
    with open(log, "w") as fh:  # a file, not a pipe: orphaned workers may hold it open a moment
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=fh, start_new_session=group)
    csv_path = out / "sweep.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if csv_path.exists() and csv_path.read_text().count("\n") >= 1 + 3:
            break
        time.sleep(0.02)
    if group:  # as Ctrl-C in a terminal: the driver and its workers all get the signal
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    proc.wait(timeout=60)
    err = log.read_text()
    assert proc.returncode != 0, "the sweep finished before it was interrupted"
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
        assert "continue with: gemmap sweep" in err and "--resume" in err, err  # the command that continues
    partial = read_rows(csv_path)  # a valid CSV of finished points
    assert 3 <= len(partial) < len(reference)
    assert all(r["status"] == "ok" for r in partial)
    done = table(out)
    assert set(done) <= set(reference)
    assert sweep(out, "--resume") == 0
    assert table(out) == reference
    check_layers(out)


def check_layers(out: Path) -> None:
    """sweep_layers.csv holds the layers of every finished point, once, adding up to its totals."""
    points = {tuple(r[f] for f in FIELDS[:11]): r for r in csv.DictReader((out / "sweep.csv").open())}
    by_point: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for r in csv.DictReader((out / "sweep_layers.csv").open()):
        by_point.setdefault(tuple(r[f] for f in FIELDS[:11]), []).append(r)
    assert set(by_point) == {k for k, r in points.items() if r["status"] == "ok"}
    for key, layers in by_point.items():
        assert len({x["layer"] for x in layers}) == len(layers)  # no layer twice
        assert sum(int(x["cycles"]) * int(x["repeat"]) for x in layers) == int(points[key]["cycles"])


def test_sigint_then_resume(tmp_path, reference):
    _interrupt(tmp_path, signal.SIGINT, "1", reference)


def test_ctrl_c_to_driver_and_workers_then_resume(tmp_path, reference):
    _interrupt(tmp_path, signal.SIGINT, "2", reference, group=True)


def test_sigkill_with_workers_then_resume(tmp_path, reference):
    _interrupt(tmp_path, signal.SIGKILL, "2", reference)


def test_torn_last_line_is_dropped_on_resume(tmp_path, reference):
    out = tmp_path / "t"
    assert sweep(out) == 0
    lines = (out / "sweep.csv").read_text().splitlines(keepends=True)
    (out / "sweep.csv").write_text("".join(lines[:5]) + lines[5][:17])  # a crash mid-line
    layers = (out / "sweep_layers.csv").read_text()
    (out / "sweep_layers.csv").write_text(layers[: len(layers) // 2 + 7])  # its journal torn too
    assert sweep(out, "--resume") == 0
    assert table(out) == reference
    check_layers(out)


def test_resume_refuses_a_different_sweep_and_rerun_needs_a_flag(tmp_path, capsys):
    out = tmp_path / "r"
    assert sweep(out) == 0
    assert sweep(out) == 2
    assert "--resume" in capsys.readouterr().err
    assert sweep(out, "--resume", "--objective", "latency") == 2
    assert "different workload, arch or search" in capsys.readouterr().err
    assert sweep(out, "--overwrite") == 0


def test_bert_design_space(tmp_path):
    out = tmp_path / "nas"
    args = ["sweep", TINY, "--search", "heuristic", "--out", str(out), "--no-cache", "--no-plots",
            "--layers", "1,2", "--hidden", "128,256", "--heads", "auto", "--ffn", "auto", "--seq-len", "64,128"]  # fmt: skip
    assert main(args) == 0
    rows = read_rows(out / "sweep.csv")
    assert len(rows) == 8
    for r in rows:
        assert int(r["heads"]) == int(r["hidden"]) // 64 and int(r["ffn"]) == 4 * int(r["hidden"])
    by = {(r["layers"], r["hidden"], r["seq_len"]): int(r["cycles"]) for r in rows}
    # depth only repeats the same layers
    assert by[("2", "256", "128")] == 2 * by[("1", "256", "128")]


BAD = [
    (["--spad-kib", ""], "--spad-kib: expected a comma-separated list"),
    (["--acc-kib", "64,,128"], "--acc-kib: expected a comma-separated list"),
    (["--spad-kib", "0,64"], "--spad-kib: expected a whole number ≥ 1"),
    (["--acc-kib", "sixty"], "--acc-kib: expected a whole number, got 'sixty'"),
    (["--fusion", "sometimes"], "unknown fusion policy 'sometimes'"),
    (["--workers", "0"], "--workers: expected a whole number ≥ 1"),
    (["--hidden", "200", "--heads", "3"], "--heads 3 does not divide --hidden 200"),
    (["--hidden", "200", "--heads", "auto"], "--heads auto needs hidden to be a multiple of 64"),
    (["--scheduler", "localhost:1"], "cannot reach the Dask scheduler at 'localhost:1'"),
    (["--scheduler", "nonsense"], "cannot reach the Dask scheduler at 'nonsense'"),
]


@pytest.mark.parametrize("extra,message", BAD)
def test_bad_input_one_line_exit_2(tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    start = time.monotonic()
    rc = main(["sweep", TINY, "--search", "heuristic", "--out", str(out), "--no-cache", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert time.monotonic() - start < 10
    assert not (out / "sweep.csv").exists()  # nothing written as finished


def test_bad_input_from_the_shell():
    r = subprocess.run([sys.executable, "-m", "gemmap.cli", "sweep", TINY, "--out", "x", "--acc-kib", ""],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "gemmap: error: --acc-kib: expected a comma-separated list of whole numbers, got ''"
    ]


def test_energy_trade_off_on_the_grid(tmp_path):
    """Bigger SRAMs cost more per access: somewhere on the grid a larger memory raises energy."""
    out = tmp_path / "e"
    args = ["sweep", TINY, "--spad-kib", "32,64,128", "--acc-kib", "32,64,128", "--search", "heuristic",
            "--out", str(out), "--no-cache", "--no-plots"]  # fmt: skip
    assert main(args) == 0
    rows = read_rows(out / "sweep.csv")
    worse = [
        (a, b) for a in rows for b in rows
        if int(b["spad_kib"]) >= int(a["spad_kib"]) and int(b["acc_kib"]) >= int(a["acc_kib"]) and a is not b
        and float(b["energy_pj"]) > float(a["energy_pj"])
    ]  # fmt: skip
    assert worse


EXACT = next((m for m in ("optimal", "exhaustive") if importlib.util.find_spec(f"gemmap.search.{m}")), None)


@pytest.mark.skipif(EXACT is None, reason="needs an exact search (gemmap.search.optimal or .exhaustive)")
def test_more_sram_never_slower_with_exact_search(tmp_path):
    wl = tmp_path / "tiny.yaml"
    wl.write_text(
        "name: tiny\nops:\n"
        "  - {name: a, op: matmul, M: 48, K: 64, N: 96}\n"
        "  - {name: b, op: matmul, M: 96, K: 32, N: 64, repeat: 2}\n"
    )
    out = tmp_path / "mono"
    args = ["sweep", str(wl), "--spad-kib", "1,2,4,8", "--acc-kib", "1,2,4,8", "--search", EXACT,
            "--objective", "latency", "--out", str(out), "--no-cache", "--no-plots", "--workers", "2"]  # fmt: skip
    assert main(args) == 0
    rows = [r for r in read_rows(out / "sweep.csv") if r["status"] == "ok"]
    cycles = {(int(r["spad_kib"]), int(r["acc_kib"])): int(r["cycles"]) for r in rows}
    energy = {(int(r["spad_kib"]), int(r["acc_kib"])): float(r["energy_pj"]) for r in rows}
    assert len(cycles) >= 9
    for (s, a), c in cycles.items():
        for (s2, a2), c2 in cycles.items():
            if s2 >= s and a2 >= a:
                assert c2 <= c, f"spad {s2}/acc {a2} slower than {s}/{a}"
    assert any(energy[k2] > energy[k] for k in energy for k2 in energy if k2[0] >= k[0] and k2[1] >= k[1] and k2 != k)
