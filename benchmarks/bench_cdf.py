"""Wall time of ``gemmap cdf`` as a user runs it (run by hand).

    python benchmarks/bench_cdf.py [--samples 100000] [--no-write]

Runs ``gemmap cdf workloads/bert.yaml --samples N`` in a subprocess (start-up, sampling, the three
proven optima per layer shape, plots and files included) with 1 and with 2 worker processes, one
after the other in the same run, and writes its section of docs/benchmarks.md between the
bench_cdf markers (other sections kept). Target (issue 3): 100K samples for every BERT-base layer
in ≤ 30 s on 2 cores. Then runs ``gemmap cdf workloads/bert.yaml --compare workloads/resnet50.yaml``
(2 workers) and tabulates its cdf.csv: per layer of BERT-base and of the Transformer study's four
ResNet-50 layers, the p10 and p50 of EDP (and latency) relative to the proven optimum and the share
of samples within 3× of it (``--no-compare`` skips this).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from docsection import machine, write_section

ROOT = Path(__file__).resolve().parent.parent


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "gemmap.cli", *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"gemmap {' '.join(args)} failed:\n{r.stderr}")
    return time.perf_counter() - t0


def survey_table(path: Path, cmd: str, seconds: float) -> list[str]:
    """Markdown lines: the spread per layer from a ``--compare`` run's cdf.csv (q/k/v/out_proj once)."""
    rows = list(csv.DictReader(path.open()))
    lat = {(r["workload"], r["layer"]): r for r in rows if r["metric"] == "latency"}
    out = [
        "",
        f"Spread next to CNN layers: `{cmd}` ({seconds:.1f} s). Relative = a uniform random valid mapping's",
        "figure over the proven optimum of the layer (convs sampled and searched as `tiled_conv` runs them).",
        "",
        "| workload | layer | GEMM view M×K×N | p10 EDP / opt | p50 EDP / opt | EDP within 3× | p10 latency / opt "
        "| latency within 3× | samples |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["metric"] != "edp" or (r["workload"] != "resnet50" and r["layer"] in ("k_proj", "v_proj", "out_proj")):
            continue
        name = "q/k/v/out_proj" if r["layer"] == "q_proj" else r["label"]
        lt = lat[(r["workload"], r["layer"])]
        out.append(
            f"| {r['workload']} | {name} | {r['M']}×{r['K']}×{r['N']} | {float(r['p10']):.2f} | {float(r['p50']):.1f} | "
            f"{float(r['within_3x']) * 100:.1f} % | {float(lt['p10']):.2f} | {float(lt['within_3x']) * 100:.1f} % | "
            f"{int(r['samples']):,} |"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    ap.add_argument("--no-compare", action="store_true", help="skip the BERT vs ResNet-50 survey-layer table")
    args = ap.parse_args()
    rows = []
    survey: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_compare:
            cmd = ["cdf", "workloads/bert.yaml", "--compare", "workloads/resnet50.yaml", "--samples", str(args.samples),
                   "--workers", "2", "--out", f"{tmp}/cmp"]  # fmt: skip
            sec = timed(cmd)
            survey = survey_table(Path(tmp) / "cmp" / "cdf.csv", " ".join(["gemmap", *cmd[:-2], "--out", "DIR"]), sec)
        for workers in (1, 2):
            cmd = [
                "cdf",
                "workloads/bert.yaml",
                "--samples",
                str(args.samples),
                "--workers",
                str(workers),
                "--out",
                f"{tmp}/w{workers}",
            ]
            rows.append((workers, timed(cmd), " ".join(["gemmap", *cmd[:-2], "--out", "DIR"])))
    lines = [
        "## CDF (benchmarks/bench_cdf.py)",
        "",
        f"Command: `python benchmarks/bench_cdf.py --samples {args.samples}` — {datetime.date.today()}, {machine()}. "
        "Wall time of the whole command: 5 BERT-base layer shapes, each sampled and searched to 3 proven optima "
        "(latency, energy, EDP), plots and files written. Target ≤ 30 s on 2 cores.",
        "",
        "| command | workers | seconds |",
        "|---|---|---|",
        *(f"| `{cmd}` | {w} | {s:.1f} |" for w, s, cmd in rows),
        *survey,
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        write_section("bench_cdf", section)


if __name__ == "__main__":
    main()
