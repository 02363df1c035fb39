"""How a period's indicators reach the provincial platform: a transport. The default POSTs
GreenGauge's JSON over HTTPS; a province with its own format (XML, its own JSON, a signed
envelope) is a plug-in: a factory named in the config (`platform.transport.factory`,
"module:callable") that takes the configured options and returns a Transport."""

from __future__ import annotations

import importlib
import json
from typing import Any, Protocol, runtime_checkable

from collector.notify.http import DeliveryError, HttpRequest, post
from collector.platform.settings import HttpsJson, Plugin
from collector.reports.render import json_safe

__all__ = ["DeliveryError", "HttpsJsonTransport", "Transport", "open_transport"]


@runtime_checkable
class Transport(Protocol):
    """Sends one period's indicators (collector.platform.indicators.compute's dict)."""

    name: str

    def send(self, upload: dict[str, Any]) -> str:
        """The platform's answer, kept in the upload record; DeliveryError when it was not
        taken (retry=False when sending it again cannot help)."""
        ...


def body(upload: dict[str, Any]) -> bytes:
    """The default JSON: the indicators as computed, NaN and infinity as null."""
    return json.dumps(json_safe(upload), ensure_ascii=False, allow_nan=False).encode("utf-8")


class HttpsJsonTransport:
    name = "https_json"

    def __init__(self, settings: HttpsJson) -> None:
        self.settings = settings

    def send(self, upload: dict[str, Any]) -> str:
        headers = {"X-GreenGauge-Period": f"{upload['period']}:{upload['label']}"}
        if self.settings.token is not None:
            headers["Authorization"] = f"Bearer {self.settings.token.get_secret_value()}"
        request = HttpRequest(self.settings.url.get_secret_value(), body(upload), headers)
        return post(request, self.settings.timeout).decode("utf-8", "replace")


def open_transport(settings: HttpsJson | Plugin) -> Transport:
    """The configured transport; ValueError naming the plug-in when it cannot be made."""
    if isinstance(settings, HttpsJson):
        return HttpsJsonTransport(settings)
    module_name, _, attribute = settings.factory.partition(":")
    where = f"platform.transport.factory {settings.factory!r}"
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except ImportError as exc:
        raise ValueError(f"{where}: cannot import {module_name}: {exc}") from None
    except AttributeError:
        raise ValueError(f"{where}: {module_name} has no {attribute}") from None
    try:
        transport = factory(dict(settings.options))
    except Exception as exc:  # a plug-in's fault, whatever it is: named with the plug-in
        raise ValueError(f"{where}: failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(transport, Transport):
        raise ValueError(f"{where}: returned {type(transport).__name__}, not a transport")
    return transport
