"""Name -> generator class, imported lazily (DiffTumor pulls in torch/MONAI)."""
from __future__ import annotations

from importlib import import_module
from typing import Any

from synthesis.protocol import TumorGenerator

GENERATORS = {
    "hu": "synthesis.hu:HuGenerator",
    "difftumor": "synthesis.difftumor.generator:DiffTumorGenerator",
}


def make_generator(name: str, organ: str, **kwargs: Any) -> TumorGenerator:
    """Build generator ``name`` for ``organ``; kwargs go to its constructor
    (e.g. ``device``, ``checkpoint``, ``size_probs``)."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; expected one of {sorted(GENERATORS)}")
    module_name, class_name = GENERATORS[name].split(":")
    cls = getattr(import_module(module_name), class_name)
    return cls(organ=organ, **kwargs)
