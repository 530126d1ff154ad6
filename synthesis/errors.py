"""Errors raised for bad synthesis input (the CLI turns them into one clear message)."""


class SynthesisInputError(ValueError):
    """The CT / organ mask / params cannot be used for synthesis (message says which and why)."""
