"""Fused heads: the heads of hard sharing evaluated as one batched operation, with each task's
parameters still its own (for the balancers, the gradient engine and the state dict), and task
names of any spelling as module keys."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from polytask import balancers
from polytask.balancers import StepContext
from polytask.gradients import head_factors, parameter_gradient, representation_step, shared_gradients
from polytask.losses import LossPlan, loss_vector
from polytask.models import ARCHITECTURES, HardSharing, build_network
from polytask.models.heads import FusedHeads
from polytask.models.layers import head
from polytask.models.task_modules import TaskModules, module_key, task_name
from polytask.tasks import Task

DIMS = {"a": 1, "b": 3, "c": 1, "d": 1}


def per_task_heads(seed: int, hidden: tuple[int, ...]) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    return {t: head(6, d, hidden, "tanh") for t, d in DIMS.items()}


@pytest.mark.parametrize("hidden", [(), (5,), (5, 4)], ids=["linear", "one-hidden", "two-hidden"])
def test_fused_heads_equal_one_head_module_per_task(hidden: tuple[int, ...]) -> None:
    """Same seed, same initial values as one ``head()`` per task; same outputs and gradients."""
    reference = per_task_heads(0, hidden)
    torch.manual_seed(0)
    fused = FusedHeads(DIMS, 6, hidden, "tanh")
    z = torch.randn(7, 6, requires_grad=True)
    outputs = fused.outputs(z)
    for t, module in reference.items():
        torch.testing.assert_close(outputs[t], module(z))
    packed = fused(z)
    assert packed.shape == (7, 6) and set(fused.layout.names) == set(DIMS)
    y = torch.randn(7, 6)
    (fused(z) * y).sum().backward()
    gz = z.grad.clone()
    z.grad = None
    sum((reference[t](z) * y[:, fused.layout.columns(t)]).sum() for t in DIMS).backward()
    torch.testing.assert_close(gz, z.grad)
    for t, module in reference.items():
        mine = [parameter_gradient(p) for p in fused.task_parameters(t)]
        theirs = [p.grad for p in module.parameters()]
        assert len(mine) == len(theirs)
        for g, h in zip(mine, theirs):
            torch.testing.assert_close(g, h)


@pytest.mark.parametrize("hidden", [(), (5,), (5, 4)], ids=["linear", "one-hidden", "two-hidden"])
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_initial_values_are_bit_for_bit_those_of_one_head_per_task(hidden: tuple[int, ...], dropout: float) -> None:
    """The banks draw their values without building the per-task modules: exactly the values
    (and the state-dict names) one head() per task draws from the same seed, and the random
    stream is left where those heads leave it."""
    torch.manual_seed(3)
    reference = {t: head(6, d, hidden, "tanh", dropout) for t, d in DIMS.items()}
    after_reference = torch.rand(1)
    torch.manual_seed(3)
    fused = FusedHeads(DIMS, 6, hidden, "tanh", dropout)
    assert torch.equal(torch.rand(1), after_reference)
    ours = fused.state_dict()
    theirs = nn.ModuleDict(reference).state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_the_state_dict_has_one_entry_per_task_and_layer_and_round_trips() -> None:
    reference = nn.ModuleDict(per_task_heads(1, (5,)))
    fused = FusedHeads(DIMS, 6, (5,), "tanh")
    assert set(fused.state_dict()) == set(reference.state_dict())
    fused.load_state_dict(reference.state_dict())  # a model directory saved with one module per head
    z = torch.randn(3, 6)
    for t, out in fused.outputs(z).items():
        torch.testing.assert_close(out, reference[t](z))
    again = FusedHeads(DIMS, 6, (5,), "tanh")
    again.load_state_dict(fused.state_dict())
    torch.testing.assert_close(again(z), fused(z))
    with pytest.raises(RuntimeError, match="Missing key"):
        again.load_state_dict({k: v for k, v in fused.state_dict().items() if not k.startswith("a.")})


def test_a_partial_or_misshapen_state_dict_loads_what_fits_and_names_the_rest() -> None:
    """A bank is copied in one operation only when every task's entry fits; otherwise each
    entry that fits is still copied, each missing one is listed and each misshapen one named."""
    source = FusedHeads(DIMS, 6, (5,), "tanh")
    target = FusedHeads(DIMS, 6, (5,), "tanh")
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    state = source.state_dict()
    dropped, wrong = sorted(state)[0], sorted(state)[-1]
    partial = {k: v for k, v in state.items() if k != dropped}
    partial[wrong] = torch.zeros(tuple(state[wrong].shape) + (2,))
    with pytest.raises(RuntimeError, match=f"size mismatch for {wrong}") as info:
        target.load_state_dict(partial)
    assert dropped in str(info.value)
    result = target.load_state_dict({k: v for k, v in state.items() if k != dropped}, strict=False)
    assert result.missing_keys == [dropped] and result.unexpected_keys == []
    loaded = target.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state if k != dropped)
    assert not torch.equal(loaded[dropped], state[dropped])


def test_task_parameters_are_row_blocks_of_the_banks() -> None:
    net = HardSharing(6, DIMS, trunk=(8,), head_hidden=(5,))
    counts = net.parameter_counts()
    per_task = {t: sum(p.numel() for p in head(8, d, (5,)).parameters()) for t, d in DIMS.items()}
    assert {t: counts[t] for t in DIMS} == per_task
    assert counts["total"] == counts["shared"] + sum(per_task.values())
    # few tensors for the optimizer: one weight and one bias per layer and output width
    assert len(list(net.heads.parameters())) == 2 * 2 * 2


def batch_context(net: HardSharing, tasks: list[Task], seed: int = 0) -> StepContext:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(9, 6, generator=g, dtype=torch.float64)
    z = net.encode(x)
    out, layout = net.decode_packed(z, x)
    plan = LossPlan(tasks, layout)
    targets = {t.name: torch.randn(9, DIMS[t.name], generator=g, dtype=torch.float64) for t in tasks}
    masks = {t.name: torch.rand(9, DIMS[t.name], generator=g) > 0.3 for t in tasks}
    y, m = plan.pack(targets, masks)
    losses = plan(out, y, m) * torch.linspace(0.5, 1.5, len(tasks), dtype=torch.float64)
    names = [t.name for t in tasks]
    return StepContext(losses, names, net.shared_parameters(), {t: net.task_parameters(t) for t in names}, representation=z)


TASKS = [Task(t) for t in DIMS]


def fused_net(hidden: tuple[int, ...] = ()) -> HardSharing:
    torch.manual_seed(3)
    return HardSharing(6, DIMS, trunk=(8, 7), head_hidden=hidden, activation="tanh").double()


def per_task_oracle(ctx: StepContext) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """The gradients of z and of each task's own parameters, one backward pass per task."""
    gz, own = [], []
    for t, name in enumerate(ctx.task_names):
        leaves = [p._base for p in ctx.task_params[name]]
        grads = torch.autograd.grad(ctx.losses[t], [ctx.representation, *leaves], retain_graph=True, allow_unused=True)
        gz.append(grads[0])
        own.append([g for g in grads[1:]])
    return torch.stack(gz), own


