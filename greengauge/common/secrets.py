"""Secrets in configs: shown as set or not, never as their value. Pure.

Secret fields are `SecretStr` (pydantic prints them as `**********`); `redacted` also
masks any field whose name says it holds a secret, in case one is a plain string.
`redact_url` is how both programs show any URL (check output, logs, errors).
"""

from __future__ import annotations

import re
import ssl
from enum import Enum
from typing import Any, Final

from pydantic import BaseModel, SecretStr

from greengauge.common.broker import BrokerSettings
from greengauge.common.tls import ssl_context

MASK: Final = "********"
_SECRET_NAME = re.compile(r"(password|passwd|token|secret|api_key)s?$", re.IGNORECASE)
# The examples' stand-ins for a secret (deploy/.env.example): never a real one.
PLACEHOLDERS: Final = frozenset({"change-me", "changeme"})


def is_secret_name(name: str) -> bool:
    """Whether a field of this name holds a secret (password, token, ...)."""
    return bool(_SECRET_NAME.search(name))


def is_placeholder(value: str) -> bool:
    """Whether a secret is still the example's `change-me` (any case, spaces around)."""
    return value.strip().lower() in PLACEHOLDERS


# A query parameter whose name says it holds a secret (?token=..., &password=...).
_SECRET_PARAM = re.compile(
    r"([?&;][^=&;#]*(?:password|passwd|token|secret|key|auth|signature)[^=&;#]*=)[^&;#]*",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """The URL as logs and output may show it: credentials masked, the rest kept.

    Everything between `//` and the last `@` (user:password, or a token as user name,
    even one holding '/', '?' or '#') and the value of every query parameter whose name
    says it holds a secret become MASK. Never raises, whatever the text.
    """
    scheme, sep, rest = url.partition("//")
    if not sep:
        scheme, rest = "", url
    if "@" in rest:
        rest = MASK + rest[rest.rindex("@") :]
    return scheme + sep + _SECRET_PARAM.sub(lambda m: m.group(1) + MASK, rest)


def redacted(value: Any, name: str = "") -> Any:
    """Plain data (for YAML or JSON) from a model or value, every secret replaced by MASK."""
    result: Any
    if isinstance(value, SecretStr):
        result = MASK if value.get_secret_value() else ""
    elif isinstance(value, BaseModel):
        result = {key: redacted(getattr(value, key), key) for key in type(value).model_fields}
    elif isinstance(value, dict):
        result = {str(key): redacted(item, str(key)) for key, item in value.items()}
    elif isinstance(value, list | tuple | set | frozenset):
        result = [redacted(item, name) for item in value]
    elif isinstance(value, str) and value and is_secret_name(name):
        result = MASK
    elif isinstance(value, Enum):  # e.g. a StrEnum setting: its plain value, which YAML shows
        result = redacted(value.value, name)
    elif value is None or isinstance(value, bool | int | float | str):
        result = value
    else:
        result = str(value)
    return result


def broker_summary(mqtt: BrokerSettings) -> str:
    """The broker as `check` shows it: URL, user, whether a password is set, TLS files."""
    text = redact_url(mqtt.url)
    if mqtt.username:
        text += f" as {mqtt.username}"
    if mqtt.password is not None:
        text += " (password set)" if mqtt.password.get_secret_value() else " (password empty)"
    if mqtt.tls:
        text += f", CA {mqtt.ca_file or 'system'}"
        if mqtt.cert_file:
            text += f", client certificate {mqtt.cert_file}"
    return text


def tls_problems(mqtt: BrokerSettings, where: str) -> list[str]:
    """Whether the TLS files load, as config problems (`check` runs it; `run` fails later)."""
    problems = []
    if not mqtt.tls:
        for name in ("ca_file", "cert_file", "key_file"):
            if getattr(mqtt, name):
                problems.append(f"{where}: mqtt.{name}: only used with mqtts:// URLs")
        return problems
    if mqtt.key_file and not mqtt.cert_file:
        problems.append(f"{where}: mqtt.key_file: needs cert_file")
    try:
        ssl_context(mqtt)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        filename = getattr(exc, "filename", None)
        files = ", ".join(
            f"{n} {getattr(mqtt, n)}"
            for n in ("ca_file", "cert_file", "key_file")
            if getattr(mqtt, n)
        )
        problems.append(
            f"{where}: mqtt: cannot load the TLS files ({files}): "
            f"{reason}{f' ({filename})' if filename else ''}"
        )
    return problems
