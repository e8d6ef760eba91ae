"""LLM-size search benchmark (run by hand): ``python benchmarks/bench_llm.py [--baseline DIR] [--l2] [--no-write]``.

Issue 10 item 6: searches stay fast and bounded at LLM sizes. Each run is ``gemmap map`` in a
fresh subprocess (start-up and table included; ``--search optimal``, EDP, ``arch/gemmini.yaml``
unless the row says otherwise); wall seconds and the process's peak RSS (``os.wait4``'s
``ru_maxrss``) are measured, and the per-layer search seconds and proofs are read from its
``--json``. The workloads are explicit-op YAMLs in ``benchmarks/workloads/`` (one decoder layer
each: GPT-3, LLaMA-2-7B prefill and decode), BERT-base at seq 65,536 and the shipped
``workloads/llama2-7b.yaml`` family at prefill and decode; ``--l2`` adds the LLaMA
layers on ``arch/gemmini-transformer.yaml`` (no target; its L2 makes the bound looser).

``--baseline DIR`` (a checkout or ``git archive`` of an older commit) also runs BERT-base with
that code, alternating with this one, for a side-by-side ratio on the shared machine. Prints
markdown and rewrites its section of docs/benchmarks.md (between the bench_llm markers; other
sections kept) unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docsection import machine, write_section  # noqa: E402

W = "benchmarks/workloads"


@dataclasses.dataclass(frozen=True)
class Case:
    label: str
    args: tuple[str, ...]
    target: str
    max_seconds: float
    max_mib: float | None = None


CASES = (
    Case("BERT-base, seq 512", ("workloads/bert.yaml",), "≤ 1.5 s", 1.5),
    Case("BERT-base, seq 65,536", (f"{W}/bert-seq65536.yaml",), "≤ 60 s, ≤ 2 GiB", 60, 2048),
    Case("GPT-3 layer (hidden 12,288, FFN 49,152, seq 2,048)", (f"{W}/gpt3-layer.yaml",), "≤ 60 s, ≤ 2 GiB", 60, 2048),
    Case("LLaMA-2-7B layer, prefill seq 2,048", (f"{W}/llama2-7b-prefill.yaml",), "≤ 10 s", 10),
    Case("LLaMA-2-7B, 32 layers, prefill seq 2,048", (f"{W}/llama2-7b-prefill-32.yaml",), "≤ 15 s", 15),
    Case("LLaMA-2-7B layer, decode batch 1, kv_len 4,096", (f"{W}/llama2-7b-decode.yaml",), "≤ 5 s", 5),
    Case(
        "LLaMA-2-7B family (32 layers, non-linear ops too), prefill seq 2,048",
        ("workloads/llama2-7b.yaml", "--phase", "prefill", "--seq-len", "2048"),
        "≤ 15 s",
        15,
    ),
    Case(
        "LLaMA-2-7B family, decode batch 1, kv_len 4,096",
        ("workloads/llama2-7b.yaml", "--phase", "decode", "--kv-len", "4096"),
        "≤ 5 s",
        5,
    ),
)
#: with --l2: the same layers on the arch with an L2, where the bound is looser (minutes, no target)
L2_CASES = tuple(
    Case(
        f"{c.label}, gemmini-transformer (L2)", (*c.args, "--arch", "arch/gemmini-transformer.yaml"), "—", float("inf")
    )
    for c in CASES[3:4] + CASES[5:6]
)


@dataclasses.dataclass(frozen=True)
class Run:
    seconds: float
    peak_mib: float
    layers: list[dict]


def run(args: tuple[str, ...], code: Path, out: Path) -> Run:
    """``gemmap map ARGS --json OUT`` run in ``code`` (so ``python -m`` imports that checkout's gemmap,
    ahead of an editable install): wall time, peak RSS, layers."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "gemmap.cli", "map", *args, "--json", str(out)]
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed: {err.read().decode().strip()}")
    layers = [x for x in json.loads(out.read_text())["layers"] if x.get("search")]
    return Run(seconds, usage.ru_maxrss / 1024, layers)


def command(case: Case) -> str:
    return "gemmap map " + " ".join(case.args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, help="an older checkout to run BERT-base with, side by side")
    ap.add_argument("--repeats", type=int, default=3, help="runs of BERT-base (each side; best kept)")
    ap.add_argument("--l2", action="store_true", help="also the LLaMA layers on arch/gemmini-transformer.yaml")
    ap.add_argument("--no-write", action="store_true", help="print only; do not update docs/benchmarks.md")
    args = ap.parse_args()
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "map.json"
        loads = []
        for case in CASES + (L2_CASES if args.l2 else ()):
            n = args.repeats if case.max_seconds <= 1.5 else 1
            runs = [run(case.args, ROOT, out) for _ in range(n)]
            loads.append(os.getloadavg()[0])
            best = min(runs, key=lambda r: r.seconds)
            layers = best.layers
            proven = sum(x["search"]["proven_optimal"] for x in layers)
            slow = max(layers, key=lambda x: x["search"]["seconds"])
            met = best.seconds <= case.max_seconds and (case.max_mib is None or best.peak_mib <= case.max_mib)
            verdict = "—" if case.max_seconds == float("inf") else "yes" if met else "no"
            rows.append(
                f"| {case.label} | `{command(case)}` | {best.seconds:.1f}"
                + (f" (best of {n}: {', '.join(f'{r.seconds:.1f}' for r in runs)})" if n > 1 else "")
                + f" | {best.peak_mib:,.0f} | {proven}/{len(layers)} | {slow['name']} {slow['search']['seconds']:.1f} s"
                f" | {case.target} | {verdict} |"
            )
            print(rows[-1], flush=True)
        if args.baseline:
            case = CASES[0]
            pairs = [(run(case.args, args.baseline, out), run(case.args, ROOT, out)) for _ in range(args.repeats)]
            b, a = min(p[0].seconds for p in pairs), min(p[1].seconds for p in pairs)
            bm, am = max(p[0].peak_mib for p in pairs), max(p[1].peak_mib for p in pairs)
            notes.append(
                f"Side by side, `{command(case)}` alternating {args.repeats}× with the baseline code "
                f"(`{args.baseline}`): best {b:.2f} s → {a:.2f} s (×{a / b:.2f}), peak RSS {bm:,.0f} → {am:,.0f} MiB."
            )
            print(notes[-1])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    section = "\n".join(
        [
            "## LLM sizes (benchmarks/bench_llm.py)",
            "",
            f"Command: `python benchmarks/bench_llm.py{' --baseline DIR' if args.baseline else ''}{' --l2' if args.l2 else ''}` — "
            f"{datetime.date.today()}, commit {commit.strip()}, {machine()}; 1-min load average after each run "
            f"{', '.join(f'{x:.1f}' for x in loads)}.",
            "",
            "Each run is `gemmap map` (optimal search, EDP, arch/gemmini.yaml unless stated) in a fresh process: "
            "wall seconds (start-up included) and the process's peak RSS; proven = layers with a proven optimum "
            "(distinct shapes are searched once; repeated shapes show the same search).",
            "",
            "| run | command | wall s | peak RSS MiB | proven | slowest layer search | target | met |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            *notes,
        ]
    )
    print(section)
    if not args.no_write:
        write_section("bench_llm", section)


if __name__ == "__main__":
    main()
