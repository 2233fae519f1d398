"""A benchmark run's results as one self-contained HTML page: the report beside an exported data file.

One job: turn what an export already knows (the benchmark run, its :class:`BenchmarkRunSummary` and the
scores of each scenario's latest run) into a page a person would rather look at than read. The page is
a single file: inline CSS, inline SVG bars, no JavaScript and no URL outside the Runloop dashboard, so
it opens from a folder, an object store or an e-mail attachment the same way.

Memory stays fixed whatever the run's size: :class:`ScoreHistogram` keeps ``HISTOGRAM_BINS`` counters,
fed one score at a time (the export feeds it :meth:`ScenarioRunTally.scores
<airflow_provider_runloop.progress.ScenarioRunTally.scores>`, the latest run of each scenario, by the
tally's rule: the greatest ``start_time_ms``, ties to the run listed first); the failures come from
the summary, which caps them at ``MAX_LISTED_IDS``. Nothing here imports Airflow::

    histogram = ScoreHistogram()
    histogram.extend(tally.scores())
    html = render(run, verdict.summary, histogram, dashboard_url=benchmark_run_url(base, run.id, None))

Every text that comes from the API (names, ids, scoring functions, states) is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Final

from airflow_provider_runloop.models import BenchmarkRunView
from airflow_provider_runloop.progress import BenchmarkRunSummary

__all__ = ["HISTOGRAM_BINS", "ScoreHistogram", "render", "report_path_for"]

HISTOGRAM_BINS: Final = 20
"""Bins of the score distribution: scores 0 to 1 in steps of 0.05 (1.0 falls in the last bin)."""

_CSS: Final = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24;
  background: #fff; margin: 0 auto; max-width: 960px; padding: 24px; }
h1 { font-size: 1.5em; margin: 0 0 4px; } h2 { font-size: 1.15em; margin: 28px 0 8px; }
code { font: 0.92em ui-monospace, SFMono-Regular, Menlo, monospace; background: #f2f4f7; padding: 1px 4px;
  border-radius: 3px; }
.meta { color: #4a5563; margin: 0 0 16px; }
.state { display: inline-block; padding: 1px 8px; border-radius: 10px; background: #e8eef7;
  font-weight: 600; }
.state-completed { background: #dff3e4; } .state-failed, .state-canceled { background: #fbe3e3; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #d5dbe3; border-radius: 8px; padding: 12px 16px; flex: 1 1 260px;
  max-width: 440px; }
.card .label { color: #4a5563; font-size: 0.9em; } .card .value { font-size: 2em; font-weight: 700; }
.card .sub { color: #4a5563; font-size: 0.9em; }
table { border-collapse: collapse; width: 100%; } caption { text-align: left; color: #4a5563;
  padding-bottom: 4px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e3e7ed; vertical-align: middle; }
th { background: #f5f7fa; font-weight: 600; } td.num, th.num { text-align: right;
  font-variant-numeric: tabular-nums; }
.up { color: #116329; } .down { color: #a40e26; } .bar { fill: #3b6fd8; } .track { fill: #e8edf5; }
.base { fill: none; stroke: #1b1f24; stroke-width: 2; }
#distribution { max-width: 640px; height: auto; display: block; }
.note { color: #4a5563; font-size: 0.9em; } a { color: #0b57d0; }
footer { margin-top: 32px; color: #4a5563; font-size: 0.85em; }
"""

# The distribution chart's geometry (SVG user units).
_CHART_W: Final = 640
_CHART_H: Final = 160
_AXIS_H: Final = 22
_LABEL_H: Final = 16  # room above the tallest bar for its count
_BAR_W: Final = 200
_BAR_H: Final = 14


