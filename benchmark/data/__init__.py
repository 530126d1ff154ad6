"""Canonical dataset layout, phantom generator, importers and integrity checks."""
from benchmark.data.layout import Dataset

__all__ = ["Dataset"]
