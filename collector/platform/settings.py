"""`platform:` in the collector config: the provincial energy online-monitoring platform
(README "Provincial energy online-monitoring platform")."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from collector.plant import AccountingConfig, Carrier
from collector.platform.catalogue import catalogue
from collector.platform.indicators import Codes
from greengauge.contract import Id

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
# GB 32100-2015 unified social credit code: 18 characters, no I, O, S, V, Z.
_USCC = r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpsJson(_Model):
    """The default transport: each period's indicators POSTed as JSON."""

    kind: Literal["https_json"]
    url: SecretStr = Field(description="https:// (http:// only to loopback, for a local relay)")
    token: SecretStr | None = Field(
        default=None, description="sent as 'Authorization: Bearer ...'; use ${PLATFORM_TOKEN}"
    )
    timeout: float = Field(default=30.0, gt=0, le=300, description="seconds per attempt")

    @field_validator("url")
    @classmethod
    def _https(cls, value: SecretStr) -> SecretStr:
        # The URL may hold a key: checked without echoing it.
        parts = urlsplit(value.get_secret_value())
        if parts.scheme == "https" and parts.hostname:
            return value
        if parts.scheme == "http" and parts.hostname in _LOOPBACK:
            return value
        raise ValueError("must be an https:// URL (http:// only to 127.0.0.1, ::1, localhost)")


class Plugin(_Model):
    """A province's own format: a factory `module:callable` taking `options` and returning
    a transport (collector.platform.transport.Transport)."""

    kind: Literal["plugin"]
    factory: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="module:callable")
    options: dict[str, Any] = Field(default_factory=dict)


class SiteCodes(_Model):
    unit_code: str = Field(pattern=_USCC, description="the unit's 统一社会信用代码")
    indicators: dict[str, str] = Field(
        default_factory=dict,
        description="platform code by indicator key, or key:carrier / key:line / key:meter",
    )
    carriers: dict[Carrier, str] = Field(default_factory=dict)
    output_value: dict[str, float] = Field(
        default_factory=dict, description="gross industrial output value, CNY per 'YYYY-MM'"
    )

    @field_validator("indicators")
    @classmethod
    def _known(cls, value: dict[str, str]) -> dict[str, str]:
        keys = {x.key for x in catalogue().indicators}
        for name, code in value.items():
            if name.split(":", 1)[0] not in keys:
                raise ValueError(f"{name!r}: not an indicator of the catalogue {sorted(keys)}")
            if not code.strip():
                raise ValueError(f"{name!r}: empty code")
        return value

    @field_validator("output_value")
    @classmethod
    def _months(cls, value: dict[str, float]) -> dict[str, float]:
        for month, cny in value.items():
            if not _MONTH.match(month) or not cny > 0:
                raise ValueError(f"{month}: give 'YYYY-MM': positive CNY")
        return value

    def codes(self) -> Codes:
        return Codes(self.unit_code, dict(self.indicators), dict(self.carriers))


class PlatformSettings(_Model):
    sites: dict[Id, SiteCodes] = Field(min_length=1, description="the sites uploaded")
    transport: Annotated[HttpsJson | Plugin, Field(discriminator="kind")]
    slot_minutes: Literal[15, 30, 60] = Field(
        default=15, description="real-time indicators: every 15 minutes, relaxable to 30 or 60"
    )
    attempts: int = Field(default=5, ge=1, le=20, description="tries per upload")
    backoff: float = Field(default=2.0, gt=0, le=600, description="seconds before the 2nd try")
    backoff_ceiling: float = Field(default=300.0, gt=0, le=3600)
    schedule: bool = Field(
        default=False, description="upload from the running collector (slots, days, months)"
    )
    settle: float = Field(
        default=300.0,
        ge=0,
        le=86400,
        description="seconds after a period ends before it is uploaded (late readings)",
    )

    @model_validator(mode="after")
    def _ceiling(self) -> PlatformSettings:
        if self.backoff_ceiling < self.backoff:
            raise ValueError("backoff_ceiling: below backoff")
        return self

    def check(self, accounting: AccountingConfig | None) -> None:
        """Every site, carrier and line named must be in the plant model."""
        if accounting is None:
            raise ValueError("platform: needs the accounting section (the plant model)")
        for site_id, given in self.sites.items():
            site = accounting.site(site_id)
            if site is None:
                known = [s.id for s in accounting.sites]
                raise ValueError(f"platform.sites.{site_id}: not a site of the plant model {known}")
            names = {c.value for c in Carrier} | {x.id for x in site.lines}
            names |= {m.id for m in site.meters}
            for name in given.indicators:
                _key, _sep, of = name.partition(":")
                if of and of not in names:
                    raise ValueError(
                        f"platform.sites.{site_id}.indicators.{name}: {of!r} is not a "
                        f"carrier, line or meter of the site"
                    )
