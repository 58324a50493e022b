"""Fuzzing the data input: seeded mutations of a valid CSV and Parquet file (and of the rows
given to a trained model) must never end in a traceback, a hang or a silent schema change.

- traceback: any exception but a :class:`PolytaskError` with a one-line message;
- hang: a case running past its alarm (10 s; the whole test also has a hard limit);
- silent schema change: a mutated file that prepares to a different schema (the role of each
  column position, the kind of each task) with no :class:`DataWarning`.

Reading plus :func:`prepare` is where the schema is decided, so the file cases stop there; the
prediction cases go through a trained model. The 300 cases take well under a minute.
"""

from __future__ import annotations

import faulthandler
import io
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import polytask as pt
from polytask import PolytaskError
from polytask.data import capture_warnings, read_table
from polytask.data.prepare import prepare

TARGETS = ["y", "label", "grade"]
TOKENS = ["abc", "?", "-", '"1,234"', "NaN", "inf", "-inf", "1e400", "", " ", "True", "2020-13-45", '"', "'", "0x1F",
          "１２", "nan", "None", "null", "1.2.3", "€5", "50%", "😀", "\t", "1e-400", "-0", "+7", "١٢", "NULL", "#N/A"]


class Hang(Exception):
    pass


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def stop(*_: Any) -> None:
        raise Hang()

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def base_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "x0": rng.normal(size=n).round(4), "x1": rng.normal(size=n).round(4), "count": rng.integers(0, 50, n),
        "colour": rng.choice(["red", "green", "blue"], n), "member": rng.random(n) > 0.5,
        "when": pd.date_range("2010-01-03", periods=n, freq="W").strftime("%Y-%m-%d"),
    })
    frame["y"] = (frame["x0"] * 2 + frame["x1"]).round(4)
    frame["label"] = np.where(frame["x0"] > 0, "yes", "no")
    frame["grade"] = rng.choice(["low", "mid", "high"], n)
    return frame


def schema(prepared: Any, columns: list[str]) -> tuple[str, ...]:
    """The role of each column position (targets by kind), the columns' names left out."""
    roles = prepared.preprocessor.roles()
    kinds = {t.name: t.kind for t in prepared.tasks}
    out = []
    for col in columns:
        if col in kinds:
            out.append(f"target:{kinds[col]}")
        elif col in roles:
            out.append(roles[col])
        else:
            out.append("dropped:" + prepared.columns.dropped.get(col, "?").split(":")[0])
    return tuple(out)


def outcome(run: Callable[[], Any]) -> tuple[str, Any, list[str]]:
    """``(kind, value, warnings)``: kind ``ok``, ``error`` (one-line PolytaskError), ``traceback`` or ``hang``."""
    warned: list[str] = []
    try:
        with alarm(10), capture_warnings() as warned:
            value = run()
    except Hang:
        return "hang", None, warned
    except PolytaskError as exc:
        text = str(exc)
        return ("error" if text and "\n" not in text else "traceback"), text, warned
    except Exception as exc:  # noqa: BLE001 - counting every other exception is the point
        return "traceback", f"{type(exc).__name__}: {exc}", warned
    return "ok", value, warned


# -- mutations of the CSV text --------------------------------------------------------------------
def _cells(text: str) -> list[list[str]]:
    return [line.split(",") for line in text.split("\n")]


def _join(rows: list[list[str]]) -> str:
    return "\n".join(",".join(r) for r in rows)