@pytest.mark.parametrize("hidden", [(), (5,)], ids=["linear", "hidden"])
def test_head_factors_give_every_tasks_gradient_of_z_from_one_pass(hidden: tuple[int, ...]) -> None:
    net = fused_net(hidden)
    ctx = batch_context(net, TASKS)
    expected, _ = per_task_oracle(ctx)
    factors = head_factors(ctx.losses, ctx.representation, [ctx.task_params[n] for n in ctx.task_names])
    assert factors is not None  # the fused bank was recognised
    torch.testing.assert_close(factors.dense(), expected)
    flat = expected.reshape(4, -1)
    torch.testing.assert_close(factors.gramian(), flat @ flat.T)
    w = torch.tensor([0.3, -1.0, 2.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(factors.direction(w), torch.tensordot(w, expected, dims=1))
    # each task's own rows received its own gradient (the rows of the other tasks are theirs)
    for name in ctx.task_names:
        for p in ctx.task_params[name]:
            own = torch.autograd.grad(ctx.losses[ctx.task_names.index(name)], p._base, retain_graph=True)[0]
            start = (p.storage_offset() - p._base.storage_offset()) // p._base.stride(0)
            rows = own[start : start + (p.shape[0] if p.ndim == p._base.ndim else 1)].reshape(p.shape)
            torch.testing.assert_close(parameter_gradient(p), rows)


def test_a_layout_kept_across_steps_makes_the_row_owners_once_and_stays_exact() -> None:
    """The task of each head row is a property of the layout: made at the first step, reused
    (the same tensor) at the next, whose factors still equal the per-task loop."""
    from polytask.gradients import TaskLayout

    net = fused_net()
    layout, task_params = None, None
    owners = []
    for seed in (0, 1):
        net.zero_grad(set_to_none=True)
        ctx = batch_context(net, TASKS, seed=seed)
        task_params = task_params or [ctx.task_params[n] for n in ctx.task_names]  # as the trainer: once a run
        layout = TaskLayout.of(task_params, layout)
        expected, _ = per_task_oracle(ctx)
        factors = head_factors(ctx.losses, ctx.representation, task_params, layout)
        assert factors is not None and not factors.one_per_task  # task b owns three rows
        torch.testing.assert_close(factors.dense(), expected)
        owners.append(factors.owner)
    assert owners[0] is owners[1]
    assert sorted(owners[0].tolist()) == [0, 1, 1, 1, 2, 3]  # one row each, three for b (the bank orders them)


def test_representation_mode_and_exact_mode_on_fused_heads_equal_the_per_task_loop() -> None:
    net = fused_net()
    ctx = batch_context(net, TASKS)
    expected, _ = per_task_oracle(ctx)
    info = representation_step(ctx.losses, ctx.representation, [ctx.task_params[n] for n in ctx.task_names])
    assert info.factors is not None
    torch.testing.assert_close(info.jacobian(), expected.reshape(4, -1))
    net.zero_grad(set_to_none=True)
    ctx = batch_context(net, TASKS)
    rows = []
    for t in range(4):
        gs = torch.autograd.grad(ctx.losses[t], ctx.shared_params, retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in gs]))
    J = torch.stack(rows)
    engine = shared_gradients(ctx.losses, ctx.shared_params, [ctx.task_params[n] for n in ctx.task_names], ctx.representation)
    torch.testing.assert_close(engine.gramian, J @ J.T)
    torch.testing.assert_close(engine.jacobian(), J)


