"""DirectStep: the fused Adam kernel called directly must leave exactly what torch's own
``Adam(fused=True).step()`` leaves (parameters and optimizer state, bit for bit), and fall back
to ``optimizer.step()`` wherever its shortcut would not be that call."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest
import torch

from polytask.training.direct_step import DirectStep


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in ((5, 3), (3,), (4, 5), (4,))]


def _grads(step: int, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    return [torch.randn(p.shape, generator=g) for p in params]


def _pair(make: Callable[[list[Any]], torch.optim.Optimizer], groups: Callable[[list[torch.nn.Parameter]], list[Any]]):
    ours_p, ref_p = _params(), _params()
    return ours_p, make(groups(ours_p)), ref_p, make(groups(ref_p))


def _run(ours_p, ours, ref_p, ref, steps: int, before: Callable[[int, Any, Any], None] | None = None,
         grad_for: Callable[[int, int], bool] = lambda step, i: True) -> DirectStep:
    direct = DirectStep(ours)
    for step in range(steps):
        if before is not None:
            before(step, ours, ref)
        direct.zero_grad()
        ref.zero_grad(set_to_none=True)
        for i, (a, b, g) in enumerate(zip(ours_p, ref_p, _grads(step, ours_p))):
            if grad_for(step, i):
                a.grad, b.grad = g.clone(), g.clone()
        direct.step()
        ref.step()
    return direct


def _assert_same(ours_p, ours, ref_p, ref) -> None:
    for a, b in zip(ours_p, ref_p):
        assert torch.equal(a, b)
    sa, sb = ours.state_dict(), ref.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for k in sa["state"]:
        for name, value in sa["state"][k].items():
            other = sb["state"][k][name]
            assert value.dtype == other.dtype and value.device == other.device and torch.equal(value, other), (k, name)


def _one_group(ps: list[torch.nn.Parameter]) -> list[Any]:
    return [{"params": ps}]


def _two_groups(ps: list[torch.nn.Parameter]) -> list[Any]:
    return [{"params": ps[:2], "lr": 3e-3}, {"params": ps[2:], "lr": 1e-3, "weight_decay": 0.1}]


@pytest.mark.parametrize("make", [
    lambda g: torch.optim.Adam(g, lr=1e-2, fused=True),
    lambda g: torch.optim.Adam(g, lr=1e-2, weight_decay=0.05, amsgrad=True, fused=True),
    lambda g: torch.optim.Adam(g, lr=1e-2, betas=(0.8, 0.9), eps=1e-6, maximize=True, fused=True),
    lambda g: torch.optim.AdamW(g, lr=1e-2, weight_decay=0.2, fused=True),
    lambda g: torch.optim.AdamW(g, lr=1e-2, amsgrad=True, fused=True),
], ids=["adam", "adam-l2-amsgrad", "adam-betas-maximize", "adamw", "adamw-amsgrad"])
@pytest.mark.parametrize("groups", [_one_group, _two_groups], ids=["one-group", "two-groups"])
def test_the_direct_step_is_torchs_fused_step_bit_for_bit(make, groups) -> None:
    ours_p, ours, ref_p, ref = _pair(make, groups)

    def schedule(step: int, a: Any, b: Any) -> None:  # what an lr scheduler does: edit lr in place
        if step == 7:
            for ga, gb in zip(a.param_groups, b.param_groups):
                ga["lr"] = gb["lr"] = ga["lr"] * 0.5

    _run(ours_p, ours, ref_p, ref, 15, before=schedule)
    _assert_same(ours_p, ours, ref_p, ref)


def test_optimizer_step_is_never_called_not_even_the_first() -> None:
    """The shortcut is taken from the first step: the state is made as torch's first step makes
    it (the same tensors, dtypes and devices after one step and after six)."""
    ours_p, ours, ref_p, ref = _pair(lambda g: torch.optim.Adam(g, lr=1e-2, amsgrad=True, fused=True), _two_groups)
    calls = []
    plain = ours.step
    ours.step = lambda *a, **k: (calls.append(1), plain(*a, **k))[1]  # type: ignore[method-assign]
    _run(ours_p, ours, ref_p, ref, 1)
    _assert_same(ours_p, ours, ref_p, ref)
    _run(ours_p, ours, ref_p, ref, 5)
    assert calls == []
    _assert_same(ours_p, ours, ref_p, ref)


def test_building_and_training_with_polytasks_optimizers_never_imports_dynamo() -> None:
    """torch.optim imports torch._dynamo on an optimizer's first add_param_group and first
    step() (about 2.5 s of CPU, once per process). A fit with each named optimizer in a fresh
    interpreter leaves it unimported (SGD steps through torch: its step imports it, once)."""
    import subprocess
    import sys

    code = (
        "import sys, polytask as pt\n"
        "from polytask.synthetic import related_tasks\n"
        "frame, names = related_tasks(n_rows=120, n_features=4, n_tasks=2, seed=0)\n"
        "for opt in ('adam', 'adamw'):\n"
        "    pt.fit(frame, names, config=pt.TrainConfig(epochs=2, seed=0, optimizer=opt))\n"
        "    assert 'torch._dynamo' not in sys.modules, opt\n"
        "from polytask.training.optim import SGD\n"
        "import torch\n"
        "SGD([torch.zeros(1, requires_grad=True)], lr=0.1)\n"
        "assert 'torch._dynamo' not in sys.modules, 'SGD built'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_polytasks_optimizers_hold_torchs_groups_and_step_as_torchs() -> None:
    """optim.Adam/AdamW/SGD only build their parameter groups another way: the same groups
    (defaults filled in) and, stepped by torch, the same parameters and state."""
    from polytask.training import optim

    for ours_cls, torch_cls, options in ((optim.Adam, torch.optim.Adam, {"fused": True}),
                                         (optim.AdamW, torch.optim.AdamW, {"weight_decay": 0.1}),
                                         (optim.SGD, torch.optim.SGD, {"momentum": 0.9})):
        ours_p, ours, ref_p, ref = _pair(lambda g: ours_cls(g, lr=1e-2, **options), _two_groups)
        ref = torch_cls(_two_groups(ref_p), lr=1e-2, **options)
        assert ours.state_dict()["param_groups"] == ref.state_dict()["param_groups"]
        for step in range(4):
            for i, (a, b) in enumerate(zip(ours_p, ref_p)):
                g = _grads(step, ours_p)[i]
                a.grad, b.grad = g.clone(), g.clone()
            ours.step()
            ref.step()
        _assert_same(ours_p, ours, ref_p, ref)


def test_a_parameter_without_a_gradient_falls_back_to_torch() -> None:
    """torch skips a parameter whose .grad is None (its state does not advance); so must we."""
    ours_p, ours, ref_p, ref = _pair(lambda g: torch.optim.Adam(g, lr=1e-2, fused=True), _one_group)
    _run(ours_p, ours, ref_p, ref, 10, grad_for=lambda step, i: not (i == 1 and step in (3, 4)))
    assert int(ours.state[ours_p[1]]["step"]) == 8 and int(ours.state[ours_p[0]]["step"]) == 10
    _assert_same(ours_p, ours, ref_p, ref)


def test_a_state_loaded_midway_is_the_state_used() -> None:
    """load_state_dict replaces the state tensors: the cached lists must not keep the old ones."""
    ours_p, ours, ref_p, ref = _pair(lambda g: torch.optim.Adam(g, lr=1e-2, fused=True), _two_groups)
    saved: dict[str, Any] = {}

    def reload(step: int, a: Any, b: Any) -> None:
        if step == 3:
            saved["state"] = copy.deepcopy(b.state_dict())
        if step == 8:
            a.load_state_dict(copy.deepcopy(saved["state"]))  # torch keeps the loaded tensors: one copy each
            b.load_state_dict(copy.deepcopy(saved["state"]))

    _run(ours_p, ours, ref_p, ref, 12, before=reload)
    _assert_same(ours_p, ours, ref_p, ref)


def test_step_hooks_still_run() -> None:
    ours_p, ours, ref_p, ref = _pair(lambda g: torch.optim.Adam(g, lr=1e-2, fused=True), _one_group)
    seen: list[str] = []
    ours.register_step_pre_hook(lambda opt, args, kwargs: seen.append("pre"))
    ours.register_step_post_hook(lambda opt, args, kwargs: seen.append("post"))
    _run(ours_p, ours, ref_p, ref, 4)
    assert seen == ["pre", "post"] * 4
    _assert_same(ours_p, ours, ref_p, ref)


@pytest.mark.parametrize("make", [
    lambda g: torch.optim.SGD(g, lr=1e-2, momentum=0.9),
    lambda g: torch.optim.Adam(g, lr=1e-2),  # the for-loop implementation: not the fused call
    lambda g: torch.optim.Adam(g, lr=torch.tensor(1e-2), fused=True),
], ids=["sgd", "adam-not-fused", "tensor-lr"])
def test_other_optimizers_take_their_own_step(make) -> None:
    ours_p, ours, ref_p, ref = _pair(make, _one_group)
    direct = _run(ours_p, ours, ref_p, ref, 5)
    assert direct._groups is None
    _assert_same(ours_p, ours, ref_p, ref)


def test_zero_grad_clears_every_parameter_including_a_group_added_later() -> None:
    ps = _params()
    opt = torch.optim.Adam([{"params": ps[:2]}], lr=1e-2, fused=True)
    direct = DirectStep(opt)
    opt.add_param_group({"params": ps[2:]})
    for p in ps:
        p.grad = torch.ones_like(p)
    direct.zero_grad()
    assert all(p.grad is None for p in ps)


@pytest.mark.parametrize("options", [
    {},
    {"optimizer": "adamw", "weight_decay": 0.01, "lr_schedule": "cosine", "scheduler_step": "step"},
    {"lr_schedule": "step", "step_size": 1, "gamma": 0.5, "balancer": "uw"},
], ids=["adam", "adamw-cosine-per-step", "step-schedule-uw"])
@pytest.mark.filterwarnings("error")  # e.g. torch's "lr_scheduler.step() before optimizer.step()"
def test_pt_fit_trains_exactly_as_with_torchs_step(options: dict[str, Any]) -> None:
    """Through the trainer: the same weights after training with the direct step and with
    ``optimizer.step()`` / ``zero_grad()`` (a callback puts a plain stepper in its place), with
    schedules changing the learning rate and a balancer with parameters of its own."""
    import polytask as pt
    from polytask.data.prepare import prepare
    from polytask.synthetic import related_tasks
    from polytask.training.callbacks import Callback

    class Plain:
        def __init__(self, optimizer: torch.optim.Optimizer) -> None:
            self.optimizer = optimizer

        def step(self) -> None:
            self.optimizer.step()

        def zero_grad(self) -> None:
            self.optimizer.zero_grad(set_to_none=True)

    class UsePlain(Callback):
        def on_fit_start(self, trainer: Any) -> None:
            trainer._direct = Plain(trainer.optimizer)

    frame, names = related_tasks(n_rows=400, n_features=5, n_tasks=3, noise=0.3, seed=0)
    prepared = prepare(frame, names, seed=0)
    config = pt.TrainConfig(epochs=3, batch_size=32, seed=0, threads=1, **options)
    ours = pt.fit(prepared, config=config)
    ref = pt.fit(prepared, config=config, callbacks=[UsePlain()])
    a, b = ours.mtl.network.state_dict(), ref.mtl.network.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_group_added_later_without_fused_is_stepped_by_torch() -> None:
    ours_p, ref_p = _params(), _params()
    ours = torch.optim.Adam([{"params": ours_p[:2]}], lr=1e-2, fused=True)
    ref = torch.optim.Adam([{"params": ref_p[:2]}], lr=1e-2, fused=True)

    def add(step: int, a: Any, b: Any) -> None:
        if step == 3:
            a.add_param_group({"params": ours_p[2:], "fused": False, "foreach": False})
            b.add_param_group({"params": ref_p[2:], "fused": False, "foreach": False})

    direct = _run(ours_p, ours, ref_p, ref, 8, before=add)
    assert direct._groups is None
    _assert_same(ours_p, ours, ref_p, ref)
