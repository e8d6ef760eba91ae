"""Shared checks of the model's two paths and of the searches: the scalar and batched models give
equal cycles, energy and DRAM bytes, and the optimal search matches the exhaustive one."""

from __future__ import annotations

import pytest

from gemmap import convmodel, model
from gemmap.convspace import ConvMapSpace
from gemmap.mapping import MappingBatch
from gemmap.search import SearchOptions, SearchResult, find_mapping, objective_value
from gemmap.workload import Problem


def _same(c, bc, i: int) -> None:
    assert (c.cycles, c.energy_pj, c.dram_bytes) == (bc.cycles[i], bc.energy_pj[i], bc.dram_bytes[i])


def matmul_agrees(arch, problem: Problem, batch: MappingBatch, step: int) -> list[model.Cost]:
    """Every ``step``-th mapping of ``batch``: scalar = batched; their scalar costs."""
    bc = model.evaluate_batch(arch, problem, batch)
    out = []
    for i in range(0, len(batch), step):
        c = model.evaluate(arch, problem, batch[i])
        _same(c, bc, i)
        out.append(c)
    return out


def conv_agrees(arch, problem: Problem, step: int = 16) -> None:
    """The first 256 mappings of the conv's space, every ``step``-th: scalar = batched."""
    batch = next(ConvMapSpace(arch, problem).enumerate(batch_size=256))
    cb = convmodel.evaluate_conv_batch(arch, problem, batch)
    for i in range(0, len(batch), step):
        _same(convmodel.evaluate_conv(arch, problem, batch[i]), cb, i)


def optimal_matches_exhaustive(arch, problem: Problem, objective: str) -> SearchResult:
    """The optimal search's result, checked proven and equal in value to the exhaustive search's."""
    ex = find_mapping(arch, problem, SearchOptions(method="exhaustive", objective=objective))
    opt = find_mapping(arch, problem, SearchOptions(method="optimal", objective=objective))
    assert opt.proven_optimal
    assert objective_value(opt.cost, objective) == pytest.approx(objective_value(ex.cost, objective), rel=1e-12)
    return opt
