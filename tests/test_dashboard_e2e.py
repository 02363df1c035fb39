"""The dashboard in a real browser (Playwright driving Debian's chromium) against the demo
plant: its simulators, agent and collector started from configs/demo on free ports.

The page loads and shows the site; live values change while the simulators run; a
line whose output the MES reports (through the API's write endpoint) shows as leading,
then, the same period reported again with little output, as above its baseline, without
a reload; the fleet view lists the site. Screenshots go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
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
STALE_LINE = "line-1"
"""A line whose energy meter and production counter come from simulators (not the MES)."""
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


@dataclass
class Demo:
    url: str
    logs: Path
    simulators: dict[str, tuple[list[str], Program]] = field(default_factory=dict)
    """by meter id: the simulator serving it (its arguments, to start it again)"""

    def stop_simulator(self, meter: str) -> None:
        self.simulators[meter][1].stop()

    def start_simulator(self, meter: str) -> None:
        args, old = self.simulators[meter]
        program = Program("energy-agent", args, self.logs / f"sim-again-{meter}.log")
        for m, (a, p) in self.simulators.items():
            if p is old:
                self.simulators[m] = (a, program)


@pytest.fixture
def demo(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Demo]:
    """The demo plant on free ports; yields the dashboard's URL and its simulators."""
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
    # Intensities and alarms every 2 s, not every minute: an alert building up shows soon.
    collector["accounting"]["intensity_interval"] = 2.0
    [site] = collector["accounting"]["sites"]
    for line in site["lines"]:
        if line["id"] == MES_LINE:
            line["output"] = {"mes": True}  # reported through the API in the test
    programs: list[Program] = []
    served: dict[int, tuple[list[str], Program]] = {}
    found = Demo(f"http://127.0.0.1:{api_port}", tmp_path)
    try:
        for demo_port, (profile, unit_ids) in by_port.items():
            args = ["simulate", "--profile", profile, "--port", str(ports[demo_port])]
            args += ["--unit-ids", ",".join(map(str, sorted(unit_ids)))]
            sim = Program("energy-agent", args, tmp_path / f"sim-{demo_port}.log")
            served[ports[demo_port]] = (args, sim)
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
            url = found.url
            wait_for(lambda: _answers(f"{url}/healthz"), TIMEOUT, "the collector's API")
            wait_for(
                lambda: len(httpx.get(f"{url}/api/v1/sites/{SITE}/latest").json()) >= 8,
                TIMEOUT,
                "a reading of every demo meter",
            )
            for meter in agent["meters"]:
                found.simulators[meter["id"]] = served[meter["modbus"]["port"]]
            yield found
            program.assert_running()
    finally:
        for p in programs:
            p.stop()
        for _, sim in [*served.values(), *found.simulators.values()]:
            sim.stop()  # a simulator started again, too


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


def test_dashboard_live_in_chromium(demo: Demo) -> None:
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
            page.goto(demo.url + "/")
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
            _report_output(demo.url, 10_000_000.0, period_end)
            expect(mes).to_have_attribute("data-status", "leading", timeout=10_000)
            expect(mes.locator(".badge")).to_have_text("Leading")

            # Each colour read off the MES line's own badge while it has that status: the
            # other demo lines' statuses move with the simulators, so none is sure to lead.
            # Live data redraws the cards: the badge is found and read in one turn of the
            # page's script (one found first may have left the page: no colour at all).
            def background(status: str) -> str:
                colour: str = page.evaluate(
                    "s => getComputedStyle(document.querySelector(s)).backgroundColor",
                    f".line-card[data-line='{MES_LINE}'] .badge.{status}",
                )
                return colour

            colours = {"leading": background("leading")}
            # The same period again, with little output: the line crosses its baseline.
            _report_output(demo.url, 2.0, period_end)
            expect(mes).to_have_attribute("data-status", "above_baseline", timeout=10_000)
            expect(mes.locator(".badge")).to_have_text("Above baseline")
            colours["above_baseline"] = background("above_baseline")
            assert all(colours.values()), colours
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
            phone.goto(demo.url + f"/#site={SITE}")
            expect(phone.locator(".line-card")).to_have_count(3, timeout=10_000)
            phone.wait_for_timeout(1500)
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the phone view scrolls sideways ({width} px)"
            phone.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []


