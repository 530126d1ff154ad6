"""Where runs are tracked when nothing says otherwise: the one default MLflow store of the project,
shared by the runner (writes) and the report (reads), so both find the same runs."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"  # relative to the current directory


def resolve_tracking_uri(uri: str | None = None) -> str:
    """``uri`` > $MLFLOW_TRACKING_URI > :data:`DEFAULT_TRACKING_URI` made absolute (so a later
    ``chdir`` still finds the same store)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path.cwd().resolve() / DEFAULT_TRACKING_URI[len('sqlite:///'):]}"
