"""Field-section validation and construction (RFC 9114 §4.1.2, §4.2, §4.3; RFC 9220; RFC 9110).

A decoded field section is a ``list[tuple[bytes, bytes]]`` straight from QPACK.  The
``validate_*`` functions check one against the rules for a request, a response (interim or
final), a promised request, or a trailer section, and raise :class:`MessageError`
(H3_MESSAGE_ERROR, a stream error) when it is malformed:

* names: non-empty, lowercase RFC 9110 tokens; pseudo-header fields (``:name``) only before
  regular fields, only the ones defined for the context, each at most once;
* values: no NUL, CR or LF, no leading or trailing space or tab (RFC 9113 §8.2.1 rules, which
  RFC 9114 §4.2 shares);
* connection-specific fields (connection, keep-alive, proxy-connection, transfer-encoding,
  upgrade) are forbidden; ``te`` only in a request header section and only as "trailers";
* requests need :method, :scheme and :path, except CONNECT (:authority only) and extended
  CONNECT (:protocol with :scheme, :path and :authority, allowed only when enabled); http and
  https requests need a non-empty authority (``:authority`` or ``host``, equal when both) and
  a ``/``-rooted path (``*`` for OPTIONS);
* responses carry exactly one 3-digit :status from 100 to 999, never 101 (RFC 9114 §4.5);
* Content-Length values must all be the same decimal number; :class:`ContentLengthTracker`
  checks the DATA total against it.

On success the validators return what the connection needs (:class:`RequestHead`,
:class:`ResponseHead`).  :func:`build_request_headers` / :func:`build_response_headers` make
field lists from ``str`` or ``bytes`` parts, normalised (lowercase names, ASCII, stripped values)
and validated, raising ``ValueError`` for bad arguments.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from typing import Final, final

import attrs

from ._errors import MessageError

__all__ = [
    "CONNECTION_SPECIFIC_FIELDS",
    "ContentLengthTracker",
    "HeaderInput",
    "Headers",
    "RequestHead",
    "ResponseHead",
    "build_request_headers",
    "build_response_headers",
    "expected_request_content_length",
    "expected_response_content_length",
    "normalize_headers",
    "parse_content_length",
    "validate_push_promise_headers",
    "validate_request_headers",
    "validate_response_headers",
    "validate_trailers",
]

#: A decoded field section: (name, value) pairs in wire order.
Headers = list[tuple[bytes, bytes]]
#: What the builders accept: names and values as ``str`` (ASCII) or ``bytes``.
HeaderInput = Iterable[tuple[str | bytes, str | bytes]]

#: Connection-specific fields that make an HTTP/3 message malformed (RFC 9114 §4.2,
#: RFC 9110 §7.6.1); ``te`` is handled on its own.
CONNECTION_SPECIFIC_FIELDS: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)

_TCHAR_PUNCT: Final = b"!#$%&'*+-.^_`|~"
_TOKEN: Final = (string.ascii_letters + string.digits).encode() + _TCHAR_PUNCT
_LOWER_TOKEN: Final = (string.ascii_lowercase + string.digits).encode() + _TCHAR_PUNCT
_SCHEME_REST: Final = (string.ascii_letters + string.digits + "+-.").encode()
_MAX_CONTENT_LENGTH_DIGITS: Final = 19  # below 2**63

_REQUEST_PSEUDO: Final = frozenset({b":method", b":scheme", b":authority", b":path"})
_EXTENDED_PSEUDO: Final = _REQUEST_PSEUDO | {b":protocol"}
_RESPONSE_PSEUDO: Final = frozenset({b":status"})
_NO_PSEUDO: Final[frozenset[bytes]] = frozenset()
#: Regular fields with rules of their own (the connection-specific ones are all valid tokens).
_SPECIAL_FIELDS: Final = CONNECTION_SPECIFIC_FIELDS | {b"te", b"content-length", b"host"}


@final
@attrs.frozen(kw_only=True)
class RequestHead:
    """The control data of a validated request header section."""

    #: ``:method``, e.g. ``b"GET"`` (methods are case-sensitive).
    method: bytes
    #: ``:scheme``; None for plain CONNECT.
    scheme: bytes | None
    #: ``:authority``, or the Host field when only that is present.
    authority: bytes | None
    #: ``:path``; None for plain CONNECT.
    path: bytes | None
    #: ``:protocol`` of an extended CONNECT (RFC 9220), else None.
    protocol: bytes | None
    #: The Content-Length value, if the field is present.
    content_length: int | None


@final
@attrs.frozen(kw_only=True)
class ResponseHead:
    """The control data of a validated response header section."""

    #: The ``:status`` code, 100..999 except 101.
    status: int
    #: The Content-Length value, if the field is present.
    content_length: int | None

    @property
    def interim(self) -> bool:
        """Whether this is an interim (1xx) response, to be followed by more HEADERS."""
        return self.status < 200


#: A field value with no NUL, CR or LF and no leading or trailing space or tab.
_GOOD_VALUE: Final = re.compile(rb"(?![ \t])[^\x00\r\n]*(?<![ \t])").fullmatch
#: A lowercase token (a valid regular field name).
_GOOD_NAME: Final = re.compile(rb"[a-z0-9!#$%&'*+\-.^_`|~]+").fullmatch


def _value_error(name: bytes, value: bytes) -> MessageError:
    if b"\x00" in value or b"\r" in value or b"\n" in value:
        return MessageError(f"field {name!r} has a NUL, CR or LF in its value")
    return MessageError(f"field {name!r} value has leading or trailing whitespace")


def _name_error(name: bytes) -> MessageError:
    if name.lower().translate(None, _LOWER_TOKEN):
        return MessageError(f"field name {name!r} has invalid characters")
    return MessageError(f"field name {name!r} has uppercase characters")


def _scan(
    headers: Iterable[tuple[bytes, bytes]], allowed: frozenset[bytes], allow_te: bool
) -> tuple[dict[bytes, bytes], int | None, bytes | None]:
    """One pass over a field section: ``(pseudo-header fields, content length, host)``."""
    pseudo: dict[bytes, bytes] = {}
    lengths: list[bytes] | None = None
    host: bytes | None = None
    regular = False
    good_value = _GOOD_VALUE
    for name, value in headers:
        if not good_value(value):
            raise _value_error(name, value)
        if name[:1] == b":":
            if regular:
                raise MessageError(f"pseudo-header {name!r} after a regular field")
            if name not in allowed:
                raise MessageError(f"pseudo-header {name!r} not allowed here")
            if name in pseudo:
                raise MessageError(f"pseudo-header {name!r} repeated")
            pseudo[name] = value
            continue
        regular = True
        if name in _SPECIAL_FIELDS:
            if name in CONNECTION_SPECIFIC_FIELDS:
                raise MessageError(f"connection-specific field {name!r}")
            if name == b"te":
                if not allow_te:
                    raise MessageError("te is only allowed in request header sections")
                if value.lower() != b"trailers":
                    raise MessageError(f"te value {value!r} is not 'trailers'")
            elif name == b"content-length":
                if lengths is None:
                    lengths = [value]
                else:
                    lengths.append(value)
            elif host is not None:
                raise MessageError("more than one host field")
            else:
                host = value
        elif not _GOOD_NAME(name):
            if not name:
                raise MessageError("empty field name")
            raise _name_error(name)
    return pseudo, None if lengths is None else parse_content_length(lengths), host


def parse_content_length(values: Sequence[bytes]) -> int | None:
    """The message's Content-Length from all its field values (RFC 9110 §8.6).

    Several field lines, or a comma-separated list in one, are accepted only if every
    element is the same decimal number.

    Returns:
        The length, or None when ``values`` is empty.

    Raises:
        MessageError: a non-numeric, empty or conflicting value.
    """
    result: int | None = None
    for value in values:
        for element in value.split(b","):
            element = element.strip(b" \t")
            if not element.isdigit() or len(element) > _MAX_CONTENT_LENGTH_DIGITS:
                raise MessageError(f"invalid content-length {value!r}")
            length = int(element)
            if result is not None and length != result:
                raise MessageError("conflicting content-length values")
            result = length
    return result


def _require(pseudo: dict[bytes, bytes], name: bytes) -> bytes:
    try:
        return pseudo[name]
    except KeyError:
        raise MessageError(f"missing pseudo-header {name!r}") from None


def _check_token(name: bytes, value: bytes) -> None:
    if not value or value.translate(None, _TOKEN):
        raise MessageError(f"pseudo-header {name!r} value {value!r} is not a token")


def _check_authority_form(authority: bytes) -> None:
    host, sep, port = authority.rpartition(b":")
    if not sep or not host or not port.isdigit() or b"@" in host:
        raise MessageError(f"CONNECT :authority {authority!r} is not host:port")


# --- validation results, remembered ----------------------------------------------------------
#
# Validation is a pure function of the field lines and the context, and the same sections come
# by again and again (a client's requests differ in :path at most; a server's responses are few;
# the section a builder validated is validated again by send_headers).  Valid sections are kept
# in one bounded table, keyed by context and content: a hit costs a tuple and a dict lookup.
# Malformed sections are never kept, so every rule still runs on each new section.  Sections
# with credentials are not kept (no trace of them outlives their message), nor long ones.

_REQUEST: Final = 0
_EXTENDED_REQUEST: Final = 1
_RESPONSE: Final = 2
_TRAILERS: Final = 3
_VALIDATED_ENTRIES: Final = 1024
_VALIDATED_BUDGET: Final = 256 * 1024
_VALIDATED_SECTION: Final = 4096
_UNCACHED_FIELDS: Final = frozenset({b"authorization", b"proxy-authorization", b"cookie"})

_Section = tuple[tuple[bytes, bytes], ...]
_validated: dict[tuple[int, _Section], RequestHead | ResponseHead | None] = {}
_validated_bytes = 0


def _remember(key: tuple[int, _Section], result: RequestHead | ResponseHead | None) -> None:
    global _validated_bytes
    size = 0
    for name, value in key[1]:
        if name in _UNCACHED_FIELDS:
            return
        size += len(name) + len(value)
    try:
        hash(key)
    except TypeError:
        return
    if size > _VALIDATED_SECTION:
        return
    if len(_validated) >= _VALIDATED_ENTRIES or _validated_bytes + size > _VALIDATED_BUDGET:
        _validated.clear()
        _validated_bytes = 0
    _validated[key] = result
    _validated_bytes += size


def validate_request_headers(
    headers: Iterable[tuple[bytes, bytes]], *, enable_connect_protocol: bool = False
) -> RequestHead:
    """Validate a request header section.

    Args:
        headers: The decoded field section.
        enable_connect_protocol: Whether extended CONNECT (``:protocol``, RFC 9220) is
            enabled: for a server checking a received request, the SETTINGS_ENABLE_CONNECT_
            PROTOCOL value it sent; for a client checking its own request, the server's.

    Raises:
        MessageError: the request is malformed.
    """
    key = (_EXTENDED_REQUEST if enable_connect_protocol else _REQUEST, tuple(headers))
    try:
        result = _validated.get(key)
    except TypeError:  # unhashable parts (bytearray values ...): checked, not remembered
        return _validate_request(key[1], enable_connect_protocol)
    if result is None:
        result = _validate_request(key[1], enable_connect_protocol)
        _remember(key, result)
    assert isinstance(result, RequestHead)
    return result


def _validate_request(headers: _Section, enable_connect_protocol: bool) -> RequestHead:
    pseudo, content_length, host = _scan(headers, _EXTENDED_PSEUDO, True)
    method = _require(pseudo, b":method")
    _check_token(b":method", method)
    protocol = pseudo.get(b":protocol")
    authority = pseudo.get(b":authority")
    if method == b"CONNECT" and protocol is None:
        if b":scheme" in pseudo or b":path" in pseudo:
            raise MessageError("CONNECT request with :scheme or :path")
        if authority is None:
            raise MessageError("CONNECT request without :authority")
        _check_authority_form(authority)
        if host is not None and host != authority:
            raise MessageError("host and :authority differ")
        return RequestHead(
            method=method, scheme=None, authority=authority, path=None, protocol=None,
            content_length=content_length,
        )
    if protocol is not None:
        if method != b"CONNECT":
            raise MessageError(":protocol in a request that is not CONNECT")
        if not enable_connect_protocol:
            raise MessageError("extended CONNECT (:protocol) is not enabled")
        _check_token(b":protocol", protocol)
        if authority is None:
            raise MessageError("extended CONNECT request without :authority")
    scheme = _require(pseudo, b":scheme")
    path = _require(pseudo, b":path")
    if not scheme[:1].isalpha() or scheme.translate(None, _SCHEME_REST):
        raise MessageError(f":scheme {scheme!r} is not a URI scheme")
    if authority is not None and host is not None and host != authority:
        raise MessageError("host and :authority differ")
    if scheme in (b"http", b"https"):
        effective = authority if authority is not None else host
        if not effective:
            raise MessageError(f"{scheme.decode()} request without a non-empty authority")
        if b"@" in effective:
            raise MessageError("authority with userinfo in an http(s) request")
        if not (path.startswith(b"/") or (path == b"*" and method == b"OPTIONS")):
            raise MessageError(f":path {path!r} is not an absolute path")
    return RequestHead(
        method=method,
        scheme=scheme,
        authority=authority if authority is not None else host,
        path=path,
        protocol=protocol,
        content_length=content_length,
    )


def validate_push_promise_headers(headers: Iterable[tuple[bytes, bytes]]) -> RequestHead:
    """Validate the promised request of a PUSH_PROMISE (RFC 9114 §4.6).

    It needs :method, :scheme, :authority and :path, and cannot be CONNECT.

    Raises:
        MessageError: the promised request is malformed.
    """
    headers = list(headers)
    head = validate_request_headers(headers)
    if head.method == b"CONNECT":
        raise MessageError("a promised request cannot be CONNECT")
    if not any(name == b":authority" for name, _ in headers):
        raise MessageError("promised request without :authority")
    return head


def validate_response_headers(headers: Iterable[tuple[bytes, bytes]]) -> ResponseHead:
    """Validate a response header section, interim (1xx) or final.

    Raises:
        MessageError: the response is malformed.
    """
    key = (_RESPONSE, tuple(headers))
    try:
        result = _validated.get(key)
    except TypeError:  # unhashable parts (bytearray values ...): checked, not remembered
        return _validate_response(key[1])
    if result is None:
        result = _validate_response(key[1])
        _remember(key, result)
    assert isinstance(result, ResponseHead)
    return result


def _validate_response(headers: _Section) -> ResponseHead:
    pseudo, content_length, _ = _scan(headers, _RESPONSE_PSEUDO, False)
    status = _require(pseudo, b":status")
    if len(status) != 3 or not status.isdigit() or status[0] == 0x30:
        raise MessageError(f":status {status!r} is not a 3-digit code from 100 to 999")
    code = int(status)
    if code == 101:
        raise MessageError("HTTP/3 has no 101 (Switching Protocols)")
    return ResponseHead(status=code, content_length=content_length)


def validate_trailers(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Validate a trailer section: regular fields only, no te, no connection-specific fields.

    Raises:
        MessageError: the trailer section is malformed.
    """
    key = (_TRAILERS, tuple(headers))
    try:
        known = key in _validated
    except TypeError:
        known = False
    if not known:
        _scan(key[1], _NO_PSEUDO, False)
        _remember(key, None)