def test_dashboard_never_shows_old_data_as_current(demo: Demo) -> None:
    """The page's states (loading, disconnected, live), a line card turning stale when its
    meter goes offline and back when it returns, the meter detail with a live voltage,
    and the page in Chinese; screenshots at desktop and phone size."""
    from playwright.sync_api import Route, expect, sync_playwright  # noqa: PLC0415

    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    card = f".line-card[data-line='{STALE_LINE}']"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # Loading: the fleet held back, so nothing is known yet; no axis, no "no alerts".
            held: list[Route] = []

            def hold(route: Route) -> None:  # a bound method: playwright cannot wrap it
                held.append(route)

            page.route("**/api/v1/fleet", hold)
            page.goto(demo.url + "/")
            expect(page.locator("#conn")).to_have_attribute("data-state", "loading")
            expect(page.locator("#conn-text")).to_have_text("loading…")
            expect(page.locator("#alerts")).to_have_text("Loading alerts…")
            expect(page.locator("#trend .chart-message")).to_have_text("Loading…")
            assert page.locator("#trend .grid").count() == 0, "an axis drawn before any data"
            page.screenshot(path=str(ARTIFACTS / "dashboard-loading.png"))
            for route in held:
                route.continue_()
            page.unroute("**/api/v1/fleet")
            expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=10_000)
            expect(page.locator(card)).to_have_attribute("data-fresh", "live", timeout=10_000)
            expect(page.locator("#alerts li").first).not_to_have_text("Loading alerts…")
            # line-1 is far above its baseline in the demo: the alert builds up, shown
            # with its minimum duration on the card and in the alerts, before it is raised.
            pending = page.locator(f"{card} .pending")
            expect(pending).to_contain_text("above baseline for", timeout=15_000)
            expect(pending).to_contain_text("alert at 15 min")
            expect(page.locator("#alerts li.pending", has_text=f"{STALE_LINE}:")).to_have_count(1)

            # The meter detail, from the health table: every quantity, with a live voltage.
            page.locator(f"#meters tr[data-meter='{STALE_LINE}']").click()
            dialog = page.locator("#meter-dialog")
            expect(dialog).to_be_visible()
            voltage = dialog.locator("tr[data-quantity='voltage_l1']")
            expect(voltage.locator(".unit")).to_have_text("V")
            expect(voltage.locator("td").first).to_have_text("Voltage L1")
            first = voltage.locator(".value").inner_text()
            assert float(first.replace(",", "")) > 100, first
            page.wait_for_function(
                "first => document.querySelector(\"#meter-dialog tr[data-quantity='voltage_l1']"
                ' .value").textContent !== first',
                arg=first,
                timeout=15_000,
            )
            expect(voltage.locator(".qspark path")).to_be_attached(timeout=10_000)
            assert dialog.locator("tr[data-quantity]").count() >= 5
            page.screenshot(path=str(ARTIFACTS / "dashboard-meter.png"))
            page.locator("#meter-close").click()
            expect(dialog).to_be_hidden()

            # The line's meter goes offline: its card is stale within a few intervals,
            # greyed, the meter named, and no benchmark class on its badge.
            demo.stop_simulator(STALE_LINE)
            stale_at = time.monotonic()
            expect(page.locator(card)).to_have_attribute("data-fresh", "stale", timeout=30_000)
            took = time.monotonic() - stale_at
            assert took < 25, f"stale after {took:.1f} s"
            expect(page.locator(card)).to_have_attribute("data-status", "no_current_data")
            expect(page.locator(f"{card} .badge")).to_have_text("No current data")
            note = page.locator(f"{card} .stale-note")
            expect(note).to_contain_text(STALE_LINE)
            expect(note).to_contain_text("ago")
            # The meter named in the note opens its detail too.
            note.locator(f".meter-link[data-meter='{STALE_LINE}']").click()
            expect(dialog).to_be_visible()
            expect(page.locator("#meter-state")).not_to_have_text("online")
            page.locator("#meter-close").click()
            page.screenshot(path=str(ARTIFACTS / "dashboard-stale.png"), full_page=True)

            # Back: a class again, within a few intervals.
            demo.start_simulator(STALE_LINE)
            expect(page.locator(card)).to_have_attribute("data-fresh", "live", timeout=40_000)
            expect(page.locator(f"{card} .badge")).not_to_have_text("No current data")

            # Disconnected: the stream refused, the page says so and greys what it shows.
            page.route("**/api/v1/stream", lambda route: route.abort())
            page.reload()
            expect(page.locator("#conn")).to_have_attribute("data-state", "down", timeout=10_000)
            expect(page.locator("#banner")).to_be_visible()
            expect(page.locator("#banner")).to_contain_text("Disconnected")
            page.screenshot(path=str(ARTIFACTS / "dashboard-disconnected.png"))
            page.unroute("**/api/v1/stream")
            expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=20_000)
            expect(page.locator("#banner")).to_be_hidden()
            context.close()

            # Chinese, from the browser's language; the switch back to English.
            zh = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
            page = zh.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(demo.url + "/")
            expect(page.locator("#lang-select")).to_have_value("zh-CN")
            expect(page.locator(".lines-panel h2")).to_have_text("生产线 — 单位产品综合能耗")
            expect(page.locator(".kpi-label").nth(2)).to_have_text("今日综合能耗")
            expect(page.locator(".legend").first).to_contain_text("标杆水平")
            expect(page.locator(".legend").first).to_contain_text("基准水平")
            expect(page.locator(".kpi-sub").nth(2)).to_contain_text("吨标准煤")
            expect(page.locator(card)).to_have_attribute("data-fresh", "live", timeout=10_000)
            expect(page.locator(f"{card} .gauge text").first).to_contain_text("标杆水平")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "dashboard-zh.png"), full_page=True)
            page.select_option("#lang-select", "en")
            expect(page.locator(".lines-panel h2")).to_have_text(
                "Production lines — energy intensity"
            )
            zh.close()

            # A phone: the intensities first, tables reflowed, nothing scrolls sideways.
            phone = browser.new_page(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, locale="zh-CN"
            )
            phone.on("pageerror", lambda exc: errors.append(str(exc)))
            phone.goto(demo.url + f"/#site={SITE}")
            expect(phone.locator(".line-card")).to_have_count(3, timeout=10_000)
            lines_top = phone.locator(".lines-panel").bounding_box()
            kpis_top = phone.locator(".kpis").bounding_box()
            assert lines_top and kpis_top and lines_top["y"] < kpis_top["y"]
            row = phone.locator("#meters tbody tr").first
            # The rows come with the first data and take their labels once the language
            # is in: wait for that, as a reader does, then read the CSS. Live data rebuilds
            # the rows, so the cell is found and read in one turn of the page's script (a
            # cell found first and read later may have left the page: no style at all).
            expect(row.locator("td").nth(1)).to_have_attribute("data-label", "状态")
            label = phone.evaluate(
                "getComputedStyle(document.querySelector('#meters tbody tr td:nth-child(2)'),"
                " '::before').content"
            )
            assert label == '"状态"', label
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the phone view scrolls sideways ({width} px)"
            phone.screenshot(path=str(ARTIFACTS / "dashboard-phone-zh.png"), full_page=True)
            phone.locator(f"#meters tr[data-meter='{STALE_LINE}']").click()
            expect(phone.locator("#meter-dialog tr[data-quantity='voltage_l1']")).to_be_visible()
            phone.screenshot(path=str(ARTIFACTS / "dashboard-phone-meter.png"))
        finally:
            browser.close()
    assert errors == []