@pytest.mark.parametrize("name", sorted(balancers.names()))
def test_every_balancer_gives_fused_heads_their_own_tasks_gradient(name: str) -> None:
    """Whatever a method does with the shared parameters, each task's rows of the head banks
    receive the gradient of that task's own (alpha-weighted) loss: the method's weights concern
    the shared update only, and loss-weighting methods scale each task's loss by its weight."""
    net = fused_net()
    method = balancers.get(name)
    method.setup([t.name for t in TASKS])
    for p in method.parameters():
        p.data = p.data.double()
    ctx = batch_context(net, TASKS)
    net.zero_grad(set_to_none=True)
    method.backward(ctx)
    ctx2 = batch_context(net, TASKS)  # the same step again, for the oracle
    for t, task in enumerate(ctx2.task_names):
        got = [parameter_gradient(p) for p in ctx2.task_params[task]]
        assert all(g is not None and torch.isfinite(g).all() for g in got), f"{name}: task {task}'s head got no gradient"
        own = torch.autograd.grad(ctx2.losses[t], [p._base for p in ctx2.task_params[task]], retain_graph=True)
        start = ctx2.task_params[task][0].storage_offset() // ctx2.task_params[task][0]._base.stride(0)
        expected = own[0][start : start + ctx2.task_params[task][0].shape[0]]
        ratio = (got[0] * expected).sum() / expected.square().sum()
        # the head's gradient is its own loss's, scaled by the task's weight (1 for aggregators)
        torch.testing.assert_close(got[0], ratio * expected, rtol=1e-6, atol=1e-9)
        assert float(ratio) >= 0


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_any_task_name_is_a_valid_module_key_everywhere(arch: str) -> None:
    names = {"Grad.Rate": 1, "train": 2, "a%2Eb": 1, "a.b": 1, "": 1, "forward": 1}
    net = build_network(arch, 5, names, trunk=(4,))
    out = net(torch.randn(3, 5))
    assert {k: v.shape[1] for k, v in out.items()} == names
    again = build_network(arch, 5, names, trunk=(4,))
    again.load_state_dict(net.state_dict())
    x = torch.randn(2, 5)
    for k, v in net.eval()(x).items():
        torch.testing.assert_close(again.eval()(x)[k], v)
    assert all(net.task_parameters(t) for t in names)