class ScoreHistogram:
    """Counts of scores in ``HISTOGRAM_BINS`` equal bins from 0 to 1: fixed memory, fed one at a time.

    A score below 0 counts in the first bin and one above 1 in the last (the client refuses such
    scores, so this only keeps a stray value from being lost).
    """

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts = [0] * HISTOGRAM_BINS

    def add(self, score: float) -> None:
        """Count one score."""
        self._counts[min(max(int(score * HISTOGRAM_BINS), 0), HISTOGRAM_BINS - 1)] += 1

    def extend(self, scores: Iterable[float]) -> None:
        """Count every score of an iterable (consumed one at a time)."""
        for score in scores:
            self.add(score)

    @property
    def counts(self) -> tuple[int, ...]:
        """The count of each bin, lowest first."""
        return tuple(self._counts)

    @property
    def total(self) -> int:
        """All scores counted."""
        return sum(self._counts)

    @staticmethod
    def bounds(index: int) -> tuple[float, float]:
        """The scores a bin holds: ``[low, high)``, and ``[0.95, 1.0]`` for the last."""
        return index / HISTOGRAM_BINS, (index + 1) / HISTOGRAM_BINS


def report_path_for(path: str) -> str:
    """The report's path beside a data file: its extension replaced by ``.html`` (added if none).

    ``/data/bmr_1.jsonl`` → ``/data/bmr_1.html``; ``s3://b/k/results`` → ``s3://b/k/results.html``.

    :raises ValueError: if the data file itself ends in ``.html`` (the report would overwrite it).
    """
    head, slash, name = path.rpartition("/")
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        stem = name
    elif extension.lower() == "html":
        raise ValueError(
            f"destination {path!r} ends in .html: the HTML report would replace the data file; give the "
            "data file another extension (.jsonl, .csv, ...)"
        )
    return f"{head}{slash}{stem}.html"


