"""Re-export of :mod:`tumorbench_common.io` (its home); kept so ``benchmark.io`` imports work."""
from tumorbench_common.io import (  # noqa: F401
    atomic_dir, atomic_path, atomic_write, copy_atomic, load_nifti, read_json, save_figure_atomic,
    save_nifti_atomic, write_bytes_atomic, write_json_atomic, write_text_atomic,
)
