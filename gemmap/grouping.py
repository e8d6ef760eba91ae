"""Grouping a chain of layers whose weights exceed memory into groups loaded one after another (pure numpy).

Iterative model instantiation (Fernandes et al.): when a model's weights do not fit the device's
memory, its layers are instantiated group by group from storage; the cut points
t₀ = 0 < t₁ < … < t_m = n are chosen to minimise the total cost subject to each group's weights
fitting. Here unit u has weight bytes ``w[u]`` and compute time ``c[u]``; loading a group of W bytes
takes ``L + W / B`` (one storage access latency, then the sequential read). Two ways to run:

* **serial**: load a group, compute it, load the next; a group's weights ≤ the memory left for
  weights. Latency = Σ_g (L + W_g / B + C_g).
* **overlap**: the next group loads while the current one computes (double buffering); the two
  groups resident at once must fit together (W_g + W_{g+1} ≤ memory), which about halves each.
  Phase g computes group g while group g+1 loads and ends when both are done:
  latency = load(1) + Σ_g max(C_g, load(g+1)) (load(m+1) = 0).

**Early exit.** With ``exit_p[u]`` the probability that inference stops right after unit u,
``S[u] = 1 − Σ_{v<u} exit_p[v]`` is the probability it reaches u. An inference that stops inside a
group has paid that group's load and the compute up to where it stopped (serial), or the phases
before it and the compute up to where it stopped (overlap). The expected latency is, serial,
Σ_g S[t_g]·load(g) + Σ_u S[u]·c[u]; overlap, load(1) + Σ_g [Σ_{u∈g} c[u]·(S[u] − S[t_{g+1}]) +
S[t_{g+1}]·max(C_g, load(g+1))] with the last group's compute Σ_{u∈g} c[u]·S[u]. Both are sums of
terms over one group (serial) or two consecutive groups (overlap), so dynamic programs over the cut
points find the optimum exactly (:func:`optimal`). :func:`greedy` is the seed paper's plan (each group
as large as fits, in order; in overlap mode in half the memory): with a cost linear in the weights it is optimal, as the paper proves;
the storage latency per group, overlap and early exit make the cost non-linear, and it is not.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

import numpy as np

from gemmap.errors import GemmapError

MODES = ("serial", "overlap")


@dataclasses.dataclass(frozen=True)
class Chain:
    """Per-unit weights (bytes) and compute times (s), the memory left for weights (bytes), the
    storage's bandwidth (bytes/s) and access latency (s), and exit probabilities (zeros: none)."""

    weight_bytes: np.ndarray
    compute_s: np.ndarray
    memory_bytes: float
    storage_bytes_per_s: float
    storage_latency_s: float
    exit_p: np.ndarray

    @property
    def n(self) -> int:
        return len(self.weight_bytes)

    @property
    def capacity(self) -> float:
        """The memory for weights, with room for the rounding of sums of weights."""
        return self.memory_bytes * (1 + 1e-12)

    def survival(self) -> np.ndarray:
        """S[u] = P(inference reaches unit u), u = 0..n (S[n]: it runs to the end)."""
        return np.concatenate([[1.0], 1.0 - np.cumsum(self.exit_p)])

    def load_s(self, weight: np.ndarray | float) -> np.ndarray | float:
        return self.storage_latency_s + weight / self.storage_bytes_per_s


@dataclasses.dataclass(frozen=True)
class Plan:
    """Groups as cut points ``bounds`` (0 = t₀ < … < t_m = n), run ``mode``, and its latency (every
    inference runs to the end) and expected latency (with the chain's exit probabilities)."""

    mode: str
    bounds: tuple[int, ...]
    latency_s: float
    expected_latency_s: float

    def groups(self) -> list[tuple[int, int]]:
        return list(zip(self.bounds[:-1], self.bounds[1:]))


def _check(ch: Chain, mode: str) -> None:
    if mode not in MODES:
        raise GemmapError(f"unknown mode '{mode}'; choose from {', '.join(MODES)}")
    if not (ch.memory_bytes > 0 and ch.storage_bytes_per_s > 0 and ch.storage_latency_s >= 0):
        raise GemmapError("memory and storage bandwidth must be positive, storage latency ≥ 0")


def fits(ch: Chain, mode: str, bounds: tuple[int, ...]) -> bool:
    """Do the groups fit: each alone (serial) or each next to the one after it (overlap)?"""
    w = [float(ch.weight_bytes[s:e].sum()) for s, e in zip(bounds[:-1], bounds[1:])]
    if mode == "serial":
        return max(w) <= ch.capacity
    pairs = [a + b for a, b in zip(w, w[1:])] or w
    return max(pairs) <= ch.capacity


