"""``make ui-check``: the provider's pages of Airflow's UI, checked in a real (headless) Chromium.

Starts the Runloop emulator and a real Airflow deployment (``tests/support/airflow_stack.py``: api-server,
scheduler, dag-processor and triggerer, all on 127.0.0.1, in ``.ui-check/airflow-home``), then drives
Debian's Chromium with Playwright (``executable_path``: Playwright's own browser download is never used)
through four pages, writing a screenshot of each into ``.ui-check/``:

1. ``connection-form.png``: the *Add Connection* form for a ``runloop`` connection shows the labels and
   placeholders of ``get_provider_info.py``, marks the API key required and hides login, schema and
   port; ``0`` (or ``-3``) typed as a timeout becomes ``1`` when the field loses focus, in the field, in
   the extra's JSON and in the connection *Save* stores (which it does without an API key: Airflow's
   form cannot require one); ``2.5`` typed as *Max retries* stays ``2.5`` (a known gap of the form).
2. ``connection-test-button.png``: Airflow 3.3's *Test Connection* button fails for a stored connection
   (it posts ``port: 0`` and the masked password, and the API answers 400), as ``docs/connection.md``
   says; ``POST /api/v2/connections/test`` and ``airflow connections test``, which the page shows
   instead, both succeed against the emulator.
3. ``task-extra-link.png``: while ``example_runloop_wait_and_export``'s deferrable sensor waits in the
   triggerer on an emulated run that a held scenario keeps open, the task instance's *Details* tab shows
   the *Runloop benchmark run* extra link, pointing at the dashboard URL of that run.
4. ``report.png``: the HTML report ``RunloopBenchmarkResultsOperator(html_report=True)`` writes beside
   its data file, exported (in a subprocess with the deployment's environment) from a finished emulated
   run with a named failure and a retried scenario, opened from ``file://``: it shows Runloop's run score
   as the API gives it, the failure's name, and fetches nothing (no request but the file itself).

Every check is reported (``ok`` / ``FAILED``); the exit status is 1 if any failed. The Chromium binary is
``$RUNLOOP_UI_CHECK_CHROMIUM`` or the first of ``chromium-headless-shell`` and ``chromium`` on ``PATH``
(``make ui-check`` installs ``chromium-headless-shell`` with apt-get when it is missing and it runs as root).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Locator, Page, ViewportSize, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / ".ui-check"
# The end-to-end suite's Airflow deployment, reused as it is.
sys.path.insert(0, str(REPO / "tests"))
from support.airflow_stack import ADMIN_USER, AirflowStack, poll_until  # noqa: E402

from airflow_provider_runloop.testing import RealClock, RunloopEmulator  # noqa: E402

CHROMIUM_ENV = "RUNLOOP_UI_CHECK_CHROMIUM"
CHROMIUM_NAMES = ("chromium-headless-shell", "chromium")
APT_COMMAND = "apt-get install -y chromium-headless-shell"
DAG_ID = "example_runloop_wait_and_export"
TASK_ID = "wait_for_run"
CONN_ID = "runloop_default"
FORM_CONN_ID = "runloop_ui_check"
LINK_NAME = "Runloop benchmark run"
TRIGGER_CLASS = "airflow_provider_runloop.triggers.runloop.RunloopBenchmarkRunTrigger"
# A short run that finishes on its own, with a named failure and a retried scenario, for the HTML report.
REPORT_FAILURE_NAME = "parser-regression"
REPORT_RUN = {
    "seed": 5,
    "scenario_count": 12,
    "scoring_functions": ["tests_pass", {"name": "lint_clean", "weight": 0.25}],
    "outcomes": {"completed": 1.0},
    "scenarios": [{"name": REPORT_FAILURE_NAME, "outcome": "failed"}, {"attempts": ["failed", "completed"]}],
}
# Run in a subprocess with the deployment's environment (its AIRFLOW_HOME), as a worker would run it.
EXPORT_PROGRAM = """
import json, sys
from airflow_provider_runloop.operators.runloop import RunloopBenchmarkResultsOperator
class TaskInstance:
    dag_id, task_id, run_id, map_index = "ui_check", "report", "ui_check", -1
    def xcom_push(self, key, value):
        pass
