"""`notify:` in the collector config: channels, routes, quiet hours, the delivery queue."""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from collector.notify.events import Action, Severity

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: SecretStr) -> SecretStr:
    # The URL itself is a credential for the robots (their token or key is in it): kept
    # secret, so it is checked here without being echoed in the error.
    if not value.get_secret_value().startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


class _Channel(_Model):
    timeout: float = Field(default=10.0, gt=0, le=120, description="seconds per attempt")


class WebhookChannel(_Channel):
    type: Literal["webhook"]
    url: SecretStr = Field(
        description="http(s) URL the JSON is POSTed to (${ENV} if it holds a token)"
    )
    secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key: the body is signed in X-GreenGauge-Signature "
        "(sha256=<hex> of '<timestamp>.<body>', timestamp in X-GreenGauge-Timestamp)",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="added to each request")

    _url = field_validator("url")(_http_url)


class Security(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    SSL = "ssl"


class EmailChannel(_Channel):
    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535, description="default 25 / 587 / 465")
    security: Security = Security.STARTTLS
    username: str | None = None
    password: SecretStr | None = Field(default=None, description="use ${SMTP_PASSWORD}")
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="the From address")
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    ca_file: str | None = Field(default=None, description="CA to verify the server with")

    @property
    def effective_port(self) -> int:
        default = {Security.NONE: 25, Security.STARTTLS: 587, Security.SSL: 465}
        return self.port or default[self.security]

    @model_validator(mode="after")
    def _login(self) -> EmailChannel:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


class DingTalkChannel(_Channel):
    type: Literal["dingtalk"]
    url: SecretStr = Field(
        description="the robot's webhook, https://oapi.dingtalk.com/robot/send?access_token=..."
    )
    secret: SecretStr | None = Field(
        default=None, description="the robot's signing secret (SEC...), if 加签 is on"
    )
    at_mobiles: list[str] = Field(default_factory=list, description="mobiles to @ when raised")

    _url = field_validator("url")(_http_url)


class WeComChannel(_Channel):
    type: Literal["wecom"]
    url: SecretStr = Field(
        description="the group robot's webhook, https://qyapi.weixin.qq.com/cgi-bin/webhook/"
        "send?key=..."
    )
    msgtype: Literal["markdown", "text"] = "markdown"
    mentioned_mobile_list: list[str] = Field(
        default_factory=list, description="mobiles to @ (text messages only)"
    )

    _url = field_validator("url")(_http_url)


Channel = Annotated[
    WebhookChannel | EmailChannel | DingTalkChannel | WeComChannel, Field(discriminator="type")
]


class QuietHours(_Model):
    start: time = Field(description="local time of the site, e.g. 22:00")
    end: time = Field(description="e.g. 07:00 (may be the next day)")
    bypass: list[Severity] = Field(
        default_factory=lambda: [Severity.CRITICAL],
        description="severities delivered even in quiet hours",
    )


class Route(_Model):
    sites: list[str] = Field(default_factory=list, description="empty: every site")
    min_severity: Severity = Severity.INFO
    actions: list[Action] = Field(
        default_factory=lambda: [Action.RAISED, Action.CLEARED, Action.ACKNOWLEDGED]
    )
    channels: list[str] = Field(min_length=1)
    quiet_hours: QuietHours | None = Field(
        default=None, description="held back (counted, logged) in these hours"
    )


class NotifySettings(_Model):
    channels: dict[Annotated[str, Field(pattern=_NAME)], Channel] = Field(min_length=1)
    routes: list[Route] = Field(min_length=1)
    timezone: str = Field(
        default="Asia/Shanghai",
        description="local time of sites the plant model does not name (quiet hours, texts)",
    )
    intensity_severity: Severity = Field(
        default=Severity.WARNING,
        description="severity of the intensity alerts (the other kinds set their own)",
    )
    queue_size: int = Field(
        default=1000, ge=1, le=1_000_000, description="deliveries waiting; more are dropped"
    )
    attempts: int = Field(default=5, ge=1, le=100, description="per delivery, the first included")
    retry_start: float = Field(default=2.0, gt=0, le=3600, description="seconds, then doubled")
    retry_ceiling: float = Field(default=300.0, gt=0, le=86400, description="longest wait")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _known_channels(self) -> NotifySettings:
        for i, route in enumerate(self.routes):
            for name in route.channels:
                if name not in self.channels:
                    raise ValueError(
                        f"routes[{i}].channels: no channel {name!r} "
                        f"(channels: {', '.join(sorted(self.channels))})"
                    )
        return self
