"""The `api:` section of the collector's config: where the HTTP API listens, who may use
it (named users with roles, the legacy shared tokens, a single sign-on proxy), the host
names it answers to, how long its audit log is kept."""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from collector.api.principals import LEGACY_READER, LEGACY_WRITER, Network, Role

READ_TOKEN_ENV: Final = "GREENGAUGE_API_READ_TOKEN"  # noqa: S105 - a variable name
WRITE_TOKEN_ENV: Final = "GREENGAUGE_API_WRITE_TOKEN"  # noqa: S105
MIN_TOKEN_LENGTH: Final = 16
LOOPBACK_NAMES: Final = ("localhost", "127.0.0.1", "::1")
ANY_HOST: Final = "*"
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")
# An HTTP header name (RFC 9110 token).
_HEADER_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def split_listen(value: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' as (host, port); ValueError when it is neither."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: give host:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080")
    return host.strip("[]"), int(port)


def _host_name(name: str) -> bool:
    """A host name, an IPv4 address or an IPv6 one (brackets optional)."""
    if ":" not in name:
        return bool(_NAME_RE.fullmatch(name))
    try:
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]")).version == 6
    except ValueError:
        return False


def is_unspecified(host: str) -> bool:
    """0.0.0.0 or ::, listening on every address."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume reachable from elsewhere


class UserSettings(BaseModel):
    """One named user of the API: the audit log says who did what by this name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="e.g. li.wei or mes")
    role: Role = Field(description="viewer (reads), operator (also writes), admin (also audit)")
    token: SecretStr = Field(description="bearer token, at least 16 characters; use ${ENV}")

    @field_validator("name")
    @classmethod
    def _not_legacy(cls, value: str) -> str:
        if value in (LEGACY_READER, LEGACY_WRITER):
            raise ValueError(f"{value!r} names the legacy token: choose another name")
        return value


