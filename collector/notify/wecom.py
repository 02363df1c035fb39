"""WeCom (企业微信) group robot: the key is in the webhook URL; Markdown or text."""

from __future__ import annotations

import json
from datetime import tzinfo
from typing import Any, Final

from collector.notify import message
from collector.notify.events import Action, Notice
from collector.notify.http import HttpRequest, post
from collector.notify.settings import WeComChannel

MAX_BYTES: Final = 4096
"""WeCom refuses markdown content longer than this (UTF-8 bytes); text allows 2048."""


def _fit(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "..."


def request(channel: WeComChannel, notice: Notice, tz: tzinfo) -> HttpRequest:
    body: dict[str, Any]
    if channel.msgtype == "markdown":
        body = {
            "msgtype": "markdown",
            "markdown": {"content": _fit(message.markdown(notice, tz), MAX_BYTES)},
        }
    else:
        mention = channel.mentioned_mobile_list if notice.action is Action.RAISED else []
        body = {
            "msgtype": "text",
            "text": {
                "content": _fit(message.text(notice, tz), MAX_BYTES // 2),
                "mentioned_mobile_list": mention,
            },
        }
    return HttpRequest(
        channel.url.get_secret_value(), json.dumps(body, ensure_ascii=False).encode()
    )


def send(channel: WeComChannel, notice: Notice, tz: tzinfo) -> None:
    post(request(channel, notice, tz), channel.timeout, robot=True)
