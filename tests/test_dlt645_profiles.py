"""DL/T 645 profiles as data: the built-in ones validate and cite their sources, and a bad
profile file gets an error naming the value and what is wrong with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.dlt645.codec import bcd_limit
from agent.dlt645.profile import builtin_names, load_dlt645_profile
from agent.profiles import ProfileError
from greengauge.contract import Quantity


def test_a_three_phase_and_a_single_phase_profile_ship() -> None:
    assert builtin_names() == ["chint_ddsu666_dlt645", "chint_dtsu666_dlt645"]
    three = load_dlt645_profile("chint_dtsu666_dlt645")
    one = load_dlt645_profile("chint_ddsu666_dlt645")
    assert {Quantity.VOLTAGE_L3, Quantity.CURRENT_L3} <= {v.quantity for v in three.values}
    assert Quantity.VOLTAGE_L2 not in {v.quantity for v in one.values}


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_profiles_cite_their_sources(name: str) -> None:
    profile = load_dlt645_profile(name)
    assert profile.model == name
    for spec in profile.values:
        cited = set(re.findall(r"[a-z_0-9]+", spec.source)) & set(profile.sources)
        assert cited, f"{name} {spec.quantity}: {spec.source!r} cites no source key"


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_formats_are_the_standards(name: str) -> None:
    # Appendix A: energy 4 bytes XXXXXX.XX, voltage XXX.X, current XXX.XXX, power XX.XXXX,
    # power factor X.XXX, frequency XX.XX.
    expected = {
        "energy": ("XXXXXX.XX", 4),
        "voltage": ("XXX.X", 2),
        "current": ("XXX.XXX", 3),
        "power_factor": ("X.XXX", 2),
        "power": ("XX.XXXX", 3),
        "frequency": ("XX.XX", 2),
    }
    for spec in load_dlt645_profile(name).values:
        prefix = next(p for p in expected if spec.quantity.value.startswith(p))
        assert (spec.format, spec.size) == expected[prefix], spec.quantity
        # The largest value the format holds is plausible for the quantity in its unit.
        assert bcd_limit(spec.size, spec.signed) / 10**spec.decimals * spec.scale > 1


def value(quantity: str, identifier: str, fmt: str, unit: str, more: str = "") -> str:
    return (
        f'  - {{quantity: {quantity}, identifier: "{identifier}", format: {fmt}, unit: {unit},'
        f" source: s{more}}}\n"
    )


def write(tmp_path: Path, values: str, extra: str = "") -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "model: mine\nprotocol: dlt645\nmanufacturer: M\ndescription: d\n"
        f"sources: {{s: somewhere}}\n{extra}values:\n{values}"
    )
    return path


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        (
            value("voltage_l1", "02010100", "XXX.XX", "V"),
            "voltage_l1: format 'XXX.XX' is not whole bytes of BCD digits",
        ),
        (
            value("power_active", "02030000", "XX.XXXX", "kW"),
            "power_active: unit 'kW' is not the canonical unit 'W'; set scale",
        ),
        (
            value("voltage_l1", "0201010", "XXX.X", "V"),
            "values.0.identifier",
        ),
        (
            value("voltage_l1", "02010100", "XXX.X", "V")
            + value("voltage_l1", "02010200", "XXX.X", "V"),
            "voltage_l1: given twice (identifiers 02010100 and 02010200)",
        ),
    ],
)
def test_bad_profiles_are_named(tmp_path: Path, values: str, problem: str) -> None:
    with pytest.raises(ProfileError) as caught:
        load_dlt645_profile(str(write(tmp_path, values)))
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_unconfirmed_values_are_read_only_when_asked(tmp_path: Path) -> None:
    values = value("voltage_l1", "02010100", "XXX.X", "V") + value(
        "frequency", "02800002", "XX.XX", "Hz", ", unconfirmed: true"
    )
    profile = load_dlt645_profile(str(write(tmp_path, values)))
    assert [v.quantity for v in profile.read_values] == [Quantity.VOLTAGE_L1]
    profile = load_dlt645_profile(str(write(tmp_path, values, "include_unconfirmed: true\n")))
    assert len(profile.read_values) == 2
