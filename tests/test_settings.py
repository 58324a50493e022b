"""Every option declared once: each settings field is a CLI option and an estimator parameter
with the same default, and ``--config FILE`` sets the same settings."""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path

import click
import pandas as pd
import pytest

from polytask import DataConfig, NetworkSpec, PolytaskError, TrainConfig
from polytask.cli import app, main
from polytask.cli.options import SETTINGS, coerce, read_settings_file
from polytask.settings import declared_options, default_of
from polytask.sklearn import MultiTaskClassifier, MultiTaskRegressor

TRAINING_COMMANDS = ("fit", "compare", "relate", "group")


def _cli_default(param: click.Parameter) -> object:
    """A click option's default as the setting it stands for."""
    return param.default


def _as_setting(info, value):  # type: ignore[no-untyped-def]
    if info.kind == "widths":
        return tuple(int(w) for w in str(value).split(",") if w)
    if info.kind == "mapping":
        return {} if value in ((), None) else value
    return value


@pytest.mark.parametrize("command", TRAINING_COMMANDS)
def test_every_declared_field_is_an_option_of_every_training_command(command: str) -> None:
    params = {p.name: p for p in app.commands[command].params}
    for cls in SETTINGS:
        for f, info in declared_options(cls):
            assert f.name in params, f"{cls.__name__}.{f.name} is not an option of '{command}'"
            param = params[f.name]
            assert info.flag(f.name) in param.opts, (f.name, param.opts)
            assert _as_setting(info, _cli_default(param)) == default_of(f), f"default of --{f.name} differs"
            assert param.help == info.help
            if info.choices:
                assert tuple(param.type.choices) == info.choices  # type: ignore[attr-defined]


def test_python_only_fields_are_not_options() -> None:
    hidden = [f.name for cls in SETTINGS for f, info in declared_options(cls, exposed_only=False) if not info.expose]
    assert {"optimizer_factory", "scheduler_factory"} <= set(hidden)
    params = {p.name for p in app.commands["fit"].params}
    assert not set(hidden) & params


@pytest.mark.parametrize("estimator", [MultiTaskRegressor, MultiTaskClassifier])
def test_every_declared_field_is_an_estimator_parameter_with_the_same_default(estimator: type) -> None:
    signature = inspect.signature(estimator.__init__)
    params = estimator().get_params()
    for cls in SETTINGS:
        for f, info in declared_options(cls):
            name = info.sklearn_name(f.name)
            if not info.in_sklearn:
                assert name not in params, f"{name} is a command-line-only setting"
                continue
            assert name in params and name in signature.parameters, f"{cls.__name__}.{f.name} is not a parameter"
            default = signature.parameters[name].default
            # scikit-learn forbids mutable defaults: an empty mapping is declared as None there
            expected = None if isinstance(default_of(f), dict) else default_of(f)
            assert default == expected and params[name] == expected, f"default of {name} differs"
    assert {"task_weights", "verbose"} <= set(params)


def test_estimator_parameters_reach_the_trained_model() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    y = np.column_stack([x[:, 0], x[:, 1] - x[:, 2]])
    reg = MultiTaskRegressor(epochs=3, trunk=(5,), lr_schedule="step", step_size=1, gamma=0.5, grad_clip=1.0,
                             momentum=0.5, optimizer="sgd", random_state=3).fit(x, y)
    cfg = reg.model_.train_config
    assert (cfg["lr_schedule"], cfg["step_size"], cfg["gamma"], cfg["grad_clip"], cfg["seed"]) == ("step", 1, 0.5, 1.0, 3)
    assert reg.model_.network.config()["trunk"] == [5]
    with pytest.raises(TypeError, match="unexpected keyword argument 'epochz'"):
        MultiTaskRegressor(epochz=3)


