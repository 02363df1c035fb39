"""One HTTP POST of JSON, and the robots' answer checked (they say 200 for most errors)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Final

MAX_ANSWER: Final = 64 * 1024


class DeliveryError(Exception):
    """Why a delivery failed, safe to log and print: never the URL, a token or a password."""

    def __init__(self, reason: str, retry: bool = True) -> None:
        super().__init__(reason)
        self.retry = retry
        """False when sending it again cannot help (refused as malformed, bad credentials)."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def post(request: HttpRequest, timeout: float, robot: bool = False) -> bytes:
    """POST it; DeliveryError unless the answer is 2xx (and, for a robot, errcode 0). The
    answer's first MAX_ANSWER bytes (kept by the platform uploader's record)."""
    headers = {"Content-Type": "application/json; charset=utf-8", **request.headers}
    # http(s) only: the config checks the scheme
    http = urllib.request.Request(request.url, request.body, headers, method="POST")  # noqa: S310
    context = ssl.create_default_context()
    try:
        with urllib.request.urlopen(http, timeout=timeout, context=context) as answer:  # noqa: S310
            text: bytes = answer.read(MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        # 4xx but 408/429: the request itself is refused; sending it again will not help
        retry = exc.code >= 500 or exc.code in (408, 429)
        raise DeliveryError(f"HTTP {exc.code} {exc.reason}", retry) from None
    except urllib.error.URLError as exc:
        raise DeliveryError(f"cannot connect: {exc.reason}") from None
    except (TimeoutError, OSError) as exc:
        raise DeliveryError(f"cannot connect: {exc}") from None
    except ValueError:  # http.client.InvalidURL and the like: their text holds the URL
        raise DeliveryError("invalid URL (see the channel's url)", retry=False) from None
    if robot:
        _check_robot(text)
    return text


def _check_robot(text: bytes) -> None:
    """DingTalk and WeCom answer {"errcode": 0, "errmsg": "ok"}; anything else is refused."""
    try:
        answer = json.loads(text)
    except ValueError:
        raise DeliveryError("the robot's answer is not JSON") from None
    code = answer.get("errcode") if isinstance(answer, dict) else None
    if code != 0:
        message = str(answer.get("errmsg", "")) if isinstance(answer, dict) else ""
        # e.g. 310000 (signature or keyword refused), 93000 (invalid key): not transient,
        # but for the rate limits (DingTalk 130101, WeCom 45009)
        raise DeliveryError(
            f"robot refused it: errcode {code} {message[:200]}".rstrip(), code in (130101, 45009)
        )
