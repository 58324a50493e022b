"""What each architecture is for: soft sharing's penalty, gates that specialise, DSelect-k's
selection, cross-stitch units, MTAN masks, capacity counts, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import polytask as pt
from polytask.cli import main
from polytask.data.tensors import TaskTensors
from polytask.errors import PolytaskError
from polytask.models import build_network, capacity_report
from polytask.models.gates import DSelectGate, smooth_step
from polytask.tasks import Task

# ---------------------------------------------------------------- soft sharing


def test_soft_sharing_penalty_pulls_towers_together_as_its_weight_grows() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    targets = {"a": x[:, :1] * x[:, 1:2], "b": torch.sin(x[:, 2:3])}
    data = TaskTensors(x, targets, {k: torch.ones_like(v, dtype=torch.bool) for k, v in targets.items()})
    tasks = [Task("a"), Task("b")]
    distances = []
    for weight in (0.0, 0.03, 1.0):
        torch.manual_seed(0)  # the same initial towers for every weight
        net = build_network("soft", 4, {"a": 1, "b": 1}, trunk=(8,), penalty_weight=weight)
        start = net.tower_distance().item()
        pt.Trainer(net, tasks, config=pt.TrainConfig(epochs=30, batch_size=64, lr=2e-2, seed=0)).fit(data)
        distances.append(net.tower_distance().item())
    assert distances[0] > 0.5 * start  # no penalty: the towers stay apart
    assert distances[0] > distances[1] > distances[2]
    assert distances[2] < 0.05 * distances[0]


def test_soft_penalty_is_the_weighted_squared_distance() -> None:
    net = build_network("soft", 3, {"a": 1, "b": 1, "c": 1}, trunk=(4,), penalty_weight=0.5)
    towers = [torch.cat([p.flatten() for p in net.towers[t].parameters()]) for t in ("a", "b", "c")]
    by_hand = sum((towers[i] - towers[j]).pow(2).sum() for i in range(3) for j in range(i + 1, 3))
    assert net.penalty().item() == pytest.approx(0.5 * by_hand.item(), rel=1e-6)
    assert build_network("soft", 3, {"a": 1, "b": 1}, penalty_weight=0).penalty() is None


# ---------------------------------------------------------------- gates of MMoE and PLE


def expert_mixtures(net: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each task's per-row gate weights over one common list of experts (for CGC/PLE: the last
    level's shared experts, then every task's own experts, zero for other tasks' experts)."""
    gates = net.gate_weights(x)
    if net.arch in ("mmoe", "dselect_k"):
        return gates
    n_shared, n_own, names = net.n_shared, net.n_task, net.task_names
    out = {}
    for i, t in enumerate(names):
        full = torch.zeros(x.shape[0], n_shared + n_own * len(names))
        full[:, :n_shared] = gates[t][:, :n_shared]
        full[:, n_shared + i * n_own : n_shared + (i + 1) * n_own] = gates[t][:, n_shared:]
        out[t] = full
    return out


def gate_disagreement(net: torch.nn.Module, x: torch.Tensor) -> float:
    """Mean over rows of the total-variation distance between the two tasks' mixtures."""
    with torch.no_grad():
        m = expert_mixtures(net, x)
    return float(0.5 * (m["a"] - m["b"]).abs().sum(dim=1).mean())


