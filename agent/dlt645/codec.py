"""DL/T 645-2007 frames, pure: building requests, cutting a byte stream into frames,
checking replies and decoding the BCD values they carry. No I/O (agent.dlt645.transport).

A frame on the wire::

    FE FE FE FE   68  A0..A5  68  C  L  D0..D(L-1)  CS  16
    wake-up       |address|       |  |  data + 0x33 |checksum: sum mod 256 from the first 68

The address is 12 BCD digits as printed on the meter, sent low byte first; AA in an address
byte is a wildcard, and AA AA AA AA AA AA is the broadcast address (read address, 0x13).
A read (0x11) carries a data identifier DI3 DI2 DI1 DI0, sent DI0 first; its reply
(0x91) echoes it and follows it with the value, low byte first. A reply with bit 0x40 set
in its control code is an error reply whose one data byte says what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

WAKE_UP: Final = b"\xfe\xfe\xfe\xfe"
"""Preamble that wakes a meter's receiver; meters may send it before replies too."""
START: Final = 0x68
END: Final = 0x16
OFFSET: Final = 0x33
HEADER: Final = 10
"""68, six address bytes, 68, control, length."""
OVERHEAD: Final = 12
"""A frame's bytes besides its data: the header, the checksum and 16."""

READ_DATA: Final = 0x11
READ_ADDRESS: Final = 0x13
REPLY: Final = 0x80
"""Set in the control code of every frame a meter sends."""
ERROR: Final = 0x40
"""Set in a reply's control code when the meter refuses the request."""
FOLLOWS: Final = 0x20
"""Set in a reply's control code when more frames of the answer follow."""

BROADCAST: Final = "AAAAAAAAAAAA"
"""The address every meter answers (read address, 0x13): only for a line with one meter."""

ERROR_BITS: Final = (
    (0x01, "other error"),
    (0x02, "no such data (the meter does not have this data identifier)"),
    (0x04, "password wrong or not authorised"),
    (0x08, "communication rate cannot be changed"),
    (0x10, "too many annual time zones"),
    (0x20, "too many daily time periods"),
    (0x40, "too many tariffs"),
)
"""The error byte's bits (DL/T 645-2007 §7.4, error reply)."""
NO_SUCH_DATA: Final = 0x02


