"""Bring your own PyTorch modules: a user trunk, towers, heads and experts train, save without
pickling, load with the same builders and predict identically; the shared / task split stays
right for the balancers; what an architecture cannot take is refused with the reason; and
model directories written before the common options were one dataclass still load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import polytask as pt
from polytask import balancers
from polytask.data.tensors import TaskTensors
from polytask.errors import PolytaskError
from polytask.io import weights_path
from polytask.models import ARCHITECTURES, HardSharing, LayerOptions, NetworkSpec, build_network, network_from_config
from polytask.models.layers import ACTIVATIONS, NORMS
from polytask.settings import declared_options, option_info
from polytask.tasks import Task
from polytask.workflow import prepare, train_model

LEGACY = Path(__file__).parent / "fixtures" / "legacy_models"


# ---------------------------------------------------------------- the user's modules


class Scaled(nn.Module):
    """A trunk no built-in layer describes: a learned per-feature scale, then a layer whose
    weight is used twice (the gradient engine's generic path)."""

    def __init__(self, p: int, width: int = 6) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(p))
        self.lin = nn.Linear(p, width)
        self.mix = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.lin(x * self.scale))
        return h + torch.tanh(self.mix(h)) + 0.1 * torch.tanh(h @ self.mix.weight.T)


def make_trunk(p: int) -> nn.Module:
    return Scaled(p)


def make_head(task: str, in_dim: int, out_dim: int) -> nn.Module:
    return nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, 4), nn.Tanh(), nn.Linear(4, out_dim))


def linear_head(task: str, in_dim: int, out_dim: int) -> nn.Module:
    return nn.Linear(in_dim, out_dim)


def make_expert(size: Any) -> nn.Module:
    """A tabular expert (``size`` is a feature count) or a conv expert (``size`` is (C, H, W))."""
    if isinstance(size, int):
        return nn.Sequential(nn.Linear(size, 5), nn.SiLU())
    return conv_trunk(size)


def conv_trunk(shape: tuple[int, int, int]) -> nn.Module:
    return nn.Sequential(nn.Conv2d(shape[0], 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def name_of(f: Any) -> str:
    return f"{f.__module__}.{f.__qualname__}"


# ---------------------------------------------------------------- the declarations


def test_every_network_setting_is_declared_once_with_its_cli_and_estimator_spelling() -> None:
    declared = {f.name: info for f, info in declared_options(NetworkSpec, exposed_only=False)}
    assert set(declared) == {f for f in NetworkSpec.__dataclass_fields__ if f != "custom_trunk"}
    assert all(info.help for info in declared.values())
    assert {n for n, i in declared.items() if i.kind == "widths"} == {"trunk", "head_hidden", "conv_channels"}
    assert declared["activation"].choices == tuple(ACTIVATIONS) and declared["norm"].choices == NORMS
    assert {n for n, i in declared.items() if not i.expose} == {"trunk_module", "head_module", "expert_module"}
    opts = declared["options"]
    assert opts.kind == "mapping" and opts.flag("options") == "--arch-option" and opts.sklearn_name("options") == "arch_options"
    # the architecture is checked against the registry when the spec is made (the command line's
    # --arch of `polytask compare` takes a comma-separated list), and its help names them all
    arch_help = option_info(NetworkSpec.__dataclass_fields__["arch"]).help
    assert all(a in arch_help for a in ARCHITECTURES if a != "stl")


def test_no_architecture_repeats_a_common_option_in_its_constructor() -> None:
    import inspect

    common = set(LayerOptions.__dataclass_fields__)
    for arch, cls in ARCHITECTURES.items():
        params = inspect.signature(cls.__init__).parameters
        assert list(params)[:4] == ["self", "input_dim", "output_dims", "layers"], arch
        assert not common & set(params), f"{arch} repeats {common & set(params)}"


def test_spec_normalises_and_checks_names_and_keeps_the_older_spelling() -> None:
    trunk = Scaled(4)
    spec = NetworkSpec(arch="MMoE", options={"n-experts": 3}, trunk=[8], activation="tanh")
    assert spec.arch == "mmoe" and spec.options == {"n_experts": 3} and spec.trunk == (8,)
    assert NetworkSpec(custom_trunk=trunk).trunk_module is trunk
    with pytest.raises(PolytaskError, match=r"architecture 'mmoe' takes no option 'experts' \(options: .*n_experts"):
        NetworkSpec(arch="mmoe", options={"experts": 3})
    with pytest.raises(PolytaskError, match="unknown activation 'swish'"):
        NetworkSpec(activation="swish")
    with pytest.raises(PolytaskError, match=r"option 'dropout' must be in \[0, 1\)"):
        LayerOptions(dropout=1.0)
    with pytest.raises(PolytaskError, match="head_module must be a builder"):
        LayerOptions(head_module=nn.Linear(3, 1))
    torch.manual_seed(0)
    a = spec.build(4, {"y": 1})
    torch.manual_seed(0)
    b = build_network("mmoe", 4, {"y": 1}, trunk=(8,), activation="tanh", n_experts=3)
    assert a.config() == b.config() and all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert spec.layers() == LayerOptions(trunk=(8,), activation="tanh")


# ---------------------------------------------------------------- train, save, load


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    out = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)])
    out["y"] = x[:, 0] - 0.5 * x[:, 1] + 0.1 * rng.normal(size=120)
    out["b"] = (x[:, 2] + x[:, 3] > 0).astype(int)
    return out