def train_gated(arch: str, options: dict, related: bool, steps: int, lr: float) -> tuple[float, float]:
    """Two tasks read different input coordinates (unrelated) or are the same task (related);
    experts have one tanh unit, so no expert can serve two unrelated tasks at once."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=g)
    a = x[:, :1]
    b = a.clone() if related else x[:, 1:2]
    torch.manual_seed(0)
    net = build_network(arch, 4, {"a": 1, "b": 1}, trunk=(1,), activation="tanh", **options)
    before = gate_disagreement(net, x)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        out = net(x)
        loss = (out["a"] - a).square().mean() + (out["b"] - b).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return before, gate_disagreement(net, x)


@pytest.mark.parametrize(
    "arch,options,steps,lr",
    [("mmoe", {"n_experts": 4}, 300, 5e-2), ("ple", {"n_shared_experts": 2, "n_task_experts": 1, "n_levels": 2}, 100, 3e-2)],
)
def test_gates_learn_different_expert_mixtures_for_unrelated_tasks(arch: str, options: dict, steps: int, lr: float) -> None:
    before, unrelated = train_gated(arch, options, related=False, steps=steps, lr=lr)
    _, related = train_gated(arch, options, related=True, steps=steps, lr=lr)
    assert unrelated > before + 0.1, "the gates did not move apart during training"
    assert unrelated > related + 0.2, "unrelated tasks' gates are no more different than a task with itself"


# ---------------------------------------------------------------- DSelect-k


def test_smooth_step_matches_its_definition() -> None:
    gamma = 2.0
    t = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
    s = smooth_step(t, gamma)
    by_hand = [0.0, 0.0, -2 / 8 * -0.125 + 3 / 4 * -0.5 + 0.5, 0.5, -2 / 8 * 0.125 + 3 / 4 * 0.5 + 0.5, 1.0, 1.0]
    assert s.tolist() == pytest.approx(by_hand)
    (grad,) = torch.autograd.grad(s.sum(), t)
    assert grad[[0, 1, 5, 6]].abs().max() < 1e-12  # flat outside and C^1 at the joins
    assert float(grad[3]) == pytest.approx(3 / (2 * gamma))


@pytest.mark.parametrize("n_experts", [3, 4, 5])
def test_dselect_gate_is_a_distribution_and_selects_at_most_k_once_binary(n_experts: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(7, 6)
    for per_example in (True, False):
        gate = DSelectGate(6, n_experts, k=2, per_example=per_example)
        w = gate(x)
        assert w.shape == (7, n_experts) and (w >= 0).all()
        assert torch.allclose(w.sum(dim=1), torch.ones(7))
    gate = DSelectGate(6, n_experts, k=2, per_example=False)
    with torch.no_grad():
        gate.z_param.copy_(torch.sign(torch.randn(2, gate.n_bits)) * 5)  # saturated: every S is 0 or 1
    w = gate(x)
    assert int((w[0] > 0).sum()) <= 2
    assert gate.entropy().item() == pytest.approx(0.0, abs=1e-4)
    net = build_network("dselect_k", 6, {"a": 1}, gate="static")
    assert net.penalty() is not None and net.penalty().item() > 0
    assert build_network("dselect_k", 6, {"a": 1}).penalty() is None


# ---------------------------------------------------------------- cross-stitch and MTAN


def test_cross_stitch_units_start_as_the_paper_says_and_identity_units_separate_columns() -> None:
    net = build_network("cross_stitch", 4, {"a": 1, "b": 1, "c": 1}, trunk=(5, 5), alpha_self=0.8)
    assert len(net.stitch) == 2
    assert torch.allclose(net.stitch[0], torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]))
    x = torch.randn(6, 4)
    for alpha_self, separated in ((1.0, True), (0.8, False)):
        net = build_network("cross_stitch", 4, {"a": 1, "b": 1}, trunk=(5, 5), alpha_self=alpha_self, activation="tanh")
        grads = torch.autograd.grad(net(x)["a"].sum(), list(net.columns[1].parameters()), allow_unused=True)
        reaches_other_column = any(g is not None and g.abs().sum() > 0 for g in grads)
        assert reaches_other_column is not separated


def test_mtan_masks_are_in_unit_interval_with_the_shape_of_each_shared_block() -> None:
    net = build_network("mtan", (3, 8, 8), {"a": 1, "b": 2}, trunk=(6,), conv_channels=(4, 5))
    masks = net.masks(torch.randn(2, 3, 8, 8))
    assert [tuple(m.shape[1:]) for m in masks["a"]] == [(4, 4, 4), (5, 2, 2), (6,)]
    assert all(((m >= 0) & (m <= 1)).all() for ms in masks.values() for m in ms)


# ---------------------------------------------------------------- options and capacity


def test_unknown_and_bad_options_name_what_is_valid() -> None:
    with pytest.raises(PolytaskError, match=r"architecture 'mmoe' takes no option 'experts' \(options: .*n_experts"):
        build_network("mmoe", 4, {"a": 1}, experts=3)
    with pytest.raises(PolytaskError, match="option 'n_experts' must be >= 1"):
        build_network("mmoe", 4, {"a": 1}, n_experts=0)
    with pytest.raises(PolytaskError, match="option 'gate' must be one of per_example, static"):
        build_network("dselect_k", 4, {"a": 1}, gate="sparse")
    with pytest.raises(PolytaskError, match="image input shape"):
        build_network("mtan", (3, 8), {"a": 1})
    # widths given as CLI strings work
    assert build_network("mmoe", 4, {"a": 1}, gate_hidden="6,3").config()["gate_hidden"] == [6, 3]
    # names are normalised as the CLI may spell them
    net = build_network("Cross-Stitch", 4, {"a": 1, "b": 1}, **{"Alpha-Self": 0.7, "head-hidden": "3"})
    assert net.arch == "cross_stitch" and net.config()["alpha_self"] == 0.7 and net.config()["head_hidden"] == [3]
    with pytest.raises(PolytaskError, match=r"unknown architecture 'moe' \(choose from "):
        build_network("moe", 4, {"a": 1})
    with pytest.raises(PolytaskError, match=r"architecture 'hps' takes no option 'n_experts' \(options: trunk, head_hidden, "
                                            r"activation, dropout, norm, conv_channels, trunk_module, head_module\)"):
        build_network("hps", 4, {"a": 1}, n_experts=2)


def test_a_registered_architecture_of_ones_own_is_built_checked_and_rebuilt(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from polytask.models import MultiTaskNetwork, network_from_config, registry

    from polytask.registry import Registry

    copy = Registry("architecture", registry.ARCHITECTURES)
    monkeypatch.setattr(registry, "ARCHITECTURES", copy)  # leave the real registry alone

    class Tiny(MultiTaskNetwork):
        """One linear layer shared, one per task."""

        arch = "Tiny-Net"

        def __init__(self, input_dim: int, output_dims: dict[str, int], width: int = 3) -> None:
            super().__init__(list(output_dims))
            self.dims, self.width = (input_dim, dict(output_dims)), width
            self.body = torch.nn.Linear(input_dim, width)
            self.heads = torch.nn.ModuleDict({t: torch.nn.Linear(width, d) for t, d in output_dims.items()})

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

        def decode(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {t: h(z) for t, h in self.heads.items()}

        def shared_parameters(self) -> list[torch.nn.Parameter]:
            return list(self.body.parameters())

        def task_parameters(self, task: str) -> list[torch.nn.Parameter]:
            return list(self.heads[task].parameters())

        def config(self) -> dict:
            return {"input_dim": self.dims[0], "output_dims": self.dims[1], "width": self.width}

    registry.register(Tiny)
    assert registry.architecture_options("tiny_net") == ["width"] and registry.specific_options("Tiny-Net") == {"width": 3}
    net = build_network("tiny-net", 4, {"a": 2}, width=5)
    assert net.body.out_features == 5
    with pytest.raises(PolytaskError, match=r"architecture 'tiny_net' takes no option 'depth' \(options: width\)"):
        build_network("tiny_net", 4, {"a": 2}, depth=2)
    clone = network_from_config(net.arch, json.loads(json.dumps(net.config())))
    assert isinstance(clone, Tiny) and clone.config() == net.config()


def test_capacity_report_counts_by_hand() -> None:
    p, dims = 6, {"a": 1, "b": 3}
    expert = p * 8 + 8  # one Linear(6, 8)
    heads = {"a": 8 * 1 + 1, "b": 8 * 3 + 3}
    stl = sum(expert + h for h in heads.values())
    mmoe = capacity_report(build_network("mmoe", p, dims, trunk=(8,), n_experts=3))
    gate = p * 3 + 3
    assert mmoe["shared"] == 3 * expert
    assert mmoe["tasks"] == {t: gate + h for t, h in heads.items()}
    assert mmoe["total"] == 3 * expert + 2 * gate + sum(heads.values())
    assert mmoe["stl_total"] == stl and mmoe["ratio_to_stl"] == pytest.approx(mmoe["total"] / stl)
    soft = capacity_report(build_network("soft", p, dims, trunk=(8,)))
    assert soft["total"] == stl and soft["ratio_to_stl"] == 1.0  # soft sharing costs exactly STL
    cross = capacity_report(build_network("cross_stitch", p, dims, trunk=(8,)))
    assert cross["total"] == stl + 2 * 2  # plus one 2 x 2 cross-stitch unit
    hps = capacity_report(build_network("hps", p, dims, trunk=(8,)))
    assert hps["total"] == expert + sum(heads.values()) and hps["ratio_to_stl"] < 1


def test_fit_command_trains_an_architecture_and_reports_its_capacity(small_frame: pd.DataFrame, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.csv"
    small_frame.to_csv(data, index=False)
    model = tmp_path / "m"
    code = main(["fit", str(data), "-t", "task0", "-t", "task1", "--arch", "cgc", "--arch-option", "n_shared_experts=1",
                 "--arch-option", "gate_hidden=4", "--trunk", "8", "--epochs", "2", "--out", str(model), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out.out)
    cap = report["capacity"]
    assert cap["arch"] == "cgc" and cap["total"] == cap["shared"] + sum(cap["tasks"].values())
    assert cap["ratio_to_stl"] == pytest.approx(cap["total"] / cap["stl_total"])
    meta = json.loads((model / "model.json").read_text())
    assert meta["arch"] == "cgc" and meta["network"]["n_shared_experts"] == 1 and meta["network"]["gate_hidden"] == [4]
    assert json.loads((model / "report.json").read_text())["capacity"] == cap
    preds = tmp_path / "p.csv"
    assert main(["predict", str(model), str(data), "--out", str(preds), "--quiet"]) == 0
    assert list(pd.read_csv(preds).columns) == ["task0", "task1"]
    code = main(["fit", str(data), "-t", "task0", "--arch", "cgc", "--arch-option", "experts=2", "--out", str(tmp_path / "x"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: architecture 'cgc' takes no option 'experts' (options: ") and "n_shared_experts" in err


def test_the_table_in_the_docs_is_what_the_command_prints(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["architectures", "--markdown"]) == 0
    table = capsys.readouterr().out.strip()
    assert table.count("\n") == 2 + 8 - 1  # header, rule and one row per architecture
    docs = (Path(__file__).parent.parent / "docs" / "ARCHITECTURES.md").read_text()
    assert table in docs
    assert main(["architectures", "--input-shape", "3,32"]) == 2


def test_architectures_command_lists_the_common_options_once_and_each_architectures_own(capsys) -> None:  # type: ignore[no-untyped-def]
    from polytask.models import ARCHITECTURES, specific_options

    assert main(["architectures"]) == 0
    out = capsys.readouterr().out
    assert "  every architecture: trunk=(64, 64), head_hidden=(), activation='relu', dropout=0.0, norm='none', conv_channels=(16, 32)" in out
    assert "  mmoe: n_experts=4, gate_hidden=()\n    your modules (Python): expert_module, head_module\n" in out
    assert "  mtan: none of its own\n    your modules (Python): head_module\n" in out
    assert specific_options("dselect_k") == {"n_experts": 4, "k": 2, "gamma": 1.0, "gate": "per_example", "entropy_weight": 1e-3}
    for arch in [a for a in ARCHITECTURES if a != "stl"]:
        assert f"  {arch}: " in out


def test_python_api_builds_from_a_task_list_and_an_input_shape() -> None:
    from polytask.models import network_for_tasks

    tasks = [Task("pos", "regression", ("x", "y")), Task("ok", "binary"), Task("kind", "multiclass"),
             Task("tags", "multilabel", ("t1", "t2", "t3"))]
    spec = pt.NetworkSpec(arch="ple", trunk=(8,), options={"conv_channels": (4,), "n_levels": 3})
    net = network_for_tasks(spec, tasks, (3, 8, 8), n_classes={"kind": 4})
    out = net(torch.randn(2, 3, 8, 8))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"pos": (2, 2), "ok": (2, 1), "kind": (2, 4), "tags": (2, 3)}
    assert net.config()["n_levels"] == 3 and len(net.levels) == 3
    with pytest.raises(PolytaskError, match="multiclass task 'kind' needs its class count"):
        network_for_tasks(spec, tasks, 5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_architecture_runs_on_cuda_as_on_cpu() -> None:
    from polytask.models import ARCHITECTURES

    for arch in [a for a in ARCHITECTURES if a != "stl"]:
        for shape in ((5,), (2, 8, 8)):
            torch.manual_seed(0)
            net = build_network(arch, shape if len(shape) == 3 else shape[0], {"a": 1, "b": 3}, trunk=(8,), conv_channels=(4,)).eval()
            x = torch.randn(4, *shape)
            cpu = net(x)
            gpu = net.to("cuda")(x.to("cuda"))
            assert all(torch.allclose(cpu[k], gpu[k].cpu(), atol=1e-4) for k in cpu)


# ---------------------------------------------------------------- the docs


def docs_text() -> str:
    return (Path(__file__).parent.parent / "docs" / "ARCHITECTURES.md").read_text()


def test_the_documented_defaults_are_the_declared_ones() -> None:
    import ast
    import re

    from polytask.models import LayerOptions, specific_options

    text = docs_text()
    names = ("trunk", "head_hidden", "activation", "dropout", "norm", "conv_channels")
    common = {k: v for k, v in re.findall(r"^\| `(\w+)` \| `([^`]*)` \| ", text, flags=re.M) if k in names}
    defaults = LayerOptions()
    assert {k: ast.literal_eval(v) for k, v in common.items()} == {k: getattr(defaults, k) for k in names}
    from polytask.models import ARCHITECTURES

    own = {a: c for a, c in re.findall(r"^\| `(\w+)` \| (none|`.*) \|$", text, flags=re.M) if a in ARCHITECTURES}
    assert set(own) == set(ARCHITECTURES) - {"stl"}
    for arch, cell in own.items():
        pairs = dict(re.findall(r"`(\w+)=([^`]+)`", cell))
        assert {k: ast.literal_eval(v) for k, v in pairs.items()} == specific_options(arch), arch


def test_the_your_own_modules_example_runs(small_frame: pd.DataFrame, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    text = docs_text()
    section = text[text.index("## Your own modules"):]
    code = section[section.index("```python\n") + len("```python\n"):section.index("```\n", section.index("```python"))]
    monkeypatch.chdir(tmp_path)
    frame = small_frame.rename(columns={"task0": "y1", "task1": "y2"})
    scope: dict = {"frame": frame}
    exec(compile(code, "docs/ARCHITECTURES.md", "exec"), scope)
    pd.testing.assert_frame_equal(scope["model"].predict(frame), scope["report"].mtl.predict(frame))
    with pytest.raises(PolytaskError, match="uses a user head module"):
        pt.load("model", trunk_module=scope["trunk"])
    net = scope["moe"].build(5, {"y1": 1, "y2": 1})
    assert len(net.experts) == 6 and net.config()["user_modules"]["expert_module"].endswith("expert")
