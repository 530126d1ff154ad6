"""Tumor generators (Hu et al. model-based, DiffTumor, cellular automaton; plug-ins via synthesis.registry).
Stand-alone: imports no other project package."""
from synthesis.protocol import SynthesisOutput, TumorGenerator

__all__ = ["SynthesisOutput", "TumorGenerator"]
