"""The DL/T 645-2007 codec (agent.dlt645.codec) against frames from independent sources,
byte by byte, and its parser against any bytes (hypothesis).

Test vectors, each written down by someone else for their own implementation (only the
frames are taken, checksums included, so a wrong sum or byte order here would disagree):
- BROADCAST_READ_ADDRESS, WILDCARD_READ_ENERGY: the two textbook frames of the standard
  (read address; read forward active total energy by the wildcard address), as a C# DL/T 645
  library's tests and the PyPI `dlt645` 3.2.0 README/tests quote them ("FE FE FE FE 68 AA AA
  AA AA AA AA 68 13 00 DF 16").
- METER_201000000012_*: a Java meter simulator's request/reply table (read address reply,
  phase voltages 225.6 V, error reply ERR2 "no requested data").
- METER_398192000337_ENERGY: a Java DL/T 645 frame utility's worked example (forward active
  energy 000000.04 kWh). Its phase A voltage example (.. 91 06 33 34 34 35 C7 56 B6 16) sums
  to DA, not B6: the parser rejects it, so it is not used.
- METER_000000000001_READ_ENERGY: an EV charger's C firmware comment.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.dlt645.codec import (
    BROADCAST,
    NO_SUCH_DATA,
    READ_ADDRESS,
    READ_DATA,
    Frame,
    FrameError,
    FrameParser,
    address_field,
    address_text,
    bcd_limit,
    check_reply,
    decode_bcd,
    encode_bcd,
    read_address_request,
    read_request,
)

BROADCAST_READ_ADDRESS = "FE FE FE FE 68 AA AA AA AA AA AA 68 13 00 DF 16"
WILDCARD_READ_ENERGY = "FE FE FE FE 68 AA AA AA AA AA AA 68 11 04 33 33 34 33 AE 16"
METER_201000000012_ADDRESS_REPLY = "68 12 00 00 00 10 20 68 93 06 45 33 33 33 43 53 1F 16"
METER_201000000012_READ_VOLTAGES = "68 12 00 00 00 10 20 68 11 04 33 32 34 35 F5 16"
METER_201000000012_VOLTAGES = "68 12 00 00 00 10 20 68 91 0A 33 32 34 35 89 55 32 32 32 32 21 16"
METER_201000000012_READ_UNKNOWN = "68 12 00 00 00 10 20 68 11 04 33 33 34 36 F7 16"
METER_201000000012_NO_DATA = "68 12 00 00 00 10 20 68 D1 01 35 19 16"
METER_398192000337_ENERGY = "68 37 03 00 92 81 39 68 91 08 33 33 34 33 37 33 33 33 8C 16"
METER_000000000001_READ_ENERGY = "68 01 00 00 00 00 00 68 11 04 33 33 34 33 B3 16"

ENERGY_FORWARD = 0x00010000
VOLTAGE_A = 0x02010100
VOLTAGE_BLOCK = 0x0201FF00


def frame_of(text: str) -> Frame:
    items = FrameParser().feed(bytes.fromhex(text))
    assert len(items) == 1 and isinstance(items[0], Frame), items
    return items[0]


def test_requests_are_the_standard_examples_byte_for_byte() -> None:
    assert read_address_request().encode() == bytes.fromhex(BROADCAST_READ_ADDRESS)
    wildcard = read_request(address_field(BROADCAST), ENERGY_FORWARD)
    assert wildcard.encode() == bytes.fromhex(WILDCARD_READ_ENERGY)
    meter = address_field("201000000012")
    assert read_request(meter, VOLTAGE_BLOCK).encode(wake_up=False) == bytes.fromhex(
        METER_201000000012_READ_VOLTAGES
    )
    assert read_request(meter, 0x03010000).encode(wake_up=False) == bytes.fromhex(
        METER_201000000012_READ_UNKNOWN
    )
    one = address_field("000000000001")
    assert read_request(one, ENERGY_FORWARD).encode(wake_up=False) == bytes.fromhex(
        METER_000000000001_READ_ENERGY
    )


def test_address_is_sent_low_byte_first() -> None:
    assert address_field("123456789012") == bytes.fromhex("12 90 78 56 34 12")
    assert address_text(bytes.fromhex("12 90 78 56 34 12")) == "123456789012"
    assert frame_of(METER_398192000337_ENERGY).address_text == "398192000337"


def test_replies_decode_to_the_values_their_sources_give() -> None:
    energy = frame_of(METER_398192000337_ENERGY)
    request = read_request(address_field("398192000337"), ENERGY_FORWARD)
    assert decode_bcd(check_reply(request, energy), 2, signed=False) == 0.04
    block = frame_of(METER_201000000012_VOLTAGES)
    request = read_request(address_field("201000000012"), VOLTAGE_BLOCK)
    assert decode_bcd(check_reply(request, block)[:2], 1, signed=False) == 225.6


def test_read_address_reply_gives_the_meter_address() -> None:
    reply = frame_of(METER_201000000012_ADDRESS_REPLY)
    assert address_text(check_reply(read_address_request(), reply)) == "201000000012"


def test_encoding_a_reply_gives_the_sources_bytes() -> None:
    value = encode_bcd(225.6, 2, 1, signed=False)
    assert value == bytes.fromhex("56 22")
    # B and C read FF FF: the meter's "no such phase" (a single-phase source meter).
    data = bytes.fromhex("00 FF 01 02") + value + bytes.fromhex("FF FF FF FF")
    reply = Frame(address_field("201000000012"), 0x91, data)
    assert reply.encode(wake_up=False) == bytes.fromhex(METER_201000000012_VOLTAGES)


def test_error_reply_names_the_error() -> None:
    request = read_request(address_field("201000000012"), 0x03010000)
    with pytest.raises(FrameError) as caught:
        check_reply(request, frame_of(METER_201000000012_NO_DATA))
    assert caught.value.kind == "refused" and caught.value.code == NO_SUCH_DATA
    assert "no such data" in str(caught.value)


def test_reply_from_another_meter_is_named() -> None:
    request = read_request(address_field("000000000001"), ENERGY_FORWARD)
    with pytest.raises(
        FrameError, match="reply from meter 398192000337 to a request to meter 000000000001"
    ) as caught:
        check_reply(request, frame_of(METER_398192000337_ENERGY))
    assert caught.value.kind == "address"


def test_reply_for_another_identifier_is_named() -> None:
    request = read_request(address_field("398192000337"), VOLTAGE_A)
    with pytest.raises(FrameError, match="data identifier 00010000 to a read of 02010100"):
        check_reply(request, frame_of(METER_398192000337_ENERGY))


def test_reply_with_another_control_code_is_named() -> None:
    request = read_address_request()
    with pytest.raises(FrameError, match="control code 91 to a request 13"):
        check_reply(request, frame_of(METER_398192000337_ENERGY))


def test_wrong_checksum_is_named_and_skipped() -> None:
    raw = bytearray(bytes.fromhex(METER_398192000337_ENERGY))
    raw[-2] ^= 0x01
    items = FrameParser().feed(bytes(raw) + bytes.fromhex(METER_201000000012_VOLTAGES))
    assert isinstance(items[0], FrameError) and items[0].kind == "checksum"
    assert "checksum 8D where the frame sums to 8C" in str(items[0])
    assert items[-1] == frame_of(METER_201000000012_VOLTAGES)


def test_wrong_end_byte_is_named() -> None:
    raw = bytes.fromhex(METER_398192000337_ENERGY)[:-1] + b"\x17"
    items = FrameParser().feed(raw)
    assert isinstance(items[0], FrameError) and items[0].kind == "end"
    assert "ends in 17, not 16" in str(items[0])


def test_garbage_before_the_preamble_is_named_and_the_frame_still_read() -> None:
    garbage = bytes.fromhex("00 11 22 68 33")
    items = FrameParser().feed(garbage + bytes.fromhex(BROADCAST_READ_ADDRESS))
    assert isinstance(items[0], FrameError) and items[0].kind == "garbage"
    assert "5 bytes that are not a frame skipped: 00 11 22 68 33" in str(items[0])
    assert items[1] == read_address_request()


def test_a_false_header_does_not_hold_the_frame_back() -> None:
    # Noise that looks like a header announcing 255 data bytes, then a whole frame.
    noise = bytes.fromhex("68 00 00 00 00 00 00 68 91 FF")
    items = FrameParser().feed(noise + bytes.fromhex(METER_398192000337_ENERGY))
    assert isinstance(items[0], FrameError) and items[0].kind == "garbage"
    assert items[1:] == [frame_of(METER_398192000337_ENERGY)]


def test_wake_up_bytes_are_not_garbage() -> None:
    assert FrameParser().feed(bytes.fromhex(BROADCAST_READ_ADDRESS)) == [read_address_request()]


def test_truncated_frame_waits_then_is_named() -> None:
    parser = FrameParser()
    raw = bytes.fromhex(METER_398192000337_ENERGY)
    assert parser.feed(raw[:15]) == []
    error = parser.truncated()
    assert error is not None and error.kind == "truncated"
    assert "frame cut short: 15 of 20 bytes" in str(error)
    assert parser.feed(raw[15:]) == [frame_of(METER_398192000337_ENERGY)]
    assert parser.truncated() is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("12345", "give the 12 digits"),
        ("12345678901G", "give the 12 digits"),
        ("1234567890AB", "AB is neither two digits nor the wildcard AA"),
    ],
)
def test_bad_addresses_are_named(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        address_field(text)


def test_signed_bcd_uses_the_top_bit() -> None:
    assert decode_bcd(bytes.fromhex("40 23 81"), 4, signed=True) == -1.234
    assert encode_bcd(-1.234, 3, 4, signed=True) == bytes.fromhex("40 23 81")
    with pytest.raises(FrameError, match="1A 00 is not BCD"):
        decode_bcd(bytes.fromhex("1A 00"), 0, signed=False)


addresses = st.text("0123456789", min_size=12, max_size=12).map(address_field)
frames = st.builds(
    Frame,
    addresses,
    st.integers(0, 255),
    st.binary(max_size=255),
)


@given(st.lists(frames, min_size=1, max_size=4), st.booleans())
def test_frames_round_trip(sent: list[Frame], wake_up: bool) -> None:
    stream = b"".join(f.encode(wake_up) for f in sent)
    assert FrameParser().feed(stream) == sent


@given(frames, st.binary(max_size=40), st.integers(1, 7))
def test_resynchronises_after_garbage_whatever_the_chunks(
    frame: Frame, garbage: bytes, chunk: int
) -> None:
    stream = garbage + frame.encode()
    parser = FrameParser()
    items: list[Frame | FrameError] = []
    for i in range(0, len(stream), chunk):
        items += parser.feed(stream[i : i + chunk])
    assert items[-1] == frame
    assert all(isinstance(item, FrameError) for item in items[:-1])


@given(st.binary(max_size=600))
def test_any_bytes_give_frames_or_named_errors(data: bytes) -> None:
    parser = FrameParser()
    for item in parser.feed(data):
        assert isinstance(item, Frame) or (isinstance(item, FrameError) and str(item))
    assert parser.pending <= len(data)


def test_signed_values_use_the_top_digit_up_to_7() -> None:
    # Power factor 1.000 and power 79.9999 kW: the top digit is not the sign's.
    assert encode_bcd(1.0, 2, 3, signed=True) == bytes.fromhex("00 10")
    assert encode_bcd(-79.9999, 3, 4, signed=True) == bytes.fromhex("99 99 F9")
    assert decode_bcd(bytes.fromhex("99 99 F9"), 4, signed=True) == -79.9999
    with pytest.raises(ValueError, match="does not fit 3 BCD bytes"):
        encode_bcd(80.0, 3, 4, signed=True)


@given(st.integers(1, 5), st.data(), st.integers(0, 4), st.booleans(), st.booleans())
def test_bcd_round_trip(
    size: int, data: st.DataObject, decimals: int, signed: bool, negative: bool
) -> None:
    number = data.draw(st.integers(0, bcd_limit(size, signed) - 1))
    value = number / 10**decimals * (-1 if negative and signed else 1)
    assert decode_bcd(encode_bcd(value, size, decimals, signed), decimals, signed) == (
        pytest.approx(value, abs=0.5 / 10**decimals)
    )


@given(
    st.integers(1, 5),
    st.data(),
    st.integers(0, 4),
    st.booleans(),
    st.sampled_from([1.0, 1000.0, 0.001, 0.1, 10.0, 0.5]),
)
def test_a_bcd_value_is_its_digits_scaled_in_decimal(
    size: int, data: st.DataObject, decimals: int, signed: bool, scale: float
) -> None:
    """The value is the meter's digits times the profile's scale, as decimal arithmetic
    gives it: 12.3456 kW is 12345.6 W, not the 12345.599999999999 that multiplying the
    float gives."""
    number = data.draw(st.integers(0, bcd_limit(size, signed) - 1))
    negative = signed and data.draw(st.booleans())
    raw = encode_bcd(number / 10**decimals * (-1 if negative else 1), size, decimals, signed)
    exact = float(Decimal(number).scaleb(-decimals) * Decimal(repr(scale)))
    assert decode_bcd(raw, decimals, signed, scale) == (-exact if negative else exact)


def test_the_chint_power_in_kw_is_watts_as_the_meter_shows() -> None:
    assert decode_bcd(bytes.fromhex("56 34 12"), 4, signed=True, scale=1000) == 12345.6


def test_controls_used() -> None:
    assert (READ_DATA, READ_ADDRESS) == (0x11, 0x13)


@given(
    st.builds(Frame, addresses, st.integers(0, 255), st.binary(max_size=20)),
    st.builds(Frame, addresses, st.integers(0, 255), st.binary(max_size=20)),
)
def test_checking_any_reply_gives_data_or_a_named_error(request: Frame, reply: Frame) -> None:
    try:
        data = check_reply(request, reply)
    except FrameError as exc:
        assert exc.kind and str(exc)
    else:
        assert isinstance(data, bytes)
