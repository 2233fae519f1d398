"""Extra links from Airflow task pages to the Runloop dashboard.

The task pushes the URL to XCom under the link's ``xcom_key`` (Airflow's API server reads it from
there); :func:`benchmark_run_url` and :func:`benchmark_url` build it from the connection's API base URL,
following the Runloop CLI: the dashboard lives on the API host with ``api.`` replaced by ``platform.``.

Runloop publishes no dashboard page for a benchmark *job*, so :class:`RunloopBenchmarkJobLink` points
at the job's benchmark (whose page lists its runs) or, for a job of loose scenarios, at its first
benchmark run; every run's own URL is in the job operator's XCom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx
from airflow.sdk import BaseOperatorLink
from airflow.sdk.bases.xcom import BaseXCom

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

__all__ = [
    "RunloopBenchmarkJobLink",
    "RunloopBenchmarkRunLink",
    "RunloopResultsReportLink",
    "benchmark_run_url",
    "benchmark_url",
    "dashboard_origin",
    "report_url",
]


def dashboard_origin(api_base_url: str) -> str:
    """The dashboard origin for an API base URL (``https://api.runloop.ai`` → ``https://platform.runloop.ai``).

    A base URL whose host does not start with ``api.`` (the local emulator, a proxy) keeps its origin.
    """
    url = httpx.URL(api_base_url)
    host = url.host
    if host.startswith("api."):
        host = "platform." + host.removeprefix("api.")
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{host}{port}"


def benchmark_run_url(api_base_url: str, benchmark_run_id: str, benchmark_id: str | None) -> str:
    """The dashboard page of a benchmark run (``single`` stands in for a run without a benchmark)."""
    origin = dashboard_origin(api_base_url)
    return f"{origin}/benchmarks/custom/{benchmark_id or 'single'}/runs/{benchmark_run_id}"


def benchmark_url(api_base_url: str, benchmark_id: str, *, is_public: bool = False) -> str:
    """The dashboard page of a benchmark definition (``public`` or ``custom``)."""
    origin = dashboard_origin(api_base_url)
    return f"{origin}/benchmarks/{'public' if is_public else 'custom'}/{benchmark_id}"


def report_url(uri: str) -> str | None:
    """Where a browser can open a results report written to ``uri``, or ``None`` when there is no such place.

    - ``file:///…``: the file URL itself. It opens in a browser on the machine (or shared folder) that
      holds the file; browsers do not follow a ``file://`` link from an ``http://`` page when clicked,
      so copy it into the address bar (the link shows it in full).
    - ``http://`` and ``https://``: the URL as it is.
    - ``s3://bucket/key``: the object's page in the AWS console,
      ``https://console.aws.amazon.com/s3/object/bucket?prefix=key``, which opens for anyone signed in
      to the account with read access, and never expires (a presigned URL would, within a week at
      most, while the link stays on the task). It does not apply to S3-compatible stores (MinIO, Ceph).
    - anything else: ``None`` (no link is stored).
    """
    parts = urlsplit(uri)
    if parts.scheme in ("file", "http", "https"):
        return uri
    if parts.scheme in ("s3", "s3a", "s3n") and parts.netloc:
        bucket = parts.netloc.rpartition("@")[2]
        key = parts.path.lstrip("/")
        return f"https://console.aws.amazon.com/s3/object/{quote(bucket)}?prefix={quote(key, safe='')}"
    return None


class _XComLink(BaseOperatorLink):
    """A link whose URL the task stored in XCom under the link's ``xcom_key``."""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        # Airflow's own TaskInstanceKey satisfies the protocol at run time; its fields are read-only.
        value: Any = BaseXCom.get_value(ti_key=ti_key, key=self.xcom_key)  # type: ignore[arg-type]
        return value if isinstance(value, str) else ""

    @classmethod
    def persist(cls, context: Any, url: str) -> None:
        """Store the link's URL for the running task instance."""
        context["ti"].xcom_push(key=cls().xcom_key, value=url)


class RunloopBenchmarkRunLink(_XComLink):
    """Link to the benchmark run's page on the Runloop dashboard."""

    name = "Runloop benchmark run"


class RunloopBenchmarkJobLink(_XComLink):
    """Link to where a benchmark job's runs are on the Runloop dashboard.

    Runloop has no page for a job itself: the link opens the job's benchmark (whose page lists its runs)
    or, for a job of loose scenarios, the job's first benchmark run.
    """

    name = "Runloop benchmark job"


class RunloopResultsReportLink(_XComLink):
    """Link to the HTML report the results export wrote beside its data file (``html_report=True``).

    Stored only once the report is in place; where it points depends on the store (:func:`report_url`):
    the file URL for ``file://``, the AWS console's page of the object for ``s3://``.
    """

    name = "Runloop results report"