def _csv(tmp_path: Path, small_frame: pd.DataFrame) -> Path:
    path = tmp_path / "d.csv"
    small_frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_file_sets_options_and_the_command_line_wins(small_frame: pd.DataFrame, tmp_path: Path, suffix: str,
                                                            capsys) -> None:  # type: ignore[no-untyped-def]
    data = _csv(tmp_path, small_frame)
    settings = {"epochs": 2, "lr": 0.01, "trunk": [6], "balancer": "dwa", "balancer_options": {"temperature": 3.0},
                "val_fraction": 0.2, "lr_schedule": "step", "step_size": 1}
    path = tmp_path / f"s{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(settings))
    else:
        import yaml

        path.write_text(yaml.safe_dump(settings))
    out = tmp_path / "m"
    code = main(["fit", str(data), "-t", "task0", "-t", "task1", "--config", str(path), "--lr", "0.05",
                 "--out", str(out), "--quiet", "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    meta = json.loads((out / "model.json").read_text())
    cfg = meta["train_config"]
    assert cfg["epochs"] == 2 and cfg["lr"] == 0.05  # the file's epochs; the command line's lr
    assert cfg["balancer"] == "dwa" and cfg["balancer_options"] == {"temperature": 3.0}
    assert (cfg["lr_schedule"], cfg["step_size"]) == ("step", 1)
    assert meta["network"]["trunk"] == [6]
    assert doc["rows"]["val"] == round(0.2 * len(small_frame))


def test_config_file_errors_name_the_file_and_the_setting(small_frame: pd.DataFrame, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = _csv(tmp_path, small_frame)
    bad = tmp_path / "bad.yaml"
    cases = {
        "epochz: 3\n": "unknown setting 'epochz'",
        "epochs: many\n": "setting 'epochs' in",
        "optimizer: lion\n": "must be one of adam, adamw, sgd",
        "- 1\n- 2\n": "must hold a mapping",
        "epochs: [\n": "cannot be read",
    }
    for text, message in cases.items():
        bad.write_text(text)
        code = main(["fit", str(data), "-t", "task0", "--config", str(bad), "--out", str(tmp_path / "x"), "-q"])
        err = capsys.readouterr().err
        assert code == 2 and message in err and str(bad) in err and err.count("\n") == 1, (text, err)
    code = main(["fit", str(data), "-t", "task0", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "x")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_settings_file_reader_and_coercion(tmp_path: Path) -> None:
    p = tmp_path / "s.txt"
    p.write_text("epochs: 3")
    with pytest.raises(PolytaskError, match="must end in"):
        read_settings_file(p)
    hints = typing.get_type_hints(TrainConfig)
    infos = {f.name: info for f, info in declared_options(TrainConfig)}
    assert coerce(infos["epochs"], 3.0, "x", hints["epochs"]) == 3
    with pytest.raises(PolytaskError, match="whole number"):
        coerce(infos["epochs"], 2.5, "x", hints["epochs"])
    with pytest.raises(PolytaskError, match="true or false"):
        coerce(infos["val_metrics"], "yes", "x", hints["val_metrics"])
    assert coerce(infos["grad_clip"], None, "x", hints["grad_clip"]) is None
    spec_infos = {f.name: info for f, info in declared_options(NetworkSpec)}
    assert coerce(spec_infos["trunk"], [8, 4], "x", typing.get_type_hints(NetworkSpec)["trunk"]) == (8, 4)
    data_infos = {f.name: info for f, info in declared_options(DataConfig)}
    assert coerce(data_infos["features"], "a, b", "x", typing.get_type_hints(DataConfig)["features"]) == ("a", "b")


def test_train_config_records_user_factories_by_name() -> None:
    import torch

    def my_optimizer(groups):  # type: ignore[no-untyped-def]
        return torch.optim.SGD(groups, lr=0.1)

    cfg = TrainConfig(optimizer_factory=my_optimizer)
    assert cfg.to_dict()["optimizer_factory"].endswith("my_optimizer")
    assert TrainConfig.from_dict(cfg.to_dict()).optimizer_factory is None
    with pytest.raises(PolytaskError, match="step size"):
        TrainConfig(step_size=0)