class FrameError(ValueError):
    """Bytes that are not a valid frame, or a frame that does not answer the request.

    `kind` is a short stable word for counters and logs: "checksum", "garbage", "end",
    "truncated", "address", "control", "identifier", "length", "value" or "refused"
    (an error reply; `code` then holds its error byte).
    """

    def __init__(self, kind: str, detail: str, code: int | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.code = code


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: its address field (wire order), control code and data (0x33 removed)."""

    address: bytes
    control: int
    data: bytes = b""

    def encode(self, wake_up: bool = True) -> bytes:
        """The frame's bytes on the wire, after the wake-up preamble unless told not to."""
        if len(self.address) != 6:
            raise ValueError(f"an address field has 6 bytes, not {len(self.address)}")
        if not 0 <= self.control <= 0xFF:
            raise ValueError(f"control code {self.control} is not a byte")
        if len(self.data) > 0xFF:
            raise ValueError(f"{len(self.data)} data bytes: a frame carries at most 255")
        body = bytes((START, *self.address, START, self.control, len(self.data))) + bytes(
            (b + OFFSET) & 0xFF for b in self.data
        )
        return (WAKE_UP if wake_up else b"") + body + bytes((sum(body) & 0xFF, END))

    @property
    def address_text(self) -> str:
        return address_text(self.address)


def address_field(text: str) -> bytes:
    """The address field of a meter address as printed on it: 12 digits, A for wildcards.

    "123456789012" -> 12 90 78 56 34 12 (low byte first).
    """
    if len(text) != 12 or any(c not in "0123456789AaBbCcDdEeFf" for c in text):
        raise ValueError(
            f"meter address {text!r}: give the 12 digits printed on the meter "
            "(e.g. 000012345678; AAAAAAAAAAAA is the broadcast address)"
        )
    field = bytes.fromhex(text)[::-1]
    for byte in field:
        # A byte is BCD (two digits) or AA (a wildcard, as in the broadcast address).
        if byte != 0xAA and (byte >> 4 > 9 or byte & 0x0F > 9):
            raise ValueError(
                f"meter address {text!r}: {byte:02X} is neither two digits nor the wildcard AA"
            )
    return field


def address_text(field: bytes) -> str:
    """The meter address of an address field, as printed on the meter."""
    return field[::-1].hex().upper()


def identifier_text(identifier: int) -> str:
    """A data identifier as the standard writes it: DI3 DI2 DI1 DI0, e.g. 02010100."""
    return f"{identifier:08X}"


def read_request(address: bytes, identifier: int) -> Frame:
    """Read data (0x11) by a 4-byte data identifier DI3 DI2 DI1 DI0 (sent DI0 first)."""
    return Frame(address, READ_DATA, identifier.to_bytes(4, "little"))


def read_address_request() -> Frame:
    """Read address (0x13) to the broadcast address: the one meter on a line answers."""
    return Frame(address_field(BROADCAST), READ_ADDRESS)


class FrameParser:
    """Cuts a byte stream into frames. Fed any bytes, it yields frames and FrameErrors
    (what was wrong and skipped), never raises; after garbage or a bad frame it
    resynchronises on the next 68 .. 68 header."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        self._pending += data
        out: list[Frame | FrameError] = []
        buffer = self._pending
        while buffer:
            skipped = _skip_to_header(buffer)
            if skipped:
                # Wake-up bytes before a frame are the protocol, not garbage.
                garbage = bytes(buffer[:skipped]).rstrip(b"\xfe")
                del buffer[:skipped]
                if garbage.strip(b"\xfe"):
                    out.append(_garbage(garbage))
            if len(buffer) < HEADER or len(buffer) < OVERHEAD + buffer[9]:
                later = _later_frame(buffer)
                if later is None:
                    break
                # What looked like the start of a long frame was noise: a whole frame
                # follows it, so the frame is not held back waiting for bytes never sent.
                out.append(_garbage(bytes(buffer[:later])))
                del buffer[:later]
                continue
            size = OVERHEAD + buffer[9]
            raw = bytes(buffer[:size])
            checksum = sum(raw[:-2]) & 0xFF
            if raw[-2] != checksum:
                error = FrameError(
                    "checksum",
                    f"checksum {raw[-2]:02X} where the frame sums to {checksum:02X}: {_hex(raw)}",
                )
            elif raw[-1] != END:
                error = FrameError(
                    "end", f"frame ends in {raw[-1]:02X}, not {END:02X}: {_hex(raw)}"
                )
            else:
                del buffer[:size]
                data = bytes((b - OFFSET) & 0xFF for b in raw[HEADER:-2])
                out.append(Frame(raw[1:7], raw[8], data))
                continue
            # Not a frame after all: look for the next header after this 68.
            out.append(error)
            del buffer[:1]
        return out

    @property
    def pending(self) -> int:
        """Bytes received of a frame not complete yet."""
        return len(self._pending)

    def truncated(self) -> FrameError | None:
        """What was received of an incomplete frame, for when no more will come."""
        buffer = self._pending
        if not buffer.strip(b"\xfe"):
            return None
        expected = f" of {OVERHEAD + buffer[9]}" if len(buffer) >= HEADER else ""
        return FrameError(
            "truncated", f"frame cut short: {len(buffer)}{expected} bytes, {_hex(bytes(buffer))}"
        )


def _skip_to_header(buffer: bytearray) -> int:
    """How many leading bytes cannot start a frame (68, six bytes, 68)."""
    index = 0
    while True:
        index = buffer.find(START, index)
        if index < 0:
            # A trailing run of wake-up bytes may be the start of a frame's preamble.
            return len(buffer) - (len(buffer) - len(buffer.rstrip(b"\xfe")))
        if len(buffer) - index < 8 or buffer[index + 7] == START:
            return index
        index += 1


def _garbage(data: bytes) -> FrameError:
    shown = _hex(data[:16]) + (" ..." if len(data) > 16 else "")
    return FrameError("garbage", f"{len(data)} bytes that are not a frame skipped: {shown}")


def _later_frame(buffer: bytearray) -> int | None:
    """Where a complete, valid frame starts after the first byte, if one does."""
    index = buffer.find(START, 1)
    while index >= 0:
        end = index + OVERHEAD + (buffer[index + 9] if len(buffer) > index + 9 else 0)
        if (
            len(buffer) >= max(end, index + HEADER)
            and buffer[index + 7] == START
            and buffer[end - 1] == END
            and buffer[end - 2] == sum(buffer[index : end - 2]) & 0xFF
        ):
            return index
        index = buffer.find(START, index + 1)
    return None


def _hex(data: bytes) -> str:
    return data.hex(" ").upper()


def check_reply(request: Frame, reply: Frame) -> bytes:
    """The data of a meter's reply to `request`, or FrameError naming what is wrong.

    For a read (0x11) that is the value after the echoed identifier; for read address
    (0x13), the meter's address field.
    """
    expected = request.control | REPLY
    if reply.control & 0x1F != request.control or not reply.control & REPLY:
        raise FrameError(
            "control",
            f"reply with control code {reply.control:02X} to a request {request.control:02X}",
        )
    if request.address != address_field(BROADCAST) and not _matches(request.address, reply.address):
        raise FrameError(
            "address",
            f"reply from meter {address_text(reply.address)} to a request to meter "
            f"{address_text(request.address)}",
        )
    if reply.control & ERROR:
        code = reply.data[0] if reply.data else 0
        raise FrameError("refused", f"error reply: {describe_error(code)}", code)
    if reply.control & FOLLOWS:
        raise FrameError("control", "reply in several frames (0xB1): not supported")
    if reply.control != expected:
        raise FrameError(
            "control", f"reply with control code {reply.control:02X}, not {expected:02X}"
        )
    if request.control == READ_ADDRESS:
        if len(reply.data) != 6:
            raise FrameError("length", f"read address reply with {len(reply.data)} bytes, not 6")
        return reply.data
    if reply.data[:4] != request.data[:4]:
        asked = identifier_text(int.from_bytes(request.data[:4], "little"))
        got = (
            identifier_text(int.from_bytes(reply.data[:4], "little"))
            if len(reply.data) >= 4
            else "none"
        )
        raise FrameError("identifier", f"reply for data identifier {got} to a read of {asked}")
    return reply.data[4:]


def _matches(asked: bytes, answered: bytes) -> bool:
    # AA in the request's address is a wildcard: the meter answers with its own digits.
    return all(a in (0xAA, b) for a, b in zip(asked, answered, strict=True))


def describe_error(code: int) -> str:
    """The error byte of an error reply, in words."""
    named = [text for bit, text in ERROR_BITS if code & bit]
    return f"{code:02X} ({'; '.join(named) or 'no reason given'})"


def decode_bcd(raw: bytes, decimals: int, signed: bool, scale: float = 1.0) -> float:
    """A BCD value as a meter sends it: low byte first; when `signed`, the top bit of the
    last byte is the sign (DL/T 645-2007 appendix A, e.g. power XX.XXXX, current XXX.XXX).

    Times `scale` (a profile's unit change, kW to W) in decimal: 12.3456 kW is 12345.6 W,
    where the float 12.3456 times 1000 is 12345.599999999999."""
    if not raw:
        raise FrameError("value", "no value bytes")
    digits = bytearray(raw[::-1])
    negative = False
    if signed:
        negative = bool(digits[0] & 0x80)
        digits[0] &= 0x7F
    text = digits.hex()
    if not text.isdigit():
        raise FrameError("value", f"{_hex(raw)} is not BCD")
    number = int(text)
    if scale != 1.0:
        value = float(Decimal(number).scaleb(-decimals) * Decimal(repr(scale)))
    else:
        # Whole numbers divided exactly: the nearest float to the meter's decimal.
        value = number / 10**decimals if decimals else float(number)
    return -value if negative else value


def bcd_limit(size: int, signed: bool) -> int:
    """The first whole number `size` BCD bytes cannot hold: with a sign bit, the top digit
    has three bits left (0..7)."""
    top = 8 if signed else 10
    return top * int(10 ** (size * 2 - 1))


def encode_bcd(value: float, size: int, decimals: int, signed: bool) -> bytes:
    """The inverse of decode_bcd, rounded to the format's decimals (for the simulator)."""
    number = round(abs(value) * 10**decimals)
    if number >= bcd_limit(size, signed):
        raise ValueError(f"{value} does not fit {size} BCD bytes with {decimals} decimals")
    raw = bytearray(bytes.fromhex(f"{number:0{size * 2}d}"))
    if signed and value < 0 and number:
        raw[0] |= 0x80
    return bytes(raw[::-1])
