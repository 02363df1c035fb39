"""The `api:` section of the collector's config: where the HTTP API listens, its tokens,
the host names it answers to."""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

READ_TOKEN_ENV: Final = "GREENGAUGE_API_READ_TOKEN"  # noqa: S105 - a variable name
WRITE_TOKEN_ENV: Final = "GREENGAUGE_API_WRITE_TOKEN"  # noqa: S105
MIN_TOKEN_LENGTH: Final = 16
LOOPBACK_NAMES: Final = ("localhost", "127.0.0.1", "::1")
ANY_HOST: Final = "*"
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")


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


class ApiSettings(BaseModel):
    """Off by default; `listen` on anything but loopback requires a read token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = Field(
        default="127.0.0.1:8080", description="host:port; 0.0.0.0:8080 needs read_token"
    )
    read_token: SecretStr | None = Field(
        default=None,
        description=f"bearer token for reads (default: ${READ_TOKEN_ENV}); use ${{ENV}}",
    )
    write_token: SecretStr | None = Field(
        default=None,
        description=f"bearer token for writes and reads (default: ${WRITE_TOKEN_ENV})",
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
        for name in ("read_token", "write_token"):
            token = getattr(self, name)
            if token is not None and len(token.get_secret_value()) < MIN_TOKEN_LENGTH:
                raise ValueError(f"{name}: at least {MIN_TOKEN_LENGTH} characters")
        if (
            self.read_token is not None
            and self.write_token is not None
            and self.read_token.get_secret_value() == self.write_token.get_secret_value()
        ):
            raise ValueError("read_token and write_token must differ")
        if not self.loopback and self.read_token is None:
            raise ValueError(
                f"listen {self.listen} is not loopback: set read_token (and write_token for "
                f"the production endpoint), or ${READ_TOKEN_ENV} / ${WRITE_TOKEN_ENV}"
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

    @property
    def open(self) -> bool:
        """No token configured (loopback only): every request is allowed."""
        return self.read_token is None and self.write_token is None

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)
