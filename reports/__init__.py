"""Reports read MLflow runs and result files; they never load a segmentation model."""
