"""gemmap: mapping and scheduling simulator for Gemmini-like systolic-array accelerators."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gemmap")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
