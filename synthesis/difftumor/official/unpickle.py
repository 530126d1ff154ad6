"""Reading the published Lightning ``AutoencoderModel.ckpt`` without running its pickle.

The file pickles an omegaconf ``DictConfig`` (the training config), so ``torch.load(weights_only=
True)`` refuses it and ``weights_only=False`` would import omegaconf and run whatever the pickle
names. This unpickler is the relaxed load, used only by the converter: it builds tensors and
plain containers, and replaces every other class the pickle names by an inert stand-in that only
stores its state (nothing is imported or called). The weights are then checked key by key.
"""
from __future__ import annotations

import builtins
import collections
import pickle
import types
from pathlib import Path
from typing import Any

import torch

_SAFE = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "Counter"): collections.Counter,
    ("collections", "defaultdict"): collections.defaultdict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): torch._tensor._rebuild_from_type_v2,
    ("torch", "Tensor"): torch.Tensor,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("torch", "Size"): torch.Size,
    **{("builtins", name): getattr(builtins, name)
       for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "bool", "str", "bytes", "complex")},
}


class InertObject:
    """Stand-in for a class the pickle names: accepts any arguments and state, does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args, self._kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self._state = state

    def __call__(self, *args: Any, **kwargs: Any) -> "InertObject":
        return InertObject(*args, **kwargs)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE:
            return _SAFE[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module == "builtins" and name == "long":  # python 2 / old pickles
            return int
        return type(name, (InertObject,), {"__module__": f"inert.{module}"})


_PICKLE_MODULE = types.SimpleNamespace(Unpickler=_Unpickler, load=lambda f, **kw: _Unpickler(f, **kw).load(),
                                       __name__="tumorbench_inert_pickle")


def load_relaxed(path: str | Path) -> Any:
    """The unpickled checkpoint with tensors on the CPU and inert stand-ins for foreign classes."""
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_PICKLE_MODULE)


def plain_config(node: Any) -> Any:
    """An unpickled omegaconf config (inert stand-ins) as plain dicts, lists and values; other
    objects are returned as they are."""
    state = getattr(node, "_state", None)
    if isinstance(node, InertObject) and isinstance(state, dict):
        if "_val" in state:
            return plain_config(state["_val"])
        content = state.get("_content")
        if isinstance(content, dict):
            return {key: plain_config(value) for key, value in content.items()}
        if isinstance(content, list):
            return [plain_config(value) for value in content]
    if isinstance(node, dict):
        return {key: plain_config(value) for key, value in node.items()}
    return node
