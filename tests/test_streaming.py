"""Streaming fit (issue 15, part 1): files read as record batches, never whole.

The central check: on a Parquet directory small enough for both paths, the streamed fit and the
in-memory fit on the same rows, split and seed agree. They agree by construction: the one-pass
statistics equal the in-memory ones (exact medians below the sample size; means and sds up to
float64 summation order), and a shuffle buffer holding every training row draws the trainer's own
batch order. What is left is float rounding (summation order of the statistics, the validation
loss summed batch by batch), so metrics agree to 1e-5 rather than bit for bit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

import polytask
from polytask.cli import main
from polytask.data import read_table
from polytask.data.preprocessing import FeaturePreprocessor
from polytask.data.columns import infer_roles
from polytask.data.splits import Split
from polytask.data import stream_source
from polytask.data.config import DataConfig
from polytask.data.stream_config import StreamConfig
from polytask.data.stream_source import StreamSource, batch_frame
from polytask.data.stream_split import TEST, TRAIN, VAL, RowSplit
from polytask.data.stream_stats import Moments, StreamStats
from polytask.data.streaming import prepare_stream
from polytask.data.tensors import TaskTensors
from polytask.errors import PolytaskError
from polytask.models import build_network
from polytask.streamfit import fit_stream
from polytask.tasks import Task
from polytask.training import TrainConfig, Trainer


def _frame(n: int, rng: np.random.Generator) -> pd.DataFrame:
    x = rng.normal(size=(n, 3))
    df = pd.DataFrame({"a": x[:, 0], "b": x[:, 1] * 3 + 1, "c": x[:, 2]})
    df.loc[rng.random(n) < 0.1, "b"] = np.nan
    df["colour"] = rng.choice(["red", "green", "blue", "grey"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    df["flag"] = rng.random(n) < 0.3
    df["y"] = 2 * x[:, 0] - x[:, 2] + (df["colour"] == "red") + 0.1 * rng.normal(size=n)
    df["z"] = np.where(x[:, 1] + df["flag"] > 0.2, "yes", "no")
    return df


@pytest.fixture
def parquet_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    d = tmp_path / "table"
    d.mkdir()
    for k, n in enumerate((300, 250, 350)):
        _frame(n, rng).to_parquet(d / f"part-{k}.parquet", index=False, row_group_size=120)
    return d


def _memory_split(d: Path, rule: RowSplit) -> tuple[pd.DataFrame, Split]:
    """The files as one table (file order) and the streamed rule's split of its rows."""
    frames = [read_table(f) for f in StreamSource.open(d).files]
    member = np.concatenate([rule.assign(f, p.name, 0, "") for f, p in zip(frames, StreamSource.open(d).files)])
    split = Split(*(np.flatnonzero(member == c) for c in (TRAIN, VAL, TEST)))
    return pd.concat(frames, ignore_index=True), split


STREAM = StreamConfig(stream=True, shuffle_buffer=10_000, read_rows=100)  # buffer > rows: the trainer's order


@pytest.mark.parametrize("epochs", [1, 4])
def test_streamed_fit_equals_in_memory_fit(parquet_dir: Path, epochs: int) -> None:
    config = TrainConfig(epochs=epochs, batch_size=32, seed=3, patience=2)
    streamed = fit_stream(parquet_dir, ["y", "z"], config=config, stream=STREAM)
    frame, split = _memory_split(parquet_dir, streamed.prepared.split)
    assert {k: len(getattr(split, k)) for k in ("train", "val", "test")} == streamed.prepared.rows
    prepared = polytask.prepare(frame, ["y", "z"], split=split, seed=3)
    memory = polytask.fit(prepared, None, None, config).mtl
    a, b = streamed.model.preprocessor.to_dict(), prepared.preprocessor.to_dict()
    assert a["categorical"] == b["categorical"] and a["indicators"] == b["indicators"] and a["booleans"] == b["booleans"]
    for col, stats in b["numeric"].items():
        for key, value in stats.items():
            assert a["numeric"][col][key] == pytest.approx(value, rel=1e-12, abs=1e-12), (col, key)
    for e_stream, e_memory in zip(streamed.model.encoders, prepared.encoders):
        assert e_stream.classes_ == e_memory.classes_
        assert np.allclose(e_stream.mean_, e_memory.mean_, rtol=1e-12) and np.allclose(e_stream.std_, e_memory.std_, rtol=1e-12)
    assert streamed.model.summary["epochs_run"] == memory.summary["epochs_run"]
    for key in ("val_metrics", "test_metrics"):
        for task, values in memory.summary[key].items():
            for metric, value in values.items():
                assert streamed.model.summary[key][task][metric] == pytest.approx(value, rel=1e-5, abs=1e-6), (key, task, metric)


