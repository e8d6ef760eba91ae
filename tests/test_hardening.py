"""Hardening (issue 12): every bad input is one line and exit 2, a damaged cache or state file never
changes an answer or stops a run, resources are bounded, and no stray files are left behind."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

from gemmap import errors
from gemmap.arch import load_arch
from gemmap.cli import main
from gemmap.errors import GemmapError
from tests.conftest import ROOT

TINY = str(ROOT / "workloads" / "bert-tiny.yaml")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``gemmap argv`` in this process (an uncaught exception fails the test: no traceback)."""
    errors._WARNED.clear()  # each run warns afresh, as a new process would
    try:
        rc = main(list(argv))
    except SystemExit as exc:  # argparse
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(rc: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and "error" in lines[0] and len(lines[0]) < 700, err[:2000]
    for needle in needles:
        assert needle in lines[0], lines[0]


# --- spec files: numbers, nesting, booleans, kinds of file ---------------------------------------

ARCH_BAD = [
    ("5000 digits", "name: x\nscratchpad: {kib: %s}\n" % ("9" * 5000), "5000 digits"),
    ("deep list", "name: x\nenergy: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested deeper than"),
    ("deep map", "name: x\nenergy: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", "nested deeper than"),
    ("exponent 1e30", "name: x\nenergy: {sram_exponent: 1.0e+30}\n", "'energy.sram_exponent'"),
    ("softmax .inf", "name: x\nnonlinear: {cpu_cycles_per_elem: {softmax: .inf}}\n", "finite number"),
    ("dram .nan", "name: x\ndram: {pj_per_byte: .nan}\n", "finite number"),
    ("weight bytes 1e30", "name: x\ndatatypes: {weight_bytes: 1.0e+30}\n", "'datatypes.weight_bytes'"),
    ("weight bytes 10**30", f"name: x\ndatatypes: {{weight_bytes: {10**30}}}\n", "'datatypes.weight_bytes'"),
    ("rows 1025", "name: x\npe_array: {rows: 1025}\n", "less than or equal to 1024"),
    ("spad 2 GiB", "name: x\nscratchpad: {kib: 2097152}\n", "'scratchpad.kib'"),
    ("bandwidth 1e9", "name: x\ndram: {bytes_per_cycle: 1000000000.0}\n", "'dram.bytes_per_cycle'"),
    ("mac 1e7 pJ", "name: x\nenergy: {mac_pj: 10000000.0}\n", "'energy.mac_pj'"),
    ("frequency", "name: x\nfrequency_mhz: 1.0e+9\n", "'frequency_mhz'"),
    ("frequency 1 Hz", "name: x\nfrequency_mhz: 0.000001\n", "'frequency_mhz'"),
    ("bool 0", "name: x\nnonlinear: {norm_unit: 0}\n", "valid boolean"),
    ("bool string", "name: x\ndma: {write_gather: 'false'}\n", "valid boolean"),
    ("newline key", 'name: x\npe_array: {"ro\\nws": 16}\n', "ro\\nws"),
    ("name with newline", 'name: "a\\nb"\n', "'name'"),
    ("empty name", "name: ''\n", "'name'"),
]


WORKLOAD_BAD = [
    ("seq 10^9", "name: b\nmodel: bert\nseq_len: 1000000000\n", "'seq_len'"),
    ("empty name", "name: ''\nmodel: bert\n", "'name'"),
    ("layers 10^6", "name: b\nmodel: bert\nlayers: 1000000\n", "'layers'"),
    ("M 10^8", "name: t\nops:\n  - {name: mm, op: matmul, M: 100000000, K: 4, N: 4}\n", "ops[mm].M"),
    ("MACs over 2**50", "name: t\nops:\n  - {name: mm, op: matmul, M: 9000000, K: 9000000, N: 9000}\n", "2**50"),
    ("repeat float", "name: t\nops:\n  - {name: mm, op: matmul, M: 4, K: 4, N: 4, repeat: 1.0e+30}\n", "repeat"),
]


SPECS_BAD = [("arch", *a) for a in ARCH_BAD] + [("workload", *w) for w in WORKLOAD_BAD]


@pytest.mark.parametrize("role,text,needle", [a[:1] + a[2:] for a in SPECS_BAD], ids=[a[1] for a in SPECS_BAD])
def test_bad_spec_values_are_one_line(tmp_path, capsys, role, text, needle):
    f = tmp_path / "spec.yaml"
    f.write_text(text)
    args = ["--arch", str(f)] if role == "arch" else []
    rc, _, err = run(capsys, "map", TINY if role == "arch" else str(f), "--search", "heuristic", *args)
    one_line_error(rc, err, needle)


def test_a_huge_value_is_echoed_short(tmp_path, capsys):
    f = tmp_path / "a.yaml"
    f.write_text("name: x\npe_array: {rows: '" + "x" * 1_000_000 + "'}\n")
    rc, _, err = run(capsys, "map", TINY, "--search", "heuristic", "--arch", str(f))
    one_line_error(rc, err, "…")
    assert len(err) < 300


def test_merge_keys_are_accepted(tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text("name: x\nscratchpad: &s {kib: 128, banks: 2}\naccumulator: {<<: *s, kib: 64}\n")
    arch = load_arch(f)
    assert (arch.accumulator.kib, arch.accumulator.banks, arch.scratchpad.kib) == (64, 2, 128)


def _fifo(tmp_path: Path) -> Path:
    f = tmp_path / "fifo.yaml"
    os.mkfifo(f)
    return f


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "directory"])
@pytest.mark.parametrize("role", ["arch", "workload"])
def test_inputs_must_be_regular_files_and_never_hang(tmp_path, capsys, kind, role):
    path = {"fifo": lambda: str(_fifo(tmp_path)), "/dev/zero": lambda: "/dev/zero", "directory": lambda: str(tmp_path)}[
        kind
    ]()
    args = ["map", TINY, "--search", "heuristic", "--arch", path] if role == "arch" else ["map", path]
    result: list[tuple[int, str, str]] = []
    worker = threading.Thread(target=lambda: result.append(run(capsys, *args)), daemon=True)
    worker.start()
    worker.join(20)
    assert result, f"gemmap hung reading {kind}"
    rc, _, err = result[0]
    one_line_error(rc, err, "cannot read file", "not a regular file")


