"""Private TLS 1.3 engine for QUIC (RFC 8446 subset, RFC 9001).

Not a general TLS stack: it exchanges handshake messages as CRYPTO bytes per encryption
level and hands traffic secrets to QUIC.  Modules: ``suites`` (cipher suites, HKDF),
``extensions`` and ``messages`` (codecs), ``key_schedule``, ``key_exchange``, ``config``
(``TlsConfiguration``, ``ClientHelloSpec``), ``handshake`` (``Handshake`` and the state
table), ``client`` / ``server`` / ``common`` (the flows), ``verify``, ``tickets``,
``keylog``, ``alerts``.
"""