# --- content length ----------------------------------------------------------------------------


def expected_request_content_length(request: RequestHead) -> int | None:
    """The content length a request's DATA must add up to (None: unchecked).

    CONNECT requests have no content: their DATA is tunnel data (RFC 9110 §9.3.6).
    """
    return None if request.method == b"CONNECT" else request.content_length


def expected_response_content_length(request_method: bytes, response: ResponseHead) -> int | None:
    """The content length a final response's DATA must add up to (None: unchecked).

    Responses to HEAD and 204/304 responses never have content whatever Content-Length says
    (RFC 9114 §4.1.2, RFC 9110 §6.4.1), so their DATA must total 0; a 2xx response to CONNECT
    opens a tunnel, whose data is not content.
    """
    if request_method == b"HEAD" or response.status in (204, 304):
        return 0
    if request_method == b"CONNECT" and 200 <= response.status < 300:
        return None
    return response.content_length


@final
class ContentLengthTracker:
    """Checks that a message's DATA payloads add up to its Content-Length.

    Args:
        expected: The length to reach, or None to only count.
    """

    __slots__ = ("expected", "received")

    def __init__(self, expected: int | None) -> None:
        self.expected = expected
        self.received = 0

    def data_received(self, length: int) -> None:
        """Count ``length`` more bytes of DATA payload.

        Raises:
            MessageError: more data than Content-Length announced.
        """
        self.received += length
        if self.expected is not None and self.received > self.expected:
            raise MessageError(
                f"{self.received} bytes of content exceed content-length {self.expected}"
            )

    def end_of_message(self) -> None:
        """The message ended (FIN or trailers).

        Raises:
            MessageError: less data than Content-Length announced.
        """
        if self.expected is not None and self.received != self.expected:
            raise MessageError(
                f"{self.received} bytes of content, content-length says {self.expected}"
            )