def test_oversized_input_is_refused(tmp_path):
    from gemmap import specio

    f = tmp_path / "w.yaml"
    f.write_text("name: b\nmodel: bert\n" + "# padding\n" * 200)
    with pytest.raises(GemmapError, match="larger than the limit of 1,000 bytes"):
        specio.read_input(f, limit=1000)


# --- flags: the same bounds on every command --------------------------------------------------

FLAGS_BAD = [
    (["map", TINY, "--spad-kib", "1e30"], "--spad-kib"),
    (["map", TINY, "--spad-kib", "9" * 5000], "too long"),
    (["map", TINY, "--acc-kib", "2000000"], "1,048,576"),
    (["map", TINY, "--time-limit", "inf"], "--time-limit"),
    (["map", TINY, "--time-limit", "nan"], "--time-limit"),
    (["map", TINY, "--search", "random", "--samples", "1000000000"], "1,000,000"),
    (["map", TINY, "--json", ""], "--json"),
    (["map", TINY, "--search", "heuristic", "--explain", ""], "--explain"),
    (["map", TINY, "--search", "heuristic", "--explain", "a\nb" * 200], "a\\nb"),
    (["map", TINY, "--objective", "x\ny" * 10_000], "--objective"),
    (["cdf", TINY, "--layers", "", "--out", "{tmp}/c"], "--layers"),
    (["cdf", TINY, "--layers", "ffn1,,ffn2", "--out", "{tmp}/c"], "--layers"),
    (["cdf", TINY, "--samples", "1e9", "--out", "{tmp}/c"], "--samples"),
    (["sweep", TINY, "--tolerance", "inf", "--out", "{tmp}/s"], "--tolerance"),
    (["sweep", TINY, "--seq-len", "1000000000", "--out", "{tmp}/s"], "--seq-len"),
    (["sweep", TINY, "--spad-kib", "64,1e30", "--out", "{tmp}/s"], "--spad-kib"),
    (["sweep", TINY, "--workers", "100000", "--out", "{tmp}/s"], "--workers"),
    (["sweep", TINY, "--out", ""], "--out"),
    (["sweep", TINY, "--out", "{tmp}/s", "--cache", "{tmp}"], "--cache"),
    (["schedule", TINY, "--seq-len", "1000000000"], "--seq-len"),
    (["schedule", TINY, "--acc-kib", "64,inf"], "--acc-kib"),
    (["deploy", TINY, "--dram-mib", "inf", "--storage-mb-per-s", "100"], "--dram-mib"),
    (["deploy", TINY, "--dram-mib", "64", "--storage-mb-per-s", "1e30"], "--storage-mb-per-s"),
    (["pipeline", TINY, "--arch", "gemmini", "--arch", "gemmini", "--dram-gb-per-s", "nan"], "--dram-gb-per-s"),
]


