"""TumorBench orchestration: datasets, grids, runner, metrics and the CLI."""
from importlib.metadata import PackageNotFoundError, version

try:  # the one version string is pyproject.toml's, read from the installed package's metadata
    __version__ = version("tumorbench")
except PackageNotFoundError:  # a source tree on PYTHONPATH that was never pip-installed
    __version__ = "0+unknown"