def test_small_buffer_shuffles_within_the_buffer_and_is_seeded(parquet_dir: Path) -> None:
    stream = StreamConfig(stream=True, shuffle_buffer=64, read_rows=50)
    prepared = prepare_stream(parquet_dir, ["y", "z"], stream=stream)
    rows = [torch.cat([b.x for b in prepared.dataset("train", 16, seed=s)]) for s in (0, 0, 1)]
    plain = torch.cat([b.x for b in prepared.dataset("train", 16, shuffle=False)])
    assert rows[0].shape == plain.shape == (prepared.rows["train"], prepared.n_features)
    assert torch.equal(rows[0], rows[1]) and not torch.equal(rows[0], rows[2]) and not torch.equal(rows[0], plain)
    key = lambda x: sorted(map(tuple, x.tolist()))  # noqa: E731
    assert key(rows[0]) == key(plain)  # the same rows, each once
    # rows are mixed within a buffer (64 rows + a record batch), not across the table (a leftover
    # row short of a full batch may wait for the next fill, so the bound is on the typical move)
    where = {tuple(r): i for i, r in enumerate(plain.tolist())}
    moved = np.array([abs(where[tuple(r)] - i) for i, r in enumerate(rows[0].tolist())])
    assert np.quantile(moved, 0.9) < 64 + 50 and moved.mean() > 5 and moved.max() < len(plain) / 2


def test_split_by_hash_is_seeded_and_has_the_fractions() -> None:
    rule = RowSplit(0.2, 0.1, seed=5)
    frame = pd.DataFrame(index=range(20_000))
    a, b = rule.assign(frame, "f.parquet", 0, ""), rule.assign(frame, "f.parquet", 0, "")
    other = RowSplit(0.2, 0.1, seed=6).assign(frame, "f.parquet", 0, "")
    assert np.array_equal(a, b) and not np.array_equal(a, other)
    for code, share in ((VAL, 0.2), (TEST, 0.1), (TRAIN, 0.7)):
        sd = math.sqrt(share * (1 - share) / len(a))
        assert abs((a == code).mean() - share) < 4 * sd
    # a batch starting at row 100 is the same rows as rows 100.. of the whole file
    assert np.array_equal(rule.assign(pd.DataFrame(index=range(50)), "f.parquet", 100, ""), a[100:150])
    assert not np.array_equal(rule.assign(frame, "g.parquet", 0, ""), a)


def test_split_by_row_id_does_not_depend_on_files_or_order() -> None:
    rule = RowSplit(0.3, 0.2, seed=1, row_id="id")
    ids = pd.DataFrame({"id": np.arange(1000) * 7 + 3})
    whole = rule.assign(ids, "a.parquet", 0, "")
    shuffled = ids.sample(frac=1.0, random_state=0)
    again = rule.assign(shuffled.reset_index(drop=True), "b.parquet", 500, "")
    assert np.array_equal(again, whole[shuffled.index.to_numpy()])
    texts = pd.DataFrame({"id": [f"user-{i}" for i in range(1000)]})
    assert 0.1 < (rule.assign(texts, "a", 0, "") == TEST).mean() < 0.3


def test_split_column_is_used_and_bad_values_name_the_row() -> None:
    rule = RowSplit(0.15, 0.15, 0, split_column="part")
    frame = pd.DataFrame({"part": ["train", "Val", "validation", " test", "train"]})
    assert rule.assign(frame, "f", 0, "").tolist() == [TRAIN, VAL, VAL, TEST, TRAIN]
    with pytest.raises(PolytaskError, match=r"split column 'part' holds 'dev' \(file 'x', row 12\)"):
        rule.assign(pd.DataFrame({"part": ["train", "dev"]}), "f", 10, "file 'x'")