@pytest.mark.parametrize("argv,needle", FLAGS_BAD, ids=[" ".join(a[0][:1] + a[0][2:])[:40] for a in FLAGS_BAD])
def test_bad_flags_are_one_line_before_any_work(tmp_path, capsys, argv, needle):
    rc, _, err = run(capsys, *(a.replace("{tmp}", str(tmp_path)) for a in argv))
    one_line_error(rc, err, needle)
    assert not (tmp_path / "s").exists() and not (tmp_path / "c").exists()


def test_map_refuses_what_sweep_refuses(tmp_path, capsys):
    """A 128x128 array with an 8-row scratchpad: one check, the same verdict from map and sweep."""
    f = tmp_path / "big.yaml"
    f.write_text("name: big\npe_array: {rows: 128, cols: 128}\nscratchpad: {kib: 256}\n")
    rc, _, err = run(capsys, "map", TINY, "--arch", str(f), "--spad-kib", "1")
    one_line_error(rc, err, "too small to hold one 128x128 block")
    rc, _, err2 = run(capsys, "sweep", TINY, "--arch", str(f), "--spad-kib", "1", "--out", str(tmp_path / "s"))
    one_line_error(rc, err2, "too small to hold one 128x128 block")


def test_broken_pipe_exits_quietly(capsys, monkeypatch):
    from gemmap.cli import map as map_cli

    def broken(*a, **k):
        raise BrokenPipeError

    monkeypatch.setattr(map_cli, "print_table", broken)
    monkeypatch.setattr("gemmap.cli._quiet_stdout", lambda: None)
    rc, _, err = run(capsys, "map", TINY, "--search", "heuristic")
    assert rc == 0 and err.strip() == ""


# --- outputs: one writer, never through a symlink/FIFO/device, no stray files, deterministic ----


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_outputs_never_replace_special_files(tmp_path, capsys, kind):
    target = tmp_path / "keep.json"
    target.write_text("precious")
    out = tmp_path / "out.json"
    if kind == "symlink":
        out.symlink_to(target)
    else:
        os.mkfifo(out)
    rc, _, err = run(capsys, "map", TINY, "--search", "heuristic", "--json", str(out))
    one_line_error(rc, err, "--json", "symbolic link" if kind == "symlink" else "FIFO")
    assert target.read_text() == "precious"
    assert out.is_symlink() if kind == "symlink" else stat.S_ISFIFO(os.lstat(out).st_mode)


def test_atomic_write_failure_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    from gemmap import report

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report.os, "replace", full)
    with pytest.raises(GemmapError, match=r"cannot write .*heatmap_energy\.svg: No space left on device"):
        report.atomic_write(tmp_path / "heatmap_energy.svg", "<svg/>")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_a_stale_temp_file(tmp_path):
    from gemmap.report import atomic_write, temp_name

    path = tmp_path / "sweep.csv"
    temp_name(path).write_text("left by a kill")
    atomic_write(path, "a,b\n")
    assert path.read_text() == "a,b\n" and [p.name for p in tmp_path.iterdir()] == ["sweep.csv"]


def test_write_json_refuses_nan():
    from gemmap.report import write_json

    with pytest.raises(AssertionError):
        write_json("/nonexistent/never-written.json", {"x": [1.0, float("inf")]})


def _samples():
    from gemmap.cdf import LayerSamples

    rng = np.random.default_rng(0)
    cycles = rng.integers(100, 1000, 200)
    energy = rng.uniform(1.0, 9.0, 200)
    best = {"latency": 100.0, "energy": 1.0, "edp": 100.0}
    proven = dict.fromkeys(best, True)
    return [LayerSamples("w", ("l1",), (8, 8, 8), cycles, energy, best, proven)]


def test_svg_outputs_are_byte_identical(tmp_path):
    """figures.save, behind every plot (cdf, sweep heatmaps, schedule, validate): no date, fixed ids."""
    from gemmap.figures import new_figure, save

    for name in ("a", "b"):
        fig = new_figure(2, 2)
        fig.subplots().plot([1, 2, 3], [3, 1, 2])
        save(fig, tmp_path / name)
    svg = (tmp_path / "a.svg").read_bytes()
    assert svg == (tmp_path / "b.svg").read_bytes() and b"clip-path" in svg and b"<dc:date>" not in svg


