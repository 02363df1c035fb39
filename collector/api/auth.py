"""Bearer tokens: a read token for reads, a distinct write token for writes (and reads).

With no token configured (allowed on loopback only, see settings) every request is let
in. Otherwise a request without a token or with a wrong one gets 401, a read token on a
write endpoint 403; every refusal is counted by reason (the collector's metrics).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from enum import Enum

from fastapi import HTTPException, Request

from collector.api.settings import ApiSettings


class Access(Enum):
    READ = "read"
    WRITE = "write"


def _same(given: str, secret: str | None) -> bool:
    return secret is not None and hmac.compare_digest(given.encode(), secret.encode())


class Guard:
    def __init__(self, settings: ApiSettings, refused: Callable[[str], None]) -> None:
        self._read = settings.read_token.get_secret_value() if settings.read_token else None
        self._write = settings.write_token.get_secret_value() if settings.write_token else None
        self._open = settings.open
        self._refused = refused

    def _deny(self, status: int, reason: str, detail: str) -> HTTPException:
        self._refused(reason)
        return HTTPException(status, detail, headers={"WWW-Authenticate": "Bearer"})

    def check(self, request: Request, access: Access) -> None:
        if self._open:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._deny(401, "missing", "a bearer token is required")
        token = token.strip()
        if _same(token, self._write):
            return
        if _same(token, self._read):
            if access is Access.READ:
                return
            raise self._deny(403, "read_only", "this token may only read")
        raise self._deny(401, "invalid", "invalid token")

    def read(self, request: Request) -> None:
        self.check(request, Access.READ)

    def write(self, request: Request) -> None:
        self.check(request, Access.WRITE)