def render(
    run: BenchmarkRunView,
    summary: BenchmarkRunSummary,
    histogram: ScoreHistogram,
    *,
    dashboard_url: str,
    baseline: BenchmarkRunSummary | None = None,
    baseline_dashboard_url: str | None = None,
    data_file: str | None = None,
    generated_at: datetime | None = None,
) -> str:
    """The report as one self-contained HTML document.

    :param run: the benchmark run (its name; the state and scores come from the summary).
    :param summary: the export's summary (from a full listing: ``exact``).
    :param histogram: the scores of each scenario's latest run.
    :param dashboard_url: the benchmark run's page on the Runloop dashboard; the failures link there
        (Runloop's dashboard has no page of its own for one scenario run that this provider knows).
    :param baseline: a baseline run's summary: each scoring function is compared with it.
    :param baseline_dashboard_url: the baseline run's dashboard page.
    :param data_file: the data file's URI, named (as text, not a link) in the footer.
    :param generated_at: when the report was written (default: now, UTC).
    """
    when = (generated_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    title = f"Runloop benchmark run {run.name or run.id}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(run.name or run.id)}</h1>",
        '<p class="meta">Benchmark run <code>'
        + _e(summary.benchmark_run_id)
        + "</code>"
        + (f" of benchmark <code>{_e(summary.benchmark_id)}</code>" if summary.benchmark_id else "")
        + f' · state <span class="state state-{_e(summary.benchmark_run_state)}">'
        + f"{_e(summary.benchmark_run_state)}</span>"
        + f' · <a href="{_e(dashboard_url)}">open in the Runloop dashboard</a></p>',
        "</header>",
        "<main>",
        _headline(summary, baseline),
        _scenario_counts(summary),
        _function_table(summary, baseline, baseline_dashboard_url),
        _distribution(histogram, summary),
        _failures(summary, dashboard_url),
        "</main>",
        "<footer>",
        f"<p>Written {_e(when.strftime('%Y-%m-%d %H:%M:%S UTC'))} by airflow-provider-runloop"
        + (f" beside the data file <code>{_e(data_file)}</code>" if data_file else "")
        + ". Each scenario counts once, by its latest run (the greatest start time; on a tie, the run "
        "listed first).</p>",
        "</footer>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


# --- sections -----------------------------------------------------------------------------------------


def _headline(summary: BenchmarkRunSummary, baseline: BenchmarkRunSummary | None) -> str:
    if summary.benchmark_score is not None:
        runloop = _score(summary.benchmark_score)
        runloop_sub = "Runloop's own score of the run, as its dashboard shows it"
    else:
        runloop = "none"
        runloop_sub = (
            "Runloop scores a run once it is completed"
            if summary.benchmark_run_state == "running"
            else "Runloop gave this run no score"
        )
    if baseline is not None and summary.benchmark_score is not None and baseline.benchmark_score is not None:
        runloop_sub += "; " + _delta_words(summary.benchmark_score - baseline.benchmark_score, "baseline")
    mean = _score(summary.mean_score) if summary.mean_score is not None else "none"
    scored = summary.scored_scenarios or 0
    cards = [
        _card("Runloop run score", runloop, runloop_sub, id_="runloop-score"),
        _card(
            "Mean over scored scenarios (provider)",
            mean,
            f"the mean of {_plural(scored, 'scenario')} whose latest run has a score",
            id_="mean-score",
        ),
    ]
    return '<section aria-label="Scores"><div class="cards">' + "".join(cards) + "</div></section>"


def _card(label: str, value: str, sub: str, *, id_: str) -> str:
    return (
        f'<div class="card" id="{id_}"><div class="label">{_e(label)}</div>'
        f'<div class="value">{_e(value)}</div><div class="sub">{_e(sub)}</div></div>'
    )


def _scenario_counts(summary: BenchmarkRunSummary) -> str:
    started = summary.started_scenarios if summary.started_scenarios is not None else "?"
    if summary.expected_scenarios is None:
        finished = (
            f"{_plural(summary.finished_scenarios, 'scenario')} finished (how many were expected is unknown)"
        )
    else:
        finished = f"{summary.finished_scenarios} of {summary.expected_scenarios} expected scenarios finished"
    line = f"{finished}; {started} started ({_plural(summary.total_scenario_runs, 'scenario run')} in all)."
    retried = summary.retried_scenario_runs or 0
    if retried:
        line += (
            f" {_plural(retried, 'retried attempt')} (an earlier run of a scenario that ran again) "
            f"{'is' if retried == 1 else 'are'} not counted: each scenario counts by its latest run."
        )
    if summary.missing_scenario_count:
        line += f" {_plural(summary.missing_scenario_count, 'expected scenario')} never started."
    rows = "".join(
        f'<tr><th scope="row">{_e(state)}</th><td class="num">{count}</td></tr>'
        for state, count in summary.state_counts.items()
        if count
    )
    table = (
        '<table id="states"><caption>Scenarios by the state of their latest run</caption>'
        '<thead><tr><th scope="col">state</th><th scope="col" class="num">scenarios</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        if rows
        else ""
    )
    return (
        '<section aria-labelledby="h-scenarios"><h2 id="h-scenarios">Scenarios</h2>'
        f"<p>{_e(line)}</p>{table}</section>"
    )


def _function_table(
    summary: BenchmarkRunSummary, baseline: BenchmarkRunSummary | None, baseline_url: str | None
) -> str:
    scores = summary.scoring_function_mean_scores
    base_scores: Mapping[str, float] = baseline.scoring_function_mean_scores if baseline is not None else {}
    head = '<th scope="col">scoring function</th><th scope="col" class="num">mean score</th>'
    if baseline is not None:
        head += '<th scope="col" class="num">baseline</th><th scope="col" class="num">change</th>'
    head += (
        '<th scope="col">bar (the line marks the baseline)</th>' if baseline else '<th scope="col">bar</th>'
    )
    rows = []
    for name in sorted(set(scores) | set(base_scores)):
        score = scores.get(name)
        base = base_scores.get(name)
        cells = f'<th scope="row">{_e(name)}</th><td class="num">{_opt_score(score)}</td>'
        if baseline is not None:
            cells += f'<td class="num">{_opt_score(base)}</td>'
            if score is not None and base is not None:
                delta = score - base
                shown = round(delta, 3)
                cls = "up" if shown > 0 else "down" if shown < 0 else ""
                cells += f'<td class="num {cls}">{_e(_signed(delta))}</td>'
            else:
                cells += '<td class="num">n/a</td>'
        cells += f"<td>{_bar(name, score, base)}</td>"
        rows.append(f"<tr>{cells}</tr>")
    if not rows:
        body = "<p>No scoring function results: no scenario's latest run has a score.</p>"
    else:
        caption = "Mean score of each scoring function over the scored scenarios' latest runs"
        body = (
            f'<table id="functions"><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    note = ""
    if summary.scoring_function_mean_scores_truncated:
        note += (
            '<p class="note">More scoring functions ran than the summary keeps: the most used are shown.</p>'
        )
    if baseline is not None:
        link = f' (<a href="{_e(baseline_url)}">dashboard</a>)' if baseline_url else ""
        base_line = f"Baseline: benchmark run <code>{_e(baseline.benchmark_run_id)}</code>{link}"
        if baseline.benchmark_score is not None:
            base_line += f", Runloop run score {_e(_score(baseline.benchmark_score))}"
        if not baseline.exact:
            base_line += "; it was not done, so its scoring functions could not be compared"
        note += f'<p class="note" id="baseline">{base_line}.</p>'
    return (
        '<section aria-labelledby="h-functions"><h2 id="h-functions">Score per scoring function</h2>'
        f"{body}{note}</section>"
    )


def _bar(name: str, score: float | None, base: float | None) -> str:
    label = f"{name}: {_opt_score(score)}" + (f", baseline {_opt_score(base)}" if base is not None else "")
    width = 0.0 if score is None else max(0.0, min(score, 1.0)) * _BAR_W
    svg = (
        f'<svg width="{_BAR_W}" height="{_BAR_H}" viewBox="0 0 {_BAR_W} {_BAR_H}" role="img" '
        f'aria-label="{_e(label)}"><title>{_e(label)}</title>'
        f'<rect class="track" x="0" y="0" width="{_BAR_W}" height="{_BAR_H}"/>'
        f'<rect class="bar" x="0" y="0" width="{width:.1f}" height="{_BAR_H}"/>'
    )
    if base is not None:
        x = max(0.0, min(base, 1.0)) * _BAR_W
        svg += f'<line class="base" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{_BAR_H}"/>'
    return svg + "</svg>"


def _distribution(histogram: ScoreHistogram, summary: BenchmarkRunSummary) -> str:
    counts = histogram.counts
    total = histogram.total
    title = (
        f"Distribution of the scores of {_plural(total, 'scenario')} (latest run of each), in bins of 0.05"
    )
    tallest = max(counts) or 1
    slot = _CHART_W / HISTOGRAM_BINS
    plot_h = _CHART_H - _AXIS_H
    bar_room = plot_h - _LABEL_H
    bars = []
    for index, count in enumerate(counts):
        height = bar_room * count / tallest
        x = index * slot
        tip = f"{_bin_label(index)}: {_plural(count, 'scenario')}"
        bars.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{plot_h - height:.1f}" width="{slot - 2:.1f}" '
            f'height="{height:.1f}"><title>{_e(tip)}</title></rect>'
        )
        if count:  # the count over its bar: readable without hovering
            bars.append(
                f'<text x="{x + slot / 2:.1f}" y="{plot_h - height - 4:.1f}" font-size="11" '
                f'text-anchor="middle" fill="#1b1f24" aria-hidden="true">{count}</text>'
            )
    ticks = "".join(
        f'<text x="{i * slot * 4:.1f}" y="{_CHART_H - 6}" font-size="12" '
        f'text-anchor="{"start" if i == 0 else "end" if i == 5 else "middle"}" fill="#4a5563">'
        f"{i * 0.2:.1f}</text>"
        for i in range(6)
    )
    svg = (
        f'<svg id="distribution" width="{_CHART_W}" height="{_CHART_H}" '
        f'viewBox="0 0 {_CHART_W} {_CHART_H}" role="img" '
        f'aria-labelledby="distribution-title"><title id="distribution-title">{_e(title)}</title>'
        f"{''.join(bars)}"
        f'<line x1="0" y1="{plot_h}" x2="{_CHART_W}" y2="{plot_h}" stroke="#8a94a3"/>{ticks}</svg>'
    )
    rows = "".join(
        f'<tr><th scope="row">{_e(_bin_label(index))}</th><td class="num">{count}</td></tr>'
        for index, count in enumerate(counts)
    )
    table = (
        "<details><summary>The same counts as a table</summary>"
        '<table id="distribution-table"><thead><tr><th scope="col">score</th>'
        f'<th scope="col" class="num">scenarios</th></tr></thead><tbody>{rows}</tbody></table></details>'
    )
    unscored = max((summary.started_scenarios or 0) - total, 0)
    note = (
        f'<p class="note">{_e(_plural(unscored, "started scenario"))} without a score (failed, timed out, '
        f"canceled or not scored yet) {'is' if unscored == 1 else 'are'} not in the chart.</p>"
        if unscored
        else ""
    )
    return (
        '<section aria-labelledby="h-distribution"><h2 id="h-distribution">Scenario scores</h2>'
        f"{svg}{note}{table}</section>"
    )


def _failures(summary: BenchmarkRunSummary, dashboard_url: str) -> str:
    count = summary.failed_scenario_count or 0
    heading = '<h2 id="h-failures">Failed scenario runs</h2>'
    if not count:
        return (
            f'<section aria-labelledby="h-failures">{heading}<p id="no-failures">No scenario failed, '
            "timed out or was canceled (by its latest run).</p></section>"
        )
    names = summary.failed_scenario_run_names
    rows = "".join(
        f"<tr><td>{_e(names.get(run_id, '(no name)'))}</td><td><code>{_e(run_id)}</code></td>"
        f'<td><a href="{_e(dashboard_url)}" title="{_e(f"the benchmark run holding {run_id}")}">'
        "benchmark run page</a></td></tr>"
        for run_id in summary.failed_scenario_run_ids
    )
    listed = len(summary.failed_scenario_run_ids)
    intro = (
        f"{_plural(count, 'scenario')} failed, timed out or {'was' if count == 1 else 'were'} canceled "
        "(by its latest run; an earlier attempt that failed before a retry succeeded is not a failure)."
    )
    more = (
        f'<p class="note">{count - listed} more are in the data file (the summary lists the first '
        f"{listed}).</p>"
        if count > listed
        else ""
    )
    return (
        f'<section aria-labelledby="h-failures">{heading}<p>{_e(intro)}</p>'
        '<table id="failures"><thead><tr><th scope="col">name</th><th scope="col">scenario run</th>'
        f'<th scope="col">dashboard</th></tr></thead><tbody>{rows}</tbody></table>{more}</section>'
    )


# --- formatting ---------------------------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _score(value: float) -> str:
    return f"{value:.3f}"


def _opt_score(value: float | None) -> str:
    return "n/a" if value is None else _score(value)


def _signed(delta: float) -> str:
    return f"{delta:+.3f}" if round(delta, 3) != 0 else "±0.000"


def _delta_words(delta: float, against: str) -> str:
    if round(delta, 3) == 0:
        return f"the same as the {against}"
    return f"{_signed(delta)} against the {against} ({'higher' if delta > 0 else 'lower'})"


def _bin_label(index: int) -> str:
    low, high = ScoreHistogram.bounds(index)
    return f"{low:.2f} to {high:.2f}" + (" (inclusive)" if index == HISTOGRAM_BINS - 1 else "")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