# --- state files: samples.npz, sweep.json, sweep.csv -----------------------------------------


def _damage_npz(path: Path, how: str) -> None:
    good = path.read_bytes()
    if how == "garbage":
        path.write_bytes(b"not a zip at all" * 10)
    elif how == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif how == "pickled":
        np.savez(path.with_suffix(""), meta=np.array([{"a": 1}], dtype=object), cycles_0=np.ones(3))
    elif how == "foreign":
        np.savez(path.with_suffix(""), weights=np.ones((3, 3)))
    elif how == "bad meta":
        np.savez(path.with_suffix(""), meta=np.array(json.dumps([{"layers": 3}])), cycles_0=np.ones(3))
    elif how == "ragged":
        np.savez(path.with_suffix(""), meta=np.array(json.dumps([{}])), cycles_0=np.ones(3), energy_0=np.ones(2))


@pytest.mark.parametrize("how", ["garbage", "truncated", "pickled", "foreign", "bad meta", "ragged"])
def test_replot_of_a_damaged_samples_file_is_one_line(tmp_path, capsys, how):
    from gemmap.cdf import save_samples

    save_samples(tmp_path / "samples.npz", _samples())
    _damage_npz(tmp_path / "samples.npz", how)
    rc, _, err = run(capsys, "cdf", "--replot", str(tmp_path))
    one_line_error(rc, err, "samples.npz")
    assert not (tmp_path / "cdf.png").exists()


def _sweep(capsys, out: Path, *extra: str) -> tuple[int, str, str]:
    return run(capsys, "sweep", TINY, "--search", "heuristic", "--spad-kib", "64,128", "--out", str(out),
               "--no-plots", *extra)  # fmt: skip


@pytest.mark.parametrize(
    "damage",
    ["{not json", "[]", '{"identity": 3, "fields": []}', "", "\x00\xff" * 50],
    ids=["malformed", "list", "wrong types", "empty", "binary"],
)
def test_resume_with_a_damaged_manifest_is_one_line(tmp_path, capsys, damage):
    out = tmp_path / "s"
    assert _sweep(capsys, out, "--no-cache")[0] == 0
    (out / "sweep.json").write_bytes(damage.encode("latin-1"))
    rc, _, err = _sweep(capsys, out, "--no-cache", "--resume")
    one_line_error(rc, err, "sweep.json")


@pytest.mark.parametrize("column", ["spad_kib", "cycles", "energy_pj", "status"])
def test_resume_with_a_damaged_table_is_one_line(tmp_path, capsys, column):
    import csv

    out = tmp_path / "s"
    assert _sweep(capsys, out, "--no-cache")[0] == 0
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    rows[0][column] = {"cycles": "12x", "energy_pj": "inf", "status": "maybe"}.get(column, "x64")
    with (out / "sweep.csv").open("w") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    rc, _, err = _sweep(capsys, out, "--no-cache", "--resume")
    one_line_error(rc, err, "sweep.csv", "line 2")


def test_resume_sweeps_up_stray_temp_files(tmp_path, capsys):
    out = tmp_path / "s"
    assert _sweep(capsys, out, "--no-cache")[0] == 0
    for name in (".sweep.csv.k2j3h4.tmp", ".sweep.csv.tmp", ".heatmap_energy.svg.tmp"):
        (out / name).write_text("torn")
    assert _sweep(capsys, out, "--no-cache", "--resume")[0] == 0
    assert not list(out.glob(".*.tmp"))


# --- the persistent cache never changes an answer and never stops a run -----------------------


def _table(out: Path) -> list[dict[str, str]]:
    import csv

    rows = list(csv.DictReader((out / "sweep.csv").open()))
    for r in rows:
        del r["search_seconds"], r["wall_seconds"]
    return rows


