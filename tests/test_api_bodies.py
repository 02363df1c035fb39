"""The API refuses an oversized body while reading it, through a real uvicorn server: a
200 MB chunked upload is cut off after about the limit, not buffered and then refused."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from servers import free_port
from test_api import SITE, WRITE, make_rig, tokens

from collector.api.app import MAX_BODY

READ_ONLY = "read-token-0123456789"
BODY = 200 * 1024 * 1024
CHUNK = 64 * 1024
# What may pass before the refusal arrives: the limit, uvicorn's read-ahead and the
# loopback socket buffers (a few MB at most), far below the body.
SENT_AT_MOST = 8 * 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    rig = make_rig(tmp_path, tokens(READ_ONLY, WRITE))
    port = free_port()
    config = uvicorn.Config(
        rig.client.app, host="127.0.0.1", port=port, log_config=None, lifespan="off"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(10)
        rig.client.close()
        rig.accounting.close()
        rig.store.close()


def test_a_chunked_body_over_the_limit_is_cut_off_while_streaming(server: str) -> None:
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        chunk = b" " * CHUNK
        while sent < BODY:
            sent += CHUNK
            yield chunk

    url = f"{server}/api/v1/sites/{SITE}/production"
    headers = {"Authorization": f"Bearer {WRITE}", "Content-Type": "application/json"}
    try:
        response = httpx.post(url, content=body(), headers=headers, timeout=30)
    except httpx.TransportError:
        pass  # the server closed the connection while the client was still sending
    else:
        assert response.status_code == 413, response.text
    assert sent <= SENT_AT_MOST, f"{sent} bytes sent before the server stopped reading"


def test_a_declared_length_over_the_limit_is_refused_before_the_body(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    request = (
        f"POST /api/v1/sites/{SITE}/production HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {WRITE}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {BODY}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request.encode())  # and not one byte of the body
        # The answer may come in more than one segment; the server closes after it.
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
        answer = b"".join(chunks).decode()
    assert answer.startswith("HTTP/1.1 413"), answer
    assert f"at most {MAX_BODY} bytes" in answer


def test_a_body_within_the_limit_still_reaches_the_validation(server: str) -> None:
    response = httpx.post(
        f"{server}/api/v1/sites/{SITE}/production",
        content=iter([b"{", b"}"]),
        headers={"Authorization": f"Bearer {WRITE}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 422, response.text
