"""A stand-in for a process killed mid-run (resume tests)."""


class Killed(Exception):
    """Raised by :func:`kill_at`; no trainer catches it."""


def kill_at(step: int):
    """A ``log_metrics(metrics, step)`` callback that raises :class:`Killed` when logging ``step``
    (an epoch for models/, a step for the DiffTumor trainers)."""

    def log_metrics(metrics, at):
        if at == step:
            raise Killed

    return log_metrics