def test_one_pass_statistics_equal_the_in_memory_fit() -> None:
    rng = np.random.default_rng(0)
    frame = _frame(5000, rng)
    frame["when"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, 5000), unit="D")
    frame["same"] = 4.0
    frame["many"] = rng.choice([f"k{i}" for i in range(30)], size=5000)
    frame.loc[::17, "many"] = None
    for c in ("a", "b", "c"):
        frame[c] = frame[c].astype(np.float32)
    cols = ["a", "b", "c", "colour", "flag", "when", "same", "many"]
    roles = infer_roles(frame, cols)
    train = rng.random(5000) < 0.7
    memory = FeaturePreprocessor(max_categories=8).fit(frame, np.flatnonzero(train), roles, drop_constant=True)
    stats = StreamStats(FeaturePreprocessor(max_categories=8), roles, [], capacity=10_000)
    for start in range(0, 5000, 700):
        stats.add(frame.iloc[start : start + 700].reset_index(drop=True), train[start : start + 700], "f", start)
    streamed, _ = stats.finish()
    a, b = streamed.to_dict(), memory.to_dict()
    assert streamed.dropped_ == memory.dropped_ == {"same": "always 4 in the training rows"}
    for key in ("columns", "categorical", "indicators", "booleans", "other"):
        assert a[key] == b[key], key
    assert a["dates"]["when"]["parts"].keys() == b["dates"]["when"]["parts"].keys()
    pairs = [(a["numeric"][c], b["numeric"][c]) for c in b["numeric"]]
    pairs += [(a["dates"]["when"]["parts"][p], v) for p, v in b["dates"]["when"]["parts"].items()]
    for got, want in pairs:
        assert got["median"] == want["median"]  # exact: fewer values than the sample holds
        assert got["mean"] == pytest.approx(want["mean"], rel=1e-12, abs=1e-12)
        assert got["std"] == pytest.approx(want["std"], rel=1e-12)
    assert stats.exact_medians()


def test_median_beyond_the_sample_is_a_reservoir_estimate() -> None:
    rng = np.random.default_rng(1)
    x = rng.exponential(size=200_000)
    m = Moments(5000, np.random.default_rng(0))
    for part in np.array_split(x, 37):
        m.add(part)
    assert not m.exact_median
    # the standard error of a sample median of an exponential is 1 / (2 f(median) sqrt(k)) = 1 / sqrt(k)
    assert abs(m.stats()["median"] - np.median(x)) < 4 / math.sqrt(5000)
    assert m.stats()["mean"] == pytest.approx(x.mean(), rel=1e-12)
    assert m.stats()["std"] == pytest.approx(x.std(), rel=1e-12)


