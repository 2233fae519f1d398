"""The HTML report (``airflow_provider_runloop.report``): self-contained, escaped, counted by latest run."""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from typing import Any

import pytest
from support.progress_runs import benchmark_run, scenario_run, tally_of

from airflow_provider_runloop.links import benchmark_run_url, report_url
from airflow_provider_runloop.models import BenchmarkRunView, ScenarioRunView
from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator
from airflow_provider_runloop.progress import BenchmarkRunSummary, judge
from airflow_provider_runloop.report import HISTOGRAM_BINS, ScoreHistogram, render, report_path_for

API = "https://api.runloop.ai"
ORIGIN = "https://platform.runloop.ai"
EVIL = '<script>alert("x")</script>'


class Page(HTMLParser):
    """Every start tag with its attributes, and the text, of a rendered report."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.chunks: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    @property
    def text(self) -> str:
        # One space between elements' texts, none before punctuation or inside brackets.
        text = " ".join(" ".join(self.chunks).split())
        return re.sub(r"\(\s+", "(", re.sub(r"\s+([),.;:])", r"\1", text))

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def _run(name: str | None = "nightly", *, score: float | None = 0.65) -> BenchmarkRunView:
    data: dict[str, Any] = {"id": "bmr_x", "state": "completed", "benchmark_id": "bm_1", "metadata": {}}
    if name is not None:
        data["name"] = name
    if score is not None:
        data["score"] = score
    return BenchmarkRunView.model_validate(data)


def _report(
    scenario_runs: list[ScenarioRunView],
    *,
    run: BenchmarkRunView | None = None,
    baseline: BenchmarkRunSummary | None = None,
) -> tuple[str, ScoreHistogram, BenchmarkRunSummary]:
    run = run or _run()
    tally = tally_of(scenario_runs)
    summary = judge(run, tally, fail_on_scenario_failure=False).summary
    histogram = ScoreHistogram()
    histogram.extend(tally.scores())
    page = render(
        run,
        summary,
        histogram,
        dashboard_url=benchmark_run_url(API, run.id, run.benchmark_id),
        baseline=baseline,
        baseline_dashboard_url=None if baseline is None else benchmark_run_url(API, "bmr_base", "bm_1"),
        data_file="file:///data/bmr_x.jsonl",
    )
    return page, histogram, summary


SAMPLE = [
    scenario_run("r1", "scn_a", "completed", start=1, score=0.9, functions={"tests": 1.0, "lint": 0.5}),
    scenario_run("r2", "scn_b", "completed", start=1, score=0.3, functions={"tests": 0.0, "lint": 1.0}),
    scenario_run("r3", "scn_c", "failed", start=1, name="fix the parser"),
]


def test_the_page_is_self_contained() -> None:
    page, _, _ = _report(SAMPLE)
    parsed = Page(page)
    tags = {name for name, _ in parsed.tags}
    assert "script" not in tags
    assert not tags & {"img", "iframe", "link", "object", "embed", "video", "audio", "source", "base"}
    for name, attrs in parsed.tags:
        assert "src" not in attrs, name
        assert not [key for key in attrs if key.startswith("on")], (name, attrs)
        href = attrs.get("href")
        if href is not None:
            assert href.startswith(f"{ORIGIN}/"), href
    assert parsed.named("a")  # the dashboard links are there
    assert "url(" not in page
    assert "@import" not in page
    assert page.startswith("<!DOCTYPE html>")
    assert parsed.named("style")
    assert parsed.named("svg")


def test_the_headline_is_runloop_s_score_then_the_provider_s_mean() -> None:
    page, _, _ = _report(SAMPLE)
    text = Page(page).text
    assert text.index("Runloop run score 0.650") < text.index("Mean over scored scenarios (provider) 0.600")
    assert "the mean of 2 scenarios whose latest run has a score" in text
    assert "bmr_x" in text
    assert "completed" in text
    assert "nightly" in text
    # A run Runloop has not scored says so instead of showing a number.
    unscored, _, _ = _report(SAMPLE, run=_run(score=None))
    assert "Runloop run score none Runloop gave this run no score" in Page(unscored).text


def test_failures_are_named_with_a_dashboard_link_and_tables_have_headers() -> None:
    page, _, _ = _report(SAMPLE)
    parsed = Page(page)
    assert "fix the parser r3 benchmark run page" in parsed.text
    assert f"{ORIGIN}/benchmarks/custom/bm_1/runs/bmr_x" in [a["href"] for a in parsed.named("a")]
    assert len(parsed.named("table")) >= 3
    assert all(th.get("scope") in ("col", "row") for th in parsed.named("th"))
    for svg in parsed.named("svg"):
        assert svg.get("role") == "img"
        assert svg.get("aria-label") or svg.get("aria-labelledby")


def test_user_chosen_text_is_escaped() -> None:
    runs = [
        scenario_run("r1", "scn_a", "completed", start=1, score=0.5, functions={EVIL: 0.5}),
        scenario_run("r2", "scn_b", "failed", start=1, name=EVIL),
    ]
    page, _, _ = _report(runs, run=_run(name=EVIL))
    assert "<script" not in page.lower()
    parsed = Page(page)
    assert "script" not in {name for name, _ in parsed.tags}
    # Shown as text: in the title, the heading, the function table and the failures.
    assert parsed.text.count(EVIL) >= 4
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_histogram_counts() -> None:
    histogram = ScoreHistogram()
    histogram.extend([0.0, 0.049, 0.05, 0.5, 0.54, 0.999, 1.0])
    expected = [0] * HISTOGRAM_BINS
    expected[0], expected[1], expected[10], expected[19] = 2, 1, 2, 2
    assert histogram.counts == tuple(expected)
    assert histogram.total == 7
    assert ScoreHistogram.bounds(10) == (0.5, 0.55)


def test_the_chart_shows_the_counts() -> None:
    runs = [scenario_run(f"r{i}", f"scn_{i}", "completed", start=1, score=0.52) for i in range(3)]
    runs.append(scenario_run("r9", "scn_9", "completed", start=1, score=1.0))
    page, histogram, _ = _report(runs)
    titles = re.findall(r"<rect [^>]*><title>([^<]*)</title>", page)
    assert len(titles) == HISTOGRAM_BINS
    assert titles[10] == "0.50 to 0.55: 3 scenarios"
    assert titles[19] == "0.95 to 1.00 (inclusive): 1 scenario"
    assert titles[0] == "0.00 to 0.05: 0 scenarios"
    assert histogram.total == 4
    assert "Distribution of the scores of 4 scenarios (latest run of each)" in Page(page).text


def test_baseline_columns_and_deltas() -> None:
    base_runs = [
        scenario_run("b1", "scn_a", "completed", start=1, score=0.5, functions={"tests": 0.25, "style": 1.0}),
    ]
    baseline = judge(
        benchmark_run("completed", run_id="bmr_base", score=0.5),
        tally_of(base_runs),
        fail_on_scenario_failure=False,
    ).summary
    page, _, _ = _report(SAMPLE, baseline=baseline)
    parsed = Page(page)
    rows = re.findall(r"<tr><th scope=\"row\">(\w+)</th>(.*?)</tr>", page.split('id="functions"')[1])
    cells = {name: re.findall(r'<td class="num[^"]*">([^<]*)</td>', rest) for name, rest in rows}
    assert cells["tests"] == ["0.500", "0.250", "+0.250"]
    assert cells["lint"] == ["0.750", "n/a", "n/a"]
    assert cells["style"] == ["n/a", "1.000", "n/a"]
    assert "+0.150 against the baseline (higher)" in parsed.text
    assert "Baseline: benchmark run bmr_base (dashboard), Runloop run score 0.500." in parsed.text
    assert 'class="num down"' not in page
    assert 'class="num up"' in page
    # Without a baseline there are no baseline columns.
    plain, _, _ = _report(SAMPLE)
    assert "baseline" not in plain.split('id="functions"')[1].split("</table>")[0]


def test_each_scenario_counts_by_its_latest_run() -> None:
    runs = [
        # Listed newest first, but the greater start time wins wherever it is listed.
        scenario_run("a_old", "scn_a", "failed", start=1, score=0.0, name="old attempt"),
        scenario_run("a_new", "scn_a", "completed", start=5, score=0.9),
        # A tie: the run listed first wins.
        scenario_run("b_first", "scn_b", "completed", start=3, score=0.2),
        scenario_run("b_second", "scn_b", "failed", start=3, name="tied later"),
        # A later failure after an earlier success: the failure counts.
        scenario_run("c_old", "scn_c", "completed", start=1, score=1.0),
        scenario_run("c_new", "scn_c", "timeout", start=2, name="timed out at last"),
    ]
    page, histogram, summary = _report(runs)
    expected = [0] * HISTOGRAM_BINS
    expected[18], expected[4] = 1, 1
    assert histogram.counts == tuple(expected)
    text = Page(page).text
    assert "timed out at last" in text
    assert "old attempt" not in text
    assert "tied later" not in text
    assert "3 retried attempts (an earlier run of a scenario that ran again) are not counted" in text
    assert "1 started scenario without a score" in text
    assert summary.failed_scenario_count == 1


def test_memory_does_not_grow_with_the_run() -> None:
    small, large = ScoreHistogram(), ScoreHistogram()
    small.extend(i / 10 for i in range(10))
    large.extend((i % 1000) / 1000 for i in range(200_000))
    assert sys.getsizeof(small.counts) == sys.getsizeof(large.counts)
    assert not hasattr(large, "__dict__")  # nothing but the fixed counters

    def page_for(count: int) -> str:
        runs = [
            scenario_run(f"r{i}", f"scn_{i}", "completed", start=1, score=(i % 100) / 100)
            for i in range(count)
        ]
        runs += [
            scenario_run(f"f{i}", f"scn_f{i}", "failed", start=1, name=f"broken {i}") for i in range(count)
        ]
        return _report(runs)[0]

    few, many = page_for(60), page_for(3000)
    # The failures are the summary's, capped at 50 rows; the rest of the page is the same size.
    assert many.count("benchmark run page</a>") == few.count("benchmark run page</a>") == 50
    assert "2950 more are in the data file (the summary lists the first 50)" in Page(many).text
    assert abs(len(many) - len(few)) < 2_000


@pytest.mark.parametrize(
    ("data", "report"),
    [
        ("/data/bmr_1.jsonl", "/data/bmr_1.html"),
        ("s3://bucket/runs/bmr_1.parquet", "s3://bucket/runs/bmr_1.html"),
        ("/data/v1.2/results", "/data/v1.2/results.html"),
        ("/data/.hidden", "/data/.hidden.html"),
        ("results.tar.csv", "results.tar.html"),
    ],
)
def test_the_report_sits_beside_the_data_file(data: str, report: str) -> None:
    assert report_path_for(data) == report


def test_a_data_file_named_html_is_refused() -> None:
    with pytest.raises(ValueError, match=r"ends in \.html"):
        report_path_for("/data/bmr_1.HTML")
    with pytest.raises(ValueError, match=r"ends in \.html"):
        RunloopBenchmarkResultsOperator(
            task_id="export", benchmark_run_id="bmr_1", destination="file:///d/r.html", html_report=True
        )


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        ("file:///data/bmr_1.html", "file:///data/bmr_1.html"),
        ("https://reports.example.com/bmr_1.html", "https://reports.example.com/bmr_1.html"),
        (
            "s3://my-bucket/runs/a b/bmr_1.html",
            "https://console.aws.amazon.com/s3/object/my-bucket?prefix=runs%2Fa%20b%2Fbmr_1.html",
        ),
        ("gcs://bucket/bmr_1.html", None),
    ],
)
def test_report_link_per_store(uri: str, url: str | None) -> None:
    assert report_url(uri) == url


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"html_report": True}, "html_report=True needs a destination"),
        (
            {"destination": "file:///d/r.jsonl", "baseline_benchmark_run_id": "bmr_b"},
            "baseline_benchmark_run_id is used only by the HTML report",
        ),
        (
            {"destination": "file:///d/r.jsonl", "html_report": True, "baseline_benchmark_run_id": "bad id"},
            "baseline_benchmark_run_id",
        ),
    ],
)
def test_report_options_are_checked_at_parse_time(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        RunloopBenchmarkResultsOperator(task_id="export", benchmark_run_id="bmr_1", **options)


def test_the_baseline_is_templated() -> None:
    operator = RunloopBenchmarkResultsOperator(
        task_id="export",
        benchmark_run_id="bmr_1",
        destination="file:///d/r.jsonl",
        html_report=True,
        baseline_benchmark_run_id="{{ params.baseline }}",
    )
    assert "baseline_benchmark_run_id" in operator.template_fields
    assert [link.name for link in operator.operator_extra_links] == [
        "Runloop benchmark run",
        "Runloop results report",
    ]


def test_a_change_that_rounds_to_nothing_is_shown_as_none() -> None:
    runs = [scenario_run("r1", "scn_a", "completed", start=1, score=0.5, functions={"tests": 0.3})]
    base_runs = [scenario_run("b1", "scn_a", "completed", start=1, score=0.5, functions={"tests": 0.3000001})]
    baseline = judge(benchmark_run("completed", run_id="bmr_base"), tally_of(base_runs)).summary
    page, _, _ = _report(runs, baseline=baseline)
    assert '<td class="num ">±0.000</td>' in page
    assert "num down" not in page
