"""Property-based tests of every parser and validator that reads what others send.

The property, everywhere: a valid result, or one of our typed errors (or a ``ValueError``/``TypeError``
naming the argument, for constructor input); never another exception, never a hang (the hypothesis
profile's deadline, see ``tests/conftest.py``). ``make test`` runs a small derandomized budget;
``make fuzz`` a deep random one. Sections follow the modules they exercise: the client's page and
model parsing (bytes to models to records), ids, ``Retry-After``, trigger construction and its
serialize round trip, and reading trigger events.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from support.summaries import make_summary

from airflow_provider_runloop.client import RetryPolicy, RunloopClient, _retry_after_seconds, validate_id
from airflow_provider_runloop.exceptions import RunloopError
from airflow_provider_runloop.models import ScenarioRunView
from airflow_provider_runloop.progress import BenchmarkRunSummary
from airflow_provider_runloop.results import RecordSchema, ResultsFormat, open_writer
from airflow_provider_runloop.triggers.runloop import (
    EVENT_STATUSES,
    RunloopBenchmarkJobTrigger,
    RunloopBenchmarkRunTrigger,
    read_trigger_event,
)

KEY = "rl_fuzz_key_0123456789"

# -- what a server or a stored payload can hold ----------------------------------------------------

# Numbers at and past every edge a parser meets: NaN, infinities, 2**63, 10**400, fractions.
edge_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**63, 2**63 - 1, 10**400, -(10**400), 0.5, 1.0000001, -0.0]),
)
edge_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["running", "scored", "completed", "COMPLETED", "cancelled", "zombie", "", " "]),
    st.just("ab/ " * 1_250),  # a huge string (drawn as one value: generating it costs nothing)
)
json_leaf = st.one_of(st.none(), st.booleans(), edge_numbers, edge_text)
json_values = st.recursive(
    json_leaf,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(edge_text, children, max_size=4),
    max_leaves=12,
)


def near(valid: Any) -> st.SearchStrategy[Any]:
    """``valid`` or anything else: most fields keep their shape, some get arbitrary JSON."""
    return st.one_of(st.just(valid), json_values)


def body_like(shape: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with ``shape``'s keys, each sometimes missing and sometimes of any JSON type."""
    return st.fixed_dictionaries({}, optional={key: near(value) for key, value in shape.items()})


score_result = body_like(
    {
        "score": 0.5,
        "scoring_function_results": [{"scoring_function_name": "f", "score": 1.0, "state": "complete"}],
    }
)
scenario_run = body_like(
    {
        "id": "scr_1",
        "scenario_id": "scn_1",
        "state": "completed",
        "name": "n",
        "start_time_ms": 1_700_000_000_000,
        "duration_ms": 5,
        "metadata": {"k": "v"},
    }
).flatmap(
    lambda run: st.fixed_dictionaries({"scoring_contract_result": score_result}).map(lambda r: {**run, **r})
)
benchmark_run = body_like({"id": "bmr_1", "state": "running", "score": 0.2, "start_time_ms": 1})
benchmark = body_like({"id": "bmd_1", "name": "b", "scenarioIds": ["scn_1"]})
benchmark_job = body_like(
    {
        "id": "bmj_1",
        "state": "running",
        "failure_reason": "x",
        "job_spec": {"scenario_ids": ["scn_1"]},
        "in_progress_runs": [{"benchmark_run_id": "bmr_1", "state": "running"}],
        "benchmark_outcomes": [{"benchmark_run_id": "bmr_1", "n_completed": 1, "average_score": 0.5}],
    }
)


def page_of(items: st.SearchStrategy[Any], key: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            key: near([]) | st.lists(items, max_size=3),
            "has_more": near(False),
            "total_count": near(3),
        },
    )