operator = RunloopBenchmarkResultsOperator(
    task_id="report", benchmark_run_id=sys.argv[1], destination=sys.argv[2], html_report=True,
    failure_settle_seconds=0,
)
print(json.dumps(operator.execute({"ti": TaskInstance()})))
"""
# Emulated seconds per real second, as in the end-to-end suite.
EMULATOR_SPEED = 20.0
QUICK = {"start_interval": 0.5, "duration": [2, 6], "scoring": 1, "complete": 0.5}
# One scenario stays `scored` (the run never completes), so the sensor stays deferred for the whole check.
HELD_OPEN = {"seed": 4, "scenario_count": 3, "timing": QUICK, "scenarios": [{"outcome": "stays_scored"}]}
REPORT_RUN["timing"] = QUICK
VIEWPORT: ViewportSize = {"width": 1400, "height": 1000}
# Playwright's waits (ms): the API server shares two cores with three other Airflow components.
UI_TIMEOUT_MS = 60_000
# Bounded waits on Airflow's state: 0.5 s apart, so 360 tries is three minutes at most.
STATE_ATTEMPTS = 360

# What get_provider_info.py declares, as the form must show it (written out, not imported: the check is
# that the browser shows these words).
STANDARD_LABELS = {"host": "Base URL", "password": "API key (required)"}
PLACEHOLDERS = {"host": "https://api.runloop.ai", "password": "Runloop API key"}
HIDDEN_LABELS = ("Login", "Schema", "Port")
EXTRA_LABELS = (
    "Read timeout (seconds)",
    "Connect timeout (seconds)",
    "Max retries",
    "Verify TLS certificates",
)
TIMEOUT_FIELDS = ("timeout", "connect_timeout")
TIMEOUT_FLOOR = 1


# --- reporting ----------------------------------------------------------------------------------------


@dataclass
class Report:
    """Named checks, each ``ok`` or ``FAILED`` with what was seen instead."""

    results: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, passed: bool, seen: object = "") -> bool:
        self.results.append((name, passed, "" if passed else f" (seen: {seen!r})"))
        print(f"  {'ok    ' if passed else 'FAILED'} {name}{self.results[-1][2]}", flush=True)
        return passed

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A group of checks; an exception in it (a Playwright time-out, a refused request) fails it."""
        print(f"{name}:", flush=True)
        started = time.monotonic()
        try:
            yield
        except Exception as exc:
            detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            self.check(f"{name} ran to the end", False, detail[:600])
        print(f"  ({time.monotonic() - started:.0f} s)", flush=True)

    @property
    def failed(self) -> list[str]:
        return [name for name, passed, _ in self.results if not passed]


# --- the deployment -----------------------------------------------------------------------------------


def find_chromium() -> str | None:
    """The Chromium binary to drive: ``$RUNLOOP_UI_CHECK_CHROMIUM``, else the first one on ``PATH``."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if Path(configured).is_file() else None
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def _rest(stack: AirflowStack) -> httpx.Client:
    # Longer than the stack's own 30 s: on two busy cores the single API worker can be slow to answer.
    return httpx.Client(
        base_url=f"{stack.api_url}/api/v2", headers={"Authorization": f"Bearer {stack.token}"}, timeout=90
    )


def _create_connection(api: httpx.Client, emulator: RunloopEmulator) -> None:
    body = {"connection_id": CONN_ID, "conn_type": "runloop", "host": emulator.base_url}
    response = api.post("/connections", json={**body, "password": emulator.api_key})
    response.raise_for_status()


def _trigger_wait(api: httpx.Client, benchmark_run_id: str) -> str:
    poll_until(
        f"{DAG_ID} to be parsed", lambda: api.get(f"/dags/{DAG_ID}").status_code == 200 or None, attempts=240
    )
    api.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
    response = api.post(
        f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {"benchmark_run_id": benchmark_run_id}}
    )
    response.raise_for_status()
    return str(response.json()["dag_run_id"])


def _task_state(api: httpx.Client, run_id: str) -> str | None:
    response = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}")
    response.raise_for_status()
    state = response.json()["state"]
    return str(state) if state is not None else None


# --- the browser --------------------------------------------------------------------------------------


def _sign_in(browser: Browser, stack: AirflowStack) -> Page:
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{stack.api_url}/")
    page.get_by_label("Username").fill(ADMIN_USER)
    page.get_by_label("Password").fill(stack.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{stack.api_url}/")
    return page


def _open_new_runloop_form(page: Page, stack: AirflowStack) -> Locator:
    page.goto(f"{stack.api_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox").fill("Runloop")
    page.get_by_role("option", name="Runloop", exact=True).click()
    dialog.get_by_text("Standard Fields", exact=True).wait_for()
    return dialog


def _extra_json(dialog: Locator) -> dict[str, Any]:
    """The extra as the form would save it: the text of its JSON editor (Monaco draws one line per div)."""
    editor = dialog.locator(".monaco-editor .view-lines").first
    editor.wait_for()
    text = editor.inner_text().replace("\u00a0", " ")
    value: dict[str, Any] = json.loads(text)
    return value


def _shows(element: Locator) -> bool:
    """Whether the element becomes visible within the UI time-out (a page may still be loading)."""
    try:
        element.wait_for(state="visible")
    except PlaywrightTimeoutError:
        return False
    return True


def _settle(element: Locator) -> None:
    """Wait until the element's finite animations (a toast sliding in) are over, for a screenshot."""
    element.evaluate(
        "el => Promise.all(el.getAnimations({subtree: true})"
        ".filter(a => a.effect?.getComputedTiming().iterations !== Infinity).map(a => a.finished))"
    )


