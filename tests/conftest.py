"""Shared fixtures and strategies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from gemmap.arch import load_arch

ROOT = Path(__file__).resolve().parent.parent

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def gemmini():
    return load_arch(ROOT / "arch" / "gemmini.yaml")


@pytest.fixture(scope="session")
def firesim_arch():
    return load_arch(ROOT / "arch" / "gemmini-firesim.yaml")


@pytest.fixture(scope="session")
def transformer_arch():
    return load_arch(ROOT / "arch" / "gemmini-transformer.yaml")
