"""Mixed precision and compilation: bf16 autocast trains the model fp32 trains, to a bf16
tolerance, with Gramians in float32; fp16's gradient scaling (exercised here on the CPU in
float32 with torch's GradScaler) changes no balancer's result; fp16 is refused off CUDA; the
engine's generic path equals its fast paths; a compiled network trains the same model and
says once that aggregation takes the generic path."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from polytask.data.tensors import TaskTensors
from polytask.errors import PolytaskError
from polytask.generic_gradients import loop_jacobian, loop_representation, loop_shared_gradients
from polytask.gradients import parameter_gradient, per_task_gradients, representation_step, shared_gradients
from polytask.losses import LossPlan
from polytask.models import HardSharing
from polytask.tasks import Task
from polytask.training import Trainer
from polytask.training.config import TrainConfig

TASKS = [Task("a"), Task("b"), Task("c", kind="binary")]


def problem(n: int, seed: int) -> TaskTensors:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = x @ torch.randn(6, 3, generator=g) + 0.1 * torch.randn(n, 3, generator=g)
    targets = {"a": y[:, :1], "b": y[:, 1:2], "c": (y[:, 2:] > 0).float()}
    masks = {t: torch.rand(n, 1, generator=g) > 0.2 for t in targets}
    return TaskTensors(x, targets, masks)


def network() -> HardSharing:
    torch.manual_seed(0)
    return HardSharing(6, {"a": 1, "b": 1, "c": 1}, trunk=(16, 8), head_hidden=(4,))


def run(balancer: str, options: dict[str, Any] | None = None, scaler: Any = None, **config: Any) -> dict[str, Any]:
    settings = {"epochs": 3, "batch_size": 32, "lr": 0.01, "seed": 1, "early_stopping": "none", "val_metrics": False,
                "threads": 1, **config}
    cfg = TrainConfig(balancer=balancer, balancer_options=options or {}, **settings)
    trainer = Trainer(network(), TASKS, config=cfg)
    if scaler is not None:
        trainer.scaler = scaler
    result = trainer.fit(problem(128, 1), problem(40, 2))
    return {"params": {k: v.detach().clone() for k, v in trainer.network.state_dict().items()},
            "val": result.history[-1]["val_loss"], "weights": result.history[-1]["weights"]}


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize(("balancer", "options"), [("ew", {}), ("uw", {}), ("upgrad", {"mode": "exact"}),
                                                   ("upgrad", {"mode": "representation"}), ("mgda", {})])
def test_bf16_trains_the_fp32_model_to_a_bf16_tolerance(balancer: str, options: dict[str, Any]) -> None:
    # SGD: parameter errors follow gradient errors (Adam's normalised steps amplify the noise
    # of near-zero gradient entries into steps of size lr)
    fp32 = run(balancer, options, optimizer="sgd", lr=0.05)
    bf16 = run(balancer, options, optimizer="sgd", lr=0.05, precision="bf16")
    gap = max_difference(fp32["params"], bf16["params"])
    assert 0 < gap < 0.01  # autocast is on (not bit-equal) and bf16's 8-bit mantissa stays close
    assert all(abs(bf16["weights"][t] - w) < 0.01 for t, w in fp32["weights"].items())
    for t, value in fp32["val"].items():
        assert abs(bf16["val"][t] - value) <= 0.03 * abs(value) + 1e-3


def test_gramians_are_float32_under_bf16_autocast() -> None:
    net, data = network(), problem(64, 3)
    shared = list(net.shared_parameters())
    own = [list(net.task_parameters(t.name)) for t in TASKS]

    def losses(precision: bool) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision):
            z = net.encode(data.x)
            out, layout = net.decode_packed(z, data.x)
        plan = LossPlan(TASKS, layout)
        return plan(out.float(), *plan.pack(data.targets, data.masks)), z

    reference = {}
    for low in (False, True):
        lv, z = losses(low)
        exact = shared_gradients(lv, shared, own, z).gramian
        lv, z = losses(low)
        rep = representation_step(lv, z, own).gramian
        assert exact.dtype == torch.float32 and rep.dtype == torch.float32
        if not low:
            reference = {"exact": exact, "rep": rep}
            continue
        assert z.dtype == torch.bfloat16
        for got, want in ((exact, reference["exact"]), (rep, reference["rep"])):
            assert torch.allclose(got, want, rtol=0.05, atol=0.05 * float(want.abs().max()))


@pytest.mark.parametrize(("balancer", "options"), [
    ("uw", {}), ("famo", {}), ("upgrad", {"mode": "exact"}), ("upgrad", {"mode": "representation"}), ("pcgrad", {}),
    ("nash_mtl", {"update_weights_every": 2}), ("graddrop", {"mode": "exact"}), ("db_mtl", {}), ("gradnorm", {})])
def test_gradient_scaling_changes_no_result(balancer: str, options: dict[str, Any]) -> None:
    """fp16's scale S is a power of two that the outputs' gradients carry and every reader
    divides out: with S = 2^10 (doubling every 2 steps) the model is the unscaled one."""
    plain = run(balancer, options)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2)
    scaled = run(balancer, options, scaler=scaler)
    assert scaler.get_scale() > 2.0**10  # it grew: no step overflowed, and S varied over the run
    assert max_difference(plain["params"], scaled["params"]) < 1e-6
    assert all(abs(plain["weights"][t] - scaled["weights"][t]) < 1e-6 for t in plain["weights"])


def test_fp16_is_refused_off_cuda() -> None:
    with pytest.raises(PolytaskError, match="fp16 needs a CUDA device"):
        Trainer(network(), TASKS, config=TrainConfig(precision="fp16"))
    with pytest.raises(PolytaskError, match="unknown precision 'fp8'"):
        TrainConfig(precision="fp8")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 with a gradient scaler needs a CUDA device")
def test_fp16_on_cuda_trains_the_fp32_model_to_a_tolerance() -> None:
    fp32 = run("upgrad", {}, device="cuda")
    fp16 = run("upgrad", {}, device="cuda", precision="fp16")
    assert max_difference(fp32["params"], fp16["params"]) < 0.05


def test_the_generic_path_equals_the_fast_paths() -> None:
    net, data = network(), problem(48, 4)
    shared = list(net.shared_parameters())
    own = [list(net.task_parameters(t.name)) for t in TASKS]

    def step() -> tuple[torch.Tensor, torch.Tensor]:
        net.zero_grad(set_to_none=True)
        z = net.encode(data.x)
        out, layout = net.decode_packed(z, data.x)
        plan = LossPlan(TASKS, layout)
        return plan(out, *plan.pack(data.targets, data.masks)), z

    lv, z = step()
    fast = shared_gradients(lv, shared, own, z)
    fast_own = [parameter_gradient(p).clone() for ps in own for p in ps]  # type: ignore[union-attr]
    assert torch.allclose(loop_jacobian(lv, shared), per_task_gradients(lv, shared), atol=1e-6)
    lv, z = step()
    loop = loop_shared_gradients(lv, shared, own)
    assert torch.allclose(loop.gramian, fast.gramian, rtol=1e-5, atol=1e-7)
    assert torch.allclose(loop.jacobian(), fast.jacobian(), atol=1e-6)
    assert all(torch.allclose(parameter_gradient(p), g, atol=1e-6) for p, g in zip([p for ps in own for p in ps], fast_own))
    lv, z = step()
    fast_rep = representation_step(lv, z, own)
    lv, z = step()
    loop_rep = loop_representation(lv, z, own)
    assert torch.allclose(loop_rep.gramian, fast_rep.gramian, rtol=1e-5, atol=1e-7)
    w = torch.tensor([0.2, 0.5, 0.3])
    assert torch.allclose(loop_rep.direction(w), fast_rep.direction(w), atol=1e-6)


def test_compiled_networks_train_the_same_models_and_say_so_once() -> None:
    """Two compiled runs in one process (as MTL then STL with --compile): the second reuses
    torch's compiled code and must still allow one backward pass per task."""
    for mode in ("representation", "exact"):
        plain = run("upgrad", {"mode": mode})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fast = run("upgrad", {"mode": mode}, compile=True)
        said = [w for w in caught if "generic path" in str(w.message)]
        assert len(said) == 1
        assert max_difference(plain["params"], fast["params"]) < 1e-5


