"""TumorBench orchestration: datasets, grids, runner, metrics and the CLI."""
__version__ = "0.1.0"
