"""lineage.py: OpenLineage namespaces and names, the schema facet, the assertions facet, and that the
provider imports no OpenLineage until asked."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from openlineage.client.serde import Serde

from airflow_provider_runloop.lineage import (
    assertion_facets,
    benchmark_run_dataset,
    benchmark_run_name,
    benchmark_run_namespace,
    file_dataset_name,
    results_dataset,
    results_lineage,
    schema_facet,
)
from airflow_provider_runloop.results import BASE_COLUMNS, ENVIRONMENT_COLUMNS, RecordSchema, ResultsFormat


@pytest.mark.parametrize(
    ("base_url", "namespace"),
    [
        ("https://api.runloop.ai", "runloop://api.runloop.ai"),
        ("https://api.runloop.ai/", "runloop://api.runloop.ai"),
        ("https://API.Runloop.ai:443", "runloop://api.runloop.ai"),
        ("https://api.runloop.ai:8443", "runloop://api.runloop.ai:8443"),
        ("http://127.0.0.1:8765", "runloop://127.0.0.1:8765"),
        ("http://localhost:80", "runloop://localhost"),
        ("http://runloop.internal:443", "runloop://runloop.internal:443"),  # 443 is not http's default
        ("http://[::1]:8765", "runloop://[::1]:8765"),
        ("api.runloop.ai", "runloop://api.runloop.ai"),  # a bare host means https, as in the connection
        # Nothing secret and nothing of the spelling: user info, path and query are dropped.
        ("https://user:s3cret@proxy.example.com/runloop/v1?token=abc", "runloop://proxy.example.com"),
    ],
)
def test_benchmark_run_namespace(base_url: str, namespace: str) -> None:
    assert benchmark_run_namespace(base_url) == namespace


def test_a_base_url_without_a_host_is_refused() -> None:
    with pytest.raises(ValueError, match="with a host"):
        benchmark_run_namespace("https://")


def test_benchmark_run_dataset() -> None:
    dataset = benchmark_run_dataset("http://127.0.0.1:8765", "bmr_123")
    assert (dataset.namespace, dataset.name) == ("runloop://127.0.0.1:8765", "benchmark_runs/bmr_123")
    assert benchmark_run_name("bmr_123") == "benchmark_runs/bmr_123"
    datasource = dataset.facets["datasource"]
    assert (datasource.name, datasource.uri) == ("runloop://127.0.0.1:8765", "runloop://127.0.0.1:8765")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///data/results/bmr_1.jsonl", ("file", "/data/results/bmr_1.jsonl")),
        ("local:///data/r.csv", ("file", "/data/r.csv")),
        ("s3://bucket/results/bmr_1.parquet", ("s3://bucket", "results/bmr_1.parquet")),
        ("s3://aws_conn@bucket/results/bmr_1.jsonl", ("s3://bucket", "results/bmr_1.jsonl")),
        ("gs://b/k.json", ("gs://b", "k.json")),
    ],
)
def test_file_dataset_name(uri: str, expected: tuple[str, str]) -> None:
    assert file_dataset_name(uri) == expected


@pytest.mark.parametrize("uri", ["s3://bucket", "s3://bucket/", "s3:///key"])
def test_an_object_url_needs_a_bucket_and_a_key(uri: str) -> None:
    with pytest.raises(ValueError, match="bucket and a key"):
        file_dataset_name(uri)


def _fields(facet: object) -> list[tuple[str, str | None, int | None]]:
    return [(field.name, field.type, field.ordinal_position) for field in facet.fields]  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", [ResultsFormat.JSONL, ResultsFormat.JSON, ResultsFormat.CSV])
def test_the_text_formats_schema_has_every_column_in_order_with_json_types(fmt: ResultsFormat) -> None:
    facet = schema_facet(RecordSchema(), fmt)
    assert [name for name, _, _ in _fields(facet)] == list(BASE_COLUMNS)
    assert [position for _, _, position in _fields(facet)] == list(range(1, len(BASE_COLUMNS) + 1))
    types = {name: kind for name, kind, _ in _fields(facet)}
    assert types["score"] == "number"
    assert types["duration_ms"] == "integer"
    assert types["start_time"] == "string"
    assert types["metadata"] == "object"
    assert types["scoring_function_results"] == "array"
    (functions,) = (field for field in facet.fields if field.name == "scoring_function_results")
    assert [(sub.name, sub.type) for sub in functions.fields] == [
        ("name", "string"),
        ("score", "number"),
        ("state", "string"),
        ("output", "string"),
    ]


def test_the_schema_follows_the_record_options() -> None:
    facet = schema_facet(
        RecordSchema(include_scorer_output=False, include_environment=True), ResultsFormat.JSONL
    )
    assert [name for name, _, _ in _fields(facet)] == list(BASE_COLUMNS + ENVIRONMENT_COLUMNS)
    (functions,) = (field for field in facet.fields if field.name == "scoring_function_results")
    assert [sub.name for sub in functions.fields] == ["name", "score", "state"]


def test_parquet_schema_has_arrow_types() -> None:
    facet = schema_facet(RecordSchema(include_scorer_output=False), ResultsFormat.PARQUET)
    types = {name: kind for name, kind, _ in _fields(facet)}
    assert list(types) == list(BASE_COLUMNS)
    assert types["score"] == "double"
    assert types["duration_ms"] == "int64"
    assert types["start_time"] == "timestamp[ms, tz=UTC]"
    assert types["metadata"] == "map<string, string>"
    (functions,) = (field for field in facet.fields if field.name == "scoring_function_results")
    assert [(sub.name, sub.type) for sub in functions.fields] == [
        ("name", "string"),
        ("score", "double"),
        ("state", "string"),
    ]


def test_results_dataset_and_lineage_serialize_as_openlineage_json() -> None:
    schema = RecordSchema()
    lineage = results_lineage(
        base_url="https://api.runloop.ai",
        benchmark_run_id="bmr_9",
        destination="s3://bucket/out/bmr_9.jsonl",
        schema=schema,
        format=ResultsFormat.JSONL,
        record_count=7,
    )
    (source,) = lineage.inputs
    (output,) = lineage.outputs
    assert (source.namespace, source.name) == ("runloop://api.runloop.ai", "benchmark_runs/bmr_9")
    document = json.loads(Serde.to_json(output))
    assert (document["namespace"], document["name"]) == ("s3://bucket", "out/bmr_9.jsonl")
    assert document["outputFacets"]["outputStatistics"]["rowCount"] == 7
    fields = document["facets"]["schema"]["fields"]
    assert [field["name"] for field in fields] == list(schema.columns)
    assert document["facets"]["schema"]["_schemaURL"].endswith("SchemaDatasetFacet")


def test_an_export_to_xcom_has_no_output_and_no_row_count_means_no_statistics() -> None:
    lineage = results_lineage(
        base_url="https://api.runloop.ai",
        benchmark_run_id="bmr_9",
        destination=None,
        schema=RecordSchema(),
        format=ResultsFormat.JSONL,
    )
    assert [dataset.name for dataset in lineage.inputs] == ["benchmark_runs/bmr_9"]
    assert lineage.outputs == []
    dataset = results_dataset("file:///r.jsonl", RecordSchema(), ResultsFormat.CSV)
    assert dataset.outputFacets == {}


def test_assertion_facets() -> None:
    facet = assertion_facets(
        [
            {"metric": "mean_score", "verdict": "pass", "threshold": 0.5, "value": 0.8},
            {"metric": "failed_scenario_count", "verdict": "fail"},
            {"metric": "baseline", "verdict": "skip"},  # nothing was asserted: left out
        ]
    )
    assert [(item.assertion, item.success) for item in facet.assertions] == [
        ("mean_score", True),
        ("failed_scenario_count", False),
    ]
    document = json.loads(Serde.to_json(facet))
    assert document["_schemaURL"].endswith("DataQualityAssertionsDatasetFacet")
    assert [(item["assertion"], item["success"]) for item in document["assertions"]] == [
        ("mean_score", True),
        ("failed_scenario_count", False),
    ]
    assert assertion_facets([]).assertions == []


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"metric": "x", "verdict": "PASS"}, "verdict"),
        ({"metric": "x", "verdict": True}, "verdict"),
        ({"metric": "x"}, "verdict"),
        ({"verdict": "pass"}, "metric"),
        ({"metric": "", "verdict": "pass"}, "metric"),
    ],
)
def test_assertion_facets_refuse_a_malformed_row(row: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        assertion_facets([row])


def test_the_provider_imports_no_openlineage_until_asked() -> None:
    # A fresh interpreter: the provider's modules (the results operator and lineage.py among them) load
    # without OpenLineage, so the extra stays optional.
    # (Airflow itself reads every installed provider's get_provider_info: that module is not the client.)
    code = (
        "import sys, airflow_provider_runloop.lineage, airflow_provider_runloop.operators.runloop, "
        "airflow_provider_runloop.sensors.runloop\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'openlineage' "
        "or m.startswith('airflow.providers.openlineage.extractors')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_check_assertions_attach_to_the_checked_dataset() -> None:
    base_url, run_id = "https://api.runloop.ai", "bmr_1"
    rows = [
        {"metric": "mean_score", "verdict": "pass"},
        {"metric": "failed_scenario_count", "verdict": "fail"},
    ]
    # --8<-- [start:lineage_assertions]
    dataset = benchmark_run_dataset(base_url, run_id)
    dataset.inputFacets = {"dataQualityAssertions": assertion_facets(rows)}
    # --8<-- [end:lineage_assertions]
    document = json.loads(Serde.to_json(dataset))
    assertions = document["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert [(item["assertion"], item["success"]) for item in assertions] == [
        ("mean_score", True),
        ("failed_scenario_count", False),
    ]


def test_the_operator_reports_no_dataset_before_it_exported() -> None:
    from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator

    operator = RunloopBenchmarkResultsOperator(
        task_id="export", benchmark_run_id="bmr_1", destination="file:///tmp/r.jsonl"
    )
    lineage = operator.get_openlineage_facets_on_complete(None)
    assert (lineage.inputs, lineage.outputs) == ([], [])
