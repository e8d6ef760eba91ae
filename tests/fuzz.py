"""Mutational fuzzing of gemmap's inputs: the shipped YAMLs and the flags.

:func:`cases` yields deterministic mutated inputs (seeded); :func:`check` runs one through the CLI
in this process and says what was wrong, if anything: an exit status other than 0 or 2, an
exception escaping (a traceback), more than one line on stderr with exit 2, a file left behind on
exit 2, or a JSON output that is not strict JSON. ``python -m tests.fuzz N`` runs a campaign of N
cases and prints the counts (the test suite runs a short one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from gemmap.cli import main

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "gemmap" / "data"

SMALL_OPS = """name: small
ops:
  - {name: mm, op: matmul, M: 64, K: 48, N: 32, repeat: 2}
  - {name: ln, op: layernorm, rows: 64, row_len: 32, after: mm}
  - {name: c1, op: conv, B: 1, C: 8, K: 16, P: 8, Q: 8, R: 3, S: 3, stride: 1, padding: 1, H: 8, W: 8}
"""

#: values a mutation puts in place of a value
NASTY = [
    "0", "-1", "1", "2", "3", "7", "17", "1024", "1025", "99999999", "1e30", "1.0e+30", "-1.0e+30", ".inf",
    "-.inf", ".nan", "true", "false", "yes", "null", "''", "x", "[]", "{}", "9" * 5000, "1.5", "0x10", "0o17",
    str(2**53 + 1), '"a\\nb"', "!!python/object/apply:os.system ['echo hacked']", "*nope", "&a 3", "[1, [2, [3]]]",
    "[" * 200 + "]" * 200, "'" + "z" * 100_000 + "'", "1_000", "+5", "~", "4096", "65536", "0.000001",
]  # fmt: skip
#: per command, the flags tried (with FLAG_VALUES)
FLAGS = {
    "map": ["--spad-kib", "--acc-kib", "--dataflow", "--objective", "--fusion", "--explain", "--time-limit",
            "--seq-len", "--batch", "--kv-len", "--phase"],
    "schedule": ["--spad-kib", "--acc-kib", "--seq-len", "--dataflow", "--objective", "--phase", "--batch"],
    "sweep": ["--spad-kib", "--acc-kib", "--fusion", "--seq-len", "--batch", "--tolerance", "--pe-dim", "--hidden",
              "--heads", "--dataflow"],
    "pipeline": ["--dram-gb-per-s", "--min-throughput", "--optimize", "--fusion", "--seq-len"],
    "deploy": ["--dram-mib", "--storage-mb-per-s", "--storage-latency-us", "--fusion", "--seq-len"],
}  # fmt: skip
#: the command each case runs, weighted
COMMANDS = ["map"] * 6 + ["schedule", "sweep", "pipeline", "deploy"]
LIST_VALUES = ["64,128", "32,1e30", "16,", "auto", "none,auto", "ws,os", "0,64"]
FLAG_VALUES = ["0", "-5", "1", "16", "1e30", "inf", "nan", "", "ws", "os", "none", "auto", "edp", "a\nb", "9" * 400,
               "decode", "prefill", "1000000000"]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Case:
    """One mutated input: which file (``arch`` or ``workload``) holds ``text``, and extra flags."""

    target: str
    text: str
    flags: tuple[str, ...]
    how: str
    command: str = "map"


def _mutate(text: str, rng: random.Random) -> tuple[str, str]:
    lines = text.splitlines()
    value_lines = [i for i, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("#")]
    op = rng.choice(["value", "value", "value", "delete", "duplicate", "unknown", "bytes", "truncate", "indent"])
    if op == "value" and value_lines:
        i = rng.choice(value_lines)
        line = lines[i]
        if "{" in line and ":" in line.split("{", 1)[1]:  # a flow mapping: replace one of its values
            parts = line.split(",")
            j = rng.randrange(len(parts))
            key = parts[j].rsplit(":", 1)[0]
            close = "}" if parts[j].rstrip().endswith("}") else ""
            parts[j] = f"{key}: {rng.choice(NASTY)}{close}"
            lines[i] = ",".join(parts)
        else:
            lines[i] = line.split(":", 1)[0] + ": " + rng.choice(NASTY)
    elif op == "delete" and lines:
        del lines[rng.randrange(len(lines))]
    elif op == "duplicate" and lines:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif op == "unknown":
        lines.insert(rng.randrange(len(lines) + 1), f"{rng.choice(['foo', 'rows', 'kib', 'a b', '<<'])}: 1")
    elif op == "bytes":
        pos = rng.randrange(len(text) + 1)
        junk = rng.choice(["\x00", "\t", ":", "[", "{", "}", "&x", "*x", "!!", "\n  - ", "\ufffe", "\x85", "'"])
        return text[:pos] + junk + text[pos:], op
    elif op == "truncate":
        return text[: rng.randrange(len(text) + 1)], op
    elif op == "indent" and lines:
        i = rng.randrange(len(lines))
        lines[i] = "   " + lines[i]
    return "\n".join(lines) + "\n", op


def cases(n: int, seed: int = 0) -> Iterator[Case]:
    """``n`` deterministic mutated inputs."""
    rng = random.Random(seed)
    sources = {
        "arch": [(DATA / "arch" / name).read_text() for name in ("gemmini.yaml", "gemmini-transformer.yaml")],
        "workload": [
            *((DATA / "workloads" / name).read_text() for name in ("bert-tiny.yaml", "gpt2.yaml", "llama2-7b.yaml")),
            SMALL_OPS,
        ],
    }
    for _ in range(n):
        target = rng.choice(["arch", "workload"])
        text, how = rng.choice(sources[target]), "flags"
        for _ in range(rng.choice([1, 1, 2, 3])):
            text, how = _mutate(text, rng)
        command = rng.choice(COMMANDS)
        flags: tuple[str, ...] = ()
        if rng.random() < 0.25:
            flag = rng.choice(FLAGS[command])
            flags = (flag, rng.choice(FLAG_VALUES + LIST_VALUES))
            how += f" {flag}"
        yield Case(target, text, flags, how, command)


def check(case: Case, work: Path) -> tuple[int | None, str | None]:
    """Run ``case`` (files in ``work``, which must be empty): its exit status, and None if gemmap
    behaved, else what went wrong."""
    spec = work / "spec.yaml"
    spec.write_text(case.text, encoding="utf-8", errors="surrogateescape")
    out = work / "out"
    workload = str(spec) if case.target == "workload" else str(DATA / "workloads" / "bert-tiny.yaml")
    arch = ["--arch", str(spec)] if case.target == "arch" else []
    outputs = {
        "map": ["--json", str(out / "m.json")],
        "schedule": ["--json", str(out / "m.json")],
        "sweep": ["--out", str(out), "--no-cache", "--no-plots"],
        "pipeline": ["--json", str(out / "m.json")]
        + ["--arch", str(DATA / "arch" / "gemmini.yaml")] * (2 - len(arch) // 2),
        "deploy": ["--json", str(out / "m.json"), "--dram-mib", "1", "--storage-mb-per-s", "100"],
    }[case.command]
    argv = [case.command, workload, "--search", "heuristic", *arch, *outputs, *case.flags]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except Exception as exc:  # noqa: BLE001 - what the fuzzer looks for
        return None, f"traceback: {type(exc).__name__}: {str(exc)[:200]}"
    lines = err.getvalue().strip().splitlines()
    if rc not in (0, 2):
        return rc, f"exit {rc}"
    if rc == 2:
        if len(lines) != 1:
            return rc, f"{len(lines)} lines on stderr: {err.getvalue()[:300]!r}"
        if out.exists():
            return rc, "files left on exit 2"
        return rc, None
    if case.command == "sweep":
        return rc, None if (out / "sweep.csv").is_file() else "exit 0 without sweep.csv"
    try:
        json.loads((out / "m.json").read_text(), parse_constant=_refuse)
    except (OSError, ValueError) as exc:
        return rc, f"exit 0 without strict JSON: {exc}"
    return rc, None


def _refuse(constant: str) -> float:
    raise ValueError(f"{constant} in the JSON")


def campaign(n: int, seed: int = 0) -> dict[str, object]:
    """Run ``n`` cases; counts of clean runs by exit status and of failures (with examples)."""
    counts = {"clean exit 0": 0, "clean exit 2": 0, "failed": 0}
    failures: list[tuple[str, str]] = []
    start = time.perf_counter()
    for case in cases(n, seed):
        with tempfile.TemporaryDirectory() as tmp:
            rc, problem = check(case, Path(tmp))
        if problem is None:
            counts[f"clean exit {rc}"] += 1
        else:
            counts["failed"] += 1
            failures.append((case.how, problem))
    return {**counts, "seconds": round(time.perf_counter() - start, 1), "failures": failures[:20]}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(campaign(int(sys.argv[1]) if len(sys.argv) > 1 else 1000), indent=1))
