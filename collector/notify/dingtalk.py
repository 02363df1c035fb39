"""DingTalk (钉钉) custom robot: Markdown, with the robot's signature when it has a secret.

Its signing ("加签"): HMAC-SHA256 keyed by the secret over '<timestamp ms>\\n<secret>',
Base64, then URL-encoded, sent as the `timestamp` and `sign` query parameters; DingTalk
refuses a timestamp more than an hour from its clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, tzinfo
from urllib.parse import quote_plus

from collector.notify import message
from collector.notify.events import Action, Notice
from collector.notify.http import HttpRequest, post
from collector.notify.settings import DingTalkChannel


def sign(secret: str, timestamp_ms: int) -> str:
    """The signature, Base64 (not yet URL-encoded)."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={quote_plus(sign(secret, timestamp_ms))}"


def request(channel: DingTalkChannel, notice: Notice, tz: tzinfo, now: datetime) -> HttpRequest:
    mention = notice.action is Action.RAISED and channel.at_mobiles
    text = message.markdown(notice, tz)
    if mention:
        # DingTalk only notifies the people whose @mobile is also in the text
        text += "\n\n" + " ".join(f"@{m}" for m in channel.at_mobiles)
    body = {
        "msgtype": "markdown",
        "markdown": {"title": message.subject(notice), "text": text},
        "at": {"atMobiles": channel.at_mobiles if mention else [], "isAtAll": False},
    }
    url = channel.url.get_secret_value()
    if channel.secret is not None:
        url = signed_url(url, channel.secret.get_secret_value(), int(now.timestamp() * 1000))
    return HttpRequest(url, json.dumps(body, ensure_ascii=False).encode())


def send(channel: DingTalkChannel, notice: Notice, tz: tzinfo, now: datetime) -> None:
    post(request(channel, notice, tz, now), channel.timeout, robot=True)
