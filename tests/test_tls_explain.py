"""What a failed TLS connection to the broker is logged as: the broker's certificate not
trusted, or the broker's alert about the client's certificate, in plain words, the
library's text kept."""

from __future__ import annotations

import pytest

from greengauge.common.broker import BrokerSettings
from greengauge.common.tls import explain

BROKER = "broker.example:8883"


def settings(cert: bool) -> BrokerSettings:
    files = {"cert_file": "/etc/gg/gw.pem", "key_file": "/etc/gg/gw.key"} if cert else {}
    return BrokerSettings.model_validate(
        {"url": f"mqtts://{BROKER}", "ca_file": "/etc/gg/ca.pem", **files}
    )


def openssl(alert: str) -> str:
    return f"failed to receive on socket: [SSL: {alert}] {alert.lower()} (_ssl.c:2580)"


@pytest.mark.parametrize(
    ("reason", "cert", "meaning"),
    [
        (
            openssl("TLSV13_ALERT_CERTIFICATE_REQUIRED"),
            False,
            "(alert 'certificate required'): it requires a client certificate, and none is "
            "configured (mqtt.cert_file, mqtt.key_file)",
        ),
        (
            openssl("SSLV3_ALERT_HANDSHAKE_FAILURE"),
            False,
            "(alert 'handshake failure'): it requires a client certificate, and none is configured",
        ),
        (
            openssl("TLSV13_ALERT_CERTIFICATE_REQUIRED"),
            True,
            "it requires a client certificate and did not accept the client certificate "
            "/etc/gg/gw.pem",
        ),
        (
            openssl("TLSV1_ALERT_UNKNOWN_CA"),
            True,
            "(alert 'unknown ca'): it refused the client certificate /etc/gg/gw.pem: it must be "
            "signed by a CA the broker trusts",
        ),
        (
            openssl("SSLV3_ALERT_BAD_CERTIFICATE"),
            True,
            "(alert 'bad certificate'): it refused the client certificate /etc/gg/gw.pem",
        ),
        (
            openssl("SSLV3_ALERT_CERTIFICATE_EXPIRED"),
            True,
            "(alert 'certificate expired'): it refused the client certificate",
        ),
        (
            openssl("TLSV1_ALERT_PROTOCOL_VERSION"),
            True,
            "(alert 'protocol version'): see the broker's log for why",
        ),
    ],
)
def test_a_tls_alert_from_the_broker_says_what_it_means(
    reason: str, cert: bool, meaning: str
) -> None:
    text = explain(reason, settings(cert))
    assert text.startswith(f"TLS refused by broker {BROKER} ")
    assert meaning in text
    assert text.endswith(f"({reason})")


def test_an_untrusted_broker_certificate_names_the_ca_file() -> None:
    reason = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed (_ssl.c:1006)"
    text = explain(reason, settings(cert=True))
    assert text.startswith(
        f"TLS certificate verification failed: the certificate of broker {BROKER}"
    )
    assert "not trusted by CA file /etc/gg/ca.pem" in text


@pytest.mark.parametrize("reason", ["Operation timed out", "[Errno 111] Connection refused", ""])
def test_other_reasons_are_kept_as_they_are(reason: str) -> None:
    assert explain(reason, settings(cert=False)) == reason


def test_a_connection_closed_before_the_connack_hints_at_a_missing_certificate() -> None:
    reason = (
        "the broker closed the connection before accepting it: failed to receive on socket: "
        "EOF occurred in violation of protocol (_ssl.c:2427)"
    )
    assert explain(reason, settings(cert=False)) == (
        f"{reason}; if broker {BROKER} requires client certificates, none is configured "
        "(mqtt.cert_file, mqtt.key_file)"
    )
    assert explain(reason, settings(cert=True)) == reason
