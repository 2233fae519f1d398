"""results.py: the record schema and the streaming writers, with no server and no Airflow."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import datetime, timezone
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_provider_runloop.models import ScenarioRunView
from airflow_provider_runloop.results import (
    BASE_COLUMNS,
    ENVIRONMENT_COLUMNS,
    CsvWriter,
    ParquetWriter,
    RecordSchema,
    ResultsFormat,
    iso_utc,
    open_writer,
    parquet_schema,
    record_json,
    require_pyarrow,
)

SCORED_RUN: dict[str, Any] = {
    "id": "scr_1",
    "scenario_id": "scn_1",
    "devbox_id": "dbx_1",
    "benchmark_run_id": "bmr_1",
    "name": "fix-the-bug",
    "state": "completed",
    "start_time_ms": 1_700_000_000_123,
    "duration_ms": 4_500,
    "metadata": {"team": "evals"},
    "environment_variables": {"MODEL": "m-1"},
    "secrets_provided": {"OPENAI_API_KEY": "openai"},
    "scoring_contract_result": {
        "score": 0.75,
        "scoring_function_results": [
            {"scoring_function_name": "tests", "score": 1.0, "state": "complete", "output": "ok\n2 passed"},
            {"scoring_function_name": "lint", "score": 0.5, "state": "error", "output": 'said "no", é'},
        ],
    },
}

UNSCORED_RUN: dict[str, Any] = {
    "id": "scr_2",
    "scenario_id": "scn_2",
    "devbox_id": "dbx_2",
    "state": "failed",
}


def _run(data: dict[str, Any]) -> ScenarioRunView:
    return ScenarioRunView.model_validate(data)


EXPECTED_SCORED_RECORD: dict[str, Any] = {
    "benchmark_run_id": "bmr_1",
    "scenario_run_id": "scr_1",
    "scenario_id": "scn_1",
    "name": "fix-the-bug",
    "state": "completed",
    "score": 0.75,
    "duration_ms": 4_500,
    "start_time_ms": 1_700_000_000_123,
    "start_time": "2023-11-14T22:13:20.123+00:00",
    "end_time": "2023-11-14T22:13:24.623+00:00",
    "devbox_id": "dbx_1",
    "metadata": {"team": "evals"},
    "scoring_function_results": [
        {"name": "tests", "score": 1.0, "state": "complete", "output": "ok\n2 passed"},
        {"name": "lint", "score": 0.5, "state": "error", "output": 'said "no", é'},
    ],
}


def test_a_scored_run_becomes_a_record_field_by_field() -> None:
    record = RecordSchema().record(_run(SCORED_RUN))
    assert record == EXPECTED_SCORED_RECORD
    assert tuple(record) == BASE_COLUMNS


def test_an_unscored_run_has_null_score_and_no_function_results() -> None:
    record = RecordSchema().record(_run(UNSCORED_RUN), benchmark_run_id="bmr_9")
    assert record == {
        "benchmark_run_id": "bmr_9",  # the run did not name one: the exported run's id is used
        "scenario_run_id": "scr_2",
        "scenario_id": "scn_2",
        "name": None,
        "state": "failed",
        "score": None,
        "duration_ms": None,
        "start_time_ms": None,
        "start_time": None,
        "end_time": None,
        "devbox_id": "dbx_2",
        "metadata": {},
        "scoring_function_results": [],
    }


def test_scorer_output_can_be_left_out() -> None:
    record = RecordSchema(include_scorer_output=False).record(_run(SCORED_RUN))
    assert record["scoring_function_results"] == [
        {"name": "tests", "score": 1.0, "state": "complete"},
        {"name": "lint", "score": 0.5, "state": "error"},
    ]


def test_environment_is_left_out_unless_asked_for() -> None:
    assert not set(ENVIRONMENT_COLUMNS) & set(RecordSchema().record(_run(SCORED_RUN)))
    schema = RecordSchema(include_environment=True)
    record = schema.record(_run(SCORED_RUN))
    assert schema.columns == BASE_COLUMNS + ENVIRONMENT_COLUMNS
    assert tuple(record) == schema.columns
    assert record["environment_variables"] == {"MODEL": "m-1"}
    assert record["secrets_provided"] == {"OPENAI_API_KEY": "openai"}
    assert schema.record(_run(UNSCORED_RUN))["environment_variables"] is None


def test_an_unknown_state_is_kept_as_spelled() -> None:
    record = RecordSchema().record(_run({**UNSCORED_RUN, "state": "hibernating"}))
    assert record["state"] == "hibernating"


@pytest.mark.parametrize(
    ("epoch_ms", "expected"),
    [
        (None, None),
        (0, "1970-01-01T00:00:00.000+00:00"),
        (1_700_000_000_123, "2023-11-14T22:13:20.123+00:00"),
        # A value whose float division rounds badly: the ISO text must keep the exact milliseconds.
        (1_234_567_890_999, "2009-02-13T23:31:30.999+00:00"),
    ],
)
def test_iso_utc(epoch_ms: int | None, expected: str | None) -> None:
    assert iso_utc(epoch_ms) == expected
    if expected is not None:
        assert datetime.fromisoformat(expected).tzinfo == timezone.utc


@pytest.mark.parametrize(("text", "expected"), [("jsonl", "jsonl"), ("CSV", "csv"), ("Parquet", "parquet")])
def test_format_names(text: str, expected: str) -> None:
    assert ResultsFormat.parse(text).value == expected


def test_an_unknown_format_lists_the_choices() -> None:
    with pytest.raises(
        ValueError, match="format must be one of 'jsonl', 'json', 'csv', 'parquet', got 'xml'"
    ):
        ResultsFormat.parse("xml")


# --- writers ---------------------------------------------------------------------------------------


def _write(fmt: ResultsFormat, records: list[dict[str, Any]], schema: RecordSchema) -> bytes:
    buffer = io.BytesIO()
    writer = open_writer(fmt, buffer, schema)
    for record in records:
        writer.write(record)
    writer.finish()
    assert writer.records_written == len(records)
    assert not buffer.closed  # the caller owns the file
    return buffer.getvalue()


def _read_back(fmt: ResultsFormat, data: bytes) -> list[dict[str, Any]]:
    if fmt is ResultsFormat.JSONL:
        return [json.loads(line) for line in data.decode("utf-8").splitlines()]
    if fmt is ResultsFormat.JSON:
        loaded: list[dict[str, Any]] = json.loads(data)
        return loaded
    if fmt is ResultsFormat.CSV:
        return [_decode_csv_row(row) for row in csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))]
    return _decode_parquet_rows(pq.read_table(io.BytesIO(data)).to_pylist())


def _decode_csv_row(row: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for key, cell in row.items():
        if cell == "":
            decoded[key] = None
        elif key in ("score",):
            decoded[key] = float(cell)
        elif key in ("duration_ms", "start_time_ms"):
            decoded[key] = int(cell)
        elif key in ("metadata", "scoring_function_results", *ENVIRONMENT_COLUMNS):
            decoded[key] = json.loads(cell)
        else:
            decoded[key] = cell
    return decoded


def _decode_parquet_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        # Parquet is typed: a timestamp and maps (read back as key/value pairs).
        for column in ("start_time", "end_time"):
            if row[column] is not None:
                row[column] = row[column].isoformat(timespec="milliseconds")
        for key in ("metadata", *ENVIRONMENT_COLUMNS):
            if key in row and row[key] is not None:
                row[key] = dict(row[key])
    return rows


@pytest.mark.parametrize("fmt", list(ResultsFormat))
@pytest.mark.parametrize("include_environment", [False, True])
def test_every_format_reads_back_to_the_same_records(fmt: ResultsFormat, include_environment: bool) -> None:
    schema = RecordSchema(include_environment=include_environment)
    records = [schema.record(_run(SCORED_RUN)), schema.record(_run(UNSCORED_RUN), benchmark_run_id="bmr_1")]
    assert _read_back(fmt, _write(fmt, records, schema)) == records


@pytest.mark.parametrize("fmt", list(ResultsFormat))
def test_an_empty_export_is_a_valid_empty_file(fmt: ResultsFormat) -> None:
    data = _write(fmt, [], RecordSchema())
    assert _read_back(fmt, data) == []
    if fmt is ResultsFormat.CSV:
        assert data.decode().splitlines() == [",".join(BASE_COLUMNS)]
    if fmt is ResultsFormat.PARQUET:
        assert pq.read_schema(io.BytesIO(data)).names == list(BASE_COLUMNS)


def test_csv_quotes_newlines_quotes_and_commas() -> None:
    schema = RecordSchema()
    record = schema.record(_run({**SCORED_RUN, "name": 'a, "b"\nc'}))
    data = _write(ResultsFormat.CSV, [record], schema)
    assert _read_back(ResultsFormat.CSV, data) == [record]


class _CountingFile(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.write_sizes: list[int] = []

    def write(self, data: Any) -> int:
        self.write_sizes.append(len(data))
        return super().write(data)


@pytest.mark.parametrize("fmt", [ResultsFormat.JSONL, ResultsFormat.JSON, ResultsFormat.CSV])
def test_text_formats_stream_in_bounded_chunks(fmt: ResultsFormat) -> None:
    schema = RecordSchema()
    record = schema.record(_run({**SCORED_RUN, "name": "x" * 10_000}))
    file = _CountingFile()
    writer = open_writer(fmt, file, schema)
    for _ in range(500):  # about 5 MB
        writer.write(record)
    # Before finish, most of it has already reached the file, in chunks of about a megabyte.
    assert len(file.write_sizes) >= 4
    assert max(file.write_sizes) < 2 * 1024 * 1024
    writer.finish()
    assert len(_read_back(fmt, file.getvalue())) == 500


def test_parquet_is_written_in_row_groups_with_a_typed_schema() -> None:
    schema = RecordSchema()
    buffer = io.BytesIO()
    writer = ParquetWriter(buffer, schema, row_group_size=3)
    for _ in range(7):
        writer.write(schema.record(_run(SCORED_RUN)))
    writer.finish()
    parquet = pq.ParquetFile(io.BytesIO(buffer.getvalue()))
    assert parquet.metadata.num_row_groups == 3
    assert parquet.metadata.num_rows == 7
    arrow = parquet.schema_arrow
    assert arrow == parquet_schema(schema)
    assert str(arrow.field("start_time").type) == "timestamp[ms, tz=UTC]"
    assert str(arrow.field("end_time").type) == "timestamp[ms, tz=UTC]"
    assert str(arrow.field("scoring_function_results").type) == (
        "list<element: struct<name: string not null, score: double not null, state: string not null, "
        "output: string not null>>"
    )
    metadata = arrow.field("metadata").type
    assert (str(metadata.key_type), str(metadata.item_type)) == ("string", "string")


def test_parquet_without_output_has_no_output_field() -> None:
    arrow = parquet_schema(RecordSchema(include_scorer_output=False))
    assert "output" not in str(arrow.field("scoring_function_results").type)


def test_missing_pyarrow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"pip install 'airflow-provider-runloop\[parquet\]'"):
        require_pyarrow()
    with pytest.raises(ImportError, match="parquet"):
        open_writer("parquet", io.BytesIO(), RecordSchema())
    # The other formats do not need it.
    assert isinstance(open_writer("csv", io.BytesIO(), RecordSchema()), CsvWriter)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_record_is_strict_json_or_not_written(value: float) -> None:
    # The models refuse such numbers; should one slip through, no NaN token reaches a file.
    with pytest.raises(ValueError, match="not JSON compliant"):
        record_json({"score": value})


@pytest.mark.parametrize(
    ("start", "duration", "end"),
    [
        (1_700_000_000_123, 4_500, "2023-11-14T22:13:24.623+00:00"),
        (1_700_000_000_123, None, None),  # still running: no end yet
        (None, 4_500, None),
        (0, 0, "1970-01-01T00:00:00.000+00:00"),
        # Past what a timestamp holds: no end time, rather than an error mid-export.
        (253_402_300_799_999, 1, None),
    ],
)
def test_the_end_time_is_the_start_plus_the_duration(
    start: int | None, duration: int | None, end: str | None
) -> None:
    data = {**SCORED_RUN, "start_time_ms": start, "duration_ms": duration}
    assert RecordSchema().record(_run(data))["end_time"] == end
