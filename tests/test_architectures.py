"""Every architecture: shapes per task kind, gradient flow, the shared/task partition, the
encode/decode split that representation-mode balancing relies on, training on tables and
images, save/load, and every registered balancer in every mode."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import polytask as pt
from polytask import balancers
from polytask.data.preprocessing import FeaturePreprocessor
from polytask.data.splits import Split
from polytask.data.targets import TargetEncoder
from polytask.data.tensors import TaskTensors
from polytask.gradients import parameter_gradient, row_owners
from polytask.losses import loss_vector
from polytask.models import ARCHITECTURES, LayerOptions, build_network, network_from_config
from polytask.models.layers import ACTIVATIONS
from polytask.tasks import Task
from polytask.setups import stl_settings
from polytask.workflow import Prepared, prepare, train_model

ARCHS = sorted(a for a in ARCHITECTURES if a != "stl")
#: Small options per architecture so that each test stays cheap.
TINY: dict[str, dict[str, Any]] = {
    "hps": {},
    "soft": {"penalty_weight": 0.1},
    "cross_stitch": {},
    "mmoe": {"n_experts": 3},
    "cgc": {"n_shared_experts": 2, "n_task_experts": 1},
    "ple": {"n_shared_experts": 1, "n_task_experts": 1, "n_levels": 2},
    "mtan": {},
    "dselect_k": {"n_experts": 3, "k": 2},
}
TABLE = (6,)
IMAGE = (2, 8, 8)
KIND_DIMS = {"reg": 1, "bin": 1, "multi": 3, "labels": 4}


def tiny(arch: str, input_dim: Any = TABLE, output_dims: dict[str, int] | None = None, **extra: Any) -> torch.nn.Module:
    torch.manual_seed(0)
    options = {"trunk": (8, 8), "head_hidden": (4,), "conv_channels": (4, 4), **TINY[arch], **extra}
    return build_network(arch, input_dim, output_dims or dict(KIND_DIMS), **options)


def rows(shape: tuple[int, ...], n: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


def test_every_architecture_is_registered() -> None:
    assert {"hps", "soft", "cross_stitch", "mmoe", "cgc", "ple", "mtan", "dselect_k"} <= set(ARCHITECTURES)
    for arch in ARCHS:
        assert ARCHITECTURES[arch].__doc__ and ARCHITECTURES[arch].arch == arch and ARCHITECTURES[arch].representation


@pytest.mark.parametrize("shape", [TABLE, IMAGE], ids=["table", "image"])
@pytest.mark.parametrize("arch", ARCHS)
def test_forward_shapes_for_every_task_kind(arch: str, shape: tuple[int, ...]) -> None:
    net = tiny(arch, shape)
    x = rows(shape)
    z = net.encode(x)
    assert z.shape[0] == 5
    out = net.decode(z, x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (5, d) for k, d in KIND_DIMS.items()}
    assert all(torch.isfinite(v).all() for v in out.values())
    # forward is encode then decode
    again = net(x)
    assert all(torch.equal(again[k], out[k]) for k in out)


@pytest.mark.parametrize("arch", ARCHS)
def test_shared_and_task_parameters_partition_the_model(arch: str) -> None:
    for shape in (TABLE, IMAGE):
        net = tiny(arch, shape)
        groups = [net.shared_parameters()] + [net.task_parameters(t) for t in net.task_names]
        owners = row_owners(groups)  # task parameters may be row blocks of a fused head bank
        assert all(bool((counts == 1).all()) for _, counts in owners), "a parameter row is in no group or in two"
        assert {id(leaf) for leaf, _ in owners} == {id(p) for p in net.parameters()}, "some parameter is in no group"
        last = {id(p) for p in net.last_shared_parameters()}
        assert last and last <= {id(p) for p in net.shared_parameters()}


@pytest.mark.parametrize("shape", [TABLE, IMAGE], ids=["table", "image"])
@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_every_parameter_and_each_task_only_its_own(arch: str, shape: tuple[int, ...]) -> None:
    # tanh: with 4-unit ReLU layers a whole layer can start dead, which would test the seed, not the wiring
    net = tiny(arch, shape, activation="tanh")
    x = rows(shape, n=16)
    out = net(x)
    total = sum(v.square().mean() for v in out.values())
    penalty = net.penalty()
    if penalty is not None:
        total = total + penalty
    total.backward()
    dead = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient reaches {dead}"
    # task t's loss reaches no other task's own parameters
    for t in net.task_names:
        net.zero_grad(set_to_none=True)
        net(x)[t].square().mean().backward()
        for other in net.task_names:
            if other != t:
                assert all(g is None or not g.any() for g in map(parameter_gradient, net.task_parameters(other)))


@pytest.mark.parametrize("shape", [TABLE, IMAGE], ids=["table", "image"])
@pytest.mark.parametrize("arch", ARCHS)
def test_representation_carries_everything_shared(arch: str, shape: tuple[int, ...]) -> None:
    """Representation-mode balancing differentiates the losses with respect to ``z`` and pushes
    the result back through ``encode``; that is exact only if the task outputs depend on the shared
    parameters through ``z`` alone and ``z`` depends on no task parameter."""
    net = tiny(arch, shape)
    x = rows(shape, n=16)
    z = net.encode(x)
    shared = net.shared_parameters()
    task = [p for t in net.task_names for p in net.task_parameters(t)]
    # z is a function of the shared parameters only, and of all of them
    grads = torch.autograd.grad(z.square().sum(), shared + task, allow_unused=True)
    assert all(g is not None and g.any() for g in grads[: len(shared)])
    assert all(g is None or not g.any() for g in grads[len(shared):])
    # outputs computed from a detached z do not reach the shared parameters
    out = net.decode(z.detach(), x)
    loss = sum(v.square().mean() for v in out.values())
    grads = torch.autograd.grad(loss, shared, allow_unused=True)
    assert all(g is None or not g.any() for g in grads)


#: Each common option away from its default, one at a time, and a module type that shows it was applied.
COMMON: list[tuple[dict[str, Any], Any]] = (
    [({"activation": a}, ACTIVATIONS[a]) for a in ACTIVATIONS]
    + [({"norm": "batch"}, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)), ({"norm": "layer"}, torch.nn.LayerNorm),
       ({"dropout": 0.3}, torch.nn.Dropout), ({"head_hidden": (3, 2)}, None), ({"trunk": (5,)}, None),
       ({"conv_channels": (3,)}, None)]
)


@pytest.mark.parametrize("arch", ARCHS + ["stl"])
def test_every_architecture_builds_with_every_common_option(arch: str) -> None:
    """The one LayerOptions reaches every architecture: each option is recorded in the config
    and shows in the layers built (a layer of that kind, or of that width)."""
    specific = TINY.get(arch, {})
    for shape in (TABLE, IMAGE):
        for common, kind in COMMON:
            net = build_network(arch, shape, {"a": 1, "b": 3}, **specific, **common)
            config = net.config()
            for key, value in common.items():
                assert config[key] == (list(value) if isinstance(value, tuple) else value), (arch, key)
            modules = list(net.modules())
            if kind is not None:
                assert any(isinstance(m, kind) for m in modules), (arch, common, shape)
            linear_widths = {m.out_features for m in modules if isinstance(m, torch.nn.Linear)}
            # fused heads hold their layers as stacked weights: read the heads' widths off each task's weights
            linear_widths |= {p.shape[-2] for t in net.task_names for p in net.task_parameters(t) if p.ndim in (2, 3)}
            if "head_hidden" in common:
                assert {3, 2} <= linear_widths
            if "trunk" in common:
                assert 5 in linear_widths and 64 not in linear_widths
            if "conv_channels" in common and shape == IMAGE:
                assert {m.out_channels for m in modules if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)} == {3}
            out = net.eval()(rows(shape))
            assert {k: tuple(v.shape) for k, v in out.items()} == {"a": (5, 1), "b": (5, 3)}
            assert all(torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize("arch", ARCHS + ["stl"])
def test_layer_options_and_flat_keywords_build_the_same_network(arch: str) -> None:
    layers = LayerOptions(trunk=(6,), head_hidden=(3,), activation="tanh", dropout=0.1, norm="layer", conv_channels=(4,))
    flat = dict(trunk=(6,), head_hidden=(3,), activation="tanh", dropout=0.1, norm="layer", conv_channels=(4,))
    cls = ARCHITECTURES[arch]
    for shape in (TABLE, IMAGE):
        torch.manual_seed(0)
        a = cls(None, {"a": 1, "b": 2}, layers, input_shape=shape, **TINY.get(arch, {}))
        torch.manual_seed(0)
        b = build_network(arch, shape, {"a": 1, "b": 2}, **flat, **TINY.get(arch, {}))
        assert a.config() == b.config() and a.layers == layers
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------- training, save / load


@pytest.fixture(scope="module")
def kinds_frame() -> pd.DataFrame:
    """A table with one task of every kind, all driven by the same features."""
    rng = np.random.default_rng(0)
    n = 160
    x = rng.normal(size=(n, 5))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)])
    frame["reg"] = x[:, 0] - 0.5 * x[:, 1] + 0.1 * rng.normal(size=n)
    frame["bin"] = (x[:, 2] > 0).astype(int)
    frame["multi"] = np.digitize(x[:, 3], [-0.5, 0.5])
    frame["l0"] = (x[:, 0] > 0).astype(int)
    frame["l1"] = (x[:, 4] > 0).astype(int)
    return frame


def kinds_tasks() -> list[Task]:
    return [
        Task("reg", "regression"),
        Task("bin", "binary"),
        Task("multi", "multiclass"),
        Task("labels", "multilabel", ("l0", "l1")),
    ]


def image_problem(n: int = 96, seed: int = 0) -> Prepared:
    """Two tasks on 1x8x8 images of noise with a per-image level and contrast: the level
    (regression) and whether the contrast is high (binary). Both survive global pooling."""
    rng = np.random.default_rng(seed)
    level, contrast = rng.normal(size=n), rng.uniform(0.2, 2.0, size=n)
    images = (level[:, None, None, None] + contrast[:, None, None, None] * rng.normal(size=(n, 1, 8, 8))).astype(np.float32)
    frame = pd.DataFrame({"pixel_mean": images.mean(axis=(1, 2, 3)), "level": level, "contrast": (contrast > 1.1).astype(int)})
    tasks = [Task("level", "regression"), Task("contrast", "binary")]
    idx = np.arange(n)
    split = Split(train=idx[: n * 3 // 4], val=idx[n * 3 // 4 :], test=idx[n * 3 // 4 :])
    encoders = [TargetEncoder(t).fit(frame, split.train) for t in tasks]
    x = torch.from_numpy(images)

    def tensors(part: np.ndarray) -> TaskTensors:
        targets, masks = {}, {}
        for enc in encoders:
            y, m = enc.encode(frame.iloc[part])
            targets[enc.task.name], masks[enc.task.name] = torch.from_numpy(y), torch.from_numpy(np.ascontiguousarray(m))
        return TaskTensors(x[part], targets, masks)

    preprocessor = FeaturePreprocessor().fit(frame[["pixel_mean"]])
    return Prepared(frame, tasks, split, preprocessor, encoders, tensors(split.train), tensors(split.val), tensors(split.test))


FAST = dict(epochs=4, batch_size=32, lr=1e-2, seed=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_trains_on_a_table_of_every_kind_and_round_trips(arch: str, kinds_frame: pd.DataFrame, tmp_path: Any) -> None:
    p = prepare(kinds_frame, tasks=kinds_tasks(), seed=0)
    spec = pt.NetworkSpec(arch=arch, trunk=(8,), head_hidden=(4,), options=dict(TINY[arch]))
    model = train_model(p, spec, pt.TrainConfig(**FAST))
    history = model.summary["history"]
    assert all(math.isfinite(v) for h in history for v in h["train_loss"].values())
    first, last = history[0]["train_loss"], history[-1]["train_loss"]
    assert sum(last.values()) < sum(first.values()), "training did not lower the joint loss"
    raw = model.raw_outputs(kinds_frame)
    assert {k: v.shape for k, v in raw.items()} == {"reg": (160, 1), "bin": (160, 1), "multi": (160, 3), "labels": (160, 2)}
    model.save(tmp_path / "m")
    loaded = pt.load(tmp_path / "m")
    assert loaded.network.arch == arch
    assert loaded.network.config() == model.network.config()
    pd.testing.assert_frame_equal(loaded.predict(kinds_frame), model.predict(kinds_frame))


@pytest.mark.parametrize("arch", ARCHS)
def test_trains_on_images_and_round_trips(arch: str, tmp_path: Any) -> None:
    p = image_problem()
    spec = pt.NetworkSpec(arch=arch, trunk=(8,), options={"conv_channels": (4, 4), **TINY[arch]})
    model = train_model(p, spec, pt.TrainConfig(**FAST))
    assert model.network.config()["input_shape"] == [1, 8, 8]
    history = model.summary["history"]
    assert all(math.isfinite(v) for h in history for v in h["train_loss"].values())
    assert sum(history[-1]["train_loss"].values()) < sum(history[0]["train_loss"].values())
    model.save(tmp_path / "m")
    loaded = pt.load(tmp_path / "m")
    before = model.raw_outputs_from_features(p.test.x)
    after = loaded.raw_outputs_from_features(p.test.x)
    assert before.keys() == after.keys()
    for task in before:
        np.testing.assert_array_equal(before[task], after[task])


@pytest.mark.parametrize("arch", ARCHS)
def test_config_is_json_and_rebuilds_the_same_network(arch: str) -> None:
    import json

    for shape in (TABLE, IMAGE):
        net = tiny(arch, shape)
        config = json.loads(json.dumps(net.config()))
        clone = network_from_config(arch, config)
        clone.load_state_dict(net.state_dict())
        x = rows(shape)
        net.eval(), clone.eval()
        a, b = net(x), clone(x)
        assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- balancers


def balancer_cases() -> list[tuple[str, str | None]]:
    return [(name, mode) for name in balancers.names() for mode in (balancers.modes(name) or (None,))]


@pytest.fixture(scope="module")
def balancer_data() -> tuple[list[Task], TaskTensors]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 6, generator=g)
    tasks = [Task("a", "regression"), Task("b", "binary")]
    targets = {"a": x[:, :1] - x[:, 1:2], "b": (x[:, 2:3] > 0).float()}
    masks = {k: torch.ones_like(v, dtype=torch.bool) for k, v in targets.items()}
    return tasks, TaskTensors(x, targets, masks)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_balancer_runs_in_every_mode(arch: str, balancer_data: tuple[list[Task], TaskTensors]) -> None:
    tasks, data = balancer_data
    cases = balancer_cases()
    assert ("ew", None) in cases
    for name, mode in cases:
        net = tiny(arch, TABLE, {"a": 1, "b": 1}, trunk=(6,), head_hidden=())
        start = [p.detach().clone() for p in net.parameters()]
        balancer = balancers.get(name) if mode is None else balancers.get(name, mode=mode)
        trainer = pt.Trainer(net, tasks, config=pt.TrainConfig(epochs=1, batch_size=8, lr=1e-2, seed=0), balancer=balancer)
        trainer.fit(data)  # two steps
        params = list(net.parameters())
        assert all(torch.isfinite(p).all() for p in params), f"{name} ({mode}) made {arch} non-finite"
        assert any(not torch.equal(a, b) for a, b in zip(start, params)), f"{name} ({mode}) did not train {arch}"


def test_balancer_context_exposes_the_declared_representation(balancer_data: tuple[list[Task], TaskTensors]) -> None:
    """The trainer hands balancers exactly what the architecture declares, with the per-task
    gradient of the representation computable from the loss vector."""
    tasks, data = balancer_data
    from polytask.gradients import per_task_gradients

    for arch in ARCHS:
        net = tiny(arch, TABLE, {"a": 1, "b": 1})
        trainer = pt.Trainer(net, tasks, config=pt.TrainConfig(epochs=1, seed=0))
        ctx, raw = trainer.context(data.x, data.targets, data.masks, epoch=0)
        assert [id(p) for p in ctx.shared_params] == [id(p) for p in net.shared_parameters()]
        jz = per_task_gradients(ctx.losses, [ctx.representation])
        assert jz.shape == (2, ctx.representation.numel()) and torch.isfinite(jz).all()
        expected = loss_vector(tasks, net.decode(ctx.representation, data.x), data.targets, data.masks)
        assert torch.allclose(raw, expected)


def test_stl_baseline_on_images_uses_the_same_conv_blocks() -> None:
    p = image_problem()
    spec = pt.NetworkSpec(arch="mmoe", trunk=(8,), options={"conv_channels": (4, 4)})
    model = train_model(p, *stl_settings(spec, pt.TrainConfig(epochs=1, seed=0)), name="stl")
    config = model.network.config()
    assert model.network.arch == "stl" and config["input_shape"] == [1, 8, 8] and config["conv_channels"] == [4, 4]
    assert all(math.isfinite(v) for v in model.summary["history"][0]["train_loss"].values())


@pytest.mark.parametrize("shape", [TABLE, IMAGE], ids=["table", "image"])
@pytest.mark.parametrize("arch", ARCHS)
def test_batched_per_task_jacobians_match_separate_backward_passes(arch: str, shape: tuple[int, ...]) -> None:
    """What exact and representation modes compute (one batched VJP through the architecture's
    ops: max-pooling, smooth steps, cross-stitch mixing...) equals T ordinary backward passes."""
    from polytask.gradients import per_task_gradients

    extra = {"gate": "static"} if arch == "dselect_k" else {}
    net = tiny(arch, shape, {"a": 1, "b": 3}, activation="tanh", **extra)
    x = rows(shape, n=6)
    z = net.encode(x)
    out = net.decode(z, x)
    losses = torch.stack([out["a"].square().mean(), out["b"].square().mean()])
    for targets in (net.shared_parameters(), [z]):
        jacobian = per_task_gradients(losses, targets)
        oracle = []
        for t in range(2):
            grads = torch.autograd.grad(losses[t], targets, retain_graph=True, allow_unused=True)
            oracle.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, targets)]))
        assert torch.allclose(jacobian, torch.stack(oracle), atol=1e-6)
