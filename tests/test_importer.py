"""The CSV import's pure part: layouts, rows to values or refusals, grouping into batches.

Properties: whatever the text, every record after a valid header becomes exactly one Row
or one Refusal naming its file and first line (never an exception, never dropped); valid
rows written by csv.writer come back as the same values, in both layouts.
"""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.importer import (
    CONVERTIBLE,
    NUMBER,
    Chunk,
    HeaderError,
    Refusal,
    Row,
    layout,
    parse_value,
    read,
    unit_exponent,
)
from collector.validate import MAX_VALUE, Window
from greengauge.contract import UNITS, Quantity

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
WINDOW = Window(timedelta(days=3650), timedelta(minutes=5))
LONG = "time,meter,quantity,value,unit\n"
WIDE = "time,m1/energy_active_import[kWh],m2/power_active[kW]\n"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def items(text: str, zone: ZoneInfo | None = None) -> list[Row | Refusal]:
    return list(read(io.StringIO(text, newline=""), "f.csv", zone, WINDOW, NOW))


def refusal(text: str, zone: ZoneInfo | None = None) -> Refusal:
    (only,) = items(text, zone)
    assert isinstance(only, Refusal), only
    return only


def record_starts(text: str) -> list[int]:
    """The first line of every non-blank record, as csv reads the text."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    starts: list[int] = []
    end = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return starts
        except csv.Error:
            cells = ["error"]
        if cells:
            starts.append(end + 1)
        end = reader.line_num


cell_text = st.lists(
    st.sampled_from(
        [
            *'abcz09,."\r\n +-eE:TZ_/[]\x00\udc80é',
            *("2026-11-01T00:00:00+08:00", "m1", "energy_active_import", "kWh", "Wh", "1.5"),
        ]
    ),
    max_size=60,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(header=st.sampled_from([LONG, WIDE, "TIME,Meter,quantity,unit,value\r\n"]), body=cell_text)
def test_every_record_after_a_header_is_one_row_or_one_refusal_naming_its_line(
    header: str, body: str
) -> None:
    text = header + body
    found = items(text, SHANGHAI)
    assert [x.line for x in found] == record_starts(text)[1:]
    for x in found:
        if isinstance(x, Refusal):
            assert str(x).startswith(f"f.csv:{x.line}: ")
            assert re.match(r"^(row|column '[^']*'): \S", x.reason), x.reason


@settings(max_examples=300, deadline=None)
@given(text=cell_text)
def test_any_text_gives_rows_refusals_or_a_header_error_and_nothing_else(text: str) -> None:
    try:
        found = items(text)
    except HeaderError as exc:
        assert str(exc).startswith("f.csv:")
        return
    assert all(isinstance(x, Row | Refusal) for x in found)


meters = st.text(alphabet="abcxyz0129-_.:é", min_size=1, max_size=12)
instants = st.datetimes(
    min_value=datetime(2017, 1, 1), max_value=datetime(2026, 11, 27), timezones=st.just(UTC)
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
values = st.floats(min_value=-MAX_VALUE, max_value=MAX_VALUE, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            meters, instants, st.sampled_from(list(Quantity)), values, st.sampled_from([8, -5, 0])
        ),
        min_size=1,
        max_size=20,
    )
)
def test_long_rows_come_back_as_written(
    rows: list[tuple[str, datetime, Quantity, float, int]],
) -> None:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["time", "meter", "quantity", "value", "unit"])
    for meter, ts, quantity, value, hours in rows:
        local = ts.astimezone(ZoneInfo("Etc/GMT" + f"{-hours:+d}") if hours else UTC)
        writer.writerow([local.isoformat(), meter, quantity.value, repr(value), UNITS[quantity]])
    found = items(out.getvalue())
    assert [x.values for x in found if isinstance(x, Row)] == [
        ((m, ts, q, v),) for m, ts, q, v, _ in rows
    ]


@settings(max_examples=100, deadline=None)
@given(
    cells=st.lists(
        st.tuples(instants, st.none() | values, st.none() | values), min_size=1, max_size=20
    )
)
def test_wide_rows_come_back_as_written_empty_cells_being_no_value(
    cells: list[tuple[datetime, float | None, float | None]],
) -> None:
    text = WIDE.replace("[kW]", "[W]") + "".join(
        f"{ts.isoformat()},{'' if a is None else repr(a)},{'' if b is None else repr(b)}\n"
        for ts, a, b in cells
    )
    expected = [
        tuple(
            (m, ts, q, v)
            for m, q, v in (
                ("m1", Quantity.ENERGY_ACTIVE_IMPORT, a),
                ("m2", Quantity.POWER_ACTIVE, b),
            )
            if v is not None
        )
        for ts, a, b in cells
    ]
    assert [x.values for x in items(text) if isinstance(x, Row)] == expected


def test_convertible_units_are_converted_to_the_canonical_one() -> None:
    text = WIDE + "2026-11-01T00:00:00Z,1.5,2.5\n"
    (row,) = items(text)
    assert isinstance(row, Row)
    assert [v for *_, v in row.values] == [1.5, 2500.0]
    (row,) = items(LONG + "2026-11-01T00:00:00Z,m1,energy_active_import,1500,Wh\n")
    assert isinstance(row, Row) and row.values[0][3] == 1.5
    for canonical, others in CONVERTIBLE.items():
        quantity = next(q for q, u in UNITS.items() if u == canonical)
        assert unit_exponent(quantity, canonical) == 0
        for unit, exponent in others.items():
            assert unit_exponent(quantity, unit) == exponent


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-1e12, max_value=1e12),
    st.sampled_from([-6, -3, 0, 3, 6]),
)
def test_a_converted_value_is_the_decimal_times_the_power_of_ten(
    number: Decimal, exponent: int
) -> None:
    """12.3456 kW is 12345.6 W, not the 12345.599999999999 that multiplying the float
    gives: the text is scaled as a decimal, then made a float once."""
    text = str(number)
    assert parse_value(text, exponent) == float(number.scaleb(exponent))


@given(st.from_regex(NUMBER, fullmatch=True), st.sampled_from([-6, -3, 0, 3, 6]))
def test_any_number_text_is_a_float_or_refused_as_beyond_one(text: str, exponent: int) -> None:
    """Exponents as large as a text may write (1e9999999) are refused, not an exception."""
    try:
        value = parse_value(text, exponent)
    except ValueError as exc:
        assert "is beyond a float" in str(exc)
    else:
        assert math.isfinite(value)


def test_kilowatts_with_four_decimals_are_the_watts_written() -> None:
    assert parse_value("12.3456", 3) == 12345.6


@pytest.mark.parametrize(
    ("line", "zone", "reason"),
    [
        (
            "2026-11-01T00:00:00,m1,energy_active_import,1,kWh",
            None,
            "column 'time': '2026-11-01T00:00:00' has no zone: give it an offset",
        ),
        (
            "2026-10-25T02:30:00,m1,energy_active_import,1,kWh",
            ZoneInfo("Europe/Berlin"),
            "column 'time': '2026-10-25T02:30:00' is ambiguous or skipped in Europe/Berlin",
        ),
        (
            "2026-03-29T02:30:00,m1,energy_active_import,1,kWh",
            ZoneInfo("Europe/Berlin"),
            "column 'time': '2026-03-29T02:30:00' is ambiguous or skipped in Europe/Berlin",
        ),
        ("yesterday,m1,energy_active_import,1,kWh", None, "column 'time': 'yesterday' is not"),
        (
            "2000-01-01T00:00:00Z,m1,energy_active_import,1,kWh",
            None,
            "column 'time': time 2000-01-01T00:00:00+00:00 is more than 3650 days old",
        ),
        (
            "2026-11-27T12:06:00Z,m1,energy_active_import,1,kWh",
            None,
            "column 'time': time 2026-11-27T12:06:00+00:00 is more than 300 s ahead",
        ),
        ("2026-11-01T00:00Z,m/1,energy_active_import,1,kWh", None, "column 'meter': invalid id"),
        ("2026-11-01T00:00Z,m1,energy,1,kWh", None, "column 'quantity': unknown quantity"),
        (
            "2026-11-01T00:00Z,m1,energy_active_import,1,kwh",
            None,
            "column 'unit': unit 'kwh': energy_active_import is in 'kWh' or one convertible",
        ),
        ("2026-11-01T00:00Z,m1,power_active,1,kWh", None, "column 'unit': unit 'kWh'"),
        ('2026-11-01T00:00Z,m1,power_active,"1,5",W', None, "(the decimal point is '.')"),
        ("2026-11-01T00:00Z,m1,power_active,nan,W", None, "column 'value': 'nan' is not a"),
        ("2026-11-01T00:00Z,m1,power_active,1e400,W", None, "column 'value': '1e400' is beyond"),
        ("2026-11-01T00:00Z,m1,power_active,2e18,W", None, "column 'value': m1 power_active 2e+18"),
        ("2026-11-01T00:00Z,m1,power_active,1e15,MW", None, "is beyond ±1e+18"),
        ("2026-11-01T00:00Z,m1,power_active,1", None, "row: 4 columns, the header has 5"),
        ("2026-11-01T00:00Z,m\udc801,power_active,1,W", None, "row: bytes that are not UTF-8"),
    ],
)
def test_a_bad_row_is_refused_naming_file_line_column_and_reason(
    line: str, zone: ZoneInfo | None, reason: str
) -> None:
    found = refusal(LONG + "\n" + line + "\n", zone)
    assert found.line == 3
    assert str(found).startswith("f.csv:3: ") and reason in str(found), str(found)


def test_naive_times_are_in_the_given_zone() -> None:
    (row,) = items(WIDE + "2026-11-01 08:00:00,1,\n", SHANGHAI)
    assert isinstance(row, Row)
    assert row.values[0][1] == datetime(2026, 11, 1, tzinfo=UTC)


def test_a_bad_cell_refuses_the_whole_wide_row() -> None:
    found = refusal(WIDE + "2026-11-01T00:00:00Z,1,x\n")
    assert str(found) == "f.csv:2: column 'm2/power_active[kW]': 'x' is not a number"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("meter,value\n", "f.csv:1: no 'time' column"),
        ("time,meter,quantity,value\n", "f.csv:1: long layout: columns time, meter,"),
        (
            "time,m1/power_active[W],m1/power_active[kW]\n",
            "'m1/power_active[kW]': the same meter and quantity as column 2",
        ),
        ("time,m1/power_active\n", "f.csv:1: column 2 'm1/power_active': not <meter>/<quantity>"),
        ("time,m1/power_active[kWh]\n", "column 2 'm1/power_active[kWh]': unit 'kWh'"),
        ("time,m1/energy[kWh]\n", "column 2 'm1/energy[kWh]': unknown quantity 'energy'"),
        ("time,m 1/power_active[W]\n", "column 2 'm 1/power_active[W]': invalid id"),
        ("time\n", "f.csv:1: no value columns after 'time'"),
        ("time,time,m1/power_active[W]\n", "f.csv:1: more than one 'time' column"),
    ],
)
def test_a_header_of_neither_layout_is_an_error_naming_the_column(header: str, reason: str) -> None:
    with pytest.raises(HeaderError) as raised:
        items(header + "2026-11-01T00:00:00Z,1\n")
    assert reason in str(raised.value)


def test_layouts_are_told_apart_by_the_header() -> None:
    assert layout(["unit", "Value", "time", "meter", "quantity"]).long == {
        "time": 2,
        "meter": 3,
        "quantity": 4,
        "value": 1,
        "unit": 0,
    }
    wide = layout(["m1/count[]", "time"])
    assert wide.time == 1 and wide.wide[0][1].quantity is Quantity.COUNT


def rows_of(text: str) -> list[Row]:
    found = items(text)
    assert all(isinstance(x, Row) for x in found)
    return [x for x in found if isinstance(x, Row)]


def test_a_chunk_groups_values_by_meter_and_time_into_bounded_batches() -> None:
    text = LONG + "".join(
        f"2026-11-01T00:0{minute}:00Z,m{meter},{q},{minute},{UNITS[Quantity(q)]}\n"
        for minute in (2, 1, 0)
        for meter in (1, 2)
        for q in ("energy_active_import", "power_active")
    )
    chunk = Chunk()
    for row in rows_of(text):
        assert chunk.add(row, "f.csv") is None
    batches = chunk.batches("s1", "import", 7, 4)
    assert [b.seq for b in batches] == [7, 8]
    assert [len(b.readings) for b in batches] == [4, 2]
    readings = [r for b in batches for r in b.readings]
    assert [(r.meter, r.ts.minute) for r in readings] == [
        (m, minute) for minute in (0, 1, 2) for m in ("m1", "m2")
    ]
    assert all(
        set(r.values) == {Quantity.ENERGY_ACTIVE_IMPORT, Quantity.POWER_ACTIVE} for r in readings
    )
    assert {b.site for b in batches} == {"s1"} and {b.agent for b in batches} == {"import"}


def test_a_chunk_refuses_another_value_for_the_same_point_and_keeps_the_same_one_once() -> None:
    first, same, other = rows_of(
        WIDE
        + "2026-11-01T00:00:00Z,1,2\n"
        + "2026-11-01T00:00:00Z,1,\n"
        + "2026-11-01T00:00:00+00:00,1,3\n"
    )
    chunk = Chunk()
    assert chunk.add(first, "f.csv") is None
    assert chunk.add(same, "f.csv") is None
    found = chunk.add(other, "f.csv")
    assert found is not None and found.kind == "conflict"
    assert str(found) == (
        "f.csv:4: row: m2 power_active at 2026-11-01T00:00:00+00:00 is 3000, line 2 said 2000"
    )
    assert chunk.lines == [2, 3]
    (batch,) = chunk.batches("s1", "import", 0, 10)
    assert [(r.meter, r.values) for r in batch.readings] == [
        ("m1", {Quantity.ENERGY_ACTIVE_IMPORT: 1.0}),
        ("m2", {Quantity.POWER_ACTIVE: 2000.0}),
    ]


def test_line_numbers_are_where_a_record_starts_in_the_file() -> None:
    text = LONG + '\n2026-11-01T00:00Z,"multi\nline",power_active,1,W\n\r\n\nbad\n'
    found = items(text)
    assert [(x.line, x.kind) for x in found if isinstance(x, Refusal)] == [
        (3, "meter"),
        (7, "columns"),
    ]
