"""What users read and parse: tables within 100 columns, JSON/CSV records, progress, --version, list."""

from __future__ import annotations

import csv
import json

import pytest
from rich.cells import cell_len

from gemmap import __version__, api
from gemmap.cli import main

from .test_cli import gemmap as run_cli


@pytest.mark.parametrize(
    "args",
    [
        ["map", "workloads/bert.yaml", "--search", "heuristic"],
        ["map", "workloads/resnet50.yaml", "--search", "heuristic"],
        ["map", "workloads/llama2-7b.yaml", "--phase", "decode", "--search", "heuristic"],
        ["schedule", "workloads/bert.yaml", "--arch", "arch/gemmini-transformer.yaml", "--search", "heuristic"],
        ["list"],
        ["evaluate", "--layer", "matmul M=128 K=768 N=768", "--arch", "arch/gemmini-firesim.yaml", "--mapping",
         "L3[WIO] K12 - L2[WI] N1 K16X - L1[O] K4 C48 P4 C16X - L0[W] P32"],
        ["pipeline", "workloads/bert-tiny.yaml", "--arch", "arch/gemmini.yaml", "--arch",
         "arch/gemmini-transformer.yaml", "--search", "heuristic"],
    ],
)  # fmt: skip
def test_tables_fit_100_columns_when_piped(args):
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    widest = max(cell_len(line) for line in r.stdout.splitlines())
    assert widest <= 100, (widest, args)


def test_dropped_columns_are_named_and_come_back_on_a_wide_terminal():
    narrow = run_cli("map", "workloads/bert.yaml", "--search", "heuristic")
    assert "left out to fit 100 columns" in " ".join(narrow.stdout.split())
    wide = run_cli("map", "workloads/bert.yaml", "--search", "heuristic", env={"COLUMNS": "240"})
    assert "left out" not in wide.stdout and "vs LB" in wide.stdout and "EDP" in wide.stdout


def test_map_json_and_csv_carry_split_totals_and_version(tmp_path):
    j, c = tmp_path / "m.json", tmp_path / "m.csv"
    assert main(["map", "workloads/bert.yaml", "--search", "heuristic", "--json", str(j), "--csv", str(c)]) == 0
    data = json.loads(j.read_text())
    assert data["tool"] == {"name": "gemmap", "version": __version__}
    assert {"frequency_mhz", "dma_bytes_per_cycle", "dram_bytes_per_cycle"} <= set(data["arch"])
    layers = data["layers"]
    for x in layers:
        split = x["cycles_split"]
        assert split["busy"] + split["memory"] == pytest.approx(x["cycles"])
        assert x["bound"] in ("compute", "memory", "DRAM", "CPU", "unit")
    total = data["total"]
    assert total["cycles"] == sum(x["cycles"] * x["repeat"] for x in layers)
    assert total["dram_bytes"] == sum(x["dram_bytes"] * x["repeat"] for x in layers)
    assert total["seconds"] == pytest.approx(total["cycles"] / 1e9)
    rows = list(csv.DictReader(c.open()))
    assert rows[-1]["name"] == "total" and int(rows[-1]["cycles"]) == total["cycles"]
    softmax = next(r for r in rows if r["name"] == "softmax")
    assert (softmax["rows"], softmax["row_len"]) == ("512", "512")  # non-linear ops have their dims


def test_piped_runs_print_progress_lines(monkeypatch, capsys):
    monkeypatch.setattr(api, "PLAIN_PROGRESS_SECONDS", 0.0)
    assert main(["map", "workloads/bert-tiny.yaml", "--search", "heuristic"]) == 0
    err = capsys.readouterr().err
    assert "gemmap: mapping layers: 1/8 done, now k_proj" in err


def test_version_and_bare_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"gemmap {__version__}"
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_list_names_every_shipped_file():
    r = run_cli("list")
    for name in ("gemmini-firesim", "gemmini-transformer", "llama3-8b", "vit-base", "resnet50"):
        assert name in r.stdout


def test_sizes_outside_any_gemmini_warn_once(tmp_path):
    r = run_cli("map", "workloads/bert-tiny.yaml", "--search", "heuristic", "--spad-kib", "100000")
    assert r.returncode == 0
    warnings = [x for x in r.stderr.splitlines() if "far outside any real Gemmini" in x]
    assert len(warnings) == 1 and "100000 KiB" in warnings[0]
    assert "warning" not in run_cli("map", "workloads/bert-tiny.yaml", "--search", "heuristic").stderr


def test_cdf_refuses_non_linear_layers_with_the_reason(tmp_path):
    r = run_cli("cdf", "workloads/bert-tiny.yaml", "--layers", "softmax", "--out", str(tmp_path / "c"))
    assert r.returncode == 2 and "non-linear ops have no mappings to sample" in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["map", "workloads/bert-tiny.yaml", "--search", "heuristic"],
        ["schedule", "workloads/bert-tiny.yaml", "--arch", "arch/gemmini-transformer.yaml", "--search", "heuristic"],
        ["pipeline", "workloads/bert-tiny.yaml", "--arch", "arch/gemmini.yaml", "--arch",
         "arch/gemmini-transformer.yaml", "--search", "heuristic"],
    ],
)  # fmt: skip
def test_json_dash_puts_the_record_alone_on_stdout(args):
    r = run_cli(*args, "--json", "-")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)  # nothing but the record
    assert data["tool"]["name"] == "gemmap"
    assert r.stderr.strip()  # the tables went to stderr
