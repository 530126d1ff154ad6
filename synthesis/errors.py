"""Errors raised for bad synthesis input (the CLI turns them into one clear message)."""


class SynthesisInputError(ValueError):
    """The CT / organ mask / params cannot be used for synthesis (message says which and why)."""


class OrganTooSmallError(SynthesisInputError):
    """The organ (part of the crop) cannot hold a tumor of the drawn size type; a smaller size type
    may fit (``sizes.sample_with_size_fallback`` retries with one). An empty organ is not this."""
