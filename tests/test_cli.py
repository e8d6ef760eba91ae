"""The command line end to end, and bad input: one line on stderr, exit 2, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def gemmap(*args: str, cwd=ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, output piped (so tables fit 100 columns unless ``COLUMNS`` says)."""
    base = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run(
        [sys.executable, "-m", "gemmap.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**base, **(env or {})},
    )  # fmt: skip


def test_map_bert_heuristic_json(tmp_path):
    out = tmp_path / "bert.json"
    r = gemmap(
        "map", "workloads/bert.yaml", "--search", "heuristic", "--json", str(out), "--csv", str(tmp_path / "b.csv")
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["arch"]["pe_rows"] == 16 and data["arch"]["spad_kib"] == 256 and data["arch"]["acc_kib"] == 64
    assert data["workload"]["name"] == "bert-base"
    layers = {x["name"]: x for x in data["layers"]}
    assert {"q_proj", "k_proj", "v_proj", "attn_qk", "attn_av", "out_proj", "ffn1", "ffn2"} <= set(layers)
    ffn1 = layers["ffn1"]
    assert ffn1["dims"] == {"M": 512, "K": 768, "N": 3072} and ffn1["repeat"] == 12
    assert ffn1["macs"] == 512 * 768 * 3072
    assert layers["attn_qk"]["dims"] == {"M": 512, "K": 64, "N": 512} and layers["attn_qk"]["repeat"] == 144
    for x in data["layers"]:
        assert x["cycles"] >= x["macs"] / 256 if x["macs"] else True
        assert x["dram_bytes"] >= x["dram_bytes_lower_bound"] >= 0
        assert x["edp"] == pytest.approx(x["energy_pj"] * x["cycles"])
        assert (0 < x["utilization"] <= 1) if x["macs"] else x["utilization"] is None
        assert not x["macs"] or x["search"]["method"] == "heuristic"  # non-linear ops: no search
    total = data["total"]
    assert total["cycles"] == sum(x["cycles"] * x["repeat"] for x in data["layers"])
    assert total["energy_pj"] == pytest.approx(sum(x["energy_pj"] * x["repeat"] for x in data["layers"]))
    # Gemmini's tiler on the default config: tile_I = 5, tile_J = 5, tile_K = 48 blocks for ffn1
    assert ffn1["mapping"]["local_tile"] == {"M": 80, "K": 768, "N": 80}
    assert (tmp_path / "b.csv").read_text().startswith("name,op,M,K,N")


def test_map_explain_prints_loop_nest():
    r = gemmap("map", "workloads/bert-tiny.yaml", "--search", "heuristic", "--explain", "ffn1")
    assert r.returncode == 0, r.stderr
    assert "spatial_for ks in [0:16)" in r.stdout and "== ffn1" in r.stdout
    # bert-tiny ffn1 is 128x128x512 (8x8x32 blocks). WS is double-buffered: 512 accumulator rows,
    # start I = J = isqrt(512/16) = 5, K = min(8, (4096/16)/5) = 8; J grows to 6 (5·6·16 = 480 ≤ 512),
    # then neither I (6·6·16 = 576) nor J (5·7·16 = 560) fits, and K is already all of K.
    assert "tile_I=5 tile_J=6 tile_K=8" in r.stdout


BAD = [
    ("arch", "name: x\npe_array: {rows: 16, colls: 16}\n", "unknown key 'pe_array.colls' (did you mean 'cols'?)"),
    ("arch", "name: x\nscratchpad: {kib: 0}\n", "'scratchpad.kib'"),
    ("arch", "name: x\nscratchpad: {kib: 1.5}\n", "'scratchpad.kib'"),
    ("arch", "name: x\nscratchpad: {kib: -4}\n", "'scratchpad.kib'"),
    ("arch", "name: x\npe_array: [1, 2\n", "malformed YAML"),
    ("arch", "!!python/object/apply:os.system ['echo hacked']\n", "malformed YAML"),
    ("workload", "name: b\nmodel: bert\nhidden: 768\nheads: 7\n", "heads (7) must divide hidden (768)"),
    ("workload", "name: b\nmodel: bert\nhiden: 768\n", "did you mean 'hidden'"),
    ("workload", "name: b\nmodel: bert\nseq_len: 0\n", "'seq_len'"),
    ("workload", "name: b\nmodel: bert\nseq_len: true\n", "'seq_len'"),
    ("workload", "name: b\nmodel: bert\nlayers: 2\nlayers: 12\n", "key 'layers' is given twice"),
    ("workload", "name: t\nops:\n  - {name: mm, op: matmul, M: 4, K: 4, N: 4, C: 9}\n", "does not take C"),
    (
        "workload",
        "name: t\nops:\n  - {name: mm, op: matmul, M: 4, K: 4, N: 8}\n  - {name: ln, op: layernorm, rows: 9, row_len: 7, after: mm}\n",
        "produces 4 rows of 8",
    ),
    ("arch", "name: x\nscratchpad: {kib: true}\n", "'scratchpad.kib'"),
    ("arch", "name: x\nnonlinear: {cpu_cycles_per_elem: {softmx: 1}}\n", "did you mean 'softmax'?"),
]


@pytest.mark.parametrize("which,text,message", BAD)
def test_bad_input_one_line_exit_2(tmp_path, which, text, message):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    args = ["map", "workloads/bert-tiny.yaml", "--search", "heuristic", "--arch", str(f)]
    if which == "workload":
        args = ["map", str(f), "--search", "heuristic"]
    r = gemmap(*args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "hacked" not in r.stdout


def test_sram_too_small_for_any_tile(tmp_path):
    f = tmp_path / "tiny.yaml"
    f.write_text("name: tiny\nscratchpad: {kib: 1}\naccumulator: {kib: 1}\n")
    r = gemmap("map", "workloads/bert-tiny.yaml", "--search", "heuristic", "--arch", str(f))
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args", [["--spad-kib", "0"], ["--acc-kib", "-3"], ["--objective", "edpp"], ["--samples", "0"]]
)
def test_bad_flags_exit_2(args):
    r = gemmap("map", "workloads/bert-tiny.yaml", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_choice_typo_suggests_the_close_match():
    r = gemmap("map", "workloads/bert-tiny.yaml", "--objective", "edpp")
    assert r.returncode == 2 and "did you mean 'edp'?" in r.stderr


def test_missing_workload_file():
    r = gemmap("map", "workloads/nope.yaml", "--search", "heuristic")
    assert r.returncode == 2 and "cannot read file" in r.stderr


def test_not_utf8_is_one_line(tmp_path):
    f = tmp_path / "b.yaml"
    f.write_bytes(b"\xff\xfe bad")
    r = gemmap("map", str(f), "--search", "heuristic")
    assert r.returncode == 2 and "not UTF-8" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["--search", "random", "--seed", "-5"], "whole number ≥ 0"),
        (["--search", "heuristic", "--samples", "10"], "--samples applies to --search random"),
        (["--search", "heuristic", "--time-limit", "1"], "--time-limit applies to --search optimal"),
        (["--search", "heuristic", "--explain", "nope"], "no layer 'nope'"),
    ],
)
def test_flags_that_cannot_apply_are_refused(args, message):
    r = gemmap("map", "workloads/bert-tiny.yaml", *args)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_output_path_problems_are_one_line(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for args in (["--json", str(tmp_path)], ["--csv", str(blocker / "x.csv")]):
        r = gemmap("map", "workloads/bert-tiny.yaml", "--search", "heuristic", *args)
        assert r.returncode == 2 and "cannot write" in r.stderr and "Traceback" not in r.stderr


def test_outputs_are_readable_by_others(tmp_path):
    out = tmp_path / "m.json"
    r = gemmap("map", "workloads/bert-tiny.yaml", "--search", "heuristic", "--json", str(out))
    umask = os.umask(0)
    os.umask(umask)
    assert r.returncode == 0 and out.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize(
    "args",
    [
        ["map", "bert-tiny", "--json", "{file}/x.json"],
        ["map", "bert-tiny", "--csv", "{dir}"],
        ["map", "bert-tiny", "--json", ""],
        ["schedule", "bert-tiny", "--json", "{file}/s.json"],
        ["cdf", "bert-tiny", "--out", "{file}/d"],
    ],
)
def test_unwritable_output_fails_before_any_work(tmp_path, monkeypatch, capsys, args):
    """A typo in an output path is one line and exit 2 before the search starts (nothing is lost)."""
    from gemmap import api, cdf
    from gemmap.cli import main as cli_main
    from gemmap.cli import schedule as schedule_cli

    def no_work(*a, **k):
        raise AssertionError("the search ran before the output path was checked")

    for module, name in ((api, "map_workload"), (schedule_cli, "schedule_workload"), (cdf, "sample_workload")):
        monkeypatch.setattr(module, name, no_work)
    afile = tmp_path / "afile"
    afile.write_text("x")
    argv = [a.format(file=afile, dir=tmp_path) for a in args]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gemmap: error:")
