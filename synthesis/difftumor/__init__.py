"""DiffTumor: 3D VQGAN autoencoder + latent diffusion inpainting of tumors in CT crops.

Modules: ``config`` (frozen configs + presets), ``codebook`` / ``autoencoder`` /
``discriminator`` / ``losses`` (stage 1), ``denoiser`` (MONAI U-Net, builders, stage 2),
``schedules`` (the official cosine schedules, DDPM and DDIM samplers), ``official`` (the published
architectures and the converter of the published weights),
``pipeline`` (batched inpainting of crops), ``generator`` (the TumorGenerator), ``crops``
(training crops from item dicts), ``checkpoint`` (files on disk), ``train_autoencoder`` and
``train_diffusion`` (resumable training loops). Heavy imports (torch, MONAI) live in the
modules, not here.
"""
