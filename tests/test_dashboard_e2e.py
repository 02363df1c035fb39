"""The dashboard in a real browser (Playwright driving Debian's chromium) against the demo
plant: its simulators, agent and collector started from configs/demo on free ports.

The page loads and shows the site; live values change while the simulators run; a
line whose output the MES reports (through the API's write endpoint) shows as leading,
then, the same period reported again with little output, as above its baseline, without
a reload; the fleet view lists the site. Screenshots go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from processes import Program, port_open, running, wait_for, write_yaml
from servers import Mosquitto, free_port

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "configs" / "demo"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SITE = "demo-plant"
MES_LINE = "line-3"
TIMEOUT = 30.0


def _chromium() -> str:
    found = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if found is None:
        pytest.fail(
            "chromium is not installed: apt-get install chromium (`make test` does); "
            "the dashboard test drives the Debian browser and is never skipped",
            pytrace=False,
        )
    return found


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEMO / name).read_text())
    return data


@pytest.fixture
def demo(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[str]:
    """The demo plant on free ports; yields the dashboard's URL."""
    agent = _load("agent.yaml")
    collector = _load("collector.yaml")
    # One simulator per demo port, serving the unit ids its meters use.
    by_port: dict[int, tuple[str, list[int]]] = {}
    units: dict[int, list[int]] = defaultdict(list)
    for meter in agent["meters"]:
        port = meter["modbus"]["port"]
        by_port[port] = (meter["profile"], units[port])
        units[port].append(meter["modbus"]["unit_id"])
    ports = {port: free_port() for port in by_port}
    for meter in agent["meters"]:
        meter["modbus"]["port"] = ports[meter["modbus"]["port"]]
    agent["mqtt"]["url"] = mosquitto.url
    agent["state_dir"] = str(tmp_path / "agent")
    api_port = free_port()
    collector["mqtt"] = {"url": mosquitto.url, "client_id": "dashboard-e2e"}
    collector["data_dir"] = str(tmp_path / "collector")
    collector["api"] = {"listen": f"127.0.0.1:{api_port}", "summary_interval": 1.0}
    [site] = collector["accounting"]["sites"]
    for line in site["lines"]:
        if line["id"] == MES_LINE:
            line["output"] = {"mes": True}  # reported through the API in the test
    programs: list[Program] = []
    try:
        for demo_port, (profile, unit_ids) in by_port.items():
            args = ["simulate", "--profile", profile, "--port", str(ports[demo_port])]
            args += ["--unit-ids", ",".join(map(str, sorted(unit_ids)))]
            programs.append(Program("energy-agent", args, tmp_path / f"sim-{demo_port}.log"))
        for port in ports.values():
            wait_for(lambda port=port: port_open(port), TIMEOUT, f"simulator on {port}")  # type: ignore[misc]
        agent_yaml = write_yaml(tmp_path / "agent.yaml", agent)
        collector_yaml = write_yaml(tmp_path / "collector.yaml", collector)
        programs.append(
            Program("energy-agent", ["run", "--config", str(agent_yaml)], tmp_path / "agent.log")
        )
        with running(
            "energy-collector",
            ["run", "--config", str(collector_yaml)],
            tmp_path / "collector.log",
        ) as program:
            url = f"http://127.0.0.1:{api_port}"
            wait_for(lambda: _answers(f"{url}/healthz"), TIMEOUT, "the collector's API")
            wait_for(
                lambda: len(httpx.get(f"{url}/api/v1/sites/{SITE}/latest").json()) >= 8,
                TIMEOUT,
                "a reading of every demo meter",
            )
            yield url
            program.assert_running()
    finally:
        for p in programs:
            p.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _report_output(url: str, quantity: float, now: datetime) -> None:
    """Output of the MES line over the 5 minutes before `now`; the same `now` replaces."""
    body = {
        "kind": "output",
        "site": SITE,
        "line": MES_LINE,
        "start": (now - timedelta(minutes=5)).isoformat(),
        "end": now.isoformat(),
        "quantity": quantity,
        "unit": "pieces",
    }
    answer = httpx.post(f"{url}/api/v1/sites/{SITE}/production", json=body)
    assert answer.status_code == 202, answer.text


def test_dashboard_live_in_chromium(demo: str) -> None:
    from playwright.sync_api import expect, sync_playwright  # noqa: PLC0415

    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(demo + "/")
            expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=10_000)
            expect(page.locator("#site-select")).to_have_value(SITE)
            cards = page.locator(".line-card")
            expect(cards).to_have_count(3, timeout=10_000)
            expect(page.locator("#meters tbody tr")).to_have_count(8)
            expect(page.locator("#meter-count")).to_have_text("8 / 8 online", timeout=10_000)

            # Live: the incomer's power on the page changes as the simulator's does.
            power = page.locator("#meters tr[data-meter='incomer'] .power")
            expect(power).not_to_have_text("\u2013")
            first = power.inner_text()
            page.wait_for_function(
                "first => document.querySelector(\"#meters tr[data-meter='incomer'] .power\")"
                ".textContent !== first",
                arg=first,
                timeout=10_000,
            )
            kpi = page.locator("#kpi-power").inner_text()
            assert "kW" in kpi, kpi
            freshness = page.locator("#kpi-age").inner_text()
            assert freshness.endswith(" s") and float(freshness.split()[0]) < 5, freshness

            # Each class drawn in its own colour; the MES line waits for its output.
            mes = page.locator(f".line-card[data-line='{MES_LINE}']")
            expect(mes).to_have_attribute("data-status", "insufficient_output", timeout=10_000)
            page.wait_for_timeout(3000)  # some energy on the line before its output counts
            period_end = datetime.now(UTC)
            _report_output(demo, 10_000_000.0, period_end)
            expect(mes).to_have_attribute("data-status", "leading", timeout=10_000)
            expect(mes.locator(".badge")).to_have_text("Leading")
            # Each colour read off the MES line's own badge while it has that status: the
            # other demo lines' statuses move with the simulators, so none is sure to lead.
            background = "e => getComputedStyle(e).backgroundColor"
            colours = {"leading": mes.locator(".badge.leading").evaluate(background)}
            # The same period again, with little output: the line crosses its baseline.
            _report_output(demo, 2.0, period_end)
            expect(mes).to_have_attribute("data-status", "above_baseline", timeout=10_000)
            expect(mes.locator(".badge")).to_have_text("Above baseline")
            colours["above_baseline"] = mes.locator(".badge.above_baseline").evaluate(background)
            assert colours["leading"] != colours["above_baseline"], colours
            expect(page.locator("#trend path").first).to_be_attached()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            page.locator("#tab-fleet").click()
            row = page.locator(f"#fleet tr[data-site='{SITE}']")
            expect(row).to_be_visible(timeout=10_000)
            expect(row.locator(".state")).to_have_text("Above baseline")
            page.screenshot(path=str(ARTIFACTS / "dashboard-fleet.png"), full_page=True)

            phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
            phone.goto(demo + f"/#site={SITE}")
            expect(phone.locator(".line-card")).to_have_count(3, timeout=10_000)
            phone.wait_for_timeout(1500)
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the phone view scrolls sideways ({width} px)"
            phone.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
