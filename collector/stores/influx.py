"""The InfluxDB store: line protocol over the v2 write API (InfluxDB 2.x, 3.x, VictoriaMetrics).

Writes are synchronous and tried once: the collector owns retries and backoff, so a
client that retried on its own would hide outages from it and hold a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Final, NoReturn, cast

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from collector.batch import Batch
from collector.stores import StoreError, StoreRejected
from collector.stores.lineprotocol import Point, batch_lines, point_lines, value_count
from greengauge.common.logs import fields
from greengauge.common.secrets import redact_url

log = logging.getLogger(__name__)

# 413 belongs here too: resending the same body can never fit, whatever the server's state.
_REJECTED_STATUSES: Final = frozenset({400, 413, 422})
_MAX_REASON_CHARS: Final = 1000
# The client annotates write_precision as WritePrecision, yet the members of that
# generated "enum" are plain strings; the cast only settles the annotation.
_PRECISION_MS: Final = cast(WritePrecision, WritePrecision.MS)


class InfluxStore:
    """Writes reading batches to one bucket; one write is one HTTP request."""

    def __init__(
        self,
        url: str,
        org: str,
        bucket: str,
        token: str,
        timeout: float = 10.0,
        gzip: bool = False,
    ) -> None:
        """`timeout` (seconds) bounds a whole request, connect to last byte of the answer."""
        self._url = redact_url(url)
        self._org = org
        self._bucket = bucket
        # The token lives only in the client's Authorization header, never on this object.
        # retries=False: urllib3 would otherwise retry connection errors itself.
        self._client = InfluxDBClient(
            url=url,
            token=token,
            org=org,
            timeout=round(timeout * 1000),
            enable_gzip=gzip,
            retries=False,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def __repr__(self) -> str:
        return f"InfluxStore(url={self._url!r}, org={self._org!r}, bucket={self._bucket!r})"

    __str__ = __repr__

    def write(self, batches: Sequence[Batch]) -> int:
        """Store every value of the batches; raise StoreRejected or StoreError."""
        count = value_count(batches)
        if count == 0:
            return 0
        body = batch_lines(batches)
        try:
            self._write_api.write(
                bucket=self._bucket,
                org=self._org,
                record=body,
                write_precision=_PRECISION_MS,
            )
        except ApiException as exc:
            self._raise_for_status(exc)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreError(f"cannot reach {self._url}: {exc}") from exc
        log.debug(
            "influx write",
            extra=fields(bucket=self._bucket, values=count, bytes=len(body)),
        )
        return count

    def write_points(self, points: Sequence[Point]) -> int:
        """Store derived points (energy_interval, intensity); raise StoreRejected or StoreError.

        A point written again (same measurement, tags and time) replaces the earlier one.
        """
        body = point_lines(points)
        if not body:
            return 0
        try:
            self._write_api.write(
                bucket=self._bucket, org=self._org, record=body, write_precision=_PRECISION_MS
            )
        except ApiException as exc:
            self._raise_for_status(exc)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreError(f"cannot reach {self._url}: {exc}") from exc
        return len(points)

    def retention(self) -> timedelta | None:
        """The bucket's retention as the server states it (GET /api/v2/buckets); None when
        it keeps points forever or does not say (VictoriaMetrics has no such endpoint)."""
        try:
            bucket = self._client.buckets_api().find_bucket_by_name(self._bucket)  # type: ignore[no-untyped-call]
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            log.info(
                "store retention unknown",
                extra=fields(store=self._url, bucket=self._bucket, reason=str(exc)[:200]),
            )
            return None
        rules = (bucket.retention_rules or []) if bucket is not None else []
        seconds = max((rule.every_seconds or 0 for rule in rules), default=0)
        return timedelta(seconds=seconds) if seconds > 0 else None

    def _raise_for_status(self, exc: ApiException) -> NoReturn:
        status: int = exc.status or 0
        reason = _server_message(exc)
        if status == 0:
            # The client reports TLS failures this way, before any HTTP status exists.
            raise StoreError(f"cannot reach {self._url}: {reason}") from exc
        if status in _REJECTED_STATUSES:
            raise StoreRejected(reason=f"HTTP {status}: {reason}") from exc
        if status in (401, 403):
            raise StoreError(
                f"{self._url} refused the credentials (HTTP {status}): check the token and "
                f"that it may write to bucket {self._bucket!r} of org {self._org!r}: {reason}"
            ) from exc
        if status == 404:
            raise StoreError(
                f"{self._url}: org {self._org!r} or bucket {self._bucket!r} not found "
                f"(HTTP 404): {reason}"
            ) from exc
        raise StoreError(f"{self._url} failed the write (HTTP {status}): {reason}") from exc

    def close(self) -> None:
        # influxdb-client leaves these unannotated.
        self._write_api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]


def _server_message(exc: ApiException) -> str:
    # influxdb-client already takes "message" out of an InfluxDB JSON error body and
    # falls back to the raw body (VictoriaMetrics answers plain text) or the HTTP reason.
    message = getattr(exc, "message", None) or exc.reason or "no message"
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    text = str(message).strip()
    if len(text) > _MAX_REASON_CHARS:
        text = text[:_MAX_REASON_CHARS] + "..."
    return text
