"""Real tables as users bring them: any column name, column roles inferred and reported, dates
expanded, identifiers dropped, text refused, schema changes never silent, unseen categories
counted, the file's lines in messages, and the multi-input long format round trip."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import polytask as pt
from polytask import DataConfig, PolytaskError
from polytask.cli import main
from polytask.data import (
    ColumnReport,
    DataWarning,
    FeaturePreprocessor,
    LongFormat,
    capture_warnings,
    explain_kind,
    from_task_column,
    read_table,
)
from polytask.data.prepare import prepare
from polytask.data.csv_dialect import CsvDialect, csv_dialect

FAST = ["--epochs", "3", "--trunk", "8"]


def _table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.normal(size=n), "colour": rng.choice(["red", "blue", "green"], n)})
    frame["y"] = frame["x0"] * 2 - frame["x1"] + rng.normal(scale=0.1, size=n)
    return frame


def _prepare(frame: pd.DataFrame, targets: list[str], config: DataConfig | None = None) -> tuple[pt.Prepared, list[str]]:  # type: ignore[name-defined]
    with capture_warnings() as warned:
        prepared = prepare(frame, targets, config)
    return prepared, warned


# -- names -------------------------------------------------------------------------------------
NAMES = ["Grad.Rate", "x y", "é ü ß", "a_b", "a.b", "a=b", "c:d", "1", "  padded  ", "名字"]


def test_any_column_name_works_in_the_data_layer_and_round_trips_through_json(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({name: rng.normal(size=80) for name in NAMES})
    frame["cat.égorie"] = rng.choice(["p", "q"], 80)
    frame["target.1 ü"] = frame["Grad.Rate"] + frame["a.b"]
    path = tmp_path / "names.csv"
    frame.to_csv(path, index=False)
    read = read_table(path)
    assert list(read.columns) == list(frame.columns)  # nothing renamed, stripped or sanitised
    prepared, _ = _prepare(read, ["target.1 ü"])
    pre = prepared.preprocessor
    assert pre.columns_ == [*NAMES, "cat.égorie"]
    again = FeaturePreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    np.testing.assert_array_equal(again.transform(read), pre.transform(read))
    assert [t.name for t in prepared.columns.tasks] == ["target.1 ü"]
    assert {f.name for f in prepared.columns.features} == {*NAMES, "cat.égorie"}


def test_names_that_are_the_same_text_are_refused() -> None:
    frame = pd.DataFrame([[1.0, 2.0, 3.0]], columns=[1, "1", "y"])
    with pytest.raises(PolytaskError, match="column '1' appears twice in the table"):
        prepare(frame, ["y"])


def test_weird_feature_names_fit_save_load_and_predict(tmp_path: Path) -> None:
    frame = _table().rename(columns={"x0": "Grad.Rate", "x1": "x y é", "colour": "col.our"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        report = pt.fit(frame, ["y"], config=pt.TrainConfig(epochs=2))
    report.mtl.save(tmp_path / "m")
    loaded = pt.load(tmp_path / "m")
    pd.testing.assert_frame_equal(loaded.predict(frame), report.mtl.predict(frame))
    assert loaded.preprocessor.columns_ == ["Grad.Rate", "x y é", "col.our"]


# -- headers and reading ----------------------------------------------------------------------
def test_a_duplicated_header_is_refused_naming_the_column(tmp_path: Path) -> None:
    csv = tmp_path / "dup.csv"
    csv.write_text("x,y,x\n1,2,3\n4,5,6\n")
    with pytest.raises(PolytaskError, match=r"column 'x' appears twice in the header \(columns 1 and 3\)"):
        read_table(csv)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table([pa.array([1.0, 2.0]), pa.array([3.0, 4.0])], names=["y", "y"])
    pq.write_table(table, tmp_path / "dup.parquet")
    with pytest.raises(PolytaskError, match="column 'y' appears twice in the header"):
        read_table(tmp_path / "dup.parquet")


def test_numbers_are_read_as_float32_and_integers_exactly(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("f,i,big,id,flag\n0.5,1,1e300,9007199254740993,true\n1.5,200,2,9007199254740995,false\n")
    frame = read_table(path, exact=["id"])
    assert frame["f"].dtype == np.float32 and frame["i"].dtype == np.int16
    assert frame["big"].dtype == np.float64  # beyond float32's range: kept in float64, not made infinite
    assert frame["id"].tolist() == [9007199254740993, 9007199254740995]  # exact (not representable in a float)
    assert frame["flag"].dtype == bool


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_a_csv_separated_by_semicolons_tabs_or_pipes_is_read_as_its_header_shows(tmp_path: Path, sep: str) -> None:
    """A spreadsheet export from a locale with a decimal comma separates fields with ';'. It used
    to be read as one column named 'id;x;y' ("target column 'y' is not in the data")."""
    import gzip

    text = sep.join(["id", "x", "y", "c"]) + "\n" + "".join(sep.join([f"r{i}", f"{i / 4}", f"{2 * i}", "ab"[i % 2]]) + "\n" for i in range(6))
    plain, packed = tmp_path / "t.csv", tmp_path / "t.csv.gz"
    plain.write_text("\ufeff" + text, encoding="utf-8")  # with a byte-order mark, as Excel writes
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    for path in (plain, packed):
        assert csv_dialect(path) == CsvDialect(sep, ".")
        frame = read_table(path)
        assert list(frame.columns) == ["id", "x", "y", "c"] and frame["x"].tolist() == [i / 4 for i in range(6)]
        assert frame["c"].tolist() == list("ababab")
    odd = tmp_path / "odd.csv"
    odd.write_text(sep.join(["x", "y"]) + "\n1" + sep + "2\n3" + sep + "4" + sep + "5\n")
    with pytest.raises(PolytaskError, match="line 3 has 3 fields but the header has 2"):  # the separator counts fields
        read_table(odd)


def test_a_comma_csv_stays_comma_separated_whatever_its_names_hold(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text('"a;b","c|d",y\n1,2,3\n4,5,6\n')
    assert csv_dialect(path) == CsvDialect(",", ".") and list(read_table(path).columns) == ["a;b", "c|d", "y"]
    single = tmp_path / "single.csv"
    single.write_text("y\n1,5\n2\n")
    assert csv_dialect(single) == CsvDialect(",", ".")  # a comma-separated file never has decimal commas
    assert csv_dialect(tmp_path / "t.tsv").delimiter == "\t"  # by its name, before anything is read


def test_decimal_commas_are_read_where_a_semicolon_file_writes_them_in_memory_and_streamed(tmp_path: Path) -> None:
    """A spreadsheet saved as CSV where the decimal mark is a comma writes ``x;y`` / ``1,5;-2,25``.
    Its numbers are numbers on both readers; a file that also writes ``1.5`` keeps one mark (the
    point), and its comma cells are named in the error, not silently read."""
    from polytask.data.streaming import prepare_stream

    rng = np.random.default_rng(0)
    x = rng.normal(size=200).round(3)
    y = (2 * x + rng.normal(scale=0.1, size=200)).round(3)
    (tmp_path / "semi").mkdir(), (tmp_path / "plain").mkdir()
    path, plain = tmp_path / "semi" / "t.csv", tmp_path / "plain" / "t.csv"  # one name: a streamed split hashes it
    rows = [(f"{a}", f"{b}", "pq"[i % 2]) for i, (a, b) in enumerate(zip(x, y))]
    path.write_text("x;y;c\n" + "".join(";".join(r).replace(".", ",") + "\n" for r in rows))
    plain.write_text("x,y,c\n" + "".join(",".join(r) + "\n" for r in rows))
    assert csv_dialect(path) == CsvDialect(";", ",")
    frame = read_table(path)
    assert frame["x"].dtype == np.float32 and np.allclose(frame["x"], x) and np.allclose(frame["y"], y)
    pd.testing.assert_frame_equal(frame, read_table(plain))
    streamed, reference = prepare_stream(path, ["y"]), prepare_stream(plain, ["y"])
    assert streamed.rows == reference.rows and streamed.preprocessor.roles() == reference.preprocessor.roles() == {"x": "numeric", "c": "categorical"}
    assert streamed.preprocessor.numeric_["x"] == pytest.approx(reference.preprocessor.numeric_["x"])
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("x;y\n1.5;2\n" + "".join(f"{i},5;{i}\n" for i in range(30)))
    assert csv_dialect(mixed) == CsvDialect(";", ".")
    with pytest.raises(PolytaskError, match=r"feature column 'x' holds numbers except in 30 cells: '0,5' \(line 3\)"):
        prepare(read_table(mixed), ["y"])


def test_a_row_with_too_many_fields_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4\n5,6,7\n")
    with pytest.raises(PolytaskError, match="line 4 has 3 fields but the header has 2"):
        read_table(path)


def test_text_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("a,y\ncaf\xe9,1\nbar,2\n".encode("latin-1"))
    with pytest.raises(PolytaskError, match="is not UTF-8 text"):
        read_table(path)


def test_columns_whose_blocks_disagree_are_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    rows = ["a,b"] + [f"{i},{i}" for i in range(150_000)] + ["oops,1"]
    path.write_text("\n".join(rows) + "\n")
    frame = read_table(path)
    assert frame["a"].iloc[0] == "0" and frame["a"].iloc[-1] == "oops" and frame["b"].dtype.kind == "i"


# -- roles ------------------------------------------------------------------------------------
def test_dates_are_expanded_fitted_on_training_rows_saved_and_applied_at_predict(tmp_path: Path) -> None:
    n = 150
    frame = _table(n)
    frame["when"] = pd.date_range("2001-01-01", periods=n, freq="MS").strftime("%Y-%m-%d")
    frame["y"] = frame["y"] + np.arange(n) * 0.05
    path = tmp_path / "dated.csv"
    frame.to_csv(path, index=False)
    prepared, _ = _prepare(read_table(path), ["y"])
    pre = prepared.preprocessor
    assert pre.roles()["when"] == "datetime"
    assert list(pre.dates_["when"]["parts"]) == ["days", "year", "month", "weekday"]  # day of month is constant
    train_days = (pd.to_datetime(frame["when"]).iloc[prepared.split.train] - pd.Timestamp("1970-01-01")).dt.days
    assert pre.dates_["when"]["parts"]["days"]["mean"] == pytest.approx(train_days.mean())
    assert [n for n in pre.output_names if n.startswith("when")] == ["when:days", "when:year", "when:month", "when:weekday"]
    again = FeaturePreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    future = frame.iloc[:3].assign(when=["2030-06-01", "2030-07-01", ""])
    out = again.transform(future)
    days = (pd.Timestamp("2030-06-01") - pd.Timestamp("1970-01-01")).days
    st = pre.dates_["when"]["parts"]["days"]
    assert out[0, pre.output_names.index("when:days")] == pytest.approx((days - st["mean"]) / st["std"], rel=1e-5)
    with pytest.raises(PolytaskError, match=r"feature column 'when' holds 'soon' \(row 1\), which is not a date"):
        again.transform(future.assign(when=["2030-06-01", "soon", "2030-01-01"]))


def test_parquet_datetimes_with_a_time_zone_are_dates(tmp_path: Path) -> None:
    frame = _table(60)
    frame["at"] = pd.date_range("2020-01-01 06:00", periods=60, freq="7h", tz="Europe/Oslo")
    frame.to_parquet(tmp_path / "t.parquet")
    prepared, _ = _prepare(read_table(tmp_path / "t.parquet"), ["y"])
    assert "hour" in prepared.preprocessor.dates_["at"]["parts"]
    assert prepared.preprocessor.roles()["at"] == "datetime"


def test_day_first_dates_are_recognised_and_ambiguous_ones_warned_about() -> None:
    frame = _table(40)
    frame["d"] = pd.date_range("2020-01-13", periods=40, freq="D").strftime("%d/%m/%Y")  # day 13+ shows the order
    prepared, warned = _prepare(frame, ["y"])
    assert prepared.preprocessor.dates_["d"]["format"] == "%d/%m/%Y" and not any("'d'" in w for w in warned)
    frame["d"] = pd.date_range("2020-01-01", periods=40, freq="MS").strftime("%d/%m/%Y")  # always the 1st
    _, warned = _prepare(frame, ["y"])
    assert any("do not show whether the day or the month comes first" in w for w in warned)


def test_identifier_like_columns_are_dropped_with_a_warning_naming_them() -> None:
    frame = _table()
    frame["name"] = [f"item-{i:04d}" for i in range(len(frame))]
    frame["Unnamed: 0"] = np.arange(len(frame))  # a written index
    prepared, warned = _prepare(frame, ["y"])
    assert "name" not in prepared.preprocessor.columns_ and "Unnamed: 0" not in prepared.preprocessor.columns_
    assert any("feature column 'name' looks like an identifier (120 distinct values in 120 rows)" in w for w in warned)
    assert any("'Unnamed: 0' looks like an identifier (integers counting the rows)" in w for w in warned)
    assert prepared.columns.dropped["name"].startswith("identifier")
    with pytest.raises(PolytaskError, match="feature column 'name' looks like an identifier"):
        prepare(frame, ["y"], DataConfig(identifiers="error"))
    used, _ = _prepare(frame, ["y"], DataConfig(identifiers="feature", max_categories=10))
    assert "name" in used.preprocessor.columns_ and "name" in used.preprocessor.other_


def test_free_text_is_refused_suggesting_drop() -> None:
    frame = _table()
    frame["review"] = [f"the stay number {i} was quiet and clean" for i in range(len(frame))]
    with pytest.raises(PolytaskError, match=r"feature column 'review' looks like free text .*--drop review"):
        prepare(frame, ["y"])
    prepared, _ = _prepare(frame, ["y"], DataConfig(drop=("review",)))
    assert prepared.columns.dropped == {"review": "--drop"}


def test_constant_features_are_dropped_with_a_warning() -> None:
    frame = _table().assign(same=7.0, label="k", empty=np.nan)
    prepared, warned = _prepare(frame, ["y"])
    assert not {"same", "label", "empty"} & set(prepared.preprocessor.columns_)
    assert any("feature column 'same' is constant (always 7 in the training rows)" in w for w in warned)
    assert any("'label' is constant (always 'k'" in w for w in warned)
    assert any("'empty' is constant" in w for w in warned)


def test_booleans_are_one_input_and_declared_categoricals_are_one_hot() -> None:
    frame = _table()
    frame["member"] = np.arange(len(frame)) % 3 == 0
    frame["zip"] = np.tile([1000, 2000, 3000, 4000], len(frame) // 4)
    prepared, _ = _prepare(frame, ["y"], DataConfig(categorical=("zip",)))
    pre = prepared.preprocessor
    assert pre.roles()["member"] == "boolean" and pre.input_widths()["member"] == 1
    assert pre.categorical_["zip"] == ["1000", "2000", "3000", "4000"]
    x = pre.transform(frame.iloc[:4])
    cols = [pre.output_names.index(f"zip={z}") for z in (1000, 2000, 3000, 4000)]
    np.testing.assert_array_equal(x[:, cols], np.eye(4))


def test_categories_beyond_the_limit_share_an_other_input_and_unseen_ones_are_counted() -> None:
    rng = np.random.default_rng(2)
    frame = _table(400)
    frame["city"] = rng.choice([f"c{i:02d}" for i in range(30)], 400, p=np.r_[[0.2] * 3, [0.4 / 27] * 27])
    prepared, warned = _prepare(frame, ["y"], DataConfig(max_categories=5))
    pre = prepared.preprocessor
    assert len(pre.categorical_["city"]) == 4 and "city=(other)" in pre.output_names
    assert any("'city' has" in w and "share '(other)'" in w for w in warned)
    rare = pre.other_["city"]["values"][0]
    new = frame.iloc[:3].assign(city=[rare, "atlantis", "atlantis"])
    with pytest.warns(DataWarning, match=r"'city' 2 rows \('atlantis' x2\)"):
        x = pre.transform(new)
    np.testing.assert_array_equal(x[:, pre.output_names.index("city=(other)")], [1, 1, 1])


def test_an_unseen_category_at_predict_time_warns_with_counts(tmp_path: Path) -> None:
    frame = _table()
    data, new = tmp_path / "d.csv", tmp_path / "new.csv"
    frame.to_csv(data, index=False)
    frame.assign(colour=["purple"] * 5 + ["teal"] * 2 + list(frame["colour"].iloc[7:])).to_csv(new, index=False)
    assert main(["fit", str(data), "-t", "y", "--out", str(tmp_path / "m"), "--quiet", *FAST]) == 0
    model = pt.load(tmp_path / "m")
    with pytest.warns(DataWarning, match=r"'colour' 7 rows \('purple' x5, 'teal' x2\)"):
        preds = model.predict(read_table(new))
    assert len(preds) == len(frame)


def test_predict_command_prints_the_unseen_categories(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    frame = _table()
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.assign(colour="purple").to_csv(tmp_path / "new.csv", index=False)
    assert main(["fit", str(tmp_path / "d.csv"), "-t", "y", "--out", str(tmp_path / "m"), "--quiet", *FAST]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    err = capsys.readouterr().err
    assert "warning: categories not seen in training, encoded as no category: 'colour' 120 rows ('purple' x120)" in err


# -- nothing silent: minority cells, kinds, constants ------------------------------------------
def test_one_odd_cell_in_a_numeric_feature_is_an_error_naming_the_cell_and_its_line(tmp_path: Path) -> None:
    frame = _table().astype({"x1": object})
    frame.loc[17, "x1"] = "abc"
    frame.loc[60, "x1"] = "?"
    path = tmp_path / "odd.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(PolytaskError, match=r"feature column 'x1' holds numbers except in 2 cells: 'abc' \(line 19\), "
                                            r"'\?' \(line 62\)"):
        prepare(read_table(path), ["y"])
    prepared, _ = _prepare(read_table(path), ["y"], DataConfig(na_values=("?", "abc")))
    assert prepared.preprocessor.roles()["x1"] == "numeric" and "x1" in prepared.preprocessor.indicators_


def test_a_late_odd_cell_in_a_long_csv_leaves_no_pandas_warning_only_the_one_line_error(tmp_path: Path) -> None:
    """pandas parses a long CSV in blocks of 2**18 rows and, when one block of a column holds text
    and another numbers, printed a DtypeWarning (three lines naming polytask's source) before
    polytask's own error; the reader handles such columns itself, so the warning is not shown."""
    n = 270_000
    rng = np.random.default_rng(4)
    a, y = rng.normal(size=n).round(3), rng.normal(size=n).round(3)
    lines = [f"{x},{t}" for x, t in zip(a, y)]
    lines[n - 10] = f"abc,{y[n - 10]}"
    path = tmp_path / "long.csv"
    path.write_text("a,y\n" + "\n".join(lines) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = read_table(path)
    assert [w for w in caught if issubclass(w.category, pd.errors.DtypeWarning)] == []
    with pytest.raises(PolytaskError, match=rf"feature column 'a' holds numbers except in 1 cell: 'abc' \(line {n - 8}\)"):
        prepare(frame, ["y"])


def test_a_number_with_thousands_separators_never_becomes_a_class_label() -> None:
    frame = _table(10)
    frame["price"] = [f"{1000 + 37 * i:,}" for i in range(10)]  # "1,000", "1,037", ...
    with pytest.raises(PolytaskError, match=r"target column 'price' holds numbers written in a way polytask does not "
                                            r"read: '1,000' \(row 0\)"):
        prepare(frame, ["price"])
    # declared as classes, it is classes (and the report says why)
    prepared, _ = _prepare(frame, [pt.Task("price", "multiclass")])
    assert prepared.columns.tasks[0].reason == "given"


def test_a_few_odd_labels_in_a_numeric_target_are_an_error(tmp_path: Path) -> None:
    frame = _table().astype({"y": object})
    frame.loc[33, "y"] = "n/a?"
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(PolytaskError, match=r"target column 'y' holds numbers except in 1 cell: 'n/a\?' \(line 35\)"):
        prepare(read_table(path), ["y"])


def test_a_zero_one_column_of_ones_is_refused_not_regression() -> None:
    frame = _table().assign(flag=1)
    with pytest.raises(PolytaskError, match=r"target column 'flag' holds a single value \(1\) in every labelled row"):
        prepare(frame, ["y", "flag"])


def test_doubtful_kinds_come_with_a_warning_and_a_reason() -> None:
    frame = _table(30)
    frame["two"] = np.where(frame["x0"] > 0, 1, 2)
    frame["code"] = [f"k{i}" for i in range(30)]
    prepared, warned = _prepare(frame, ["y", "two", "code"])
    reasons = {t.name: (t.kind, t.reason) for t in prepared.columns.tasks}
    assert reasons["two"] == ("regression", "numbers with 2 distinct values")
    assert reasons["code"] == ("multiclass", "text with 30 classes")
    assert any("target 'two' holds only two numbers (1 and 2)" in w for w in warned)
    assert any("target 'code' has 30 classes in 30 labelled rows" in w for w in warned)
    assert explain_kind(pd.Series([0.0, 1.0, np.nan], name="b")).reason == "numbers 0 and 1"


def test_errors_name_the_files_line_not_the_position_in_a_split(tmp_path: Path) -> None:
    frame = _table()
    frame.loc[101, "x0"] = np.inf
    path = tmp_path / "inf.csv"
    text = frame.to_csv(index=False).splitlines()
    # a quoted cell holding a newline and a blank line before the bad row: its line is 2 past header + record
    text[5] = text[5].replace("red", '"re\nd"').replace("blue", '"bl\nue"').replace("green", '"gr\neen"')
    text.insert(20, "")
    path.write_text("\n".join(text) + "\n")
    read = read_table(path)
    assert len(read) == len(frame)
    with pytest.raises(PolytaskError, match=r"feature column 'x0' has an infinite value \(line 105\)"):
        prepare(read, ["y"])


# -- drop, keep, report --------------------------------------------------------------------------
def test_keep_columns_pass_through_to_predictions_exactly(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    frame = _table()
    frame.insert(0, "sku", [10**17 + 3 * i for i in range(len(frame))])
    frame.to_csv(tmp_path / "d.csv", index=False)
    model = tmp_path / "m"
    assert main(["fit", str(tmp_path / "d.csv"), "-t", "y", "--keep", "sku", "--out", str(model), "--quiet", *FAST]) == 0
    assert "sku" not in pt.load(model).preprocessor.columns_
    assert main(["predict", str(model), str(tmp_path / "d.csv"), "--out", str(tmp_path / "p.csv"), "--quiet"]) == 0
    preds = pd.read_csv(tmp_path / "p.csv")
    assert list(preds.columns) == ["sku", "y"] and preds["sku"].tolist() == frame["sku"].tolist()
    with pytest.warns(DataWarning, match="kept column 'sku' is not in the data"):
        pt.load(model).predict(frame.drop(columns=["sku"]))


def test_drop_and_keep_name_columns_that_exist() -> None:
    frame = _table()
    with pytest.raises(PolytaskError, match="--drop column 'nope' is not in the data"):
        prepare(frame, ["y"], DataConfig(drop=("nope",)))
    with pytest.raises(PolytaskError, match="column 'y' is both a target and a --keep column"):
        prepare(frame, ["y"], DataConfig(keep=("y",)))
    with pytest.raises(PolytaskError, match="column 'x0' is given both to drop and to keep"):
        DataConfig(drop=("x0",), keep=("x0",))


def test_the_column_report_says_what_was_used_and_round_trips() -> None:
    frame = _table()
    frame["id"] = [f"r{i}" for i in range(len(frame))]
    frame["label"] = np.where(frame["y"] > 0, "up", "down")
    prepared, _ = _prepare(frame, ["y", "label"], DataConfig(keep=("id",)))
    lines = prepared.columns.lines()
    assert lines[0] == f"columns: 3 features -> {prepared.train.x.shape[1]} inputs"
    assert "  numeric: x0, x1" in lines and "  categorical: colour (3 categories)" in lines
    assert "  kept for predictions: id" in lines
    assert any(line.startswith("  label: binary (text with 2 classes;") for line in lines)
    again = ColumnReport.from_dict(json.loads(json.dumps(prepared.columns.to_dict())))
    assert again.lines() == lines


def test_prepared_splits_are_views_of_one_float32_array() -> None:
    prepared, _ = _prepare(_table(), ["y"])
    base = prepared.train.x.untyped_storage().data_ptr()
    assert prepared.val.x.untyped_storage().data_ptr() == base == prepared.test.x.untyped_storage().data_ptr()
    assert prepared.train.x.dtype.is_floating_point and prepared.train.x.element_size() == 4
    rows = prepared.split.test
    np.testing.assert_allclose(prepared.test.x.numpy(), prepared.preprocessor.transform(prepared.frame.iloc[rows]), rtol=1e-6)


# -- multi-input long format --------------------------------------------------------------------
def _schools(n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"pupil": [f"p{i}" for i in range(n)], "school": rng.choice([1, 2, 3], n), "x": rng.normal(size=n)})
    frame["score"] = frame["x"] * 2 + frame["school"] + rng.normal(scale=0.1, size=n)
    return frame


def test_long_format_round_trips_through_the_wide_form() -> None:
    long = _schools()
    wide, names = from_task_column(long, "school", "score")
    fmt = LongFormat.of(wide)
    assert names == ["score@1", "score@2", "score@3"] and fmt is not None
    back = fmt.wide(long)
    for name in names:
        pd.testing.assert_series_equal(back[name], wide[name], check_names=False)
    fake = pd.DataFrame({n: np.full(len(long), i, dtype=float) for i, n in enumerate(names)})
    own = fmt.own_task(fake, long)
    np.testing.assert_array_equal(own["score"].to_numpy(), long["school"].to_numpy() - 1.0)
    with pytest.raises(PolytaskError, match=r"task-id column 'school' holds '9' \(row 2\), which is not a task"):
        fmt.wide(long.assign(school=[1, 2, 9] + [1] * (len(long) - 3)))
    with pytest.raises(PolytaskError, match="clashes with a column"):
        from_task_column(long.assign(**{"score@1": 0.0}), "school", "score")


def test_predict_and_evaluate_read_what_fit_read_in_the_multi_input_setting(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    long = _schools()
    data = tmp_path / "schools.csv"
    long.to_csv(data, index=False)
    model = tmp_path / "m"
    assert main(["fit", str(data), "-t", "score", "--task-column", "school", "--keep", "pupil", "--out", str(model),
                 "--quiet", *FAST]) == 0
    assert main(["predict", str(model), str(data), "--out", str(tmp_path / "p.csv"), "--quiet"]) == 0
    preds = pd.read_csv(tmp_path / "p.csv")
    assert list(preds.columns) == ["pupil", "school", "score"] and len(preds) == len(long)
    wide = pt.load(model).predict(long)
    own = np.choose(long["school"].to_numpy() - 1, [wide[f"score@{s}"].to_numpy() for s in (1, 2, 3)])
    np.testing.assert_allclose(preds["score"].to_numpy(), own, rtol=1e-5)
    assert main(["predict", str(model), str(data), "--out", str(tmp_path / "w.csv"), "--wide", "--quiet"]) == 0
    assert list(pd.read_csv(tmp_path / "w.csv").columns) == ["pupil", "score@1", "score@2", "score@3"]
    capsys.readouterr()
    assert main(["evaluate", str(model), str(data), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"score@1", "score@2", "score@3"}


def test_a_model_with_a_date_column_that_had_missing_values_saves_and_loads(tmp_path: Path) -> None:
    """A date column with a missing cell gets a missing-value indicator; the model directory's
    checks must accept an indicator for a date column, not only for a number."""
    rng = np.random.default_rng(5)
    days = pd.Series(pd.date_range("2020-01-01", periods=120, freq="D").strftime("%Y-%m-%d"))
    days[[3, 50]] = ""
    frame = pd.DataFrame({"when": days, "x": rng.normal(size=120), "y": rng.normal(size=120)})
    model = pt.fit(frame, ["y"], config=pt.TrainConfig(epochs=2, batch_size=32))
    assert "when" in model.mtl.preprocessor.indicators_
    loaded = pt.load(model.mtl.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.predict(frame)["y"], model.mtl.predict(frame)["y"], rtol=1e-6)


def test_fit_prints_the_column_report_before_training_and_stores_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Issue 17: fit says which features, encodings and task kinds it used (stdout, before the
    results), warns about dropped identifiers on stderr, and keeps the summary in report.json."""
    frame = _table().assign(name=[f"row {i}" for i in range(120)], note="same everywhere")
    frame.to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "m"
    assert main(["fit", str(tmp_path / "d.csv"), "-t", "y", "--out", str(out), *FAST]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "columns: 3 features -> 5 inputs"
    assert "  numeric: x0, x1" in lines and "  categorical: colour (3 categories)" in lines
    assert any(line.startswith("  dropped: name (identifier") and "note (constant" in line for line in lines)
    assert "  y: regression (" in "\n".join(lines)
    assert lines.index("tasks:") < next(i for i, line in enumerate(lines) if line.startswith("test metrics"))
    assert "warning: " in captured.err and "'name'" in captured.err
    stored = json.loads((out / "report.json").read_text())["columns"]
    assert [f["name"] for f in stored["features"]] == ["x0", "x1", "colour"] and stored["inputs"] == 5
    assert set(stored["dropped"]) == {"name", "note"} and any("'name'" in w for w in stored["warnings"])
