"""A warm L2 at the start of a run (``l2.warm_start``, gemmap/warm.py): the kept share by hand, memory
bytes down by exactly what is kept, scalar = batched, optimal = exhaustive, and the validation runs
(mapped runs warm, tiler runs cold)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gemmap import model, warm
from gemmap.arch import L2
from gemmap.conv import ConvShape
from gemmap.mapspace import MapSpace
from gemmap.search import SearchOptions, find_mapping
from gemmap.validation import predict
from gemmap.validation.data import read_runs
from gemmap.workload import Problem
from tests.agree import conv_agrees, matmul_agrees, optimal_matches_exhaustive
from tests.conftest import ROOT
from tests.test_convspace import conv_problem
from tests.test_mapspace import small_arch
from tests.test_validation_cli import data_csv


def warm_arch(arch, on: bool = True):
    return dataclasses.replace(arch, l2=dataclasses.replace(arch.l2, warm_start=on))


def test_kept_share_by_hand(firesim_arch):
    # 512 KiB, 8 ways, random victims: a pass over one capacity leaves 8·(1 − (7/8)^8) of the 8 lines a
    # set received, 65.6 %; a quarter of it (2 inserts a set) 8·(1 − (7/8)^2) / 2 = 93.75 %.
    cap = firesim_arch.l2.bytes
    assert warm.kept_share(firesim_arch, cap) == pytest.approx(1 - (7 / 8) ** 8)
    assert warm.kept_share(firesim_arch, cap // 4) == pytest.approx(0.9375)
    assert warm.kept_share(firesim_arch, cap + 1) == 0.0  # larger than the L2: nothing usable
    buffer = dataclasses.replace(firesim_arch, l2=L2(kib=512))  # software-managed: what fits stays whole
    assert warm.kept_share(buffer, cap) == 1.0


@pytest.mark.parametrize(
    "shape", [(1, 4, 4), (16, 64, 64), (64, 96, 40), (1, 512, 256), (300, 600, 700), (1, 1024, 1024)]
)
def test_kept_bytes_within_compulsory_and_memory_bytes_never_negative(firesim_arch, shape):
    arch = warm_arch(firesim_arch)
    p = Problem("t", *shape)
    kept, comp = warm.warm_by_tensor(arch, p), warm.compulsory_by_tensor(arch, p)
    assert all(0 <= k <= c for k, c in zip(kept, comp))
    assert (sum(comp) > arch.l2.bytes) == (sum(kept) == 0)
    b = MapSpace(arch, p).sample(300, seed=1)
    assert (model.evaluate_batch(arch, p, b).dram_bytes >= 0).all()


def test_warm_start_takes_exactly_the_kept_bytes(firesim_arch):
    p = Problem("gemv", 1, 512, 256)  # 128 KiB of weights: the 128x128 file's rows 1344/1346/1348
    cold = find_mapping(firesim_arch, p, SearchOptions(method="heuristic")).mapping
    c0, c1 = model.evaluate(firesim_arch, p, cold), model.evaluate(warm_arch(firesim_arch), p, cold)
    kept = warm.warm_by_tensor(warm_arch(firesim_arch), p)
    assert sum(kept) == warm.warm_bytes(warm_arch(firesim_arch), p) > 0
    assert c0.dram_bytes - c1.dram_bytes == sum(kept)
    assert {x: c0.dram_bytes_by_tensor[x] - c1.dram_bytes_by_tensor[x] for x in "ABC"} == dict(zip("ABC", kept))
    assert c1.cycles < c0.cycles  # DRAM-bound cold; the kept weights come from the L2
    assert warm.warm_bytes(firesim_arch, p) == 0  # the shipped arch starts cold


def test_scalar_equals_batched_warm(firesim_arch):
    arch = warm_arch(firesim_arch)
    p = Problem("t", 64, 96, 40)
    matmul_agrees(arch, p, MapSpace(arch, p).sample(400, seed=3), 20)
    conv_agrees(arch, conv_problem(ConvShape(n=1, k=32, c=16, p=6, q=6, r=3, s=3, stride=1, padding=1)))


@pytest.mark.parametrize("objective", ["latency", "edp"])
def test_optimal_equals_exhaustive_warm(gemmini, firesim_arch, objective):
    arch = small_arch(gemmini, 1)
    arch = dataclasses.replace(arch, l2=dataclasses.replace(arch.l2, warm_start=True))
    for shape in ((7, 5, 13), (1, 23, 6)):
        p = Problem("t", *shape)
        assert warm.warm_bytes(arch, p) > 0
        optimal_matches_exhaustive(arch, p, objective)
    conv_arch = warm_arch(dataclasses.replace(firesim_arch, l2=dataclasses.replace(firesim_arch.l2, kib=16)))
    p = conv_problem(ConvShape(n=1, k=32, c=8, p=4, q=4, r=3, s=3, stride=1, padding=1))
    assert warm.warm_bytes(conv_arch, p) > 0
    optimal_matches_exhaustive(conv_arch, p, objective)


def test_validation_runs_mapped_warm_tiler_cold(firesim_arch, tmp_path):
    runs, _ = read_runs(data_csv(tmp_path))
    run = next(r for r in runs if r.status == "ok")
    assert predict.setup_run(run, firesim_arch).arch.l2.warm_start
    assert not predict.setup_run(run, firesim_arch, tiler=True).arch.l2.warm_start


def test_warm_for_leaves_archs_without_l2(gemmini):
    arch = dataclasses.replace(gemmini, l2=None)
    assert predict.warm_for(arch, True) is arch
    assert np.isclose(warm.kept_share(arch, 10), 0.0)


def test_cli_evaluate_on_a_warm_arch(tmp_path, capsys):
    from gemmap.cli import main

    text = (ROOT / "arch" / "gemmini-firesim.yaml").read_text()
    warm_yaml = tmp_path / "warm.yaml"
    warm_yaml.write_text(text.replace("  write_allocate: true", "  warm_start: true\n  write_allocate: true", 1))
    args = ["evaluate", "--layer", "matmul M=1 K=512 N=256", "--mapping",
            "L3[WIO] K16 C8 - L2[WI] N1 K16X - L1[O] C4 C16X - L0[W] N1", "--json", str(tmp_path / "e.json")]  # fmt: skip
    assert main([*args, "--arch", str(ROOT / "arch" / "gemmini-firesim.yaml")]) == 0
    cold = capsys.readouterr().out
    assert main([*args, "--arch", str(warm_yaml)]) == 0
    shown = capsys.readouterr().out
    assert "found in the warm L2" in shown and "warm L2" not in cold  # the caption may wrap
    bad = tmp_path / "bad.yaml"
    bad.write_text(warm_yaml.read_text().replace("warm_start: true", "warm_start: maybe"))
    assert main([*args, "--arch", str(bad)]) == 2
    assert "'l2.warm_start': input should be a valid boolean" in capsys.readouterr().err