def _corrupt(db: Path, how: str) -> None:
    if how == "garbage":
        db.write_bytes(b"garbage" * 1000)
        return
    if how == "truncated":
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])
        return
    con = sqlite3.connect(db)
    with con:
        if how == "wrong schema":
            con.execute("DROP TABLE results3")
            con.execute("CREATE TABLE results3 (key TEXT, blob BLOB)")
        elif how == "non-JSON mapping":
            con.execute("UPDATE results3 SET mapping = '{not json'")
        elif how == "swapped shapes":
            rows = con.execute("SELECT rowid, shape FROM results3 ORDER BY shape").fetchall()
            for (rid, _), (_, shape) in zip(rows, rows[1:] + rows[:1]):
                con.execute("UPDATE results3 SET shape = ? WHERE rowid = ?", (shape + ",0", rid))
            con.execute("UPDATE results3 SET shape = substr(shape, 1, length(shape) - 2)")
        elif how == "bigger tile":
            con.execute("UPDATE results3 SET mapping = replace(mapping, '\"local\": [', '\"local\": [9999')")
        elif how == "re-signed invalid tile":  # checksum recomputed: the mapping check must catch it
            _resign(con, lambda m: m.replace('"local": [', '"local": [9999'))
        elif how == "re-signed other method":
            _resign(con, None, lambda i: i.replace('"heuristic"', '"random"'))
    con.close()


def _resign(con: sqlite3.Connection, mapping=None, info=None) -> None:
    from gemmap.cache import _checksum

    rows = con.execute("SELECT rowid, key, shape, full_rows, mapping, info FROM results3").fetchall()
    for rid, key, shape, full, mp, inf in rows:
        mp, inf = (mapping or str)(mp), (info or str)(inf)
        con.execute(
            "UPDATE results3 SET mapping = ?, info = ?, checksum = ? WHERE rowid = ?",
            (mp, inf, _checksum(key, shape, full, mp, inf), rid),
        )


@pytest.mark.parametrize(
    "how",
    [
        "garbage",
        "truncated",
        "wrong schema",
        "non-JSON mapping",
        "swapped shapes",
        "bigger tile",
        "re-signed invalid tile",
        "re-signed other method",
    ],
)
def test_a_damaged_cache_never_changes_an_answer(tmp_path, capsys, how):
    db = tmp_path / "cache.sqlite"
    assert _sweep(capsys, tmp_path / "ref", "--no-cache")[0] == 0
    assert _sweep(capsys, tmp_path / "fill", "--cache", str(db))[0] == 0
    _corrupt(db, how)
    rc, _, err = _sweep(capsys, tmp_path / "run", "--cache", str(db))
    assert rc == 0, err
    assert _table(tmp_path / "run") == _table(tmp_path / "ref")
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "cache" in warnings[0], err
    rc, _, err = _sweep(capsys, tmp_path / "again", "--cache", str(db))  # rebuilt: clean from now on
    assert rc == 0 and "warning" not in err and _table(tmp_path / "again") == _table(tmp_path / "ref")


def test_a_read_only_cache_serves_and_the_run_goes_on(tmp_path, capsys, monkeypatch):
    from gemmap import cache

    db = tmp_path / "cache.sqlite"
    assert _sweep(capsys, tmp_path / "ref", "--no-cache", "--spad-kib", "64,128,256")[0] == 0
    assert _sweep(capsys, tmp_path / "fill", "--cache", str(db))[0] == 0
    real = sqlite3.connect
    monkeypatch.setattr(cache.sqlite3, "connect", lambda p, **k: real(f"file:{p}?mode=ro", uri=True, **k))
    rc, _, err = _sweep(capsys, tmp_path / "run", "--cache", str(db), "--spad-kib", "64,128,256")
    assert rc == 0, err
    assert _table(tmp_path / "run") == _table(tmp_path / "ref")
    assert sum("warning" in line for line in err.splitlines()) == 1 and "reading it only" in err


