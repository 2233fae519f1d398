"""OpenLineage datasets and facets for this provider (the ``openlineage`` extra).

One job: say, in OpenLineage's terms, what a task of this provider read and wrote. Plain functions; the
operators call them from their ``get_openlineage_facets_on_*`` methods, which Airflow's OpenLineage
provider (``apache-airflow-providers-openlineage``, installed by ``airflow-provider-runloop[openlineage]``)
calls after the task ran. OpenLineage is imported inside the functions, never when this module is
imported, so the provider works without the extra.

Names (see ``docs/lineage.md``), following the OpenLineage naming spec (namespace = the data source,
``scheme://authority``; name = the dataset's path in it):

- a benchmark run is the input dataset ``runloop://<host>[:<port>]`` / ``benchmark_runs/<id>``: the
  namespace is the Runloop API the connection points at (``https://api.runloop.ai`` becomes
  ``runloop://api.runloop.ai``; a port is kept unless it is the scheme's default; credentials, the path
  and the query are left out), the name is the run's path in Runloop's REST API
  (``/v1/benchmark_runs/<id>``) without the version prefix;
- an exported file is the output dataset ``file`` / ``/abs/path`` for ``file://`` and
  ``s3://<bucket>`` / ``<key>`` for ``s3://`` (any other object store: ``<scheme>://<bucket>`` /
  ``<key>``); a connection id given as user info (``s3://aws_conn@bucket/key``) is not part of the name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from airflow_provider_runloop.results import RecordSchema, ResultsFormat, parquet_schema

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import (
        data_quality_assertions_dataset,
        schema_dataset,
    )

__all__ = [
    "BENCHMARK_RUN_NAME_PREFIX",
    "RUNLOOP_NAMESPACE_SCHEME",
    "assertion_facets",
    "benchmark_run_dataset",
    "benchmark_run_name",
    "benchmark_run_namespace",
    "file_dataset_name",
    "results_dataset",
    "results_lineage",
    "schema_facet",
]

RUNLOOP_NAMESPACE_SCHEME: Final = "runloop"
"""The scheme of a Runloop API's dataset namespace: ``runloop://api.runloop.ai``."""

BENCHMARK_RUN_NAME_PREFIX: Final = "benchmark_runs/"
"""A benchmark run's dataset name is this prefix and its id, as in the API's path."""

_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
_LOCAL_SCHEMES: Final = frozenset({"", "file", "local"})

# The records' JSON types in the text formats (JSON Lines, JSON, CSV; CSV holds objects and arrays as
# JSON text in their cell). Parquet's types come from results.parquet_schema.
_JSON_TYPES: Final[Mapping[str, str]] = {
    "benchmark_run_id": "string",
    "scenario_run_id": "string",
    "scenario_id": "string",
    "name": "string",
    "state": "string",
    "score": "number",
    "duration_ms": "integer",
    "start_time_ms": "integer",
    "start_time": "string",
    "end_time": "string",
    "devbox_id": "string",
    "metadata": "object",
    "scoring_function_results": "array",
    "environment_variables": "object",
    "secrets_provided": "object",
}
_JSON_FUNCTION_TYPES: Final[Mapping[str, str]] = {
    "name": "string",
    "score": "number",
    "state": "string",
    "output": "string",
}


def benchmark_run_namespace(base_url: str) -> str:
    """The dataset namespace of the Runloop API at ``base_url``.

    ``https://api.runloop.ai`` → ``runloop://api.runloop.ai``; ``http://127.0.0.1:8765`` →
    ``runloop://127.0.0.1:8765``. The host is lower-cased, a port is kept unless it is the scheme's
    default (443 for https, 80 for http), and user info, the path and the query are dropped: nothing
    secret reaches a lineage backend, and one API has one namespace however its URL is spelled.

    :raises ValueError: for a URL without a host.
    """
    parts = urlsplit(base_url if "://" in base_url else f"https://{base_url}")
    host = parts.hostname
    if not host:
        raise ValueError(f"Not a Runloop base URL with a host: {base_url!r}")
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return f"{RUNLOOP_NAMESPACE_SCHEME}://{host}"


def benchmark_run_name(benchmark_run_id: str) -> str:
    """The dataset name of a benchmark run: ``benchmark_runs/<id>``."""
    return f"{BENCHMARK_RUN_NAME_PREFIX}{benchmark_run_id}"


def benchmark_run_dataset(base_url: str, benchmark_run_id: str) -> InputDataset:
    """The benchmark run as an OpenLineage input dataset, with a ``datasource`` facet naming the API."""
    from openlineage.client.event_v2 import InputDataset
    from openlineage.client.facet_v2 import datasource_dataset

    namespace = benchmark_run_namespace(base_url)
    return InputDataset(
        namespace=namespace,
        name=benchmark_run_name(benchmark_run_id),
        facets={"datasource": datasource_dataset.DatasourceDatasetFacet(name=namespace, uri=namespace)},
    )


