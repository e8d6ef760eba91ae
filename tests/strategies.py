"""Hypothesis strategies for problems and valid mappings."""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from gemmap.arch import ceil_div
from gemmap.mapping import ORDERS, Mapping, invalid_reason
from gemmap.workload import Problem


def problems(max_dim: int = 300) -> st.SearchStrategy[Problem]:
    d = st.integers(1, max_dim)
    return st.builds(lambda M, K, N: Problem("h", M, K, N), d, d, d)


@st.composite
def valid_mappings(draw, arch, problem: Problem) -> Mapping:
    D = problem.shape_key()
    local = tuple(draw(st.integers(1, x)) for x in D)
    if arch.l2 is not None:
        f = tuple(draw(st.integers(1, ceil_div(x, t))) for x, t in zip(D, local))
    else:
        f = (1, 1, 1)
    m = Mapping(
        dataflow=draw(st.sampled_from(arch.dataflows)),
        local=local,  # type: ignore[arg-type]
        l2_factors=f,  # type: ignore[arg-type]
        dram_order=draw(st.sampled_from(ORDERS)),
        l2_order=draw(st.sampled_from(ORDERS)),
        db_spad=draw(st.booleans()),
        db_acc=draw(st.booleans()),
    )
    assume(invalid_reason(arch, problem, m) is None)
    return m