def test_an_unopenable_default_cache_is_off_with_a_warning(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "home"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    rc, _, err = _sweep(capsys, tmp_path / "run")
    assert rc == 0 and sum("warning" in line for line in err.splitlines()) == 1 and "without it" in err


# --- fuzzing ------------------------------------------------------------------------------


def test_fuzzed_inputs_are_clean(tmp_path):
    """Mutated shipped YAMLs and flags: exit 0 or 2, never a traceback, one line on exit 2, no file
    left on exit 2, strict JSON on exit 0 (tests/fuzz.py; `python -m tests.fuzz 1000` for a campaign)."""
    from tests.fuzz import cases, check

    failures = []
    for i, case in enumerate(cases(150, seed=12)):
        work = tmp_path / str(i)
        work.mkdir()
        _, problem = check(case, work)
        if problem:
            failures.append((case.how, problem))
    assert not failures, failures[:5]


@pytest.mark.parametrize(
    "command", [["map", "--search", "exhaustive"], ["map", "--search", "random"], ["cdf", "--out"]]
)
def test_searches_refuse_a_huge_grid_before_allocating(tmp_path, capsys, command):
    """169 M tile triples (2^50 MACs is not reached): map refuses before any search, the CDF
    sampler (MapSpace.sample) before it allocates."""
    f = tmp_path / "wide.yaml"
    f.write_text("name: wide\nops:\n  - {name: mm, op: matmul, M: 2000000, K: 64, N: 2000000}\n")
    extra = [str(tmp_path / "c")] if command[0] == "cdf" else []
    rc, _, err = run(capsys, command[0], str(f), *command[1:], *extra)
    one_line_error(rc, err, "169,243,215 local tile triples, over its limit of 40,000,000")


def test_a_full_disk_leaves_no_plot_half_written(tmp_path, monkeypatch):
    from gemmap import report
    from gemmap.figures import new_figure, save

    real = report.os.replace

    def full_on_svg(src, dst):
        if str(dst).endswith(".svg"):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(report.os, "replace", full_on_svg)
    fig = new_figure(1, 1)
    fig.subplots().plot([1, 2])
    with pytest.raises(GemmapError, match=r"heatmap_energy\.svg: No space left"):
        save(fig, tmp_path / "heatmap_energy")
    assert list(tmp_path.iterdir()) == []


def test_swapped_optimal_mappings_are_never_served(tmp_path, capsys):
    """The issue's case: optimal mappings swapped between shapes in the store gave other answers,
    still marked proven optimal. Each row's checksum covers the key and shape it answers."""

    def optimal(out: str, *cache: str) -> tuple[int, str, str]:
        return run(capsys, "sweep", TINY, "--spad-kib", "64,128", "--out", str(tmp_path / out), "--no-plots", *cache)

    db = tmp_path / "cache.sqlite"
    assert optimal("ref", "--no-cache")[0] == 0
    assert optimal("fill", "--cache", str(db))[0] == 0
    _corrupt(db, "swapped shapes")
    rc, _, err = optimal("run", "--cache", str(db))
    assert rc == 0 and "entries ignored" in err
    assert _table(tmp_path / "run") == _table(tmp_path / "ref")
    assert {r["proven_optimal"] for r in _table(tmp_path / "run")} == {"true"}


@pytest.mark.parametrize(
    "kind,content,needle",
    [
        ("hf", "fifo", "FIFO"),
        ("hf", '{"model_type": "gpt2", "n_embd": ' + "9" * 5000 + "}", "malformed JSON"),
        ("hf", "[" * 100_000 + "]" * 100_000, "malformed JSON"),
        ("onnx", "fifo", "FIFO"),
    ],
    ids=["hf fifo", "hf 5000 digits", "hf deep", "onnx fifo"],
)
def test_imports_read_regular_files_only(tmp_path, capsys, kind, content, needle):
    if kind == "onnx":
        pytest.importorskip("onnx")
    src = tmp_path / ("config.json" if kind == "hf" else "model.onnx")
    if content == "fifo":
        os.mkfifo(src)
    else:
        src.write_text(content)
    rc, _, err = run(capsys, "import", kind, str(src), "-o", str(tmp_path / "w.yaml"))
    one_line_error(rc, err, needle)
    assert not (tmp_path / "w.yaml").exists()


def test_a_warning_before_bad_input_leaves_one_error_line(capsys):
    rc, _, err = run(capsys, "map", TINY, "--search", "heuristic", "--spad-kib", "100000", "--explain", "nope")
    one_line_error(rc, err, "no layer 'nope'")
    rc, _, err = run(capsys, "map", TINY, "--search", "heuristic", "--spad-kib", "100000")
    assert rc == 0 and err.count("warning") == 1


@pytest.mark.parametrize("command", [["pipeline", "--arch", "gemmini", "--arch", "gemmini"],
                                     ["deploy", "--dram-mib", "100", "--storage-mb-per-s", "100"]])  # fmt: skip
def test_pipeline_and_deploy_refuse_too_many_units(tmp_path, capsys, command):
    """A 1,000-block GPT cut before every matmul: 14,000 units, refused before the O(n^2) tables."""
    f = tmp_path / "deep.yaml"
    f.write_text("name: g\nmodel: gpt\nlayers: 1000\nhidden: 768\nheads: 12\nseq_len: 64\n")
    rc, _, err = run(capsys, command[0], str(f), "--search", "heuristic", *command[1:])
    one_line_error(rc, err, "14,000 pipeline units", "over the limit of 1,500")