def encoded(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """As a server could send it: JSON (NaN and Infinity tokens included), cut short, or not JSON."""

    def dump(value: Any) -> bytes:
        try:
            return json.dumps(value).encode()
        except ValueError:  # an int past 4,300 digits has no JSON text
            return b"{}"

    return st.one_of(
        strategy.map(dump),
        strategy.map(dump).flatmap(lambda raw: st.integers(0, len(raw)).map(lambda n: raw[:n])),
        st.binary(max_size=50),
    )


# (method to call, its argument, the path it reads, bodies for it)
CALLS = [
    ("get_scenario_run", "scr_1", "/v1/scenarios/runs/scr_1", encoded(scenario_run)),
    ("get_benchmark_run", "bmr_1", "/v1/benchmark_runs/bmr_1", encoded(benchmark_run)),
    ("get_benchmark", "bmd_1", "/v1/benchmarks/bmd_1", encoded(benchmark)),
    ("get_benchmark_job", "bmj_1", "/v1/benchmark_jobs/bmj_1", encoded(benchmark_job)),
    (
        "list_scenario_runs",
        "bmr_1",
        "/v1/benchmark_runs/bmr_1/scenario_runs",
        encoded(page_of(scenario_run, "runs")),
    ),
    (
        "count_scenario_runs",
        "bmr_1",
        "/v1/benchmark_runs/bmr_1/scenario_runs",
        encoded(page_of(scenario_run, "runs")),
    ),
]


class _Server:
    """One client for a whole property (building one per example costs a TLS context each)."""

    def __init__(self) -> None:
        self.body = b""
        self.client = RunloopClient(
            KEY,
            base_url="https://api.fuzz.runloop",
            retry=RetryPolicy(max_retries=0),
            transport=httpx.MockTransport(self._answer),
            sleep=lambda seconds: None,
        )

    def _answer(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=self.body, headers={"content-type": "application/json"})


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    served = _Server()
    with served.client:
        yield served


def _raised(call: Callable[[], Any]) -> tuple[Any, Exception | None]:
    """``call``'s result, or the exception it raised (checked by the caller, outside an except)."""
    try:
        return call(), None
    except Exception as exc:
        return None, exc


def _strict_json(value: Any) -> None:
    json.dumps(value, allow_nan=False)


@pytest.mark.parametrize(("method", "argument", "path", "bodies"), CALLS, ids=[call[0] for call in CALLS])
@given(data=st.data())
def test_any_body_parses_into_a_valid_model_or_a_typed_error(
    server: _Server,
    method: str,
    argument: str,
    path: str,
    bodies: st.SearchStrategy[bytes],
    data: st.DataObject,
) -> None:
    server.body = data.draw(bodies, label="body")

    def call() -> Any:
        result = getattr(server.client, method)(argument)
        return result if isinstance(result, int) or hasattr(result, "model_dump") else list(result)

    result, error = _raised(call)
    if error is not None:
        assert isinstance(error, RunloopError), repr(error)
        return
    # What parsed is strict JSON all the way to an exported record.
    for model in result if isinstance(result, list) else [result]:
        if model is None or isinstance(model, int):
            continue
        _strict_json(model.model_dump(mode="json", by_alias=True))
        if isinstance(model, ScenarioRunView):
            _export_one(model)


def _export_one(run: ScenarioRunView) -> None:
    schema = RecordSchema(include_scorer_output=True, include_environment=True)
    record = schema.record(run, benchmark_run_id="bmr_1")
    for fmt in (ResultsFormat.JSONL, ResultsFormat.CSV):
        out = io.BytesIO()
        writer = open_writer(fmt, out, schema)
        writer.write(record)
        writer.finish()
    _strict_json(
        json.loads(out.getvalue().decode().splitlines()[0]) if fmt is ResultsFormat.JSONL else dict(record)
    )


# -- ids --------------------------------------------------------------------------------------------

_ID = re.compile(r"[A-Za-z0-9_-]+")


@given(value=st.one_of(st.text(), json_values, st.binary(max_size=10)))
# Found by make fuzz: 80 characters whose repr is 10 characters each (\U0001xxxx) made a 300-char message.
@example(value="0" * 34 + "\x1f" * 6 + "\U00018cd6" * 40)
def test_validate_id_returns_a_safe_id_or_a_value_error_naming_the_argument(value: Any) -> None:
    checked, error = _raised(lambda: validate_id("benchmark_run_id", value))
    if error is not None:
        assert isinstance(error, ValueError), repr(error)
        assert str(error).startswith("benchmark_run_id must be a Runloop id")
        assert len(str(error)) < 300
    else:
        assert checked == value
        assert _ID.fullmatch(checked)


# -- Retry-After / retry-after-ms ---------------------------------------------------------------------

header_values = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"inf", b"-inf", b"nan", b"1e400", b"-5", b"120", b"1.5"]).map(bytes),
    st.datetimes().map(lambda when: when.strftime("%a, %d %b %Y %H:%M:%S GMT").encode()),
    st.text(alphabet="0123456789:,- ADFGJMNOSTWadehinortuy", max_size=40).map(str.encode),
)