def check_connection_form(report: Report, page: Page, stack: AirflowStack) -> None:
    dialog = _open_new_runloop_form(page, stack)
    dialog.locator("input[name=connection_id]").fill(FORM_CONN_ID)
    for name, label in STANDARD_LABELS.items():
        shown = _shows(dialog.get_by_text(label, exact=True))
        labels = dialog.locator("label").all_inner_texts()
        report.check(f"the {name} field is labelled {label!r}", shown, labels)
        seen = dialog.locator(f"input[name={name}]").get_attribute("placeholder")
        report.check(
            f"the {name} field's placeholder is {PLACEHOLDERS[name]!r}", seen == PLACEHOLDERS[name], seen
        )
    report.check(
        "the API key is an input of type password",
        dialog.locator("input[name=password]").get_attribute("type") == "password",
    )
    for label in HIDDEN_LABELS:
        report.check(f"the {label!r} field is hidden", dialog.get_by_text(label, exact=True).count() == 0)
    page.screenshot(path=OUT / "connection-form.png", full_page=True)

    dialog.get_by_text("Extra Fields", exact=True).click()
    for label in EXTRA_LABELS:
        report.check(f"the extra field {label!r} is shown", _shows(dialog.get_by_text(label, exact=True)))
    for name in TIMEOUT_FIELDS:
        box = dialog.locator(f"input[name=element_{name}]")
        for typed in ("0", "-3"):
            box.fill(typed)
            box.blur()
            seen = box.input_value()
            report.check(f"{name}: {typed} typed becomes {TIMEOUT_FLOOR}", seen == str(TIMEOUT_FLOOR), seen)
    # Airflow 3.3's form does not hold an integer field to whole numbers (docs/connection.md says so,
    # and the hook refuses 2.5 when it reads the connection): if this starts failing, it does now.
    retries = dialog.locator("input[name=element_max_retries]")
    retries.fill("2.5")
    retries.blur()
    report.check("max_retries: 2.5 typed stays 2.5 (a known gap of the form)", retries.input_value() == "2.5")
    retries.fill("3")
    retries.blur()
    dialog.get_by_text("Extra Fields JSON", exact=True).click()
    extra = _extra_json(dialog)
    report.check(
        f"the extra the form would save holds timeouts of {TIMEOUT_FLOOR} and 3 retries",
        all(extra.get(name) == TIMEOUT_FLOOR for name in TIMEOUT_FIELDS) and extra.get("max_retries") == 3,
        extra,
    )
    dialog.get_by_text("Extra Fields", exact=True).click()  # the fields back in view for the screenshot
    dialog.locator(f"input[name=element_{TIMEOUT_FIELDS[0]}]").wait_for()
    page.screenshot(path=OUT / "connection-form-timeouts.png", full_page=True)
    # Saved without an API key: nothing in Airflow's form can require one. What it stores is what the
    # fields showed, so the hook never sees the 0 typed above.
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="hidden")
    with _rest(stack) as api:
        stored = api.get(f"/connections/{FORM_CONN_ID}").json()
    saved = json.loads(stored.get("extra") or "{}")
    report.check("the form saves the connection without an API key", not stored.get("password"), stored)
    report.check(
        f"the saved extra has timeouts of {TIMEOUT_FLOOR}",
        all(saved.get(name) == TIMEOUT_FLOOR for name in TIMEOUT_FIELDS),
        saved,
    )