def test_module_keys_are_one_to_one_and_keep_plain_names() -> None:
    names = ["y", "Grad.Rate", "Grad%2ERate", "task%Grad%2ERate", "train", "", ".", "%", "keys", "a.b.c"]
    keys = [module_key(n) for n in names]
    assert len(set(keys)) == len(names) and all("." not in k and k for k in keys)
    assert [task_name(k) for k in keys] == names
    assert module_key("y") == "y" and module_key("target_1") == "target_1"  # old model directories keep their keys
    modules = TaskModules({n: nn.Linear(1, 1) for n in names})
    assert list(modules) == names and modules.keys() == names and "Grad.Rate" in modules


def test_loss_vector_is_the_same_packed_or_per_task() -> None:
    """The packed expression per kind equals the per-task definition, for mixed kinds."""
    g = torch.Generator().manual_seed(0)
    tasks = [Task("r1"), Task("m", kind="multiclass"), Task("b", kind="binary"), Task("r2", loss="huber"), Task("v", columns=("v1", "v2"))]
    widths = {"r1": 1, "m": 4, "b": 1, "r2": 1, "v": 2}
    outputs = {t: torch.randn(11, w, generator=g) for t, w in widths.items()}
    targets = {"r1": torch.randn(11, 1, generator=g), "m": torch.randint(0, 4, (11, 1), generator=g).float(),
               "b": torch.randint(0, 2, (11, 1), generator=g).float(), "r2": torch.randn(11, 1, generator=g) * 3,
               "v": torch.randn(11, 2, generator=g)}
    masks = {t: torch.rand(v.shape, generator=g) > 0.4 for t, v in targets.items()}
    masks["r1"][:] = False  # a task without labels: loss 0
    vector = loss_vector(tasks, outputs, targets, masks)

    def one(task: Task) -> torch.Tensor:
        o, y, m = outputs[task.name], targets[task.name], masks[task.name].float()
        if task.kind == "multiclass":
            per = torch.nn.functional.cross_entropy(o, y[:, 0].long(), reduction="none")[:, None]
        elif task.kind == "binary":
            per = torch.nn.functional.binary_cross_entropy_with_logits(o, y, reduction="none")
        elif task.loss == "huber":
            per = torch.nn.functional.huber_loss(o, y, reduction="none")
        else:
            per = (o - y) ** 2
        return (per * m).sum() / m.sum().clamp(min=1)

    torch.testing.assert_close(vector, torch.stack([one(t) for t in tasks]))
    assert float(vector[0]) == 0.0
