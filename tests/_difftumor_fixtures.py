"""Small synthetic CT cases for the DiffTumor tests: a bright ellipsoid organ with dark round tumors.

Arrays are in HU at 2 mm spacing; small enough for second-scale training steps.
"""
from __future__ import annotations

import numpy as np

ORGAN_HU, TUMOR_HU, FAT_HU = 120.0, 0.0, -100.0
SPACING = (2.0, 2.0, 2.0)


def make_case(seed: int, shape=(48, 48, 48), tumor_radii=(3, 4, 7)) -> tuple[np.ndarray, np.ndarray]:
    """(ct HU float32, labels uint8 0/1/2) with an ellipsoid organ and spherical tumors inside."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij"))
    center = np.array(shape, dtype=np.float32)[:, None, None, None] / 2
    radii = np.array([s * 0.38 for s in shape], dtype=np.float32)[:, None, None, None]
    organ = (((grid - center) / radii) ** 2).sum(0) <= 1.0
    label = organ.astype(np.uint8)
    ct = np.full(shape, FAT_HU, np.float32)
    ct[organ] = ORGAN_HU
    coords = np.argwhere(organ)
    for radius in tumor_radii:
        for _ in range(50):
            c = coords[rng.integers(len(coords))]
            ball = ((grid - c[:, None, None, None]) ** 2).sum(0) <= radius ** 2
            if (organ[ball]).all():
                break
        ct[ball] = TUMOR_HU
        label[ball] = 2
    ct += rng.normal(0.0, 8.0, shape).astype(np.float32)
    return ct, label


def make_items(n: int = 4, seed: int = 0, **kwargs) -> list[dict]:
    """Training items with in-memory arrays (``image``/``label`` arrays + ``spacing``)."""
    items = []
    for index in range(n):
        ct, label = make_case(seed + index, **kwargs)
        items.append({"case_id": f"case{index}", "image": ct, "label": label, "healthy": False,
                      "age": None, "sex": None, "spacing": SPACING})
    return items



def write_dataset(root, n: int = 4, shape=(40, 40, 40), spacing=SPACING, organ: str = "liver"):
    """Canonical dataset folder: n-1 labeled cases with tumors + 1 healthy case; returns ``root``."""
    import json

    import nibabel as nib

    rows = ["case_id,age,sex,has_tumor,role,source"]
    affine = np.diag([*spacing, 1.0])
    for index in range(n):
        healthy = index == n - 1
        ct, label = make_case(index, shape=shape, tumor_radii=() if healthy else (3, 7))
        case_dir = root / "cases" / f"c{index}"
        case_dir.mkdir(parents=True)
        nib.save(nib.Nifti1Image(ct, affine), case_dir / "ct.nii.gz")
        nib.save(nib.Nifti1Image(label, affine), case_dir / "labels.nii.gz")
        rows.append(f"c{index},60,F,{int(not healthy)},{'healthy' if healthy else 'labeled'},phantom")
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    (root / "dataset.json").write_text(json.dumps({
        "name": "mini", "organ": organ, "labels": {"background": 0, "organ": 1, "tumor": 2},
        "spacing": list(spacing), "source_format": "phantom", "num_cases": n}))
    return root


def untrained_generator(organ: str = "kidney", crop: int = 16, model_spacing=SPACING, **kwargs):
    """A DiffTumorGenerator on randomly initialised tiny models (seeded; no training, ~0.1 s a
    crop): its tumors are noise, but where it writes them is the generator's real code path."""
    import torch

    from synthesis.difftumor import config as cfg
    from synthesis.difftumor.checkpoint import build_autoencoder
    from synthesis.difftumor.denoiser import build_denoiser, build_scheduler
    from synthesis.difftumor.generator import DiffTumorGenerator
    from synthesis.difftumor.pipeline import DiffTumorPipeline

    torch.manual_seed(0)  # test fixture: fixed weights
    autoencoder = build_autoencoder(cfg.AutoencoderConfig(channels=(8, 16, 16), num_codes=32, decoder_res_blocks=1,
                                                          norm_groups=4))
    denoiser = build_denoiser(cfg.DenoiserConfig(channels=(16, 32), attention_levels=(False, False),
                                                 num_res_blocks=1, norm_groups=8, num_head_channels=16))
    pipeline = DiffTumorPipeline(autoencoder, denoiser, build_scheduler(cfg.scheduler_for_stage("early")))
    probs = kwargs.pop("size_probs", {"tiny": 0.0, "small": 1.0, "medium": 0.0, "large": 0.0})
    return DiffTumorGenerator(organ, pipelines={"early": pipeline}, crop_size=(crop,) * 3,
                              model_spacing=model_spacing, size_probs=probs, **kwargs)
