import os

# Keep test runs light on the 2-core CI machine and independent of the user's MLflow store.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
