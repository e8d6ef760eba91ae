"""Conv search benchmark (run by hand): ``python benchmarks/bench_conv.py [--arch FILE ...]``.

Per ResNet-50 conv layer (workloads/resnet50.yaml) on each arch: the seconds to a proven-optimal
EDP mapping (one core, a fresh process-level state per layer apart from numpy's warm-up), the
mappings evaluated, the pruned space's size, and Gemmini's ``tiled_conv_auto`` against the
optimum; then the whole model through ``api.map_workload`` (optimal vs heuristic totals, wall
time). Prints markdown and rewrites its section of docs/benchmarks.md (between the bench_conv
markers; other sections kept) unless ``--no-write``. Targets (issue 8): a proven optimum in ≤ 5 s
per conv layer, the whole of ResNet-50 in ≤ 60 s.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from docsection import machine, write_section  # noqa: E402

from gemmap import api  # noqa: E402
from gemmap.arch import load_arch  # noqa: E402
from gemmap.convspace import ConvMapSpace  # noqa: E402
from gemmap.search import SearchOptions, find_mapping  # noqa: E402
from gemmap.workload import load_workload  # noqa: E402

DEFAULT_ARCHES = ("arch/gemmini.yaml", "arch/gemmini-transformer.yaml")


def per_layer(arch_path: str) -> list[str]:
    arch = load_arch(ROOT / arch_path)
    w = load_workload(ROOT / "workloads" / "resnet50.yaml")
    find_mapping(arch, w.problem("res5_1x1b"), SearchOptions())  # warm-up (imports, class tables)
    lines = [
        f"### {arch.name} ({arch_path})",
        "",
        "| layer | dims (K C P Q R S /stride) | space size | optimal s | evaluated | proven | heuristic EDP / optimum |",
        "|---|---|---|---|---|---|---|",
    ]
    total, worst = 0.0, 0.0
    for p in w.problems:
        if p.conv is None:
            continue
        c = p.conv
        t = time.perf_counter()
        opt = find_mapping(arch, p, SearchOptions())
        sec = time.perf_counter() - t
        total, worst = total + sec, max(worst, sec)
        heu = find_mapping(arch, p, SearchOptions(method="heuristic"))
        size = ConvMapSpace(arch, p).size().total
        lines.append(
            f"| {p.name} | {c.k} {c.c} {c.p} {c.q} {c.r} {c.s} /{c.stride} | {size:,} | {sec:.2f} | "
            f"{opt.evaluated:,} | {'yes' if opt.proven_optimal else 'no'} | {heu.cost.edp / opt.cost.edp:.3f} |"
        )
    lines += ["", f"Sum over the {sum(p.conv is not None for p in w.problems)} conv layers: "
              f"{total:.1f} s (slowest {worst:.2f} s).", ""]  # fmt: skip
    return lines


def whole_model(arch_path: str) -> list[str]:
    arch = load_arch(ROOT / arch_path)
    w = load_workload(ROOT / "workloads" / "resnet50.yaml")
    out = []
    results = {}
    for method in ("optimal", "heuristic"):
        t = time.perf_counter()
        results[method] = api.map_workload(arch, w, SearchOptions(method=method))
        out.append((method, time.perf_counter() - t))
    o, h = results["optimal"].total, results["heuristic"].total
    proven = all(x.search.proven_optimal for x in results["optimal"].layers if x.search)
    nconv = sum(p.conv is not None for p in w.problems)
    return [
        f"Whole model on {arch.name} (`api.map_workload`, {nconv} convs + fc): optimal {out[0][1]:.1f} s "
        f"(all proven: {proven}), heuristic {out[1][1]:.1f} s.",
        "",
        "| search | cycles | energy (mJ) | EDP (J·cycle) |",
        "|---|---|---|---|",
        f"| optimal | {o.cycles:,} | {o.energy_pj * 1e-9:.3f} | {o.edp * 1e-12:,.1f} |",
        f"| heuristic (tiled_conv_auto) | {h.cycles:,} | {h.energy_pj * 1e-9:.3f} | {h.edp * 1e-12:,.1f} |",
        f"| heuristic / optimal | {h.cycles / o.cycles:.3f} | {h.energy_pj / o.energy_pj:.3f} | {h.edp / o.edp:.3f} |",
        "",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", action="append", help="arch YAML (repeatable; default: gemmini and gemmini-transformer)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    cmd = "python benchmarks/bench_conv.py" + "".join(f" --arch {a}" for a in args.arch or ())
    body: list[str] = []
    for path in args.arch or DEFAULT_ARCHES:
        body += per_layer(path) + whole_model(path)
    lines = [
        "## Conv search (benchmarks/bench_conv.py)",
        "",
        f"Command: `{cmd}` — {datetime.date.today().isoformat()}, {machine()}. ResNet-50",
        "(workloads/resnet50.yaml, batch 1, 224×224), objective EDP, one core; each conv searched as",
        "Gemmini's `tiled_conv` runs it (7 tile args, weight-stationary). Targets (issue 8): ≤ 5 s per",
        "layer, whole ResNet-50 ≤ 60 s.",
        "",
        *body,
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        write_section("bench_conv", section)


if __name__ == "__main__":
    main()