def evaluate(ch: Chain, mode: str, bounds: tuple[int, ...]) -> Plan:
    """Latency and expected latency of the plan ``bounds`` by walking its timeline (module docstring)."""
    _check(ch, mode)
    c, S = ch.compute_s, ch.survival()
    groups = list(zip(bounds[:-1], bounds[1:]))
    loads = [float(ch.load_s(ch.weight_bytes[s:e].sum())) for s, e in groups]
    comps = [float(c[s:e].sum()) for s, e in groups]
    partial = sum(float(c[u]) * float(S[u]) for u in range(ch.n))  # compute weighted by reaching it
    if mode == "serial":
        latency = sum(loads) + sum(comps)
        expected = sum(float(S[s]) * ld for (s, _), ld in zip(groups, loads)) + partial
        return Plan(mode, tuple(bounds), latency, expected)
    latency = loads[0] + sum(max(cg, nxt) for cg, nxt in zip(comps, [*loads[1:], 0.0]))
    expected = loads[0]
    for g, (s, e) in enumerate(groups):
        if g + 1 < len(groups):
            expected += sum(float(c[u]) * float(S[u] - S[e]) for u in range(s, e))
            expected += float(S[e]) * max(comps[g], loads[g + 1])
        else:
            expected += sum(float(c[u]) * float(S[u]) for u in range(s, e))
    return Plan(mode, tuple(bounds), latency, expected)


def greedy(ch: Chain, mode: str) -> Plan | None:
    """The seed paper's plan: each group takes units in order while they fit in its memory (serial:
    all of it; overlap: half, the other half holding the group loading next); None when one unit
    does not fit its half."""
    _check(ch, mode)
    cap = ch.capacity if mode == "serial" else ch.capacity / 2
    if float(ch.weight_bytes.max()) > cap:
        return None
    bounds, cur = [0], 0.0
    for u, w in enumerate(ch.weight_bytes):
        if cur + w > cap:
            bounds.append(u)
            cur = 0.0
        cur += w
    bounds.append(ch.n)
    return evaluate(ch, mode, tuple(bounds))


def optimal(ch: Chain, mode: str, expected: bool = False) -> Plan:
    """The plan of least latency (``expected``: least expected latency under early exit) among those
    that fit, by dynamic programming over the cut points (module docstring); exact."""
    _check(ch, mode)
    n = ch.n
    S = ch.survival() if expected else np.ones(n + 1)
    pw = np.concatenate([[0.0], np.cumsum(ch.weight_bytes)])
    pc = np.concatenate([[0.0], np.cumsum(ch.compute_s)])
    pcs = np.concatenate([[0.0], np.cumsum(ch.compute_s * S[:n])])  # Σ c[u]·S[u]
    W = pw[None, :] - pw[:, None]  # W[i, j] = weights of units [i, j)
    upper = np.arange(n + 1)[None, :] > np.arange(n + 1)[:, None]
    load = np.where(upper, ch.load_s(W), np.inf)
    if mode == "serial":
        # f[j] = min_i f[i] + S[i]·load(i, j), the compute Σ c·S is the same for every plan
        ok = upper & (ch.capacity >= W)
        f = np.full(n + 1, np.inf)
        f[0] = 0.0
        back = np.zeros(n + 1, dtype=np.int64)
        for j in range(1, n + 1):
            cand = f[:j] + np.where(ok[:j, j], S[:j] * load[:j, j], np.inf)
            back[j] = int(np.argmin(cand))
            f[j] = cand[back[j]]
        if not np.isfinite(f[n]):
            raise GemmapError("no grouping fits the memory")
        bounds = [n]
        while bounds[-1] > 0:
            bounds.append(int(back[bounds[-1]]))
        return evaluate(ch, mode, tuple(reversed(bounds)))
    C = pc[None, :] - pc[:, None]  # C[i, j] = compute of units [i, j)
    CS = pcs[None, :] - pcs[:, None]  # Σ_{u∈[i,j)} c[u]·S[u]
    # g[i, j]: least cost of groups covering [0, j) whose last group is [i, j), without that group's own term
    g = np.full((n + 1, n + 1), np.inf)
    g[0, :] = np.where(upper[0] & (W[0] <= ch.capacity), load[0], np.inf)
    back = np.zeros((n + 1, n + 1), dtype=np.int64)
    for j in range(1, n):
        # previous group [i, j), this one [j, k): pair term of the previous group
        prev = g[:j, j]  # over i
        if not np.isfinite(prev).any():
            continue
        inside = CS[:j, j] - S[j] * C[:j, j]  # Σ c[u]·(S[u] − S[j])
        phase = np.maximum(C[:j, j][:, None], load[j, None, :])  # inf where [j, k) is empty
        term = inside[:, None] + (S[j] * phase if S[j] > 0 else 0.0)  # nobody passes: no phase to pay
        feasible = (W[:j, j][:, None] + W[j, None, :] <= ch.capacity) & upper[j, None, :]
        total = np.where(feasible, prev[:, None] + term, np.inf)  # (i, k)
        arg = np.argmin(total, axis=0)
        g[j, :] = total[arg, np.arange(n + 1)]
        back[j, :] = arg
    last = g[:, n] + CS[:, n]
    if not np.isfinite(last).any():
        raise GemmapError("no grouping fits the memory")
    i = int(np.argmin(last))
    bounds = [n, i]
    j = n
    while i > 0:
        i, j = int(back[i, j]), i
        bounds.append(i)
    return evaluate(ch, mode, tuple(reversed(bounds)))


def all_plans(n: int) -> Iterator[tuple[int, ...]]:
    """Every set of cut points of n units (the brute force)."""
    for m in range(n):
        for cuts in itertools.combinations(range(1, n), m):
            yield (0, *cuts, n)
