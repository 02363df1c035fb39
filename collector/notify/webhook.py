"""A generic webhook: the notice as JSON, signed with HMAC-SHA256 when a secret is set."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

from collector.notify.events import Notice
from collector.notify.http import HttpRequest, post
from collector.notify.settings import WebhookChannel

SIGNATURE = "X-GreenGauge-Signature"
TIMESTAMP = "X-GreenGauge-Timestamp"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of '<timestamp>.<body>': the timestamp is signed too, so a receiver
    can refuse an old request replayed."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def request(channel: WebhookChannel, notice: Notice, now: datetime) -> HttpRequest:
    body = json.dumps(notice.as_json(), ensure_ascii=False, sort_keys=True).encode()
    headers = dict(channel.headers)
    if channel.secret is not None:
        timestamp = int(now.timestamp())
        headers[TIMESTAMP] = str(timestamp)
        headers[SIGNATURE] = signature(channel.secret.get_secret_value(), timestamp, body)
    return HttpRequest(channel.url.get_secret_value(), body, headers)


def send(channel: WebhookChannel, notice: Notice, now: datetime) -> None:
    post(request(channel, notice, now), channel.timeout)