CASES: dict[str, dict[str, Any]] = {
    "hps-builder": dict(arch="hps", trunk_module=make_trunk, head_module=make_head),
    "soft-towers": dict(arch="soft", trunk_module=make_trunk, head_module=make_head),
    "stl": dict(arch="stl", trunk_module=make_trunk, head_module=make_head),
    "mmoe": dict(arch="mmoe", expert_module=make_expert, head_module=make_head, options={"n_experts": 3}),
    "dselect_k": dict(arch="dselect_k", expert_module=make_expert, options={"n_experts": 3}),
    "cgc": dict(arch="cgc", expert_module=make_expert, head_module=linear_head),
    "ple": dict(arch="ple", expert_module=make_expert, head_module=make_head, options={"n_shared_experts": 1}),
    "cross_stitch-heads": dict(arch="cross_stitch", trunk=(6,), head_module=make_head),
    "mtan-heads": dict(arch="mtan", trunk=(6,), head_module=make_head),
}
FAST = dict(epochs=4, batch_size=32, lr=1e-2, seed=0)


@pytest.mark.parametrize("case", list(CASES))
def test_user_modules_train_save_and_load_with_their_builders(case: str, frame: pd.DataFrame, tmp_path: Path) -> None:
    settings = dict(CASES[case])
    spec = NetworkSpec(**settings)
    model = train_model(prepare(frame, ["y", "b"], seed=0), spec, pt.TrainConfig(**FAST))
    history = model.summary["history"]
    assert sum(history[-1]["train_loss"].values()) < sum(history[0]["train_loss"].values())
    net = model.network
    if "head_module" in settings:
        assert all(type(h) is type(settings["head_module"]("y", 5, 1)) for h in user_heads_of(net))
    modules = {k: v for k, v in settings.items() if k.endswith("_module")}
    d = model.save(tmp_path / "m")
    recorded = json.loads((d / "model.json").read_text())["network"]
    assert recorded["user_modules"] == {k: name_of(v) for k, v in modules.items()}
    assert (recorded["trunk"] == "custom") == bool({"trunk_module", "expert_module"} & set(modules))
    loaded = pt.load(d, **modules)
    assert loaded.network.config() == net.config()
    before, after = model.raw_outputs(frame), loaded.raw_outputs(frame)
    assert all(np.array_equal(before[t], after[t]) for t in before)
    pd.testing.assert_frame_equal(loaded.predict(frame), model.predict(frame))
    name = sorted(modules)[0]
    word = name.removesuffix("_module")
    with pytest.raises(PolytaskError) as err:
        pt.load(d, **{k: v for k, v in modules.items() if k != name})
    what = "<module or builder>" if name == "trunk_module" else "<builder>"
    assert str(err.value) == (f"model directory '{d}' uses a user {word} module (built by {name_of(modules[name])}): "
                              f"pass {name}={what} to polytask.load")


