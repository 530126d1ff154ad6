"""Canonical dataset layout, phantom generator, importers, integrity check, splits, summary.

Heavy submodules (nibabel, scipy) load lazily on first attribute access so importing
``benchmark.data`` for ``Dataset`` stays cheap.
"""
from importlib import import_module

from benchmark.data.layout import Dataset

_LAZY = {
    "generate_phantom_dataset": "benchmark.data.phantom",
    "import_dataset": "benchmark.data.importers",
    "check_dataset": "benchmark.data.check",
    "ensure_valid": "benchmark.data.check",
    "make_splits": "benchmark.data.splits",
    "summarize_dataset": "benchmark.data.summary",
}

__all__ = ["Dataset", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'benchmark.data' has no attribute {name!r}")
