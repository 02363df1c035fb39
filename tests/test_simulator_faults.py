"""Fault specs of `energy-agent simulate --fault`, and what the injector decides."""

from __future__ import annotations

import pytest
from pymodbus.pdu.register_message import ReadInputRegistersResponse

from agent.simulator.faults import Fault, FaultInjector, FaultMode, parse_fault


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("2:timeout", Fault(2, FaultMode.TIMEOUT)),
        ("5:drop", Fault(5, FaultMode.DROP)),
        ("4:nan", Fault(4, FaultMode.NAN)),
        ("4:nan=0-1", Fault(4, FaultMode.NAN, 0, 1)),
        ("3:exception=0x3000-0x3010", Fault(3, FaultMode.EXCEPTION, 0x3000, 0x3010)),
        ("3:exception", Fault(3, FaultMode.EXCEPTION)),
        ("3:flaky=342-343", Fault(3, FaultMode.FLAKY, 342, 343)),
        (" 7:short ", Fault(7, FaultMode.SHORT)),
    ],
)
def test_parse(text: str, fault: Fault) -> None:
    assert parse_fault(text) == fault


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timeout", "UNIT:MODE"),
        ("0:timeout", "outside 1..247"),
        ("2:slow", "unknown mode 'slow'"),
        ("2:timeout=1-2", "only exception, flaky and nan"),
        ("3:exception=9-2", "run upwards"),
        ("3:exception=x-y", "must be numbers"),
    ],
)
def test_parse_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(text)


def reply(unit_id: int, registers: list[int]) -> ReadInputRegistersResponse:
    return ReadInputRegistersResponse(registers=registers, dev_id=unit_id)


def test_injector_decisions_and_toggle() -> None:
    injector = FaultInjector(
        [parse_fault("2:timeout"), parse_fault("3:exception=10-11"), parse_fault("4:short")],
        [1, 2, 3, 4],
        silence_others=True,
    )
    assert injector.refuses(3, 8, 3) and injector.refuses(3, 11, 1)
    assert not injector.refuses(3, 12, 4) and not injector.refuses(1, 10, 1)
    assert injector.trace_packet(True, b"\x01") == b"\x01"  # nothing decided: as it is
    injector.trace_pdu(True, reply(2, [1, 2]))
    assert injector.trace_packet(True, b"frame") == b""  # timeout: never answers
    injector.trace_pdu(True, reply(9, [1]))
    assert injector.trace_packet(True, b"frame") == b""  # not simulated: silent on a line
    shortened = injector.trace_pdu(True, reply(4, [1, 2, 3]))
    assert shortened.registers == [1, 2]
    injector.toggle()
    assert not injector.active and not injector.refuses(3, 10, 1)
    injector.trace_pdu(True, reply(2, [1, 2]))
    assert injector.trace_packet(True, b"frame") == b"frame"
    assert injector.describe() == ["2:timeout", "3:exception=0x000a-0x000b", "4:short"]


def test_a_flaky_fault_refuses_every_other_read_of_its_range() -> None:
    injector = FaultInjector([parse_fault("3:flaky=10-11")], [3])
    decisions = [injector.refuses(3, 8, 4) for _ in range(4)]
    assert decisions == [True, False, True, False]
    assert not injector.refuses(3, 12, 2)  # outside: always answered, and not counted
    assert injector.refuses(3, 10, 1)
    injector.toggle()
    assert not any(injector.refuses(3, 10, 2) for _ in range(3))
    assert injector.describe() == ["3:flaky=0x000a-0x000b"]