@given(name=st.sampled_from([b"retry-after", b"retry-after-ms"]), value=header_values, other=header_values)
def test_retry_after_is_a_finite_wait_or_nothing(name: bytes, value: bytes, other: bytes) -> None:
    headers = httpx.Headers([(name, value), (b"retry-after", other)])
    seconds = _retry_after_seconds(headers)
    assert seconds is None or (isinstance(seconds, float) and math.isfinite(seconds) and seconds >= 0)


# -- triggers: construction and the serialize round trip ----------------------------------------------

RUN_KWARGS: dict[str, Any] = {
    "benchmark_run_id": "bmr_1",
    "deadline": 1_900_000_000.0,
    "runloop_conn_id": "runloop_default",
    "poll_interval": 5.0,
    "expected_scenario_count": 3,
    "accept_scored": False,
    "fail_on_scenario_failure": True,
    "max_consecutive_poll_failures": 2,
    "cancel_on_kill": False,
    "failure_settle_seconds": 0.0,
    "failure_hold": {"since": 1.0, "total_scenario_runs": 1},
}
JOB_KWARGS: dict[str, Any] = {
    key: RUN_KWARGS[key]
    for key in (
        "deadline",
        "runloop_conn_id",
        "poll_interval",
        "max_consecutive_poll_failures",
        "cancel_on_kill",
    )
} | {"benchmark_job_id": "bmj_1"}
TRIGGERS = [(RunloopBenchmarkRunTrigger, RUN_KWARGS), (RunloopBenchmarkJobTrigger, JOB_KWARGS)]


@pytest.mark.parametrize(("trigger_class", "valid"), TRIGGERS, ids=["run", "job"])
@given(data=st.data())
def test_a_trigger_is_built_and_round_trips_or_names_the_bad_argument(
    trigger_class: Any, valid: dict[str, Any], data: st.DataObject
) -> None:
    changed = data.draw(
        st.dictionaries(st.sampled_from([*valid, "not_an_argument"]), json_values, max_size=3),
        label="changed",
    )
    kwargs = {**valid, **changed}
    trigger, error = _raised(lambda: trigger_class(**kwargs))
    if error is not None:
        assert isinstance(error, (ValueError, TypeError)), repr(error)
        assert any(name in str(error) for name in changed), str(error)
        return
    classpath, stored = trigger.serialize()
    _strict_json(stored)
    revived = trigger_class(**json.loads(json.dumps(stored)))
    assert revived.serialize() == (classpath, stored)


# -- reading trigger events ----------------------------------------------------------------------------


class _TimedOut(Exception):
    pass


events = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from(sorted(EVENT_STATUSES)) | json_values,
            "message": near("m"),
            "summary": near({"done": True}),
        },
    ),
)


@given(event=events)
def test_read_trigger_event_reads_any_payload_or_raises_ours(event: Any) -> None:
    read, error = _raised(
        lambda: read_trigger_event(event, "summary", timed_out=_TimedOut, source="fuzz trigger")
    )
    if error is not None:
        assert isinstance(error, (RunloopError, _TimedOut)), repr(error)
        return
    status, message, payload = read
    assert status in ("success", "failure")
    assert isinstance(message, str)
    assert isinstance(payload, dict)


SUMMARY = make_summary(
    benchmark_run_state="running",
    benchmark_id="bmd_1",
    message="m",
    scoring_function_mean_scores={"f": 0.5},
    benchmark_score=None,
)


@given(changed=st.dictionaries(st.sampled_from(sorted(SUMMARY)), json_values, max_size=3))
def test_a_summary_from_xcom_is_read_or_refused_naming_the_field(changed: dict[str, Any]) -> None:
    summary, error = _raised(lambda: BenchmarkRunSummary.from_dict({**SUMMARY, **changed}))
    if error is not None:
        assert isinstance(error, ValueError), repr(error)
        assert any(key in str(error) for key in changed), str(error)
        return
    _strict_json(summary.to_dict())
