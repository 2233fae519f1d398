"""``make demo`` end to end: the emulator, ``airflow dags test`` of the example DAG, the export, the summary.

What a newcomer checks against Runloop's dashboard: the headline score is the benchmark run's own
``score`` field, read here straight from the emulator (raw HTTP, not the provider's client) before the
demo stops it; the verdict line and the dashboard URL are logged once each.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.dag_files import load_script

demo = load_script("demo")

# The emulated clock at 8 times real time: the demo benchmark's ~35 emulated seconds take about 5 s.
SPEED = 8.0


def test_the_demo_headlines_runloops_own_score(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path)
    emulated: dict[str, Any] = {}
    close = demo.DemoRun.close

    def read_the_run_then_close(self: Any) -> None:
        # Before the demo stops its emulator: the benchmark run as Runloop (the emulator) has it.
        base_url, api_key = self.api
        ready = json.loads((tmp_path / "emulator.ready.json").read_text())
        response = httpx.get(
            f"{base_url}/v1/benchmark_runs/{ready['benchmark_run_id']}",
            headers={"Authorization": f"Bearer {api_key}"},
        )
        emulated.update(response.json())
        close(self)

    monkeypatch.setattr(demo.DemoRun, "close", read_the_run_then_close)

    assert demo.run(demo.DemoTarget(mode="emulator"), timeout=240, speed=SPEED) == 0
    out = capsys.readouterr().out

    assert emulated["state"] == "completed"
    assert isinstance(emulated["score"], float)
    headline = re.search(r"^  Runloop run score +(\d\.\d{3}) ", out, re.M)
    assert headline is not None, out
    assert headline[1] == f"{emulated['score']:.3f}"
    # The provider's own mean is shown second, named for what it is, and is another number here.
    mean = re.search(r"^  mean, scored scenarios +(\d\.\d{3}) ", out, re.M)
    assert mean is not None, out
    assert out.index(headline[0]) < out.index(mean[0])
    assert mean[1] != headline[1]

    # The verdict is logged once (by the sensor), with Runloop's score first; the export says what it
    # wrote and the score, not the verdict again.
    verdicts = [line for line in out.splitlines() if "scenarios finished" in line and ". Done" in line]
    assert len(verdicts) == 1, out
    assert f"Runloop run score {emulated['score']:.3f}; mean over " in verdicts[0]
    assert "plus 1 retried attempt" in verdicts[0]
    assert out.count("on the Runloop dashboard: http://127.0.0.1:") == 1
    wrote = r"Wrote 51 records to file://\S+ \(50 scenarios, plus 1 retried attempt; Runloop run score"
    assert re.search(wrote, out)
    # Failed scenario runs are named beside their ids.
    assert re.search(r"failed, timed out or canceled \(4\): scr_\w+ \(demo-scenario-\d+\)", out)