# --- building ------------------------------------------------------------------------------------


_HTTPS: Final = (b":scheme", b"https")


def _to_bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, str):
        if value.isascii():
            return value.encode()
        raise ValueError(f"{what} {value!r} is not ASCII; pass bytes")
    if isinstance(value, bytes):
        return value
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def normalize_headers(headers: HeaderInput) -> Headers:
    """Regular fields as bytes: names lowercased, values stripped of surrounding whitespace.

    Raises:
        ValueError: a ``str`` name or value that is not ASCII.
        TypeError: a part that is neither ``str`` nor ``bytes``.
    """
    return [
        (_to_bytes(name, "field name").lower(), _to_bytes(value, "field value").strip(b" \t"))
        for name, value in headers
    ]


def build_request_headers(
    method: str | bytes,
    path: str | bytes | None = None,
    *,
    authority: str | bytes | None = None,
    scheme: str | bytes | None = None,
    protocol: str | bytes | None = None,
    headers: HeaderInput = (),
) -> Headers:
    """A validated request field list.

    Args:
        method: The method, e.g. ``"GET"`` or ``"CONNECT"``.
        path: The path and query; omitted (None) only for plain CONNECT.
        authority: host[:port]; required for http(s) and CONNECT.
        scheme: Defaults to ``"https"`` except for plain CONNECT, which has none.
        protocol: The extended CONNECT protocol (RFC 9220), e.g. ``"connect-udp"``.
        headers: Extra regular fields.

    Raises:
        ValueError: the request would be malformed, or a part is not ASCII.
    """
    method_b = method if type(method) is bytes else _to_bytes(method, "method")
    plain_connect = method_b == b"CONNECT" and protocol is None
    fields: Headers = [(b":method", method_b)]
    if scheme is None and not plain_connect:
        fields.append(_HTTPS)
    elif scheme is not None:
        fields.append((b":scheme", _to_bytes(scheme, "scheme")))
    if authority is not None:
        fields.append((b":authority", _to_bytes(authority, "authority")))
    if path is not None:
        fields.append((b":path", _to_bytes(path, "path")))
    if protocol is not None:
        fields.append((b":protocol", _to_bytes(protocol, "protocol")))
    if headers:  # an empty list or tuple adds nothing (any other iterable is read)
        fields += normalize_headers(headers)
    try:
        validate_request_headers(fields, enable_connect_protocol=True)
    except MessageError as exc:
        raise ValueError(f"invalid request: {exc.reason}") from None
    return fields