def user_heads_of(net: nn.Module) -> list[nn.Module]:
    if hasattr(net, "heads"):
        return list(net.heads.values())
    return [h for sub in net.nets.values() for h in sub.heads.values()]


def test_a_trunk_module_instance_trains_through_fit_and_loads_into_a_fresh_instance(frame: pd.DataFrame, tmp_path: Path) -> None:
    torch.manual_seed(0)
    trunk = Scaled(5)
    start = trunk.scale.detach().clone()
    report = pt.fit(frame, ["y", "b"], spec=NetworkSpec(trunk_module=trunk, head_module=make_head), config=pt.TrainConfig(**FAST))
    model = report.mtl
    assert model.network.trunk is trunk and not torch.equal(trunk.scale.detach(), start)  # used as is, and trained
    d = model.save(tmp_path / "m")
    assert sorted(p.name for p in d.iterdir()) == ["model.json", weights_path(d).name]
    assert json.loads((d / "model.json").read_text())["network"]["user_modules"]["trunk_module"] == name_of(Scaled)
    loaded = pt.load(d, trunk_module=Scaled(5), head_module=make_head)
    pd.testing.assert_frame_equal(loaded.predict(frame), model.predict(frame))
    with pytest.raises(PolytaskError, match=r"^model directory '.*' uses no user expert module: do not pass expert_module$"):
        pt.load(d, trunk_module=Scaled(5), head_module=make_head, expert_module=make_expert)
    with pytest.raises(PolytaskError, match=r"^polytask.load takes no option 'heads' \(user modules: trunk_module, head_module, expert_module\)$"):
        pt.load(d, trunk_module=Scaled(5), heads=make_head)


def test_user_modules_on_images(tmp_path: Path) -> None:
    """Builders are called with the image shape (C, H, W); experts and trunks end in (n, k)."""
    x = torch.randn(4, 2, 6, 6)
    for arch, modules in (("hps", {"trunk_module": conv_trunk}), ("mmoe", {"expert_module": make_expert}),
                          ("ple", {"expert_module": make_expert})):
        net = build_network(arch, (2, 6, 6), {"a": 1, "b": 2}, **modules)
        out = net(x)
        assert {k: tuple(v.shape) for k, v in out.items()} == {"a": (4, 1), "b": (4, 2)}
        clone = network_from_config(arch, json.loads(json.dumps(net.config())), modules)
        clone.load_state_dict(net.state_dict())
        assert all(torch.equal(net.eval()(x)[k], clone.eval()(x)[k]) for k in out)


# ---------------------------------------------------------------- what is refused, and why


@pytest.mark.parametrize(
    "arch,field,reason",
    [
        ("cross_stitch", "trunk_module", "cross-stitch units mix the columns after every layer"),
        ("mtan", "trunk_module", "every task's attention reads every block of the trunk"),
        ("mmoe", "trunk_module", "its experts are what is shared (pass expert_module)"),
        ("ple", "trunk_module", "its experts are what is shared"),
        ("hps", "expert_module", "hard sharing has no experts"),
        ("soft", "expert_module", "soft sharing has no experts"),
        ("cross_stitch", "expert_module", "cross-stitch has no experts"),
    ],
)
def test_an_architecture_refuses_a_module_it_cannot_use_and_says_why(arch: str, field: str, reason: str) -> None:
    word = field.removesuffix("_module")
    with pytest.raises(PolytaskError) as err:
        build_network(arch, 4, {"a": 1}, **{field: make_expert})
    assert str(err.value).startswith(f"architecture '{arch}' cannot take a user {word} module: ")
    assert reason in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(PolytaskError, match="cannot take a user"):
        train_model(prepare(pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0] * 5, "a": range(20)}), ["a"], seed=0),
                    NetworkSpec(arch=arch, **{field: make_expert}), pt.TrainConfig(epochs=1))


