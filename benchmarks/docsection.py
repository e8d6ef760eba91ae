"""Shared by the benchmark scripts: the machine line and writing one section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    """CPU model, CPU count, Python version and the 1-minute load average when called (the scripts
    call it right after measuring; other work shares the machine), for the record next to every figure."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = f", 1-min load average {os.getloadavg()[0]:.1f}"  # the machine is shared: other work's load
    except OSError:
        load = ""
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()}{load}"


def publish(name: str, section: str, out: str | None) -> None:
    """Write ``section`` to the file ``out`` if given, else as section ``name`` of docs/benchmarks.md."""
    if out:
        Path(out).write_text(section + "\n")
        print(f"wrote {out}")
    else:
        write_section(name, section)


def write_section(name: str, section: str) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in
    docs/benchmarks.md with ``section`` (markers added), or append it; other sections are kept."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = f"{start}\n{section.strip()}\n{end}"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if start in text and end in text:
        text = text[: text.index(start)] + body + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC}")