def build_response_headers(status: int, headers: HeaderInput = ()) -> Headers:
    """A validated response field list (``status`` 100..999 except 101).

    Raises:
        ValueError: the response would be malformed, or a part is not ASCII.
    """
    if type(status) is not int and (not isinstance(status, int) or isinstance(status, bool)):
        raise TypeError("status must be an int")
    fields = [(b":status", str(status).encode())]
    if headers:  # an empty list or tuple adds nothing (any other iterable is read)
        fields += normalize_headers(headers)
    try:
        validate_response_headers(fields)
    except MessageError as exc:
        raise ValueError(f"invalid response: {exc.reason}") from None
    return fields


#: (status, content length) -> the fields of ``respond(status, body=...)`` without headers.
_simple_responses: dict[tuple[int, int], tuple[tuple[bytes, bytes], ...]] = {}


def simple_response(status: int, length: int) -> Headers:
    """``build_response_headers(status, [(b"content-length", b"<length>")])``, built once
    per (status, length) (the common responses repeat them); a new list each time."""
    key = (status, length)
    fields = _simple_responses.get(key) if type(status) is int else None  # (200.0 == 200)
    if fields is None:
        fields = tuple(
            build_response_headers(status, [(b"content-length", str(length).encode())])
        )
        if len(_simple_responses) >= 256:
            _simple_responses.clear()
        _simple_responses[key] = fields
    return list(fields)


_RequestKey = tuple[str, str | None, str | None, str | None]
#: (method, path, authority, scheme) -> the fields of a request without header fields or
#: ``:protocol``.
_simple_requests: dict[_RequestKey, tuple[tuple[bytes, bytes], ...]] = {}


def simple_request(
    method: str, path: str | None, authority: str | None, scheme: str | None
) -> Headers:
    """``build_request_headers(method, path, authority=authority, scheme=scheme)``, built
    once per distinct arguments (a client repeats them)."""
    key = (method, path, authority, scheme)
    try:
        fields = _simple_requests.get(key)
    except TypeError:  # unhashable arguments: build_request_headers says what is wrong
        return build_request_headers(method, path, authority=authority, scheme=scheme)
    if fields is None:
        fields = tuple(
            build_request_headers(method, path, authority=authority, scheme=scheme)
        )
        if len(_simple_requests) >= 256:
            _simple_requests.clear()
        _simple_requests[key] = fields
    return list(fields)