def check_test_button(report: Report, page: Page, stack: AirflowStack) -> None:
    page.goto(f"{stack.api_url}/connections")
    page.get_by_text(CONN_ID, exact=True).wait_for()
    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections/test")) as answer:
        row = page.get_by_role("row").filter(has=page.get_by_text(CONN_ID, exact=True))
        row.get_by_role("button", name="Test Connection").click()
    response = answer.value
    sent = json.loads(response.request.post_data or "{}")
    # Airflow 3.3.2's behaviour, which docs/connection.md describes: if these start failing, the button
    # was fixed upstream and the page should say so.
    # Never shown: the password the UI sent (the mask, unless the check is about to fail on it).
    shown = {key: value for key, value in sent.items() if key != "password"}
    report.check("the Test button posts port 0 for a connection without a port", sent.get("port") == 0, shown)
    report.check("the Test button posts the masked password", sent.get("password") == "***", "something else")
    detail = response.json().get("detail", "") if response.status == 400 else response.text()
    report.check(
        "the API refuses the button's request with 400",
        response.status == 400 and "differs from the stored connection" in str(detail),
        (response.status, detail),
    )
    toast = page.locator("[data-scope=toast][data-part=root]", has_text="Test Connection Failed").first
    toast.wait_for()
    _settle(toast)
    page.screenshot(path=OUT / "connection-test-button.png")