class _Rows(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> None:
        self.x, self.y, self.z = x, y, z

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        return self.x[i], {"y": self.y[i], "z": self.z[i]}


class _Permutations(Sampler):
    def __init__(self, n: int, seed: int) -> None:
        self.n, self.generator = n, torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


def _toy(n: int, seed: int) -> TaskTensors:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = (x[:, :1] * 2 - x[:, 1:2]).float()
    z = (x[:, 2:3] > 0).float()
    return TaskTensors(x, {"y": y, "z": z}, {"y": torch.ones_like(y, dtype=torch.bool), "z": torch.ones_like(z, dtype=torch.bool)})


def _trainer(seed: int = 0) -> Trainer:
    torch.manual_seed(seed)
    tasks = [Task("y", "regression", ("y",)), Task("z", "binary", ("z",))]
    network = build_network("hps", 5, {"y": 1, "z": 1}, trunk=(16,))
    return Trainer(network, tasks, config=TrainConfig(epochs=3, batch_size=20, seed=seed))


def test_trainer_fits_a_plain_dataloader_as_it_fits_tensors() -> None:
    train, val = _toy(150, 0), _toy(60, 1)
    reference = _trainer()
    reference.fit(train, val)
    # a sampler drawing one permutation per epoch from a generator seeded as the trainer's gives
    # the trainer's batch order (torch's RandomSampler draws a second, empty-tail permutation)
    dataset = _Rows(train.x, train.targets["y"][:, 0], train.targets["z"][:, 0])
    loader = DataLoader(dataset, batch_size=20, sampler=_Permutations(len(dataset), seed=0))
    trainer = _trainer()
    trainer.fit(loader, DataLoader(_Rows(val.x, val.targets["y"][:, 0], val.targets["z"][:, 0]), batch_size=16))
    for (name, p), q in zip(reference.network.state_dict().items(), trainer.network.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), name
    for h_ref, h in zip(reference.history, trainer.history):
        for task, value in h_ref["val_loss"].items():
            assert h["val_loss"][task] == pytest.approx(value, rel=1e-5)


def test_dataloader_batches_with_masks_leave_masked_labels_out() -> None:
    data = _toy(80, 2)
    hidden = torch.rand(80, 1, generator=torch.Generator().manual_seed(3)) < 0.5
    masked = {"y": ~hidden, "z": torch.ones_like(hidden)}
    noisy = {"y": torch.where(hidden, torch.full_like(data.targets["y"], 1e3), data.targets["y"]), "z": data.targets["z"]}
    batches = [{"x": data.x[i : i + 20], "targets": {k: v[i : i + 20] for k, v in noisy.items()},
                "masks": {k: v[i : i + 20] for k, v in masked.items()}} for i in range(0, 80, 20)]
    clean = [{**b, "targets": {"y": torch.where(b["masks"]["y"], b["targets"]["y"], torch.zeros_like(b["targets"]["y"])),
                               "z": b["targets"]["z"]}} for b in batches]
    one, two = _trainer(), _trainer()
    one.fit(batches)
    two.fit(clean)
    for p, q in zip(one.network.parameters(), two.network.parameters()):
        assert torch.equal(p, q)  # a masked label, however wrong, changes nothing
    with pytest.raises(PolytaskError, match="no target for task 'z'"):
        _trainer().fit([{"x": data.x, "targets": {"y": data.targets["y"]}}])


def _run(args: list[object], capsys) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_stream_fit_writes_a_model_predict_loads(parquet_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "model"
    code, stdout, err = _run(["fit", parquet_dir, "--stream", "-t", "y", "-t", "z", "--epochs", "2", "--row-id", "a",
                              "--shuffle-buffer", "128", "-o", out, "--quiet"], capsys)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["split"]["method"] == "hash of row id column 'a'" and sum(report["rows"].values()) == 900
    assert set(report["mtl"]["test"]) == {"y", "z"}
    rows = tmp_path / "new.csv"
    pd.read_parquet(parquet_dir / "part-1.parquet").head(30).drop(columns=["y", "z"]).to_csv(rows, index=False)
    code, _, err = _run(["predict", out, rows, "-o", tmp_path / "pred.csv"], capsys)
    assert code == 0, err
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 30 and set(pred["z"]) <= {"yes", "no"} and pred["y"].notna().all()


def _error(args: list[object], capsys) -> str:  # type: ignore[no-untyped-def]
    code, _, err = _run(args, capsys)
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_cli_stream_errors_are_one_line_naming_the_file(parquet_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    base = ["fit", "--stream", "--epochs", "1", "-o", tmp_path / "m"]
    line = _error([*base, parquet_dir, "-t", "nope"], capsys)
    assert "'nope'" in line
    line = _error([*base, parquet_dir, "-t", "y", "--row-id", "uid"], capsys)
    assert "'uid'" in line and "part-0.parquet" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    assert str(empty) in _error([*base, empty, "-t", "y"], capsys)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    frame = pd.read_parquet(parquet_dir / "part-0.parquet")
    frame.to_parquet(mixed / "a.parquet", index=False)
    frame.drop(columns=["c"]).to_parquet(mixed / "b.parquet", index=False)
    line = _error([*base, mixed, "-t", "y"], capsys)
    assert "b.parquet" in line and "'c'" in line
    frame.assign(a=frame["a"].astype(str)).to_parquet(mixed / "b.parquet", index=False)
    line = _error([*base, mixed, "-t", "y"], capsys)
    assert "b.parquet" in line and "column 'a'" in line
    assert "--stream" in _error(["fit", parquet_dir, "-t", "y", "-o", tmp_path / "m"], capsys)
    assert "--stl" in _error([*base, parquet_dir, "-t", "y", "--stl"], capsys)


def test_stream_reads_csv_files_as_parquet(parquet_dir: Path, tmp_path: Path) -> None:
    csv = tmp_path / "csv"
    csv.mkdir()
    for f in StreamSource.open(parquet_dir).files:
        pd.read_parquet(f).to_csv(csv / f"{f.stem}.csv", index=False)
    semicolons = tmp_path / "semicolons"  # as spreadsheets export them where the decimal point is a comma
    semicolons.mkdir()
    for f in StreamSource.open(parquet_dir).files:
        pd.read_parquet(f).to_csv(semicolons / f"{f.stem}.csv", index=False, sep=";")
    a = prepare_stream(parquet_dir, ["y", "z"], stream=STREAM)
    for other in (csv, semicolons):
        b = prepare_stream(other, ["y", "z"], stream=STREAM)
        assert a.rows == b.rows and a.preprocessor.categorical_ == b.preprocessor.categorical_
        for col, stats in a.preprocessor.numeric_.items():
            assert b.preprocessor.numeric_[col]["mean"] == pytest.approx(stats["mean"], rel=1e-6)


def test_a_csv_cell_that_breaks_its_streamed_column_type_is_named_and_the_options_fix_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """pyarrow types a streamed CSV's columns from its first block. A text cell further down in a
    numeric column used to stop the run with "In CSV column #1: CSV conversion error to double",
    and neither --na-values nor --categorical helped, since both acted after pyarrow's conversion.
    Now the error names the column and the value, and both options (and --drop) work while reading."""
    monkeypatch.setattr(stream_source, "_CSV_BLOCK_BYTES", 1 << 12)  # 4 KiB blocks: row 2,500 is far past the first
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=3000).round(4), "b": rng.normal(size=3000).round(4)})
    frame["y"] = frame["a"] - frame["b"] + 0.1 * rng.normal(size=3000)
    cells = frame.astype(object)
    cells.loc[2500, "b"] = "abc"  # the second column: the message must not say '#1'
    data = tmp_path / "late.csv"
    cells.to_csv(data, index=False)
    code, _, err = _run(["fit", data, "-t", "y", "--stream", "--epochs", "1", "-o", tmp_path / "m"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "column 'b' was read as numbers from the first rows but holds 'abc' (line 2502)" in err and "--na-values" in err
    missing = prepare_stream(data, ["y"], DataConfig(na_values=("abc",)), stream=STREAM)
    assert missing.preprocessor.roles()["b"] == "numeric"
    assert sum(missing.rows.values()) == 3000  # no row lost
    with pytest.warns(UserWarning, match="feature column 'b' has 2083 categories"):  # read as text: every value a class
        text = prepare_stream(data, ["y"], DataConfig(categorical=("b",)), stream=STREAM)
    assert text.preprocessor.roles()["b"] == "categorical"
    assert prepare_stream(data, ["y"], DataConfig(drop=("b",)), stream=STREAM).preprocessor.roles() == {"a": "numeric"}
    ints = frame.assign(b=np.arange(3000) % 7).astype(object)  # whole numbers, then text
    ints.loc[2500, "b"] = "x1"
    ints.to_csv(data, index=False)
    code, _, err = _run(["fit", data, "-t", "y", "--stream", "--epochs", "1", "-o", tmp_path / "m2"], capsys)
    assert code == 2 and "column 'b' was read as whole numbers from the first rows but holds 'x1' (line 2502)" in err


def test_a_streamed_csv_column_of_whole_numbers_takes_a_later_decimal_and_loses_no_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole-number column that holds a decimal past the first block used to stop a --stream run
    ("holds whole numbers in its first rows but '2.5'"). Now the column is widened to float64 where
    that cell is met: every row comes once, at its position, with its value; the statistics equal
    those of the same table written with decimals from its first row; an all-integer column stays
    int64 (exact beyond 2**53)."""
    monkeypatch.setattr(stream_source, "_CSV_BLOCK_BYTES", 1 << 12)  # 4 KiB blocks: row 2,500 is far past the first
    rng = np.random.default_rng(4)
    b = (np.arange(3000) % 7).astype(float)
    b[2500] = 2.5
    big = 2**60 + np.arange(3000, dtype=np.int64)  # not representable in float64
    frame = pd.DataFrame({"a": rng.normal(size=3000).round(4), "big": big})
    frame["y"] = frame["a"] + b + 0.1 * rng.normal(size=3000)
    (tmp_path / "late").mkdir(), (tmp_path / "early").mkdir()
    late, early = tmp_path / "late" / "t.csv", tmp_path / "early" / "t.csv"  # one name: the split hashes it
    frame.assign(b=[f"{v:g}" for v in b]).to_csv(late, index=False)  # 0, 1, ..., 2.5 at row 2,500
    frame.assign(b=[f"{v:.1f}" for v in b]).to_csv(early, index=False)  # 0.0, 1.0, ...: numbers from the start
    source = StreamSource.open(late)
    assert source.schema.field("b").type == pa.int64()  # the first block's type
    for _ in range(2):  # the second pass uses the widening the first one found
        given = list(source.batches(["b", "big"], 500))
        got = pd.concat([batch_frame(batch) for _, _, batch in given], ignore_index=True)
        assert len(got) == 3000 and got["b"].to_numpy(np.float64).tolist() == b.tolist()
        assert got["big"].dtype == np.int64 and (got["big"].to_numpy() == big).all()
        assert all(f + batch.num_rows == g for (_, f, batch), (_, g, _) in zip(given, given[1:]))  # positions tile the file
        assert source.widened == {"b": pa.float64()}
    config = DataConfig(drop=("big",))
    widened, typed = prepare_stream(late, ["y"], config, stream=STREAM), prepare_stream(early, ["y"], config, stream=STREAM)
    assert widened.rows == typed.rows and sum(widened.rows.values()) == 3000
    assert widened.preprocessor.roles() == typed.preprocessor.roles() == {"a": "numeric", "b": "numeric"}
    for col, stats in typed.preprocessor.numeric_.items():
        assert widened.preprocessor.numeric_[col]["mean"] == pytest.approx(stats["mean"], rel=1e-6)
        assert widened.preprocessor.numeric_[col]["std"] == pytest.approx(stats["std"], rel=1e-6)


def test_dataloader_workers_each_read_their_own_record_batches(parquet_dir: Path) -> None:
    prepared = prepare_stream(parquet_dir, ["y", "z"], stream=StreamConfig(stream=True, shuffle_buffer=64, read_rows=50))
    one = torch.cat([b.x for b in prepared.loader("train", 16, seed=0)])
    two = torch.cat([b.x for b in prepared.loader("train", 16, seed=0, num_workers=2)])
    key = lambda x: sorted(map(tuple, x.tolist()))  # noqa: E731
    assert len(two) == len(one) and key(two) == key(one)  # every training row once, none twice


def test_class_labels_looked_up_as_numbers_match_their_text_keys() -> None:
    from polytask.data.targets import TargetEncoder, class_keys

    s = pd.Series([1.0, 0.0, np.nan, 2.5, 1.0, 0.0])
    enc = TargetEncoder(Task("c", "multiclass", ("c",))).fit(s.to_frame("c"), np.arange(6))
    y, m = enc.encode(s.to_frame("c"))
    keys = pd.Index([str(c) for c in ("0", "1", "2.5")])
    by_text = keys.get_indexer(class_keys(s).astype(object))
    assert m[:, 0].tolist() == [True, True, False, True, True, True]
    assert y[m[:, 0], 0].tolist() == by_text[m[:, 0]].tolist() == [1, 0, 2, 1, 0]
    ints = pd.Series([3, 7, 7, 3], dtype=np.int8).to_frame("c")
    enc = TargetEncoder(Task("c", "binary", ("c",))).fit(ints, np.arange(4))
    assert enc.encode(ints)[0][:, 0].tolist() == [0, 1, 1, 0]
    with pytest.raises(PolytaskError, match="class '5'"):
        enc.encode(pd.Series([3, 5], dtype=np.int8).to_frame("c"))


def test_prefetch_keeps_order_and_raises_the_producers_error() -> None:
    from polytask.data.streaming import prefetch

    assert list(prefetch(iter(range(50)), 2)) == list(range(50)) == list(prefetch(iter(range(50)), 0))

    def broken():  # type: ignore[no-untyped-def]
        yield 1
        raise PolytaskError("file 'x' could not be read")

    with pytest.raises(PolytaskError, match="file 'x'"):
        list(prefetch(broken(), 2))
    first = next(prefetch(iter(range(10**6)), 2))  # abandoned early: the producer thread stops
    assert first == 0


def _weights(fit) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    return {k: v.clone() for k, v in fit.model.network.state_dict().items()}


def test_a_resumed_streamed_fit_equals_the_uninterrupted_one(parquet_dir: Path, tmp_path: Path) -> None:
    """The checkpoint carries the shuffle's place in the stream (a buffer smaller than the data,
    so the order really depends on it); resuming after 2 of 4 epochs gives the 4-epoch model
    exactly, and a resume on changed files is refused."""
    from polytask.training.callbacks import CheckpointCallback

    stream = StreamConfig(stream=True, shuffle_buffer=96, read_rows=60)
    config = TrainConfig(epochs=4, batch_size=32, seed=5, patience=10, lr=3e-3)
    whole = fit_stream(parquet_dir, ["y", "z"], config=config, stream=stream)
    ckpt = tmp_path / "ckpt"
    halfway = replace_epochs(config, 2)
    fit_stream(parquet_dir, ["y", "z"], config=halfway, stream=stream, callbacks=[CheckpointCallback(ckpt)])
    resumed = fit_stream(parquet_dir, ["y", "z"], config=config, stream=stream, callbacks=[CheckpointCallback(ckpt)],
                         resume_from=ckpt)
    assert resumed.model.summary["epochs_run"] == 4
    a, b = _weights(whole), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    fresh = fit_stream(parquet_dir, ["y", "z"], config=halfway, stream=stream)  # no resume: a different model
    assert not all(torch.equal(a[k], v) for k, v in _weights(fresh).items())
    extra = pd.read_parquet(parquet_dir / "part-0.parquet").head(20)
    extra.to_parquet(parquet_dir / "part-3.parquet", index=False)
    with pytest.raises(PolytaskError, match="cannot resume"):
        fit_stream(parquet_dir, ["y", "z"], config=config, stream=stream, resume_from=ckpt)


def replace_epochs(config: TrainConfig, epochs: int) -> TrainConfig:
    from dataclasses import replace

    return replace(config, epochs=epochs)


def test_cli_stream_fit_resumes_from_its_checkpoint(parquet_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    base = ["fit", parquet_dir, "--stream", "-t", "y", "-t", "z", "--shuffle-buffer", "96", "--seed", "2", "--quiet"]
    code, _, err = _run([*base, "--epochs", "3", "-o", tmp_path / "whole"], capsys)
    assert code == 0, err
    ckpt = tmp_path / "ckpt"
    code, _, err = _run([*base, "--epochs", "1", "--checkpoint-dir", ckpt, "-o", tmp_path / "first"], capsys)
    assert code == 0, err
    assert (ckpt / "mtl" / "checkpoint.safetensors").is_file()
    code, _, err = _run([*base, "--epochs", "3", "--checkpoint-dir", ckpt, "--resume", "-o", tmp_path / "resumed"], capsys)
    assert code == 0, err
    whole = json.loads((tmp_path / "whole" / "report.json").read_text())["mtl"]["test"]
    resumed = json.loads((tmp_path / "resumed" / "report.json").read_text())["mtl"]["test"]
    assert resumed == whole
    assert "no checkpoint to resume from" in _error([*base, "--checkpoint-dir", tmp_path / "none", "--resume",
                                                      "-o", tmp_path / "m"], capsys)


def test_a_plain_dataloader_run_cannot_be_resumed(tmp_path: Path) -> None:
    trainer = _trainer()
    loader = [_toy(64, 0)]  # any iterable of batches: nothing says where its order stands
    with pytest.raises(PolytaskError, match="resuming from a checkpoint needs the training tensors, or a loader"):
        trainer.fit(loader, None, resume_from=tmp_path)
