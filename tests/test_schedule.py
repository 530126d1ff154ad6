"""The lr schedule (MONAI WarmupCosineSchedule) equals the closed form the trainer always used."""
import math

import pytest
import torch

from models.schedule import make_scheduler


def _closed_form(epoch: int, warmup: int, total: int) -> float:
    start = 1.0 / (warmup + 1) if warmup else 1.0
    if warmup > 0 and epoch < warmup:
        return start + (1.0 - start) * epoch / warmup
    t = min(max(epoch - warmup, 0) / max(total - warmup, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * t))


def _lrs(scheduler, optimizer, n: int) -> list[float]:
    out = []
    for _ in range(n):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


@pytest.mark.parametrize("warmup,total", [(0, 1), (0, 10), (1, 4), (5, 30), (10, 300), (3, 3)])
def test_lr_per_epoch_equals_warmup_cosine_closed_form(warmup, total):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    lrs = _lrs(make_scheduler(optimizer, warmup, total), optimizer, total + 1)
    assert lrs == pytest.approx([0.01 * _closed_form(e, warmup, total) for e in range(total + 1)], abs=1e-12)


def test_resumed_scheduler_continues_where_it_stopped():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_scheduler(optimizer, 5, 20)
    _lrs(scheduler, optimizer, 8)
    state = scheduler.state_dict()
    fresh_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    fresh = make_scheduler(fresh_opt, 5, 20)
    fresh.load_state_dict(state)
    fresh_opt.param_groups[0]["lr"] = optimizer.param_groups[0]["lr"]
    assert _lrs(fresh, fresh_opt, 5) == pytest.approx([_closed_form(e, 5, 20) for e in range(8, 13)], abs=1e-12)


def test_checkpoint_of_the_former_lambda_scheduler_resumes():
    """last.pt files written before the switch hold a LambdaLR state; they load and continue."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    old = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: _closed_form(e, 5, 20))
    _lrs(old, optimizer, 8)
    fresh_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    fresh = make_scheduler(fresh_opt, 5, 20)
    fresh.load_state_dict(old.state_dict())
    fresh_opt.param_groups[0]["lr"] = optimizer.param_groups[0]["lr"]
    assert _lrs(fresh, fresh_opt, 5) == pytest.approx([_closed_form(e, 5, 20) for e in range(8, 13)], abs=1e-12)
