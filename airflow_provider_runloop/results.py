"""Scored results as records, and streaming writers for them: JSON Lines, JSON, CSV and Parquet.

One job: turn scenario runs into flat, documented records (one per scenario run) and write them, one at a
time, to a binary file object. Where the bytes go (a local file, an object store, memory) is the
caller's business; this module opens nothing and imports no Airflow, so it is usable on its own::

    schema = RecordSchema(include_scorer_output=True)
    with open("results.jsonl", "wb") as file:
        writer = open_writer(ResultsFormat.JSONL, file, schema)
        for run in client.list_scenario_runs("bmr_123"):
            writer.write(schema.record(run))
        writer.finish()

Memory stays flat whatever the number of records: text formats are encoded and handed to the file in
chunks of about a megabyte, Parquet in row groups of ``ROWS_PER_ROW_GROUP`` records.

``docs/results.md`` documents the record schema field by field; keep it in step with
:class:`RecordSchema`.
"""

from __future__ import annotations

import abc
import contextlib
import csv
import enum
import io
import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import IO, Any, ClassVar, Final

from airflow_provider_runloop.models import ScenarioRunView

__all__ = [
    "BASE_COLUMNS",
    "ENVIRONMENT_COLUMNS",
    "PARQUET_EXTRA",
    "ROWS_PER_ROW_GROUP",
    "CsvWriter",
    "JsonArrayWriter",
    "JsonLinesWriter",
    "ParquetWriter",
    "RecordList",
    "RecordSchema",
    "RecordsTooLargeError",
    "ResultRecord",
    "ResultsFormat",
    "ResultsWriter",
    "iso_utc",
    "open_writer",
    "parquet_schema",
    "record_json",
    "require_pyarrow",
]

ResultRecord = dict[str, Any]
"""One scenario run as a record: JSON primitives only, keys in :attr:`RecordSchema.columns` order."""

BASE_COLUMNS: Final[tuple[str, ...]] = (
    "benchmark_run_id",
    "scenario_run_id",
    "scenario_id",
    "name",
    "state",
    "score",
    "duration_ms",
    "start_time_ms",
    "start_time",
    "end_time",
    "devbox_id",
    "metadata",
    "scoring_function_results",
)
"""The columns of every record, in order."""

ENVIRONMENT_COLUMNS: Final[tuple[str, ...]] = ("environment_variables", "secrets_provided")
"""The columns added by ``include_environment=True`` (left out by default: values may be sensitive)."""

ROWS_PER_ROW_GROUP: Final = 10_000
"""Records per Parquet row group: bounds the writer's memory and keeps row groups a useful size."""

# A row group is gathered as Arrow record batches of this many records: only one batch is held as
# Python dicts (a record dict weighs several times its columnar form), the rest is compact.
_ROWS_PER_BATCH: Final = 1000

PARQUET_EXTRA: Final = "airflow-provider-runloop[parquet]"

# Text is handed to the file in chunks of about this size: few, large writes are what object stores
# (and their multipart uploads) want, and memory stays bounded.
_CHUNK_BYTES: Final = 1 << 20

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LAST_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant a datetime holds


class ResultsFormat(str, enum.Enum):
    """The file formats results can be written in."""

    JSONL = "jsonl"
    """JSON Lines: one JSON object per line (the default; streams well, appends well)."""
    JSON = "json"
    """One JSON array of objects."""
    CSV = "csv"
    """CSV with a header row; nested values are JSON-encoded in their cell."""
    PARQUET = "parquet"
    """Apache Parquet, typed and nested (needs the ``parquet`` extra: pyarrow)."""

    @classmethod
    def parse(cls, value: ResultsFormat | str) -> ResultsFormat:
        """The format named by ``value`` (case-insensitive), or a ``ValueError`` listing the choices."""
        try:
            return cls(value.lower() if isinstance(value, str) else value)
        except ValueError:
            choices = ", ".join(repr(member.value) for member in cls)
            raise ValueError(f"format must be one of {choices}, got {value!r}") from None

    @property
    def media_type(self) -> str:
        """The format's media type."""
        return _MEDIA_TYPES[self]


_MEDIA_TYPES: Final[Mapping[ResultsFormat, str]] = {
    ResultsFormat.JSONL: "application/jsonl",
    ResultsFormat.JSON: "application/json",
    ResultsFormat.CSV: "text/csv",
    ResultsFormat.PARQUET: "application/vnd.apache.parquet",
}


