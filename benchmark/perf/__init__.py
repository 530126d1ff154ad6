"""Benchmarks behind `tumorbench perf <what>`: each module has add_arguments(parser) and run(args)."""
PERF_MODULES = {
    "hu": "Hu synthesis: ms per tumor and size type on a 1 mm 366x303x336 CT (vs the reference)",
    "nsd": "NSD at 2 mm: ours vs DeepMind surface-distance vs MONAI on a liver-size pair",
    "sampling": "DiffTumor sampling throughput (crops/s), 4-step early and 50-step DDIM",
    "train": "training iterations/s with and without on-the-fly synthesis",
    "cellular": "cellular-automaton synthesis: ms per tumor on a 1 mm 366x303x336 CT, next to Hu in the same run",
    "data": "training data path: peak RSS and crops/s, float32 in RAM vs the memory-mapped int16 cache; "
            "--regime R: crops/s per worker core with on-the-fly synthesis and the workers a GPU needs",
    "resample": "CT + labels to 1 mm: ours (scipy) vs MONAI Spacing, seconds, peak memory and differences",
    "crops": "pos/neg crop centres on a memory-mapped 1 mm CT: ours vs MONAI's index lists (RandCropByPosNegLabeld)",
}
