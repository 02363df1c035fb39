"""Real local receivers for alert notices: an HTTP server (a webhook, and DingTalk and WeCom
robots that check their signature or key as the real ones do) and an SMTP server
(aiosmtpd), with STARTTLS, SSL and login when asked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from servers import free_port

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
OK = b'{"errcode":0,"errmsg":"ok"}'


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """names in lower case"""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def dingtalk_verdict(query: dict[str, str], secret: str, now_ms: int) -> bytes:
    """What DingTalk answers a signed request: errcode 0, or 310000 when the timestamp is
    more than an hour off or the sign does not match HMAC-SHA256(secret, ts + '\\n' +
    secret) in Base64 (the query string is already URL-decoded here, as by the server)."""
    try:
        ts = int(query["timestamp"])
        given = query["sign"]
    except (KeyError, ValueError):
        return b'{"errcode":310000,"errmsg":"sign not match, missing timestamp or sign"}'
    if abs(now_ms - ts) > 3600 * 1000:
        return b'{"errcode":310000,"errmsg":"timestamp too far from now"}'
    digest = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(base64.b64encode(digest).decode(), given):
        return b'{"errcode":310000,"errmsg":"sign not match"}'
    return OK


class HttpReceiver:
    """Records every POST. Answers: the next of `script` (status, body) while any is left,
    else per path: /dingtalk/... checks the DingTalk signature against `dingtalk_secret`,
    /wecom/... the `key` against `wecom_key`, anything else 200 with errcode 0."""

    def __init__(self, dingtalk_secret: str = "", wecom_key: str = "") -> None:
        self.received: list[Received] = []
        self.script: list[tuple[int, bytes]] = []
        self.dingtalk_secret = dingtalk_secret
        self.wecom_key = wecom_key
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                receiver.received.append(
                    Received(
                        parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body
                    )
                )
                if receiver.delay:
                    time.sleep(receiver.delay)
                status, answer = receiver.answer(parts.path, query)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        if self.script:
            return self.script.pop(0)
        if path.startswith("/dingtalk"):
            return 200, dingtalk_verdict(query, self.dingtalk_secret, int(time.time() * 1000))
        if path.startswith("/wecom") and query.get("key") != self.wecom_key:
            return 200, b'{"errcode":93000,"errmsg":"invalid webhook url"}'
        return 200, OK

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def make_certificates(out: Path) -> Path:
    """The throw-away test PKI (deploy/pki): out/ca.pem, out/broker.pem (127.0.0.1)."""
    if not (out / "broker.pem").exists():
        subprocess.run(
            [str(DEPLOY / "pki/make-test-pki.sh"), str(out)], check=True, capture_output=True
        )
    return out


@dataclass
class _Mailbox:
    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, _server: SMTPServer, _session: Session, envelope: Envelope) -> str:
        data = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append((envelope, message_from_bytes(data, policy=email_policy)))
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """aiosmtpd on a free port: `security` none, starttls (required) or ssl; with
    `login` (user, password) the client must log in (over TLS)."""

    def __init__(
        self,
        certs: Path | None = None,
        security: str = "none",
        login: tuple[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.mailbox = _Mailbox()
        self.logins: list[str] = []
        context = None
        if certs is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certs / "broker.pem", certs / "broker.key")
        kwargs: dict[str, Any] = {}
        if security == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        elif security == "ssl":
            # aiosmtpd counts only STARTTLS as TLS for AUTH: the whole session is over SSL here
            kwargs.update(ssl_context=context, auth_require_tls=False)
        if login is not None:
            # PLAIN only: smtplib falls back to LOGIN after a refusal, which aiosmtpd 1.4
            # answers with a wait until the timeout
            kwargs.update(
                authenticator=self._authenticator(login),
                auth_required=True,
                auth_exclude_mechanism=["LOGIN"],
            )
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticator(self, login: tuple[str, str]) -> Any:
        def check(
            _server: SMTPServer, _session: Session, _envelope: Envelope, _mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and (
                    data.login.decode(),
                    data.password.decode(),
                )
                == login
            )
            if isinstance(data, LoginPassword):
                self.logins.append(data.login.decode())
            return AuthResult(success=ok, handled=False)

        return check

    @property
    def messages(self) -> list[tuple[Envelope, EmailMessage]]:
        return self.mailbox.messages

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._controller.stop()


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)