class TrustedProxySettings(BaseModel):
    """A reverse proxy doing the plant's single sign-on in front of the API, passing the
    signed-in user (and their groups) in headers. Only honoured on a connection from one
    of `from`: the proxy must be the only way to those addresses, and must set (not pass
    on) these headers."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    header: str = Field(default="X-Forwarded-User", description="the user's name")
    roles_header: str | None = Field(
        default="X-Forwarded-Groups",
        description="the user's groups, comma- or space-separated; null: every user gets "
        "default_role",
    )
    roles: dict[str, Role] = Field(
        default_factory=dict,
        description="group -> role (the highest of the user's groups counts); empty: "
        "groups named viewer, operator or admin",
    )
    default_role: Role | None = Field(
        default=Role.VIEWER,
        description="role of a user in none of the groups; null: such a user is refused",
    )
    from_: list[Network] = Field(
        alias="from",
        min_length=1,
        description="the proxy's addresses (CIDR), e.g. [127.0.0.1/32]",
    )

    @field_validator("header", "roles_header")
    @classmethod
    def _header(cls, value: str | None) -> str | None:
        if value is not None and not _HEADER_RE.fullmatch(value):
            raise ValueError(f"{value!r}: not an HTTP header name")
        return value

    @field_validator("from_")
    @classmethod
    def _networks(cls, value: list[Network]) -> list[Network]:
        for net in value:
            if net.prefixlen == 0:
                raise ValueError(f"{net}: would trust every address; give the proxy's")
        return value

    @property
    def group_roles(self) -> dict[str, Role]:
        return dict(self.roles) or {role.value: role for role in Role}


class ApiSettings(BaseModel):
    """Off by default; `listen` on anything but loopback requires a read token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = Field(
        default="127.0.0.1:8080", description="host:port; 0.0.0.0:8080 needs read_token"
    )
    read_token: SecretStr | None = Field(
        default=None,
        description=f"legacy: one shared viewer token (default: ${READ_TOKEN_ENV}); prefer users",
    )
    write_token: SecretStr | None = Field(
        default=None,
        description=f"legacy: one shared operator token (default: ${WRITE_TOKEN_ENV}); "
        "prefer users",
    )
    users: list[UserSettings] = Field(
        default_factory=list,
        description="named users with a role and a bearer token each",
    )
    trusted_proxy: TrustedProxySettings | None = Field(
        default=None, description="a single sign-on reverse proxy passing the user"
    )
    audit_days: int = Field(
        default=400, ge=1, le=3650, description="days the audit log (data_dir) keeps a write"
    )
    allowed_hosts: list[str] | None = Field(
        default=None,
        description="host names (or addresses) the API answers to, as the Host header "
        "names them, '*' for any; default: localhost, 127.0.0.1, ::1 and the listen host "
        "(any when listening on every address, which needs tokens). Keeps DNS rebinding out.",
    )
    summary_interval: float = Field(
        default=2.0, gt=0, le=60, description="seconds between intensity updates on the stream"
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            if name != ANY_HOST and not _host_name(name):
                raise ValueError(
                    f"{name!r}: give a host name or address without scheme or port, or '*'"
                )
        return value

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: object) -> object:
        if isinstance(data, dict):
            data = dict(data)
            for name, env in (("read_token", READ_TOKEN_ENV), ("write_token", WRITE_TOKEN_ENV)):
                if data.get(name) in (None, "") and os.environ.get(env):
                    data[name] = os.environ[env]
        return data

    @model_validator(mode="after")
    def _tokens(self) -> ApiSettings:
        named = self.tokens()
        for name, token in named:
            if len(token) < MIN_TOKEN_LENGTH:
                raise ValueError(f"{name}: at least {MIN_TOKEN_LENGTH} characters")
        if (
            self.read_token is not None
            and self.write_token is not None
            and self.read_token.get_secret_value() == self.write_token.get_secret_value()
        ):
            raise ValueError("read_token and write_token must differ")
        _unique([u.name for u in self.users], "users: the name {} is given twice")
        _unique([t for _, t in named], "users: two users (or a legacy token) share a token")
        if not self.loopback and self.open:
            raise ValueError(
                f"listen {self.listen} is not loopback: set read_token (and write_token for "
                f"the production endpoint), or ${READ_TOKEN_ENV} / ${WRITE_TOKEN_ENV}, or users, "
                "or trusted_proxy"
            )
        if self.open and self.hosts is None:
            raise ValueError(
                "allowed_hosts '*' without tokens would let any web page the operator opens "
                f"read the API (DNS rebinding): set read_token, or ${READ_TOKEN_ENV}"
            )
        return self

    @property
    def hosts(self) -> frozenset[str] | None:
        """The host names (lower case) a request's Host header may name; None for any."""
        if self.allowed_hosts is not None:
            names = self.allowed_hosts
        elif is_unspecified(self.host):
            return None
        else:
            names = [*LOOPBACK_NAMES, self.host]
        if ANY_HOST in names:
            return None
        return frozenset(name.strip("[]").lower() for name in names)

    def legacy_tokens(self) -> list[tuple[str, SecretStr]]:
        """The shared tokens set, by setting name (read_token, write_token)."""
        pairs = ((LEGACY_READER, self.read_token), (LEGACY_WRITER, self.write_token))
        return [(name, token) for name, token in pairs if token is not None]

    def tokens(self) -> list[tuple[str, str]]:
        """Every configured token, as (where it is set, the token)."""
        legacy = [(name, token.get_secret_value()) for name, token in self.legacy_tokens()]
        users = [(f"users: {u.name}: token", u.token.get_secret_value()) for u in self.users]
        return legacy + users

    @property
    def open(self) -> bool:
        """No token nor proxy configured (loopback only): every request is allowed."""
        return not self.tokens() and self.trusted_proxy is None

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def _unique(values: list[str], message: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            # The value is not named when it is a secret: the message says which kind.
            raise ValueError(message.format(value))
        seen.add(value)
