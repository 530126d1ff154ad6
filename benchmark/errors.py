"""Re-export of :mod:`tumorbench_common.errors` (its home); kept so ``benchmark.errors`` imports work."""
from tumorbench_common.errors import InputError

__all__ = ["InputError"]