class RecordSchema:
    """Which fields a record has, and how a scenario run becomes one.

    :param include_scorer_output: keep each scoring function's ``output`` (its log text). Outputs can be
        long; leave them out for compact files.
    :param include_environment: add the ``environment_variables`` and ``secrets_provided`` columns.
        Off by default: environment variables can hold sensitive values (secrets are named, not valued).
    """

    __slots__ = ("columns", "include_environment", "include_scorer_output")

    def __init__(self, *, include_scorer_output: bool = True, include_environment: bool = False) -> None:
        self.include_scorer_output = include_scorer_output
        self.include_environment = include_environment
        self.columns: tuple[str, ...] = BASE_COLUMNS + (ENVIRONMENT_COLUMNS if include_environment else ())

    def __repr__(self) -> str:
        return (
            f"RecordSchema(include_scorer_output={self.include_scorer_output}, "
            f"include_environment={self.include_environment})"
        )

    def record(self, run: ScenarioRunView, *, benchmark_run_id: str | None = None) -> ResultRecord:
        """The record of one scenario run.

        :param run: the scenario run, as listed.
        :param benchmark_run_id: the benchmark run being exported; used when the run does not name one.
        """
        result = run.scoring_contract_result
        functions: list[dict[str, Any]] = []
        if result is not None:
            for item in result.scoring_function_results:
                function: dict[str, Any] = {
                    "name": item.scoring_function_name,
                    "score": item.score,
                    "state": item.state,
                }
                if self.include_scorer_output:
                    function["output"] = item.output
                functions.append(function)
        record: ResultRecord = {
            "benchmark_run_id": run.benchmark_run_id or benchmark_run_id,
            "scenario_run_id": run.id,
            "scenario_id": run.scenario_id,
            "name": run.name,
            # An unknown state is kept as the API spelled it (models keep it as a plain str).
            "state": run.state.value if isinstance(run.state, enum.Enum) else run.state,
            "score": result.score if result is not None else None,
            "duration_ms": run.duration_ms,
            "start_time_ms": run.start_time_ms,
            "start_time": iso_utc(run.start_time_ms),
            "end_time": iso_utc(end_time_ms(run.start_time_ms, run.duration_ms)),
            "devbox_id": run.devbox_id,
            "metadata": dict(run.metadata),
            "scoring_function_results": functions,
        }
        if self.include_environment:
            record["environment_variables"] = _copy_or_none(run.environment_variables)
            record["secrets_provided"] = _copy_or_none(run.secrets_provided)
        return record


def end_time_ms(start_time_ms: int | None, duration_ms: int | None) -> int | None:
    """When a run ended (ms since the Unix epoch): its start plus its duration, if both are known and
    the sum is a time a timestamp can hold (up to the end of year 9999); else ``None``."""
    if start_time_ms is None or duration_ms is None:
        return None
    end = start_time_ms + duration_ms
    return end if end <= _LAST_MS else None


def iso_utc(epoch_ms: int | None) -> str | None:
    """Milliseconds since the Unix epoch as ISO 8601 UTC (``2025-01-31T09:30:00.123+00:00``), or ``None``."""
    if epoch_ms is None:
        return None
    # timedelta arithmetic is exact; fromtimestamp(ms / 1000) goes through a float.
    return (_EPOCH + timedelta(milliseconds=epoch_ms)).isoformat(timespec="milliseconds")


