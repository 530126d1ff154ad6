"""The published DiffTumor architectures, written from the facts in
``shared/reference/difftumor_official`` (the official code is CC BY-NC-ND; none of it is here).

``autoencoder`` (the VQGAN's inference parts + our EMA codebook), ``denoiser`` (the pseudo-3D
video U-Net ``Unet3D``), ``attention`` (its attention blocks), ``convert`` (published files ->
a TumorBench checkpoint folder). Parameter names equal the official state-dict keys, so the
published weights load one to one. The models take our (B, C, X, Y, Z) layout and run depth
first (B, C, Z, X, Y) inside, as the official code does after its permute.
"""