def test_user_modules_that_do_not_fit_are_refused_when_built() -> None:
    with pytest.raises(PolytaskError, match=r"the trunk module must map rows \(n, 4\) to \(n, k\); it returned \(2, 3, 2\)"):
        HardSharing(4, {"a": 1}, trunk_module=nn.Sequential(nn.Linear(4, 6), nn.Unflatten(1, (3, 2))))
    with pytest.raises(PolytaskError, match="the head module of task 'b' gives 1 outputs; the task needs 3"):
        HardSharing(4, {"a": 1, "b": 3}, head_module=lambda t, i, o: nn.Linear(i, 1))
    with pytest.raises(PolytaskError, match=r"the head module of task 'a' fails on rows \(n, 64\): mat1 and mat2 shapes"):
        HardSharing(4, {"a": 1}, head_module=lambda t, i, o: nn.Linear(4, o))
    shared = nn.Linear(64, 1)
    with pytest.raises(PolytaskError, match="the head builder returned the same module twice"):
        HardSharing(4, {"a": 1, "b": 1}, head_module=lambda t, i, o: shared)
    tied = nn.Linear(4, 4)
    with pytest.raises(PolytaskError, match="a parameter belongs to both the shared parameters and task 'a'"):
        HardSharing(4, {"a": 4}, trunk_module=tied, head_module=lambda t, i, o: nn.Sequential(tied))
    with pytest.raises(PolytaskError, match=r"expert modules give outputs of widths \[2, 3\]"):
        widths = iter([2, 3, 2])
        build_network("mmoe", 4, {"a": 1}, n_experts=2, expert_module=lambda p: nn.Linear(p, next(widths)))
    one = nn.Linear(4, 2)
    with pytest.raises(PolytaskError, match="the trunk builder returned the same module twice"):
        build_network("soft", 4, {"a": 1, "b": 1}, trunk_module=lambda p: one)
    with pytest.raises(PolytaskError, match="a parameter belongs to both task 'a' and task 'b'"):
        build_network("stl", 4, {"a": 1, "b": 1}, trunk_module=lambda p: one)
    with pytest.raises(PolytaskError, match="soft sharing needs towers of one shape"):
        widths = iter([2, 3])
        build_network("soft", 4, {"a": 1, "b": 1}, trunk_module=lambda p: nn.Linear(p, next(widths)))
    with pytest.raises(PolytaskError, match="the last level's experts give width 5, their inputs have 3"):
        build_network("ple", 4, {"a": 1}, n_levels=2, expert_module=lambda p: nn.Linear(p, 3 if p == 4 else 5))
    with pytest.raises(PolytaskError, match="returned int, not an nn.Module"):
        build_network("mmoe", 4, {"a": 1}, expert_module=lambda p: p)


# ---------------------------------------------------------------- the balancers' contract


def hps_context(head: Any) -> tuple[HardSharing, Any]:
    """The trainer's step context for hard sharing with the user trunk and ``head`` heads, in
    float64 (the comparisons below are to 1e-8)."""
    torch.manual_seed(3)
    net = HardSharing(5, {"a": 1, "b": 1, "c": 1}, trunk_module=make_trunk, head_module=head).double()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64)
    targets = {t: torch.randn(12, 1, generator=g, dtype=torch.float64) for t in "abc"}
    masks = {t: torch.ones(12, 1, dtype=torch.bool) for t in "abc"}
    trainer = pt.Trainer(net, [Task(t) for t in "abc"], config=pt.TrainConfig(epochs=1, seed=0))
    ctx, _ = trainer.context(x, targets, masks, epoch=0)
    return net, ctx


def flat_grads(params: list[nn.Parameter]) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])


@pytest.mark.parametrize("head", [make_head, linear_head], ids=["deep-heads", "linear-heads"])
@pytest.mark.parametrize("name", ["upgrad", "mgda", "pcgrad"])
def test_aggregation_with_a_user_trunk_and_heads_equals_one_backward_per_task(name: str, head: Any) -> None:
    """Exact mode: the method applied to the per-task Jacobian of the shared parameters.
    Representation mode: the method applied to the per-task gradients of z, pushed back
    through the trunk. Either way each head gets its own task's gradient."""
    net, ctx = hps_context(head)
    assert [id(p) for p in ctx.shared_params] == [id(p) for p in net.trunk.parameters()]
    shared = ctx.shared_params
    rows = [torch.autograd.grad(ctx.losses[t], shared, retain_graph=True) for t in range(3)]
    jacobian = torch.stack([torch.cat([g.reshape(-1) for g in r]) for r in rows])
    z = ctx.representation
    gz = torch.stack([torch.autograd.grad(ctx.losses[t], z, retain_graph=True)[0] for t in range(3)])
    direction = balancers.get(name).aggregate(gz.reshape(3, -1)).view_as(z)
    expected = {
        "exact": balancers.get(name).aggregate(jacobian),
        "representation": torch.cat([g.reshape(-1) for g in torch.autograd.grad(z, shared, direction, retain_graph=True)]),
    }
    for mode, want in expected.items():
        method = balancers.get(name, mode=mode)
        method.setup(ctx.task_names)
        net.zero_grad(set_to_none=True)
        method.backward(ctx)
        torch.testing.assert_close(flat_grads(shared), want, rtol=1e-8, atol=1e-10)
        for t, task in enumerate(ctx.task_names):
            own = torch.autograd.grad(ctx.losses[t], ctx.task_params[task], retain_graph=True)
            for p, g in zip(ctx.task_params[task], own):
                torch.testing.assert_close(p.grad, g)