def check_test_alternatives(report: Report, stack: AirflowStack, emulator: RunloopEmulator) -> None:
    with _rest(stack) as api:
        rest = api.post("/connections/test", json={"connection_id": CONN_ID, "conn_type": "runloop"})
    expected = f"Connected to the Runloop API at {emulator.base_url}."
    report.check(
        "POST /api/v2/connections/test with the id succeeds",
        rest.status_code == 200 and rest.json() == {"status": True, "message": expected},
        (rest.status_code, rest.text),
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    cli = subprocess.run(
        [airflow, "connections", "test", CONN_ID],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report.check(
        "`airflow connections test runloop_default` succeeds",
        cli.returncode == 0 and "Connection success!" in cli.stdout,
        (cli.returncode, cli.stdout[-500:], cli.stderr[-500:]),
    )


def check_extra_link(
    report: Report,
    page: Page,
    stack: AirflowStack,
    emulator: RunloopEmulator,
    run_id: str,
    benchmark_run_id: str,
) -> None:
    with _rest(stack) as api:
        poll_until(
            "the sensor to defer",
            lambda: True if _task_state(api, run_id) == "deferred" else None,
            attempts=STATE_ATTEMPTS,
        )
    run = httpx.get(
        f"{emulator.base_url}/v1/benchmark_runs/{benchmark_run_id}", headers=emulator.auth_headers, timeout=30
    ).json()
    expected = f"{emulator.base_url}/benchmarks/custom/{run['benchmark_id']}/runs/{benchmark_run_id}"

    quoted = urllib.parse.quote(run_id, safe="")
    page.goto(f"{stack.api_url}/dags/{DAG_ID}/runs/{quoted}/tasks/{TASK_ID}/details")
    link = page.get_by_role("link", name=LINK_NAME, exact=True)
    link.wait_for()
    # The extra links can show before the task instance has loaded: wait for the task's own details.
    report.check(
        "the page shows the task as Deferred, waiting in our trigger",
        _shows(page.get_by_text("Deferred", exact=True).first)
        and _shows(page.get_by_role("cell", name=TRIGGER_CLASS, exact=True).first),
        page.locator("body").inner_text()[:300],
    )
    href = link.get_attribute("href")
    report.check(f"the {LINK_NAME!r} extra link points at the run's dashboard page", href == expected, href)
    page.screenshot(path=OUT / "task-extra-link.png")
    with _rest(stack) as api:
        report.check(
            "the sensor is still deferred after the screenshot", _task_state(api, run_id) == "deferred"
        )


def check_report(
    report: Report, browser: Browser, stack: AirflowStack, emulator: RunloopEmulator, benchmark_run_id: str
) -> None:
    def finished() -> dict[str, Any] | None:
        run: dict[str, Any] = httpx.get(
            f"{emulator.base_url}/v1/benchmark_runs/{benchmark_run_id}",
            headers=emulator.auth_headers,
            timeout=30,
        ).json()
        return run if run["state"] == "completed" else None

    run = poll_until("the report's run to complete", finished, attempts=STATE_ATTEMPTS)
    data = OUT / "report" / f"{benchmark_run_id}.jsonl"
    env = {**stack.env, "AIRFLOW_CONN_RUNLOOP_DEFAULT": emulator.airflow_conn_json}
    export = subprocess.run(
        [sys.executable, "-c", EXPORT_PROGRAM, benchmark_run_id, data.as_uri()],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    html_file = data.with_suffix(".html")
    report.check(
        "the export with html_report=True writes the data file and the report beside it",
        export.returncode == 0 and data.is_file() and html_file.is_file(),
        (export.returncode, export.stderr[-800:]),
    )
    summary = json.loads(export.stdout.strip().splitlines()[-1])["summary"]
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(UI_TIMEOUT_MS)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(html_file.as_uri())
    headline = page.locator("#runloop-score")
    expected = f"{run['score']:.3f}"
    seen = headline.inner_text()
    report.check(
        f"the headline reads 'Runloop run score' {expected}, the API's score of the run",
        _shows(headline)
        and "Runloop run score" in seen
        and headline.locator(".value").inner_text() == expected,
        seen,
    )
    failure = (
        page.get_by_role("table")
        .filter(has_text=REPORT_FAILURE_NAME)
        .get_by_role("cell", name=REPORT_FAILURE_NAME, exact=True)
    )
    report.check(
        f"the failed scenario run {REPORT_FAILURE_NAME!r} is named in the failures table", _shows(failure)
    )
    counts = page.get_by_text("1 retried attempt", exact=False).first
    report.check("the retried attempt is shown as such", _shows(counts), summary.get("retried_scenario_runs"))
    report.check("the report fetches nothing but itself", requested == [html_file.as_uri()], requested[:5])
    page.screenshot(path=OUT / "report.png", full_page=True)
    page.close()


# --- main ---------------------------------------------------------------------------------------------


def run_checks(chromium: str) -> Report:
    report = Report()
    emulator = RunloopEmulator(
        api_key=f"ui-check-{secrets.token_hex(8)}", clock=RealClock(speed=EMULATOR_SPEED)
    )
    stack = AirflowStack(
        home=OUT / "airflow-home",
        dags_folder=REPO / "example_dags",
        extra_env={"RUNLOOP_POLL_SECONDS": "1", "RUNLOOP_RESULTS_URL": (OUT / "results").as_uri()},
    )
    started = time.monotonic()
    with emulator, stack:
        up = time.monotonic() - started
        print(f"Airflow {stack.api_url} and the emulator {emulator.base_url} up in {up:.0f} s")
        with _rest(stack) as api:
            _create_connection(api, emulator)
            benchmark_run_id = emulator.start_scripted_run(script=HELD_OPEN)
            report_run_id = emulator.start_scripted_run(script=REPORT_RUN)
            run_id = _trigger_wait(api, benchmark_run_id)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium)
            print(f"Chromium {browser.version} ({chromium})")
            page = _sign_in(browser, stack)
            steps: list[tuple[str, Callable[[], None]]] = [
                ("connection form", lambda: check_connection_form(report, page, stack)),
                ("Test button", lambda: check_test_button(report, page, stack)),
                ("what works instead", lambda: check_test_alternatives(report, stack, emulator)),
                (
                    "deferred sensor's extra link",
                    lambda: check_extra_link(report, page, stack, emulator, run_id, benchmark_run_id),
                ),
                ("HTML report", lambda: check_report(report, browser, stack, emulator, report_run_id)),
            ]
            for name, step in steps:
                with report.step(name):
                    step()
            browser.close()
        print("Stopping Airflow and the emulator")
        if report.failed:
            print(f"Component logs: {stack.log_dir}")
    return report


def main() -> int:
    chromium = find_chromium()
    if chromium is None:
        configured = os.environ.get(CHROMIUM_ENV)
        where = f"${CHROMIUM_ENV} ({configured}) is no file" if configured else "none on PATH"
        print(f"No Chromium to drive: {where}. Install Debian's with:")
        print(f"  sudo {APT_COMMAND}")
        return 2
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    started = time.monotonic()
    report = run_checks(chromium)
    took = time.monotonic() - started
    shots = sorted(p.name for p in OUT.glob("*.png"))
    print(f"\nScreenshots in {OUT}: {', '.join(shots) or 'none'}")
    if report.failed:
        print(f"ui-check FAILED ({len(report.failed)} of {len(report.results)} checks) in {took:.0f} s")
        return 1
    print(f"ui-check passed: {len(report.results)} checks in {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
