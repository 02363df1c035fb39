"""Who may use the API: the Host it is asked for, tokens, and where a write comes from.

Every request must name an allowed host (settings.hosts; 400 otherwise), so a web page
whose domain is made to resolve to the collector (DNS rebinding) gets nothing. With no
token configured (allowed on loopback only, see settings) reads are let in, and a write
only from the API's own origin: a browser sends `Origin` with a cross-site POST, and one
from elsewhere gets 403. Otherwise a request without a token or with a wrong one gets
401, a read token on a write endpoint 403. Writes take `application/json` only (415),
which a page cannot send cross-site without the browser asking first. Every refusal but
the 415 is counted by reason (the collector's metrics).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from enum import Enum
from typing import Final
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from collector.api.settings import ApiSettings

JSON: Final = "application/json"
# Sec-Fetch-Site values of a request the page itself (or the user) made.
_SAME_SITE: Final = ("same-origin", "none")


class Access(Enum):
    READ = "read"
    WRITE = "write"


def _same(given: str, secret: str | None) -> bool:
    return secret is not None and hmac.compare_digest(given.encode(), secret.encode())


def host_name(header: str) -> str:
    """The host a Host header names, lower case, without port or IPv6 brackets."""
    try:
        return (urlsplit(f"//{header}").hostname or "").lower()
    except ValueError:  # e.g. an unbalanced '['
        return ""


def same_origin(request: Request) -> bool:
    """Whether a browser would call this request same-origin; True for a non-browser
    client, which sends neither `Origin` nor `Sec-Fetch-Site`."""
    origin = request.headers.get("origin")
    if origin is not None:
        parsed = urlsplit(origin)
        host = request.headers.get("host", "")
        return parsed.scheme in ("http", "https") and parsed.netloc.lower() == host.lower()
    return request.headers.get("sec-fetch-site", "none") in _SAME_SITE


class Guard:
    def __init__(self, settings: ApiSettings, refused: Callable[[str], None]) -> None:
        self._read = settings.read_token.get_secret_value() if settings.read_token else None
        self._write = settings.write_token.get_secret_value() if settings.write_token else None
        self._open = settings.open
        self._hosts = settings.hosts
        self._refused = refused

    def _deny(self, status: int, reason: str, detail: str) -> HTTPException:
        self._refused(reason)
        return HTTPException(status, detail, headers={"WWW-Authenticate": "Bearer"})

    def host(self, request: Request) -> None:
        """Every request: the Host header names an allowed host."""
        if self._hosts is None:
            return
        if host_name(request.headers.get("host", "")) not in self._hosts:
            self._refused("host")
            # The header's value is not echoed: it is the requester's, and not needed.
            raise HTTPException(400, "this host name is not allowed (api.allowed_hosts)")

    def check(self, request: Request, access: Access) -> None:
        if self._open:
            if access is Access.WRITE and not same_origin(request):
                self._refused("origin")
                raise HTTPException(403, "a write from another origin is refused")
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
        media_type = request.headers.get("content-type", "").partition(";")[0]
        if media_type.strip().lower() != JSON:
            raise HTTPException(415, f"send the body as Content-Type: {JSON}")