def test_user_modules_keep_the_shared_and_task_partition() -> None:
    for arch, modules in (("hps", {"trunk_module": make_trunk, "head_module": make_head}),
                          ("soft", {"trunk_module": make_trunk}), ("mmoe", {"expert_module": make_expert}),
                          ("ple", {"expert_module": make_expert, "head_module": make_head}),
                          ("mtan", {"head_module": make_head})):
        net = build_network(arch, 5, {"a": 1, "b": 2}, **modules)
        groups = [net.shared_parameters()] + [net.task_parameters(t) for t in net.task_names]
        ids = [id(p) for g in groups for p in g]
        assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in net.parameters()}, arch
        last = {id(p) for p in net.last_shared_parameters()}
        assert last and last <= {id(p) for p in net.shared_parameters()}, arch


# ---------------------------------------------------------------- directories written before


def legacy_dirs() -> list[str]:
    return sorted(p.name for p in LEGACY.iterdir() if p.is_dir() and p.name != "hps_custom")


@pytest.mark.parametrize("name", legacy_dirs())
def test_model_directories_with_flat_configs_still_load_and_predict_as_they_did(name: str) -> None:
    data = pd.read_csv(LEGACY / "data.csv")
    meta = json.loads((LEGACY / name / "model.json").read_text())
    assert "user_modules" not in meta["network"] and isinstance(meta["network"]["trunk"], list)  # the old flat form
    loaded = pt.load(LEGACY / name)
    assert loaded.network.arch == meta["arch"]
    want = pd.read_csv(LEGACY / f"{name}.csv")
    pd.testing.assert_frame_equal(loaded.predict(data), want, check_dtype=False, rtol=1e-6, atol=1e-7)


def test_a_legacy_custom_trunk_loads_with_the_module_under_either_name() -> None:
    data = pd.read_csv(LEGACY / "data.csv")
    want = pd.read_csv(LEGACY / "hps_custom.csv")
    d = LEGACY / "hps_custom"
    with pytest.raises(PolytaskError) as err:
        pt.load(d)
    assert str(err.value) == f"model directory '{d}' uses a user trunk module: pass trunk_module=<module or builder> to polytask.load"
    for key in ("trunk_module", "custom_trunk"):
        loaded = pt.load(d, **{key: nn.Sequential(nn.Linear(3, 4), nn.Tanh())})
        pd.testing.assert_frame_equal(loaded.predict(data), want, check_dtype=False, rtol=1e-6, atol=1e-7)


def test_stl_baseline_of_user_experts_uses_one_expert_per_task() -> None:
    net = build_network("stl", 5, {"a": 1, "b": 1}, expert_module=make_expert)
    assert all(type(sub.trunk) is nn.Sequential and sub.trunk[0].out_features == 5 for sub in net.nets.values())
    assert net.nets["a"].trunk is not net.nets["b"].trunk
    data = TaskTensors(torch.randn(8, 5), {"a": torch.randn(8, 1), "b": torch.randn(8, 1)},
                       {"a": torch.ones(8, 1, dtype=torch.bool), "b": torch.ones(8, 1, dtype=torch.bool)})
    pt.Trainer(net, [Task("a"), Task("b")], config=pt.TrainConfig(epochs=1, batch_size=8, seed=0)).fit(data)