def csv_mutations(text: str, rng: np.random.Generator, n: int) -> Iterator[tuple[str, bytes]]:
    raw = text.encode()
    header = text.split("\n", 1)[0].split(",")
    kinds = ["cell", "cell", "cell", "cells", "dup_header", "no_header", "truncate", "insert_bytes", "delete_line",
             "duplicate_line", "extra_field", "missing_field", "delimiter", "constant", "unique", "crlf_bom",
             "quote", "long_cell", "empty_column", "rename", "blank_lines", "header_only", "nul"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        rows = _cells(text)
        r = int(rng.integers(1, len(rows) - 1))
        c = int(rng.integers(0, len(header)))
        if kind == "cell":
            rows[r][c] = str(rng.choice(TOKENS))
        elif kind == "cells":
            for _ in range(int(rng.integers(2, 6))):
                rows[int(rng.integers(1, len(rows) - 1))][c] = str(rng.choice(TOKENS))
        elif kind == "dup_header":
            rows[0][c] = rows[0][(c + 1 + int(rng.integers(0, len(header) - 1))) % len(header)]
        elif kind == "no_header":
            rows = rows[1:]
        elif kind == "truncate":
            yield kind, raw[: int(rng.integers(0, len(raw)))]
            continue
        elif kind in ("insert_bytes", "nul"):
            at = int(rng.integers(0, len(raw)))
            junk = bytes([0]) if kind == "nul" else bytes(rng.integers(0, 256, int(rng.integers(1, 4))).tolist())
            yield kind, raw[:at] + junk + raw[at:]
            continue
        elif kind == "delete_line":
            del rows[r]
        elif kind == "duplicate_line":
            rows.insert(r, list(rows[r]))
        elif kind == "extra_field":
            rows[r].insert(c, "1")
        elif kind == "missing_field":
            del rows[r][c]
        elif kind == "delimiter":
            yield kind, text.replace(",", ";").encode()
            continue
        elif kind == "constant":
            value = rows[1][c]
            for row in rows[1:-1]:
                row[c] = value
        elif kind == "unique":
            for k, row in enumerate(rows[1:-1]):
                row[c] = f"id{k}"
        elif kind == "crlf_bom":
            yield kind, ("\ufeff" + text.replace("\n", "\r\n")).encode()
            continue
        elif kind == "quote":
            rows[r][c] = '"' + rows[r][c]
        elif kind == "long_cell":
            rows[r][c] = "x" * 100_000
        elif kind == "empty_column":
            for row in rows[1:-1]:
                row[c] = ""
        elif kind == "rename":
            rows[0][c] = str(rng.choice(["", "名字", "a.b", " ", "x0.1", "Unnamed: 0"]))
        elif kind == "blank_lines":
            rows.insert(r, [""])
        elif kind == "header_only":
            rows = rows[:1]
        yield kind, _join(rows).encode()


# -- mutations of the Parquet table ----------------------------------------------------------------
def parquet_mutations(frame: pd.DataFrame, rng: np.random.Generator, n: int) -> Iterator[tuple[str, bytes]]:
    """Mutated Parquet files; ``retype`` declares a column categorical (a declared type, not an
    inferred one: its expected role becomes categorical, see :data:`DECLARED`)."""
    kinds = ["as_text", "odd_cell", "nulls", "dup_names", "truncate", "flip_bytes", "retype", "tz", "nested",
             "dictionary", "date_type", "constant"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        df = frame.copy()
        col = str(rng.choice(df.columns))
        if kind == "as_text":
            df[col] = df[col].astype(str)
        elif kind == "odd_cell":  # a text column (numbers, dates as text) with one odd cell
            df[col] = df[col].astype(str)
            df.loc[int(rng.integers(0, len(df))), col] = str(rng.choice(TOKENS))
        elif kind == "nulls":
            keep = np.ones(len(df), dtype=bool)
            keep[rng.choice(len(df), int(rng.integers(1, 20)), replace=False)] = False
            df[col] = df[col].where(keep)
        elif kind == "retype":
            df[col] = df[col].astype(str).astype("category")
        elif kind == "tz":
            df["when"] = pd.to_datetime(df["when"]).dt.tz_localize("UTC")
        elif kind == "dictionary":
            df["colour"] = df["colour"].astype("category")
        elif kind == "date_type":
            df["when"] = pd.to_datetime(df["when"])
        elif kind == "constant":
            df[col] = df[col].iloc[0]
        table = pa.Table.from_pandas(df, preserve_index=False)
        if kind == "dup_names":
            names = list(table.column_names)
            names[int(rng.integers(0, len(names)))] = names[0]
            table = table.rename_columns(names)
        if kind == "nested":
            table = table.append_column("lists", pa.array([[1, 2]] * len(df)))
        buf = io.BytesIO()
        pq.write_table(table, buf)
        data = buf.getvalue()
        if kind == "truncate":
            data = data[: int(rng.integers(0, len(data)))]
        elif kind == "flip_bytes":
            arr = bytearray(data)
            for _ in range(int(rng.integers(1, 8))):
                arr[int(rng.integers(0, len(arr)))] = int(rng.integers(0, 256))
            data = bytes(arr)
        yield kind, data


def expected_schema(base: tuple[str, ...], columns: list[str], kind: str, data: bytes) -> tuple[str, ...]:
    """The base schema, with a column the mutation declared categorical (Parquet ``retype``)."""
    if kind != "retype":
        return base
    declared = pq.read_schema(io.BytesIO(data))
    out = list(base)
    for j, col in enumerate(columns):
        if pa.types.is_dictionary(declared.field(col).type) and not base[j].startswith(("target", "boolean")):
            out[j] = "categorical"
    return tuple(out)


def _prepare_file(path: Path) -> Any:
    return prepare(read_table(path), TARGETS, seed=0)


@pytest.fixture(scope="module")
def guard() -> Iterator[None]:
    faulthandler.dump_traceback_later(240, exit=True)  # a hang in C code cannot outlive the test
    yield
    faulthandler.cancel_dump_traceback_later()


def test_mutated_files_never_traceback_hang_or_change_schema_silently(tmp_path: Path, guard: None) -> None:
    frame = base_frame()
    csv_text = frame.to_csv(index=False)
    columns = list(frame.columns)
    base = tmp_path / "base.csv"
    base.write_text(csv_text)
    kind, prepared, warned = outcome(lambda: _prepare_file(base))
    assert kind == "ok" and not warned, (kind, prepared, warned)
    base_schema = schema(prepared, columns)
    rng = np.random.default_rng(2024)
    cases = [("csv", k, d) for k, d in csv_mutations(csv_text, rng, 200)]
    cases += [("parquet", k, d) for k, d in parquet_mutations(frame, rng, 60)]
    counts = {"ok": 0, "error": 0}
    problems = []
    for i, (fmt, kind, data) in enumerate(cases):
        path = tmp_path / f"case{i}.{fmt}"
        path.write_bytes(data)
        result, value, warned = outcome(lambda: _prepare_file(path))
        if result in ("traceback", "hang"):
            problems.append((i, fmt, kind, result, value))
            continue
        counts[result] += 1
        if result == "ok" and len(value.frame.columns) == len(columns) and not warned:
            if schema(value, list(value.frame.columns)) != expected_schema(base_schema, columns, kind, data):
                problems.append((i, fmt, kind, "silent schema change", schema(value, list(value.frame.columns))))
    assert not problems, problems[:10]
    assert len(cases) >= 250
    assert counts["ok"] >= 40 and counts["error"] >= 40, counts  # the mutations exercise both outcomes


def test_mutated_rows_given_to_a_trained_model_never_traceback(tmp_path: Path, guard: None) -> None:
    frame = base_frame()
    with capture_warnings():
        model = pt.fit(frame, TARGETS, config=pt.TrainConfig(epochs=1)).mtl
    rng = np.random.default_rng(7)
    results = {"ok": 0, "error": 0}
    problems = []
    features = [c for c in frame.columns if c not in TARGETS]
    for i in range(40):
        df = frame[features].copy().astype(object)
        col = str(rng.choice(features))
        action = i % 4
        if action == 0:
            df.loc[int(rng.integers(0, len(df))), col] = str(rng.choice(TOKENS))
        elif action == 1:
            df = df.drop(columns=[col])
        elif action == 2:
            df[col] = None
        else:
            df.loc[: int(rng.integers(1, 10)), col] = rng.choice(["purple", "2031-02-30", "maybe", "1e999"])
        result, value, _ = outcome(lambda: model.predict(df))
        if result in ("traceback", "hang"):
            problems.append((i, col, action, result, value))
        else:
            results[result] += 1
    assert not problems, problems[:10]
    assert results["ok"] >= 5 and results["error"] >= 5, results
