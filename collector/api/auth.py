"""Who may use the API: the Host it is asked for, who is asking (collector.api.principals)
and whether their role allows it, where a write comes from.

Every request must name an allowed host (settings.hosts; 400 otherwise), so a web page
whose domain is made to resolve to the collector (DNS rebinding) gets nothing. A
connection from the single sign-on proxy (api.trusted_proxy) is the user its header
names. With no token configured (allowed on loopback only, see settings) reads are let
in. A write that rests on nothing the page must send itself (no token: open, or the
proxy's cookie) is taken only from the API's own origin: a browser sends `Origin` with a
cross-site POST, and one from elsewhere gets 403. Otherwise a request without a token or
with a wrong one gets 401, a role below the route's 403 (a viewer on a write:
`read_only`, an operator on an admin route: `not_admin`). Writes take `application/json`
only (415), which a page cannot send cross-site without the browser asking first. Every
refusal but the 415 is counted by reason (the collector's metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from collector.api.principals import (
    LEGACY_ROLES,
    LOCAL,
    Principal,
    Role,
    Tokens,
    Via,
    address_in,
    role_of_groups,
    user_name,
)
from collector.api.settings import ApiSettings

JSON: Final = "application/json"
# Sec-Fetch-Site values of a request the page itself (or the user) made.
_SAME_SITE: Final = ("same-origin", "none")


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
    def __init__(
        self,
        settings: ApiSettings,
        refused: Callable[[str], None],
        denied: Callable[[Principal, Request, HTTPException], None] = lambda *_: None,
    ) -> None:
        """`refused(reason)`: every refusal, counted; `denied(who, request, refusal)`: a
        write refused to someone the API knows (kept in the audit log)."""
        legacy = [
            (token, Principal(name, LEGACY_ROLES[name], Via.LEGACY_TOKEN))
            for name, token in settings.legacy_tokens()
        ]
        users = [(u.token, Principal(u.name, u.role, Via.TOKEN)) for u in settings.users]
        self._tokens = Tokens((t.get_secret_value(), who) for t, who in [*legacy, *users])
        self._proxy = settings.trusted_proxy
        self._open = settings.open
        self._hosts = settings.hosts
        self._refused = refused
        self._denied = denied

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

    def _from_proxy(self, request: Request) -> Principal | None:
        """The user the single sign-on proxy passes, on a connection from the proxy only;
        a header from anywhere else is ignored (anyone can send it)."""
        proxy = self._proxy
        if proxy is None or not address_in(request.client and request.client.host, proxy.from_):
            return None
        given = request.headers.get(proxy.header)
        if given is None:
            return None  # e.g. a script behind the proxy with a token of its own
        name = user_name(given)
        if name is None:
            raise self._deny(401, "proxy_user", f"the proxy's {proxy.header} is not a user name")
        groups = request.headers.get(proxy.roles_header, "") if proxy.roles_header else ""
        role = role_of_groups(groups, proxy.group_roles, proxy.default_role)
        if role is None:
            raise self._deny(403, "no_role", f"{name} is in no group allowed to use the API")
        return Principal(name, role, Via.PROXY)

    def _principal(self, request: Request) -> Principal:
        who = self._from_proxy(request)
        if who is not None:
            return who
        if self._open:
            return LOCAL
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._deny(401, "missing", "a bearer token is required")
        who = self._tokens.find(token.strip())
        if who is None:
            raise self._deny(401, "invalid", "invalid token")
        return who

    def check(self, request: Request, needed: Role) -> Principal:
        """The principal making the request, if their role allows `needed`'s."""
        who = self._principal(request)
        self._allow(request, who, needed)
        return who

    def _allow(self, request: Request, who: Principal, needed: Role) -> None:
        # Without a token the browser sends what authenticates it on its own (nothing,
        # or the proxy's cookie): a write must then come from the API's own page.
        ambient = who.via in (Via.OPEN, Via.PROXY)
        if ambient and needed is not Role.VIEWER and not same_origin(request):
            self._refused("origin")
            raise HTTPException(403, "a write from another origin is refused")
        if not who.role.allows(needed):
            reason = "read_only" if who.role is Role.VIEWER else "not_admin"
            raise self._deny(
                403, reason, f"{who.name} ({who.role}) may not do this: it needs the {needed} role"
            )

    def read(self, request: Request) -> Principal:
        return self.check(request, Role.VIEWER)

    def admin(self, request: Request) -> Principal:
        return self.check(request, Role.ADMIN)

    def write(self, request: Request) -> Principal:
        """An operator's (or admin's) write, as JSON."""
        who = self._principal(request)  # unknown (401): nobody to name in the audit log
        try:
            self._allow(request, who, Role.OPERATOR)
        except HTTPException as exc:
            self._denied(who, request, exc)
            raise
        media_type = request.headers.get("content-type", "").partition(";")[0]
        if media_type.strip().lower() != JSON:
            raise HTTPException(415, f"send the body as Content-Type: {JSON}")
        return who
