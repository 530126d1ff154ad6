"""Cellular-automaton tumor growth (Pixel2Cancer, Lai et al. MICCAI 2024), re-implemented on the CPU.

Only the factory lives here so listing generators does not compile anything; the generator is
in `synthesis.cellular.generator`.
"""
from __future__ import annotations

from typing import Any, Mapping

from synthesis.registry import tumor_generator


@tumor_generator(
    display_name="Pixel2Cancer cellular automaton (MICCAI 2024)",
    licence="method: Pixel2Cancer (Apache-2.0 code, not used); this re-implementation: Apache-2.0",
    replayable=True, devices=("cpu",),
    description=("tumor growth, invasion and necrosis by a 3x3x3 cellular automaton in the organ, "
                 "states mapped to HU with a Hu et al. texture (numba on the CPU, no weights)"),
    kwargs={"size_probs": ("size-type probabilities (tiny/small/medium/large/early); default: the released "
                           "uniform step range (liver 5-149, pancreas and kidney 5-79 steps)"),
            "variant": "'paper' (density gate 1/0.3/0.1, uniform 3x3x3 neighbourhood; default) or 'released' "
                       "(the released code's always-open gate and index-27 neighbour quirk)"})
def make_cellular(organ: str, *, size_probs: Mapping[str, float] | None = None, variant: str = "paper") -> Any:
    from synthesis.cellular.generator import CellularGenerator

    return CellularGenerator(organ, size_probs=size_probs, variant=variant)
