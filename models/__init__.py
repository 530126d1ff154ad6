"""Segmentation backbones, trainer and sliding-window inference (imports only `synthesis`)."""
