"""``gemmap cdf`` end to end on a small workload, redraw from kept samples, and bad input."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from gemmap.cdf import load_samples, percentile_rows, sample_workload
from gemmap.workload import load_workload
from tests.conftest import ROOT
from tests.test_cli import gemmap


def test_cdf_normalizes_to_the_proven_optimum(gemmini):
    w = load_workload(ROOT / "workloads" / "bert-tiny.yaml")
    samples = sample_workload(gemmini, w, samples=3000, seed=1, layers=["ffn1", "attn_qk"])
    assert [s.layers for s in samples] == [("ffn1",), ("attn_qk",)]
    for s in samples:
        assert all(s.proven.values())
        for metric in ("latency", "energy", "edp"):
            # no random sample beats the proven optimum
            assert s.normalized(metric).min() >= 1.0 - 1e-12
    rows = percentile_rows(samples)
    assert len(rows) == 2 * 3
    for r in rows:
        assert 1.0 - 1e-12 <= r["min"] <= r["p1"] <= r["p10"] <= r["p50"] <= r["p90"] <= r["p99"] <= r["max"]


def test_cdf_same_seed_same_samples_any_worker_count(gemmini):
    w = load_workload(ROOT / "workloads" / "bert-tiny.yaml")
    a = sample_workload(gemmini, w, samples=500, seed=5, layers=["ffn1", "ffn2"], workers=1)
    b = sample_workload(gemmini, w, samples=500, seed=5, layers=["ffn1", "ffn2"], workers=2)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.cycles, y.cycles) and np.array_equal(x.energy_pj, y.energy_pj)


def test_cdf_cli_writes_table_plots_and_samples(tmp_path):
    out = tmp_path / "cdf"
    other = tmp_path / "cnn.yaml"
    other.write_text("name: cnn\nops:\n  - {name: c1, op: conv, C: 16, K: 32, P: 14, Q: 14, R: 3, S: 3}\n")
    r = gemmap("cdf", "workloads/bert-tiny.yaml", "--compare", str(other), "--layers", "ffn1,attn_av",
               "--samples", "2000", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    for name in ("cdf.csv", "cdf.png", "cdf.svg", "samples.npz"):
        assert (out / name).stat().st_size > 0
    rows = list(csv.DictReader((out / "cdf.csv").open()))
    assert {r["metric"] for r in rows} == {"latency", "energy", "edp"}
    assert {"ffn1", "attn_av"} <= {r["layer"] for r in rows}
    assert all(int(r["samples"]) == 2000 and float(r["min"]) >= 1 - 1e-9 for r in rows)
    kept = load_samples(out / "samples.npz")
    assert [x.workload for x in kept] == ["bert-tiny", "bert-tiny", "cnn"]
    (out / "cdf.png").unlink()
    r = gemmap("cdf", "--replot", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "cdf.png").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--samples", "0"], "whole number ≥ 1 and ≤ 1,000,000"),
        (["--layers", "atn_qk"], "did you mean 'attn_qk'"),
        ([], "--out"),
    ],
)
def test_cdf_bad_input(tmp_path, args, message):
    out = [] if args == [] else ["--out", str(tmp_path / "o")]
    r = gemmap("cdf", "workloads/bert-tiny.yaml", *args, *out)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


SURVEY_LIKE = """name: resnet50
ops:
  - {name: conv1, op: conv, C: 3, K: 8, P: 8, Q: 8, R: 3, S: 3, stride: 2, padding: 1, H: 16, W: 16}
  - {name: res2_3x3, op: conv, C: 8, K: 8, P: 8, Q: 8, R: 3, S: 3, padding: 1}
  - {name: res5_3x3, op: conv, C: 16, K: 16, P: 4, Q: 4, R: 3, S: 3, padding: 1}
  - {name: res5_1x1a, op: conv, C: 32, K: 16, P: 4, Q: 4, R: 1, S: 1}
  - {name: res5_1x1b, op: conv, C: 16, K: 32, P: 4, Q: 4, R: 1, S: 1}
"""


def test_cdf_compare_plots_the_survey_layers_by_name(tmp_path):
    """--compare with a workload named resnet50 samples only the survey's four layers, labelled."""
    other = tmp_path / "resnet50.yaml"
    other.write_text(SURVEY_LIKE)
    out = tmp_path / "cdf"
    r = gemmap("cdf", "workloads/bert-tiny.yaml", "--layers", "ffn2", "--compare", str(other),
               "--samples", "1500", "--workers", "1", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((out / "cdf.csv").open()))
    labels = {r["label"] for r in rows if r["workload"] == "resnet50"}
    assert labels == {"conv1 7x7/64 stride 2", "res5 3x3/512", "res5 1x1/512", "res5 1x1/2048"}
    assert all(float(r["min"]) >= 1 - 1e-9 and 0 <= float(r["within_3x"]) <= 1 for r in rows)
    assert [x.label for x in load_samples(out / "samples.npz")][1:] == [
        "conv1 7x7/64 stride 2", "res5 3x3/512", "res5 1x1/512", "res5 1x1/2048"]  # fmt: skip
    r = gemmap("cdf", "workloads/bert-tiny.yaml", "--layers", "ffn2", "--compare", str(other),
               "--compare-layers", "res2_3x3", "--samples", "500", "--workers", "1", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert {r["layer"] for r in csv.DictReader((out / "cdf.csv").open())} == {"ffn2", "res2_3x3"}


def test_cdf_of_a_conv_is_normalized_to_its_proven_optimum(gemmini, tmp_path):
    (tmp_path / "c.yaml").write_text(SURVEY_LIKE)
    w = load_workload(tmp_path / "c.yaml")
    (s,) = sample_workload(gemmini, w, samples=2000, seed=2, layers=["res5_3x3"])
    assert all(s.proven.values()) and len(s.shape) > 3
    for metric in ("latency", "energy", "edp"):
        assert s.normalized(metric).min() >= 1.0 - 1e-12
