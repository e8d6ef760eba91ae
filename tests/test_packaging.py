"""A built wheel carries the architecture and workload files: an installed gemmap runs from any
directory, with the shipped files found by path or by name."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytest.importorskip("wheel")  # the test extra installs it; building the wheel offline needs it


def test_wheel_ships_the_yaml_and_runs_outside_the_checkout(tmp_path: Path):
    dist = tmp_path / "dist"
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(ROOT),
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(dist),
    ]
    subprocess.run(build, check=True, cwd=tmp_path, capture_output=True, timeout=300)
    (whl,) = dist.glob("gemmap-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    for f in (
        "gemmap/data/arch/gemmini.yaml",
        "gemmap/data/arch/gemmini-firesim.yaml",
        "gemmap/data/workloads/bert.yaml",
    ):
        assert f in names, f
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(whl)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    run = tmp_path / "elsewhere"  # no arch/ or workloads/ here
    run.mkdir()
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import gemmap; assert gemmap.__file__.startswith(sys.argv[1]);"
        "from gemmap.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    for args in (
        ["map", "bert-tiny", "--search", "heuristic"],
        ["map", "workloads/bert-tiny.yaml", "--arch", "gemmini-transformer", "--search", "heuristic"],
    ):
        r = subprocess.run([sys.executable, "-c", code, str(site), *args], cwd=run, capture_output=True, text=True,
                           timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "bert-tiny" in r.stdout
    for args, expect in ((["--version"], "gemmap "), (["list"], "llama3-8b")):
        r = subprocess.run([sys.executable, "-c", code, str(site), *args], cwd=run, capture_output=True, text=True,
                           timeout=300)  # fmt: skip
        assert r.returncode == 0 and expect in r.stdout, r.stderr
