"""Who is asking the API, and what their role lets them do.

A principal is a named user with a role: from a bearer token (`api.users`, or the legacy
`read_token` / `write_token`, which stand for a viewer and an operator), or from the
plant's single sign-on proxy (`api.trusted_proxy`), which passes the user and their
groups in headers. Roles are ranked: a viewer reads; an operator also acknowledges
alerts, records meter swaps and posts production; an admin also reads the audit log.

Tokens are kept only as SHA-256 digests (a token is a long random secret, so a plain
digest is enough: nothing to brute-force) and a lookup compares the given token's digest
with every known one in constant time, so neither the answer's time nor a memory dump
tells a token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANK: Final = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class Via(StrEnum):
    """How a principal was recognised (kept in the audit log)."""

    TOKEN = "token"  # noqa: S105 - a name, not a secret
    LEGACY_TOKEN = "legacy_token"  # noqa: S105
    PROXY = "proxy"
    OPEN = "open"
    """No tokens configured (loopback only): everyone is the local admin."""


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    via: Via


LOCAL: Final = Principal("local", Role.ADMIN, Via.OPEN)
LEGACY_READER: Final = "read_token"
LEGACY_WRITER: Final = "write_token"
LEGACY_ROLES: Final = {LEGACY_READER: Role.VIEWER, LEGACY_WRITER: Role.OPERATOR}
MAX_USER_LENGTH: Final = 100


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Tokens:
    """Bearer tokens by digest, each naming its principal."""

    def __init__(self, entries: Iterable[tuple[str, Principal]]) -> None:
        self._entries = [(_digest(token), who) for token, who in entries]

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, token: str) -> Principal | None:
        given = _digest(token)
        found: Principal | None = None
        # Every entry is compared, the match or not: the time does not say which matched.
        for digest, who in self._entries:
            if hmac.compare_digest(given, digest):
                found = who
        return found


def user_name(value: str) -> str | None:
    """A user name as a proxy header gives it, stripped; None when empty, too long or
    holding control characters (it is shown on the page and kept in the audit log)."""
    name = value.strip()
    if not name or len(name) > MAX_USER_LENGTH:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return None
    return name


def role_of_groups(groups: str, mapping: Mapping[str, Role], default: Role | None) -> Role | None:
    """The highest role any of the comma- or space-separated groups maps to; `default`
    when none does."""
    found = [mapping[g] for g in groups.replace(",", " ").split() if g in mapping]
    return max(found, key=lambda r: r.rank) if found else default


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_in(host: str | None, networks: Iterable[Network]) -> bool:
    """Whether the peer address (as the server saw it) is in one of the networks."""
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in networks)
