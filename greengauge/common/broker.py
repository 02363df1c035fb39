"""How a program reaches the MQTT broker: URL, credentials, client id, TLS files."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from greengauge.contract.fields import Id


class BrokerSettings(BaseModel):
    """How both sides reach the MQTT broker: `mqtt://host:port` or `mqtts://host:port` (TLS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="mqtt://host[:1883] or mqtts://host[:8883]")
    username: str | None = None
    password: SecretStr | None = Field(default=None, description="use ${ENV_VAR}, never a literal")
    client_id: Id | None = Field(default=None, description="defaults to a name built from the ids")
    keepalive: int = Field(default=30, ge=5, le=3600, description="seconds")
    # TLS files, for mqtts:// only; without ca_file the system's trusted CAs are used.
    ca_file: str | None = Field(default=None, description="CA certificate(s) to trust (PEM)")
    cert_file: str | None = Field(default=None, description="client certificate (PEM)")
    key_file: str | None = Field(default=None, description="the client certificate's key (PEM)")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        # The reasons never quote the URL: it may hold a password pasted into it.
        try:
            parsed = urlsplit(value)
            port = parsed.port
        except ValueError:
            raise ValueError(
                "not a URL of the form mqtt://host[:port] (the port must be 1 to 65535)"
            ) from None
        if parsed.scheme not in ("mqtt", "mqtts"):
            raise ValueError("the scheme must be mqtt:// or mqtts://")
        if "@" in parsed.netloc:
            raise ValueError("put credentials in username / password, not in the URL")
        if not parsed.hostname:
            raise ValueError("no host name")
        if parsed.query or parsed.fragment or parsed.path not in ("", "/"):
            raise ValueError("a broker URL has no path, query or fragment ('/', '?', '#')")
        if port == 0:
            raise ValueError("port 0 is not a broker port")
        return value

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)
