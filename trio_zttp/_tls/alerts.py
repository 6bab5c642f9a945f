"""TLS alerts (RFC 8446 §6) and the one exception the engine raises on failure.

QUIC never sends TLS alert records: a failed handshake closes the connection with
CRYPTO_ERROR 0x0100 + the alert number (RFC 9001 §4.8).
"""

from __future__ import annotations

import enum

__all__ = ["AlertDescription", "AlertError"]


class AlertDescription(enum.IntEnum):
    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    record_overflow = 22
    handshake_failure = 40
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    missing_extension = 109
    unsupported_extension = 110
    unrecognized_name = 112
    bad_certificate_status_response = 113
    unknown_psk_identity = 115
    certificate_required = 116
    no_application_protocol = 120


class AlertError(Exception):
    """The handshake failed; ``description`` is the alert to report to the peer."""

    def __init__(self, description: AlertDescription, reason: str = "") -> None:
        super().__init__(f"{description.name}: {reason}" if reason else description.name)
        self.description = description
        self.reason = reason
