"""One month with every anomaly at once, computed by hand, asserted to 0.1 %.

November 2026 in Asia/Shanghai: 30 days, 43,200 minutes, from 2026-10-31T16:00Z. Minute
n of the month is month start + n minutes; every meter reads once a minute.

**Clinker line** (site `cem`, line `clinker`), two boundary electricity meters and a scale:

- `kiln`: 12,000 kW = 200 kWh a minute; a 7-digit register (modulus 10,000,000), max_rate
  20,000 kW (333.3 kWh a minute). It starts at 9,500,050 and
  - wraps on 2 Nov 17:40 (n = 2,500: 9,500,050 + 500,000 = 10,000,050 shows 50): a rollover;
  - draws 14,000 kW from 10:30 to 10:45 on 3 Nov (n = 3,510..3,525, a peak hour): +2,000 kW
    x 0.25 h = +500 kWh; that hour's readings (n = 3,481..3,540) arrive after the month;
  - misses its readings from 02:00 to 05:00 on 8 Nov (n = 10,201..10,379, a bus fault):
    180 minutes x 200 = 36,000 kWh spread over the gap;
  - is swapped at 12:00:30 on 15 Nov (between n = 20,880 and 20,881), recorded in the plant
    model: the old meter's final 9,500,050 + 200 x 20,880 + 500 + 100 = 13,676,650, shown
    3,676,650; the new one fitted reading 100, reading 200 at n = 20,881;
  - reads 0 at 08:00 on 20 Nov (n = 27,840), once: the reading is not used;
  - jumps by 50,000 at 14:00 on 25 Nov (n = 35,400) and stays: that minute's rise of
    50,200 is excluded but for 200 estimated from the rates either side.
  Energy: 43,200 x 200 + 500 = 8,640,500 kWh.
- `mill`: 3,000 kW = 50 kWh a minute, counter 100,000 + 50 n; 1 Nov (n = 0..1,440) comes
  from a CSV file imported after live data from 2 Nov on was accounted.
  Energy: 43,200 x 50 = 2,160,000 kWh.
- `scale`: clinker, 150 t/h = 2.5 t a minute: 108,000 t.

Site electricity 8,640,500 + 2,160,000 = 10,800,500 kWh;
kgce 10,800,500 x 0.1229 = 1,327,381.45; CO2 10,800,500 x 0.5306 = 5,730,745.3 kg;
intensity 1,327,381.45 / 108,000 = 12.2906 kgce/t.
Maximum demand: kiln 14,000 kW (the 15 minutes from 10:30 on 3 Nov), mill 3,000 kW.
TOU (peak 08-12 and 17-21, 8 h a day, at 1.0 CNY/kWh; valley the other 16 h at 0.5):
peak 15,000 kW x 8 h x 30 + 500 = 3,600,500 kWh, valley 15,000 x 16 x 30 = 7,200,000 kWh;
cost 3,600,500 + 3,600,000 = 7,200,500 CNY, per t 7,200,500 / 108,000 = 66.671 CNY.
Data quality of the kiln: spread over a gap (measured over more than a minute, split pro
rata) are the 3-hour gap's 36,000 kWh and the 400 of the two minutes around the zero read
(07:59 to 08:01, the reading between not used); estimated, the jump's 200. Estimated share
(36,400 + 200) / 8,640,500 = 0.42359 %; measured minutes 43,200 - 180 - 2 - 1 = 43,017
(99.576 %). The site's, in kgce: 36,600 x 0.1229 = 4,498.14 of 1,327,381.45 = 0.33887 %.
Findings (the report's counters list): the swap bridged (12:00-12:01 on 15 Nov, 100 + 100 =
200 counted), the zero read not used, the jump (50,000 excluded, 200 estimated). The
rollover and the late hour are no findings: they are accounted as what they are.
Late: the hour's 3 x 60 readings and the mill's 1,440 imported ones (its 1,441st, at 2 Nov
00:00, is the live one again) came after later ones: 1,620, in 4 corrections (kiln, mill
and scale for the hour; the mill for the day).

**Mixed site** (`mix`), 10 Nov (n = 12,960..14,400), boundary meters:
- `incomer` 1,200 kW = 20 kWh a minute: 28,800 kWh, 3,539.52 kgce, 15,281.28 kgCO2;
- `gas-main` 600 m3/h = 10 m3 a minute, modulus 100,000, max_rate 1,000 m3/h, from 99,005:
  wraps at 01:40 (99,005 + 1,000 shows 5): 14,400 m3; 14,400 x 1.2143 = 17,485.92 kgce;
  CO2 14,400 x 2.16 kg/m3 (natural gas, fuel table) = 31,104 kg;
- `steam` 6 t/h = 0.1 t a minute: 144 t; 144 x 108.6 = 15,638.4 kgce; 144 x 290 = 41,760 kg.
Total 36,663.84 kgce, 88,145.28 kgCO2.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from collector.accounting.engine import Accounting
from collector.importer import Chunk, Row, read
from collector.plant import AccountingConfig
from collector.reports.build import build
from collector.validate import Window
from greengauge.contract import MeterReading, Quantity, ReadingBatch

START = datetime(2026, 10, 31, 16, tzinfo=UTC)  # 1 Nov 00:00 in Shanghai
AFTER = datetime(2026, 12, 5, tzinfo=UTC)
MONTH = 43_200
E, MASS, VOLUME = Quantity.ENERGY_ACTIVE_IMPORT, Quantity.MASS, Quantity.VOLUME
REL = 1e-3  # 0.1 %
PEAK = (8, 9, 10, 11, 17, 18, 19, 20)

ROLLOVER = 2_500
LATE = range(3_481, 3_541)
SURGE = range(3_510, 3_525)
GAP = range(10_201, 10_380)
SWAP_AFTER = 20_880  # swapped half a minute after this reading
ZERO = 27_840
JUMP = 35_400
MIX_DAY = range(12_960, 14_401)


def at(n: int) -> datetime:
    return START + timedelta(minutes=n)


def kiln_energy(n: int) -> float:
    """kWh the kiln used from month start to minute n."""
    return 200.0 * n + 2000.0 / 60 * min(max(n - SURGE.start, 0), len(SURGE))


OLD_FINAL = (9_500_050 + kiln_energy(SWAP_AFTER) + 100) % 10_000_000  # 3,676,650


def kiln_shows(n: int) -> float:
    if n == ZERO:
        return 0.0
    if n <= SWAP_AFTER:
        return (9_500_050 + kiln_energy(n)) % 10_000_000
    new = 100.0 + kiln_energy(n) - (kiln_energy(SWAP_AFTER) + 100)
    return new + (50_000.0 if n >= JUMP else 0.0)


def plant() -> AccountingConfig:
    swap = {
        "at": (at(SWAP_AFTER) + timedelta(seconds=30)).isoformat(),
        "old_final": OLD_FINAL,
        "new_initial": 100.0,
        "by": "shift lead",
    }
    tou = {
        "source": "test calendar",
        "seasons": {
            "all_year": {
                "months": list(range(1, 13)),
                "hours": {"peak": list(PEAK), "valley": [h for h in range(24) if h not in PEAK]},
                "prices": {"peak": 1.0, "valley": 0.5},
            }
        },
    }
    grid = {"series": "national_average", "year": 2023}
    cem: dict[str, Any] = {
        "id": "cem",
        "grid_factor": grid,
        "tou": tou,
        "meters": [
            {
                "id": "kiln",
                "carrier": "electricity",
                "role": "boundary",
                "line": "clinker",
                "counter": {"modulus": 10_000_000, "max_rate": 20_000},
                "swaps": [swap],
            },
            {"id": "mill", "carrier": "electricity", "role": "boundary", "line": "clinker"},
        ],
        "lines": [
            {
                "id": "clinker",
                "product": "clinker",
                "output_unit": "t",
                "output": {"meter": "scale", "quantity": "mass"},
                "benchmark": {
                    "custom": {
                        "name": "test clinker",
                        "unit": "kgce/t",
                        "benchmark": 10.0,
                        "baseline": 13.0,
                        "source": "test values",
                    }
                },
            }
        ],
    }
    mix: dict[str, Any] = {
        "id": "mix",
        "grid_factor": grid,
        "co2_factors": {"steam": {"value": 290, "unit": "kgCO2/t", "source": "supplier"}},
        "meters": [
            {"id": "incomer", "carrier": "electricity", "role": "boundary"},
            {
                "id": "gas-main",
                "carrier": "natural_gas",
                "role": "boundary",
                "counter": {"modulus": 100_000, "max_rate": 1_000},
            },
            {"id": "steam", "carrier": "steam", "role": "boundary"},
        ],
    }
    return AccountingConfig.model_validate(
        {
            "settle": 0,
            "conversion": {
                "coefficients": {
                    "natural_gas": {"value": 1.2143, "unit": "kgce/m3", "source": "GB/T 2589"},
                    "steam": {"value": 108.6, "unit": "kgce/t", "source": "supplier"},
                }
            },
            "sites": [cem, mix],
        }
    )


def cem_hour(first: int, minutes: Sequence[int]) -> ReadingBatch:
    readings = []
    for n in minutes:
        values: dict[str, dict[Quantity, float]] = {"scale": {MASS: 5_000.0 + 2.5 * n}}
        if n not in GAP:
            values["kiln"] = {E: kiln_shows(n)}
        if n >= 1440:  # the mill's first day comes from the CSV file
            values["mill"] = {E: 100_000.0 + 50.0 * n}
        readings += [MeterReading(meter=m, ts=at(n), values=v) for m, v in values.items()]
    return ReadingBatch(site="cem", agent="gw", seq=first, readings=readings)


def mix_batches() -> list[ReadingBatch]:
    out = []
    for n in MIX_DAY:
        m = n - MIX_DAY.start
        values = {
            "incomer": {E: 7_000.0 + 20.0 * m},
            "gas-main": {VOLUME: (99_005.0 + 10.0 * m) % 100_000},
            "steam": {MASS: 2_000.0 + 0.1 * m},
        }
        readings = [MeterReading(meter=k, ts=at(n), values=v) for k, v in values.items()]
        out.append(ReadingBatch(site="mix", agent="gw2", seq=m, readings=readings))
    return out


def mill_csv() -> str:
    """1 Nov of the mill, wide layout, local times without an offset (--timezone)."""
    lines = ["time,mill/energy_active_import[Wh]"]
    for n in range(1441):
        local = (at(n) + timedelta(hours=8)).replace(tzinfo=None).isoformat(sep=" ")
        lines.append(f"{local},{(100_000 + 50 * n) * 1000}")
    return "\n".join(lines) + "\n"


def imported(text: str) -> list[ReadingBatch]:
    """The CSV as `energy-collector import` turns it into batches."""
    chunk = Chunk()
    items = list(
        read(io.StringIO(text, newline=""), "mill.csv", ZoneInfo("Asia/Shanghai"), Window(), AFTER)
    )
    for item in items:
        assert isinstance(item, Row), item
        assert chunk.add(item, "mill.csv") is None
    return chunk.batches("cem", "import", 0, 1000)


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    acc = Accounting(plant(), tmp_path_factory.mktemp("month"))
    try:
        hours = [range(h, min(h + 60, MONTH + 1)) for h in range(0, MONTH + 1, 60)]
        live = [cem_hour(r.start, [n for n in r if n not in LATE]) for r in hours]
        acc.process([b for b in live if b.readings])
        acc.process(mix_batches())
        acc.process([cem_hour(LATE.start, LATE)])  # the hour delivered late
        acc.process(imported(mill_csv()))  # 1 Nov of the mill, after live data
        reports = {s: build(acc.config, acc.db, s, "2026-11", AFTER) for s in ("cem", "mix")}
        reports["late"] = {"readings": acc.late_readings, "corrections": acc.corrections}
        return reports
    finally:
        acc.close()


def approx(value: float) -> Any:
    return pytest.approx(value, rel=REL)


def test_energy_kgce_and_co2_of_every_meter_carrier_and_site(
    month: dict[str, dict[str, Any]],
) -> None:
    cem = month["cem"]
    meters = {m["meter"]: m for m in cem["meters"]}
    assert meters["kiln"]["amount"] == approx(8_640_500)
    assert meters["mill"]["amount"] == approx(2_160_000)
    assert meters["kiln"]["kgce"] == approx(8_640_500 * 0.1229)  # 1,061,917.45
    assert cem["totals"]["electricity_kwh"] == approx(10_800_500)
    assert cem["totals"]["kgce"] == approx(1_327_381.45)
    assert cem["totals"]["kgco2"] == approx(5_730_745.3)
    mix = month["mix"]
    carriers = {c["carrier"]: c for c in mix["carriers"]}
    assert carriers["electricity"]["amount"] == approx(28_800)
    assert carriers["electricity"]["kgce"] == approx(3_539.52)
    assert carriers["electricity"]["kgco2"] == approx(15_281.28)
    assert carriers["natural_gas"]["amount"] == approx(14_400)  # wrapped once, not a turn
    assert carriers["natural_gas"]["kgce"] == approx(17_485.92)
    assert carriers["natural_gas"]["kgco2"] == approx(31_104)
    assert carriers["steam"]["amount"] == approx(144)
    assert carriers["steam"]["kgce"] == approx(15_638.4)
    assert carriers["steam"]["kgco2"] == approx(41_760)
    assert mix["totals"]["kgce"] == approx(36_663.84)
    assert mix["totals"]["kgco2"] == approx(88_145.28)


def test_intensity_demand_and_time_of_use(month: dict[str, dict[str, Any]]) -> None:
    cem = month["cem"]
    (line,) = cem["lines"]
    assert line["output"] == approx(108_000)
    assert line["intensity"] == approx(12.2906)  # kgce/t
    assert line["intensity_unit"] == "kgce/t"
    demand = {d["meter"]: d for d in cem["demand"]}
    # the late quarter hour is where it was used: 14,000 kW, not 12,000 spread over a gap
    assert demand["kiln"]["kw"] == approx(14_000)
    assert demand["kiln"]["window_start"] == "2026-11-03T10:30:00+08:00"
    assert demand["mill"]["kw"] == approx(3_000)
    tou = {p["period"]: p for p in cem["tou"]["periods"]}
    assert tou["peak"]["kwh"] == approx(3_600_500)
    assert tou["valley"]["kwh"] == approx(7_200_000)
    assert cem["tou"]["cny"] == approx(7_200_500)
    assert cem["tou"]["cny_per_unit"] == approx(66.671)


def test_data_quality_shares(month: dict[str, dict[str, Any]]) -> None:
    cem = month["cem"]
    kiln = next(m for m in cem["meters"] if m["meter"] == "kiln")["data_quality"]
    assert kiln["expected_minutes"] == MONTH
    assert (kiln["minutes_with_data"], kiln["measured_minutes"]) == (MONTH, 43_017)
    assert kiln["completeness"] == approx(43_017 / MONTH)
    assert kiln["by_quality"]["spread_over_gap"] == approx(36_400)
    assert kiln["by_quality"]["estimated"] == approx(200)
    assert kiln["estimated_share"] == approx(36_600 / 8_640_500)
    mill = next(m for m in cem["meters"] if m["meter"] == "mill")["data_quality"]
    assert (mill["measured_minutes"], mill["estimated_share"]) == (MONTH, 0.0)
    site = cem["totals"]["data_quality"]
    assert site["estimated_share"] == approx(36_600 / 10_800_500)
    assert site["by_quality"]["spread_over_gap"] == approx(36_400 * 0.1229)
    mix = month["mix"]["totals"]["data_quality"]
    assert (mix["measured_minutes"], mix["estimated_share"]) == (1440, 0.0)
    assert mix["completeness"] == approx(1440 / MONTH)


def test_the_findings_and_the_late_readings(month: dict[str, dict[str, Any]]) -> None:
    found = [(c["series"], c["issue"], c["from"]) for c in month["cem"]["counters"]]
    assert found == [
        ("kiln", "replacement", "2026-11-15T12:00:00+08:00"),
        ("kiln", "glitch", "2026-11-20T08:00:00+08:00"),
        ("kiln", "jump", "2026-11-25T13:59:00+08:00"),
    ]
    swap, zero, jump = month["cem"]["counters"]
    assert swap["counted"] == approx(200)  # 100 on the old meter, 100 on the new
    assert "recorded by shift lead" in swap["reason"]
    assert "reading 0 out of line" in zero["reason"] and "not used" in zero["reason"]
    assert (jump["excluded"], jump["estimated"], jump["counted"]) == (
        approx(50_000),
        approx(200),
        approx(200),
    )
    assert month["mix"]["counters"] == []  # the gas wrap is a rollover, nothing to flag
    assert month["late"] == {"readings": 1_620, "corrections": 4}
