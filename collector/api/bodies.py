"""Request bodies read with a limit enforced while reading, not after.

`Request.body()` buffers the whole body first: a 200 MB chunked upload would be held in
memory before it could be refused. Here a declared Content-Length over the limit is
refused before anything is read, and a chunked body as soon as it passes the limit. The
refusal says `Connection: close`: uvicorn would otherwise read (and discard) the rest of
the body to keep the connection alive.
"""

from __future__ import annotations

from fastapi import HTTPException, Request


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"at most {limit} bytes", headers={"Connection": "close"})


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or HTTPException 413 once it is over `limit` bytes (400: bad length)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, f"invalid Content-Length {declared[:40]!r}")
        if int(declared) > limit:
            raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)
