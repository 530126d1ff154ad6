"""Tumor generators by name, discovered through the ``tumorbench.generators`` entry-point group.

Every generator, built-in or third-party, is an entry point whose object is a *factory*
``factory(organ: str, **kwargs) -> TumorGenerator`` carrying a ``metadata`` attribute
(`GeneratorMetadata`, or a dict with its fields; `tumor_generator` attaches one). A package
registers one in its ``pyproject.toml``::

    [project.entry-points."tumorbench.generators"]
    my_method = "my_package.generator:make_my_method"

Built-ins (hu, difftumor, cellular) are registered the same way in TumorBench's own
pyproject.toml; `BUILTIN` repeats them so a source checkout whose installed metadata predates
them (``pip install -e .`` not re-run) still finds them. Loading an entry point imports only the
factory's module: factories import heavy packages (torch) when called, not at import.

The harness passes ``device``, ``size_probs`` and ``checkpoint`` to every generator it builds
(`HARNESS_KWARGS`); a factory that does not take one of them simply does not get it. Other
kwargs come from the user (``[generators.NAME]`` in a grid) and must be parameters of the factory.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field, fields
from importlib import import_module, metadata as importlib_metadata
from typing import Any, Callable, Mapping

from synthesis.errors import SynthesisInputError
from synthesis.protocol import TumorGenerator

GROUP = "tumorbench.generators"
#: name -> "module:attribute" of the built-in factories (also in pyproject.toml; a test checks they agree)
BUILTIN = {
    "hu": "synthesis.builtins:hu",
    "difftumor": "synthesis.builtins:difftumor",
    "cellular": "synthesis.cellular:make_cellular",
}
HARNESS_KWARGS = ("device", "size_probs", "checkpoint")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class GeneratorMetadata:
    """What a user must know before benchmarking a generator.

    Attributes:
        display_name: name for tables and legends, e.g. "Hu et al. (CVPR 2023)".
        licence: licence of the method's code and weights (SPDX id or a short phrase).
        needs_weights: True when the generator cannot run without trained weights (``checkpoint``).
        weights_source: where users get or how they train those weights ("" when none are needed).
        replayable: True when every ``SynthesisOutput.params`` entry replays its tumor exactly
            (the generator has ``replay(ct, organ_mask, params) -> (ct, mask)``).
        devices: where it runs: subset of ("cpu", "cuda").
        description: one line on the method.
        kwargs: factory keyword -> one-line description (shown by ``tumorbench generators show``).
    """

    display_name: str
    licence: str
    needs_weights: bool = False
    weights_source: str = ""
    replayable: bool = False
    devices: tuple[str, ...] = ("cpu",)
    description: str = ""
    kwargs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.display_name, str) or not self.display_name.strip():
            raise SynthesisInputError("generator metadata: 'display_name' must be a non-empty string")
        if not isinstance(self.licence, str) or not self.licence.strip():
            raise SynthesisInputError("generator metadata: 'licence' must be a non-empty string")
        devices = tuple(self.devices)
        if not devices or any(d not in DEVICES for d in devices):
            raise SynthesisInputError(f"generator metadata: 'devices' {devices!r}: expected a subset of {DEVICES}")
        if self.needs_weights and not self.weights_source:
            raise SynthesisInputError("generator metadata: 'needs_weights' is true but 'weights_source' is empty")
        object.__setattr__(self, "devices", devices)
        object.__setattr__(self, "kwargs", dict(self.kwargs))

    @classmethod
    def coerce(cls, value: Any) -> "GeneratorMetadata":
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {f.name for f in fields(cls)}
            if unknown:
                raise SynthesisInputError(f"generator metadata: unknown fields {sorted(unknown)}")
            return cls(**value)
        raise SynthesisInputError("generator factory has no 'metadata' (use synthesis.registry.tumor_generator)")


def tumor_generator(**metadata: Any) -> Callable[[Callable], Callable]:
    """Decorator attaching `GeneratorMetadata` (keyword fields) to a factory function."""
    info = GeneratorMetadata(**metadata)

    def attach(factory: Callable) -> Callable:
        factory.metadata = info
        return factory

    return attach


@dataclass(frozen=True)
class GeneratorEntry:
    """A registered generator: its name, where it comes from, and (once loaded) its factory."""

    name: str
    target: str  # "module:attribute"
    distribution: str  # the installed package that registers it ("tumorbench (built-in)" for fallbacks)

    def load(self) -> Callable[..., TumorGenerator]:
        module_name, _, attribute = self.target.partition(":")
        try:
            factory = import_module(module_name)
            for part in attribute.split("."):
                factory = getattr(factory, part)
        except (ImportError, AttributeError) as exc:
            raise SynthesisInputError(f"generator {self.name!r} ({self.target}, from {self.distribution}): "
                                      f"cannot load its factory ({exc})") from exc
        if not callable(factory):
            raise SynthesisInputError(f"generator {self.name!r} ({self.target}): not callable")
        return factory

    def metadata(self) -> GeneratorMetadata:
        try:
            return GeneratorMetadata.coerce(getattr(self.load(), "metadata", None))
        except SynthesisInputError as exc:
            raise SynthesisInputError(f"generator {self.name!r} ({self.target}): {exc}") from exc


def entries() -> dict[str, GeneratorEntry]:
    """All registered generators by name (entry points, then built-ins missing from stale metadata).

    Read on every call (cheap), so a package installed while Python runs is seen.
    """
    found: dict[str, GeneratorEntry] = {}
    for point in importlib_metadata.entry_points(group=GROUP):
        dist = getattr(point, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        if point.name in found and found[point.name].target != point.value:
            raise SynthesisInputError(f"generator {point.name!r} is registered twice: {found[point.name].target} "
                                      f"({found[point.name].distribution}) and {point.value} ({dist_name})")
        found.setdefault(point.name, GeneratorEntry(point.name, point.value, dist_name))
    for name, target in BUILTIN.items():
        found.setdefault(name, GeneratorEntry(name, target, "tumorbench (built-in)"))
    return dict(sorted(found.items()))


def registered_names() -> list[str]:
    return list(entries())


def get_entry(name: str) -> GeneratorEntry:
    table = entries()
    if name not in table:
        raise SynthesisInputError(f"unknown generator {name!r}; registered generators: {', '.join(table)}")
    return table[name]


def factory_kwargs(factory: Callable) -> dict[str, Any]:
    """Keyword parameters of a factory (besides ``organ``) -> default (``inspect.Parameter.empty``
    when required); ``{"**": ...}`` marks a factory that takes any keyword."""
    out: dict[str, Any] = {}
    for param in inspect.signature(factory).parameters.values():
        if param.kind is param.VAR_KEYWORD:
            out["**"] = param.empty
        elif param.name != "organ" and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
            out[param.name] = param.default
    return out


def check_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """Raise when ``kwargs`` (user kwargs, e.g. a grid's ``[generators.NAME]``) are not parameters
    of generator ``name``'s factory. Also loads the factory, so a broken plug-in fails here."""
    accepted = factory_kwargs(get_entry(name).load())
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown and "**" not in accepted:
        raise SynthesisInputError(f"generator {name!r} takes no keyword {', '.join(map(repr, unknown))}; "
                                  f"it takes {', '.join(k for k in accepted) or 'none'}")


def make_generator(name: str, organ: str, **kwargs: Any) -> TumorGenerator:
    """Build generator ``name`` for ``organ``. Harness kwargs (`HARNESS_KWARGS`) the factory does
    not take are dropped when they ask for nothing (``device``, or None); asking a generator for
    size types or weights it cannot take is an error. Other kwargs go to the factory."""
    factory = get_entry(name).load()
    accepted = factory_kwargs(factory)
    if "**" not in accepted:
        refused = [k for k in HARNESS_KWARGS if k in kwargs and k not in accepted and k != "device"
                   and kwargs[k] is not None]
        if refused:
            raise SynthesisInputError(f"generator {name!r} does not take {', '.join(refused)} "
                                      f"(it takes {', '.join(accepted) or 'no keyword'})")
        kwargs = {k: v for k, v in kwargs.items() if k in accepted or k not in HARNESS_KWARGS}
    check_kwargs(name, {k: v for k, v in kwargs.items() if k not in HARNESS_KWARGS})
    return factory(organ=organ, **kwargs)


def describe(name: str) -> dict[str, Any]:
    """Metadata, origin and keyword arguments (with defaults) of generator ``name``."""
    entry = get_entry(name)
    info = entry.metadata()
    params = factory_kwargs(entry.load())
    kwargs = {key: {"default": None if default is inspect.Parameter.empty else repr(default),
                    "help": info.kwargs.get(key, "")}
              for key, default in params.items() if key != "**"}
    for key, text in info.kwargs.items():  # documented kwargs a **kwargs factory forwards
        kwargs.setdefault(key, {"default": None, "help": text})
    return {"name": name, "entry_point": entry.target, "distribution": entry.distribution,
            "display_name": info.display_name, "licence": info.licence, "needs_weights": info.needs_weights,
            "weights_source": info.weights_source, "replayable": info.replayable, "devices": list(info.devices),
            "description": info.description, "kwargs": kwargs}


def describe_all() -> list[dict[str, Any]]:
    """`describe` of every registered generator; a broken one gets an ``error`` entry instead."""
    rows = []
    for name, entry in entries().items():
        try:
            rows.append(describe(name))
        except SynthesisInputError as exc:
            rows.append({"name": name, "entry_point": entry.target, "distribution": entry.distribution,
                         "error": str(exc)})
    return rows