def _copy_or_none(mapping: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if mapping is None else dict(mapping)


# --- writers ---------------------------------------------------------------------------------------


class ResultsWriter(abc.ABC):
    """Writes records, one at a time, to a binary file object in one format.

    The writer never opens or closes ``file``: call :meth:`finish` to write the format's trailer (the
    closing bracket, the Parquet footer) and flush, then close the file yourself. Do not call
    ``finish`` after a failure: the file is then incomplete and should be discarded.

    :param file: a binary file object open for writing.
    :param schema: the record schema; records must have its columns.
    """

    format: ClassVar[ResultsFormat]

    def __init__(self, file: IO[bytes], schema: RecordSchema) -> None:
        self._file = file
        self.schema = schema
        self.records_written = 0

    @abc.abstractmethod
    def write(self, record: Mapping[str, Any]) -> None:
        """Write one record."""

    @abc.abstractmethod
    def finish(self) -> None:
        """Write what is buffered and the format's trailer. The file is complete afterwards."""

    def abort(self) -> None:  # noqa: B027  (deliberately a no-op by default)
        """Give up after a failure: release what the writer holds; the file is to be discarded."""


class _TextWriter(ResultsWriter):
    """A text format: encoded as UTF-8 and handed to the file in chunks of about a megabyte."""

    def __init__(self, file: IO[bytes], schema: RecordSchema) -> None:
        super().__init__(file, schema)
        self._buffer = io.StringIO()

    def _maybe_flush(self) -> None:
        # StringIO.tell() is the number of characters written, a cheap lower bound on the bytes.
        if self._buffer.tell() >= _CHUNK_BYTES:
            self._flush()

    def _flush(self) -> None:
        text = self._buffer.getvalue()
        if text:
            self._file.write(text.encode("utf-8"))
        self._buffer.seek(0)
        self._buffer.truncate()


class JsonLinesWriter(_TextWriter):
    """JSON Lines: one compact JSON object per line, UTF-8, ``\\n`` after every record."""

    format = ResultsFormat.JSONL

    def write(self, record: Mapping[str, Any]) -> None:
        self._buffer.write(_json(record))
        self._buffer.write("\n")
        self.records_written += 1
        self._maybe_flush()

    def finish(self) -> None:
        self._flush()


class JsonArrayWriter(_TextWriter):
    """One JSON array of records, one record per line (``[]`` when there are none)."""

    format = ResultsFormat.JSON

    def write(self, record: Mapping[str, Any]) -> None:
        self._buffer.write(",\n" if self.records_written else "[\n")
        self._buffer.write(_json(record))
        self.records_written += 1
        self._maybe_flush()

    def finish(self) -> None:
        self._buffer.write("\n]\n" if self.records_written else "[]\n")
        self._flush()


class CsvWriter(_TextWriter):
    """CSV (RFC 4180 quoting, ``\\r\\n`` line ends) with a header row of the schema's columns.

    An empty cell is ``null``; objects and lists (``metadata``, ``scoring_function_results`` and the
    environment columns) are JSON-encoded in their cell, so the columns never depend on the data.
    """

    format = ResultsFormat.CSV

    def __init__(self, file: IO[bytes], schema: RecordSchema) -> None:
        super().__init__(file, schema)
        self._csv = csv.writer(self._buffer)
        self._csv.writerow(schema.columns)

    def write(self, record: Mapping[str, Any]) -> None:
        self._csv.writerow([_csv_cell(record[column]) for column in self.schema.columns])
        self.records_written += 1
        self._maybe_flush()

    def finish(self) -> None:
        self._flush()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return _json(value)
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return value


# Compact, and non-ASCII text kept as is: the files are UTF-8. One encoder for every record:
# json.dumps with options builds a new encoder on each call, a measurable cost at 100,000 records.
# Strict JSON: the models refuse NaN and infinities, and a NaN token here would be a file no JSON
# reader accepts, so one that slipped through fails the export instead of being written.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _json(value: Any) -> str:
    return _ENCODER.encode(value)


def record_json(record: Mapping[str, Any]) -> str:
    """A record as compact JSON text (non-ASCII kept as is), as the JSON formats write it."""
    return _ENCODER.encode(record)


class ParquetWriter(ResultsWriter):
    """Apache Parquet with a fixed, typed schema (see ``docs/results.md``), written in row groups.

    Typed where the text formats use strings: ``start_time`` is a UTC timestamp (milliseconds),
    ``metadata`` and the environment columns are ``map<string, string>``, and
    ``scoring_function_results`` is a ``list<struct<name, score, state[, output]>>``.

    :param row_group_size: records per row group (memory holds at most one group, as Arrow columns,
        and up to 1,000 records as dicts).
    """

    format = ResultsFormat.PARQUET

    def __init__(
        self, file: IO[bytes], schema: RecordSchema, *, row_group_size: int = ROWS_PER_ROW_GROUP
    ) -> None:
        super().__init__(file, schema)
        pa, pq = require_pyarrow()
        self._pa = pa
        self._arrow_schema = parquet_schema(schema)
        self._row_group_size = row_group_size
        self._batch_size = min(_ROWS_PER_BATCH, row_group_size)
        self._rows: list[Mapping[str, Any]] = []
        self._batches: list[Any] = []  # pyarrow.RecordBatch, of the row group being gathered
        self._batched_rows = 0
        # pyarrow wraps a Python file object and never closes it: closing stays the caller's job.
        self._parquet = pq.ParquetWriter(file, self._arrow_schema)

    def write(self, record: Mapping[str, Any]) -> None:
        self._rows.append(record)
        self.records_written += 1
        if (
            len(self._rows) >= self._batch_size
            or self._batched_rows + len(self._rows) >= self._row_group_size
        ):
            self._convert_batch()
            if self._batched_rows >= self._row_group_size:
                self._write_row_group()

    def finish(self) -> None:
        # An empty export still gets a valid file with the full schema.
        if self._rows or self._batches or self.records_written == 0:
            self._convert_batch()
            self._write_row_group()
        self._parquet.close()

    def abort(self) -> None:
        # Closed now, while the file is still open: pyarrow would otherwise close it when garbage
        # collected, writing a footer into a file that is closed by then.
        self._rows = []
        self._batches = []
        with contextlib.suppress(Exception):
            self._parquet.close()

    def _convert_batch(self) -> None:
        pa = self._pa
        arrays = []
        for column in self.schema.columns:
            field = self._arrow_schema.field(column)
            # The timestamps are built from the exact integers, not parsed back from the ISO text.
            if column == "start_time":
                values = [row["start_time_ms"] for row in self._rows]
            elif column == "end_time":
                values = [end_time_ms(row["start_time_ms"], row["duration_ms"]) for row in self._rows]
            else:
                values = [row[column] for row in self._rows]
            arrays.append(pa.array(values, type=field.type))
        self._batches.append(pa.RecordBatch.from_arrays(arrays, schema=self._arrow_schema))
        self._batched_rows += len(self._rows)
        self._rows = []

    def _write_row_group(self) -> None:
        # One row group of the gathered batches (write_table slices by rows, not by batch).
        table = self._pa.Table.from_batches(self._batches, schema=self._arrow_schema)
        self._parquet.write_table(table, row_group_size=max(self._batched_rows, 1))
        self._batches = []
        self._batched_rows = 0


def parquet_schema(schema: RecordSchema) -> Any:
    """The Arrow schema (a ``pyarrow.Schema``) of Parquet files written for ``schema``."""
    pa, _ = require_pyarrow()
    string_map = pa.map_(pa.string(), pa.string())
    function_fields = [
        pa.field("name", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("state", pa.string(), nullable=False),
    ]
    if schema.include_scorer_output:
        function_fields.append(pa.field("output", pa.string(), nullable=False))
    types: dict[str, Any] = {
        "benchmark_run_id": pa.string(),
        "scenario_run_id": pa.string(),
        "scenario_id": pa.string(),
        "name": pa.string(),
        "state": pa.string(),
        "score": pa.float64(),
        "duration_ms": pa.int64(),
        "start_time_ms": pa.int64(),
        "start_time": pa.timestamp("ms", tz="UTC"),
        "end_time": pa.timestamp("ms", tz="UTC"),
        "devbox_id": pa.string(),
        "metadata": string_map,
        "scoring_function_results": pa.list_(pa.struct(function_fields)),
        "environment_variables": string_map,
        "secrets_provided": string_map,
    }
    required = {"scenario_run_id", "scenario_id", "state", "metadata", "scoring_function_results"}
    return pa.schema([pa.field(name, types[name], nullable=name not in required) for name in schema.columns])


def require_pyarrow() -> tuple[Any, Any]:
    """Import ``pyarrow`` and ``pyarrow.parquet``, or say which extra installs them.

    :raises ImportError: naming ``airflow-provider-runloop[parquet]``.
    """
    try:
        # pyarrow ships no type information; it is typed as Any here.
        import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise ImportError(
            f"Writing Parquet needs pyarrow, which is not installed: pip install '{PARQUET_EXTRA}' "
            f"(or choose format='jsonl', 'json' or 'csv'). ({exc})"
        ) from exc
    return pa, pq


_WRITERS: Final[Mapping[ResultsFormat, type[ResultsWriter]]] = {
    ResultsFormat.JSONL: JsonLinesWriter,
    ResultsFormat.JSON: JsonArrayWriter,
    ResultsFormat.CSV: CsvWriter,
    ResultsFormat.PARQUET: ParquetWriter,
}


def open_writer(format: ResultsFormat | str, file: IO[bytes], schema: RecordSchema) -> ResultsWriter:
    """A writer of ``format`` over ``file`` (which stays open; see :class:`ResultsWriter`).

    :param format: a :class:`ResultsFormat` or its name.
    :param file: a binary file object open for writing.
    :param schema: the record schema.
    :raises ValueError: for an unknown format.
    :raises ImportError: for Parquet without pyarrow.
    """
    return _WRITERS[ResultsFormat.parse(format)](file, schema)


class RecordsTooLargeError(ValueError):
    """The records outgrew a :class:`RecordList`'s limit."""


class RecordList:
    """Records kept in memory (for XCom), up to ``limit`` bytes of JSON: fails as soon as they outgrow it,
    not after listing them all.

    :param limit: the most bytes of JSON the list may hold (a JSON array of the records).
    """

    def __init__(self, limit: int) -> None:
        self.records: list[ResultRecord] = []
        self._limit = limit
        self._size = 2  # the list's brackets

    def write(self, record: ResultRecord) -> None:
        """Keep one record.

        :raises RecordsTooLargeError: if it would take the records past the limit.
        """
        self._size += len(record_json(record).encode()) + 1
        if self._size > self._limit:
            raise RecordsTooLargeError(
                f"more than {self._limit} bytes of records after {len(self.records) + 1} scenario runs"
            )
        self.records.append(record)