def file_dataset_name(uri: str) -> tuple[str, str]:
    """``(namespace, name)`` of a file at ``uri``, per the OpenLineage naming spec.

    ``file:///data/r.jsonl`` → ``("file", "/data/r.jsonl")``; ``s3://bucket/a/r.jsonl`` (or
    ``s3://aws_conn@bucket/a/r.jsonl``) → ``("s3://bucket", "a/r.jsonl")``.

    :raises ValueError: for a remote URL without a bucket or key.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in _LOCAL_SCHEMES:
        return "file", parts.path
    bucket = parts.netloc.rpartition("@")[2]  # a connection id is not part of the data's name
    key = parts.path.lstrip("/")
    if not bucket or not key:
        raise ValueError(f"Not an object URL with a bucket and a key: {uri!r}")
    return f"{scheme}://{bucket}", key


def schema_facet(schema: RecordSchema, format: ResultsFormat) -> schema_dataset.SchemaDatasetFacet:
    """The ``schema`` facet of an export: its columns in order, with their types.

    Parquet has Arrow's types (``results.parquet_schema``: ``timestamp[ms, tz=UTC]``,
    ``map<string, string>``, ...); the text formats have JSON's (``string``, ``number``, ``integer``,
    ``object``, ``array``). ``scoring_function_results`` lists its items' fields as nested fields.
    """
    from openlineage.client.facet_v2 import schema_dataset

    fields = []
    if format is ResultsFormat.PARQUET:
        arrow = parquet_schema(schema)
        for position, field in enumerate(arrow, start=1):
            nested = []
            item = getattr(field.type, "value_type", None)  # a list's items
            if item is not None and hasattr(item, "num_fields"):
                nested = [
                    schema_dataset.SchemaDatasetFacetFields(name=sub.name, type=str(sub.type))
                    for sub in (item.field(index) for index in range(item.num_fields))
                ]
            fields.append(
                schema_dataset.SchemaDatasetFacetFields(
                    name=field.name, type=str(field.type), ordinal_position=position, fields=nested
                )
            )
    else:
        function_fields = [name for name in _JSON_FUNCTION_TYPES if name != "output"]
        if schema.include_scorer_output:
            function_fields.append("output")
        for position, column in enumerate(schema.columns, start=1):
            nested = []
            if column == "scoring_function_results":
                nested = [
                    schema_dataset.SchemaDatasetFacetFields(name=name, type=_JSON_FUNCTION_TYPES[name])
                    for name in function_fields
                ]
            fields.append(
                schema_dataset.SchemaDatasetFacetFields(
                    name=column, type=_JSON_TYPES[column], ordinal_position=position, fields=nested
                )
            )
    return schema_dataset.SchemaDatasetFacet(fields=fields)


def results_dataset(
    uri: str, schema: RecordSchema, format: ResultsFormat, *, record_count: int | None = None
) -> OutputDataset:
    """The exported file as an OpenLineage output dataset: its name (:func:`file_dataset_name`), a
    ``schema`` facet (:func:`schema_facet`) and, given ``record_count``, an ``outputStatistics`` facet."""
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.facet_v2 import output_statistics_output_dataset

    namespace, name = file_dataset_name(uri)
    output_facets: dict[str, Any] = {}
    if record_count is not None:
        output_facets["outputStatistics"] = (
            output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=record_count)
        )
    return OutputDataset(
        namespace=namespace,
        name=name,
        facets={"schema": schema_facet(schema, format)},
        outputFacets=output_facets,
    )


def results_lineage(
    *,
    base_url: str,
    benchmark_run_id: str,
    destination: str | None,
    schema: RecordSchema,
    format: ResultsFormat,
    record_count: int | None = None,
) -> OperatorLineage[Any, Any]:
    """What a results export read and wrote: the benchmark run in, the file out (none for XCom)."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    outputs = (
        []
        if destination is None
        else [results_dataset(destination, schema, format, record_count=record_count)]
    )
    return OperatorLineage(inputs=[benchmark_run_dataset(base_url, benchmark_run_id)], outputs=outputs)


def assertion_facets(
    rows: Iterable[Mapping[str, Any]],
) -> data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet:
    """The ``dataQualityAssertions`` facet of a run's checks.

    Each row is one check, ``{"metric": str, "verdict": "pass" | "fail" | "skip", ...}`` (other keys
    are ignored): it becomes an assertion named by its metric, a success when its verdict is ``"pass"``.
    A ``"skip"`` row (a rule that could not be applied, such as a comparison without a baseline) asserted
    nothing and is left out.
    Attach it to the checked dataset's ``inputFacets`` (it is an input dataset facet), for example the
    benchmark run's (:func:`benchmark_run_dataset`).

    :raises ValueError: for a row without a metric or with another verdict.
    """
    from openlineage.client.facet_v2 import data_quality_assertions_dataset

    assertions = []
    for row in rows:
        metric, verdict = row.get("metric"), row.get("verdict")
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"A check row needs a 'metric' string, got {row!r}")
        if verdict not in ("pass", "fail", "skip"):
            raise ValueError(
                f"A check row's verdict must be 'pass', 'fail' or 'skip', got {verdict!r} ({metric})"
            )
        if verdict == "skip":
            continue
        assertions.append(
            data_quality_assertions_dataset.Assertion(assertion=metric, success=verdict == "pass")
        )
    return data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(assertions=assertions)