def test_a_compiled_graph_gives_every_task_its_own_gradient() -> None:
    """Regression: on a 256-128 trunk at batch 512, inductor reused saved tensors' buffers in
    the compiled backward, so after the first task's backward pass (graph retained) the other
    tasks' gradients came out wrong (compiled exact-mode UPGrad drifted 20 % from the
    uncompiled run in two epochs). ``compiled`` turns that reuse off."""
    from polytask.training.precision import compiled

    torch.manual_seed(0)
    tasks = [Task(f"t{i}") for i in range(4)]
    net = HardSharing(50, {t.name: 1 for t in tasks}, trunk=(256, 128))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(512, 50, generator=g)
    y = x @ torch.randn(50, 4, generator=g)
    targets = {t.name: y[:, i : i + 1] for i, t in enumerate(tasks)}
    masks = {t.name: torch.ones(512, 1, dtype=torch.bool) for t in tasks}
    encode, decode = compiled(net.encode), compiled(net.decode_packed)

    def losses(enc: Any, dec: Any) -> torch.Tensor:
        out, layout = dec(enc(x), x)
        plan = LossPlan(tasks, layout)
        return plan(out, *plan.pack(targets, masks))

    shared = list(net.shared_parameters())
    plain = loop_jacobian(losses(net.encode, net.decode_packed), shared)
    fast = loop_jacobian(losses(encode, decode), shared)
    assert plain.abs().max() > 0.1
    assert torch.allclose(fast, plain, atol=1e-5), [float((fast[t] - plain[t]).abs().max()) for t in range(4)]
