"""DiffTumor: 3D VQGAN autoencoder + latent diffusion inpainting of tumors in CT crops.

Modules: ``config`` (frozen configs + presets), ``codebook`` / ``autoencoder`` /
``discriminator`` / ``losses`` (stage 1), ``denoiser`` (MONAI U-Net + schedulers, stage 2),
``pipeline`` (batched inpainting of crops), ``generator`` (the TumorGenerator), ``crops``
(training crops from item dicts), ``checkpoint`` (files on disk), ``train_autoencoder`` and
``train_diffusion`` (resumable training loops). Heavy imports (torch, MONAI) live in the
modules, not here.
"""
