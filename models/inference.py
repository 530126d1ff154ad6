"""Sliding-window inference, organ post-processing and prediction writing.

As the official ``validation.py``: MONAI ``sliding_window_inference`` with roi = crop size,
Gaussian blending, overlap 0.75, argmax; then (optionally) the organ post-processing of
:mod:`models.postprocess` (tumor kept only within ``ORGAN_MARGIN_MM`` of the given organ mask,
the paper's pseudo-label step, else of the predicted organ).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from models.backbones import build_backbone
from models.checkpoint import load_checkpoint
from models.config import TrainConfig
from models.postprocess import ORGAN_MARGIN_MM, keep_main_components, postprocess  # noqa: F401 (re-export)
from models.volumes import read_nifti, write_labels_atomic


def build_model(config: TrainConfig) -> torch.nn.Module:
    """The backbone a config describes (weights untrained)."""
    return build_backbone(config.backbone, config.size, config.crop_size, config.spacing,
                          deep_supervision=config.deep_supervision)


def load_model(ckpt_path: str | os.PathLike, device="cpu") -> tuple[torch.nn.Module, TrainConfig]:
    """Rebuild the network of ``best.pt``/``last.pt`` on ``device`` in eval mode."""
    state = load_checkpoint(ckpt_path)
    config = TrainConfig.from_dict(state["config"])
    model = build_model(config)
    model.load_state_dict(state["model"])
    return model.to(torch.device(device)).eval(), config


def window(ct_hu: np.ndarray, window_hu: Sequence[float]) -> np.ndarray:
    """HU -> [0, 1] (clipped), float32."""
    low, high = window_hu
    return np.clip((np.asarray(ct_hu, dtype=np.float32) - low) / (high - low), 0.0, 1.0)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when enabled; a no-op context elsewhere (AMP only on CUDA)."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict_volume(model: torch.nn.Module, ct_hu: np.ndarray, config: TrainConfig, device,
                   overlap: float = 0.75) -> np.ndarray:
    """Segment one CT.

    Args:
        ct_hu: (X, Y, Z) CT in HU.
        overlap: sliding-window overlap fraction.

    Returns:
        (X, Y, Z) uint8 argmax labels 0/1/2.
    """
    from monai.inferers import sliding_window_inference

    device = torch.device(device)
    image = torch.from_numpy(window(ct_hu, config.window))[None, None].to(device)
    was_training = model.training
    model.eval()
    with autocast(device, config.amp):
        logits = sliding_window_inference(image, roi_size=config.crop_size, sw_batch_size=2, predictor=model,
                                          overlap=overlap, mode="gaussian")
    model.train(was_training)
    return torch.argmax(logits, dim=1)[0].to(torch.uint8).cpu().numpy()


def _organ_mask_for(case_id: str, organ_masks: Mapping | None) -> np.ndarray | None:
    if organ_masks is None or case_id not in organ_masks:
        return None
    mask = organ_masks[case_id]
    if isinstance(mask, (str, os.PathLike)):
        mask = np.asarray(read_nifti(mask, f"organ mask of case {case_id}").dataobj)
    return np.asarray(mask) > 0


def predict_items(ckpt_path, items, out_dir, *, device="cpu", overlap: float = 0.75,
                  organ_postprocess: bool = True, organ_masks: Mapping | None = None,
                  margin_mm: float = ORGAN_MARGIN_MM, progress: bool = True) -> list[Path]:
    """Predict every item and write ``out_dir/<case_id>.nii.gz`` (uint8 0/1/2, the CT's affine).

    Args:
        items: dicts with ``case_id`` and ``image`` (CT NIfTI path, HU).
        organ_masks: optional ``case_id -> organ mask`` (NIfTI path or array on the CT grid),
            used instead of the predicted organ by the post-processing (the target organ).
        margin_mm: see `models.postprocess.postprocess`.

    Returns:
        The written paths, in item order.
    """
    from tqdm.auto import tqdm

    model, config = load_model(ckpt_path, device)
    paths = []
    for item in tqdm(list(items), desc="predicting", disable=not progress):
        case_id = str(item["case_id"])
        image = read_nifti(item["image"], f"CT of case {case_id}")
        labels = predict_volume(model, image.get_fdata(dtype=np.float32), config, device, overlap)
        if organ_postprocess:
            spacing = [float(z) for z in image.header.get_zooms()[:3]]
            labels = postprocess(labels, spacing, _organ_mask_for(case_id, organ_masks), margin_mm)
        paths.append(write_labels_atomic(labels, image, Path(out_dir) / f"{case_id}.nii.gz"))
    return paths
