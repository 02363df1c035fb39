"""Errors of talking to a Modbus device, shared by transports, resolution and polling."""

from __future__ import annotations

from typing import Final

GATEWAY_NO_DEVICE: Final = frozenset({0x0A, 0x0B})
"""Exception codes a TCP gateway sends for a unit id that does not answer behind it
(gateway path unavailable, gateway target device failed to respond)."""


class ReadError(Exception):
    """A read that gave no registers: no connection, timeout, or an exception reply.

    `kind` is a short stable word for counters and logs ("connect", "timeout",
    "exception", ...); `exception_code` is the device's Modbus exception code, if any.
    """

    def __init__(self, kind: str, detail: str, exception_code: int | None = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.exception_code = exception_code
