"""Field validation and construction (RFC 9114 §4.1.2, §4.2, §4.3, §4.4; RFC 9220; RFC 9110).

Every rule is cross-checked against aioquic's validators (``aioquic.h3.connection``) on a corpus
of good and bad field lists: both must accept the good ones and reject the shared bad ones.
Where this module is stricter than aioquic, the case sits in an ``*_STRICTER`` list with the
RFC sentence that makes it malformed; the two cases where aioquic is stricter than the RFC sit
in ``REQUESTS_AIOQUIC_STRICTER``.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest
from aioquic.h3 import connection as aioquic_h3
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp import h3
from trio_zttp.h3._errors import ErrorCode, MessageError
from trio_zttp.h3._headers import (
    ContentLengthTracker,
    Headers,
    RequestHead,
    ResponseHead,
    build_request_headers,
    build_response_headers,
    expected_request_content_length,
    expected_response_content_length,
    normalize_headers,
    parse_content_length,
    validate_push_promise_headers,
    validate_request_headers,
    validate_response_headers,
    validate_trailers,
)


def get(*extra: tuple[bytes, bytes], path: bytes = b"/", **pseudo: bytes) -> Headers:
    fields = {b":method": b"GET", b":scheme": b"https", b":authority": b"example.com",
              b":path": path}
    for key, value in pseudo.items():
        fields[b":" + key.encode()] = value
    return [(k, v) for k, v in fields.items() if v is not None] + list(extra)


CONNECT_UDP = [
    (b":method", b"CONNECT"),
    (b":protocol", b"connect-udp"),
    (b":scheme", b"https"),
    (b":authority", b"proxy.example:443"),
    (b":path", b"/.well-known/masque/udp/192.0.2.6/443/"),
    (b"capsule-protocol", b"?1"),
]

GOOD_REQUESTS: list[Headers] = [
    get(),
    get((b"user-agent", b"trio_zttp"), (b"accept", b"*/*"), path=b"/a/b?c=d&e"),
    [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"example.com:8443"),
     (b":path", b"/upload"), (b"content-length", b"5"), (b"te", b"trailers"),
     (b"cookie", b"a=b"), (b"cookie", b"c=d")],
    [(b":method", b"OPTIONS"), (b":scheme", b"https"), (b":authority", b"h"), (b":path", b"*")],
    [(b":method", b"CONNECT"), (b":authority", b"example.com:443")],
    [(b":method", b"CONNECT"), (b":authority", b"[2001:db8::1]:443")],
    CONNECT_UDP,
    get((b"host", b"example.com")),
    get((b"x-empty", b""), (b"x-inner", b"a \t b"), (b"x-latin1", b"caf\xe9")),
    get((b"x-token!#$%&'*+-.^_`|~", b"v")),
    [(b":method", b"GET"), (b":scheme", b"foo"), (b":authority", b"a"), (b":path", b"")],
    get(method=b"PURGE"),
    get((b"te", b"TRAILERS")),
    get((b"content-length", b"5"), (b"content-length", b"5")),
]

# malformed per RFC 9114 §4.1.2 / §4.2 / §4.3.1, and aioquic agrees
BAD_REQUESTS: list[Headers] = [
    get((b"Content-Type", b"text/plain")),
    get((b"x y", b"1")),
    get((b"x:y", b"1")),
    get((b"x\x7f", b"1")),
    get((b"x\xe9", b"1")),
    get((b"x\x00", b"1")),
    get((b"x-a", b"a\x00b")),
    get((b"x-a", b"a\rb")),
    get((b"x-a", b"a\nb")),
    get((b"x-a", b" a")),
    get((b"x-a", b"a\t")),
    get((b":authority", b"nope")),  # duplicate pseudo-header
    get((b"x-a", b"1")) + [(b":foo", b"1")],
    [(b"x-a", b"1")] + get(),
    get(foo=b"bar"),
    get(status=b"200"),
    get((b"connection", b"close")),
    get((b"keep-alive", b"timeout=5")),
    get((b"proxy-connection", b"keep-alive")),
    get((b"transfer-encoding", b"chunked")),
    get((b"upgrade", b"websocket")),
    get((b"te", b"gzip")),
    get((b"te", b"trailers, gzip")),
    get((b"content-length", b"abc")),
    get((b"content-length", b"-1")),
    get((b"content-length", b"5, 6")),
    get((b"content-length", b"")),
    get(authority=b""),
    get(path=b""),
    [(b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/")],
    [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")],
    [(b":method", b"GET"), (b":method", b"GET"), (b":authority", b"a")],
]

# malformed per the RFC sentence quoted, where aioquic 1.7 is more lenient
BAD_REQUESTS_STRICTER: list[tuple[Headers, str]] = [
    ([(b":method", b"GET"), (b":authority", b"a"), (b":path", b"/")],
     "§4.3.1 requests MUST include :scheme (unless CONNECT)"),
    ([(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a")],
     "§4.3.1 requests MUST include :path (unless CONNECT)"),
    ([(b":method", b"CONNECT"), (b":scheme", b"https"), (b":authority", b"a:1")],
     "§4.4 CONNECT: the :scheme and :path pseudo-header fields are omitted"),
    ([(b":method", b"CONNECT"), (b":authority", b"a:1"), (b":path", b"/")],
     "§4.4 CONNECT: the :scheme and :path pseudo-header fields are omitted"),
    ([(b":method", b"CONNECT"), (b":authority", b"example.com")],
     "§4.4 CONNECT :authority is host and port (RFC 9110 §9.3.6)"),
    (get(protocol=b"websocket"), "RFC 8441 §4: :protocol is for CONNECT"),
    ([p for p in CONNECT_UDP if p[0] != b":path"],
     "RFC 8441 §4: extended CONNECT MUST also include :scheme and :path"),
    ([p for p in CONNECT_UDP if p[0] != b":authority"], "extended CONNECT keeps :authority"),
    (get(path=b"index.html"), "§4.3.1 :path is path-absolute for http(s)"),
    (get(path=b"*"), "§4.3.1 '*' only for OPTIONS"),
    (get((b"host", b"other.example")), "§4.3.1 :authority and Host MUST be the same"),
    (get((b"host", b"example.com"), (b"host", b"example.com")), "one Host (RFC 9110 §7.2)"),
    (get(authority=b"user@example.com"), "§4.3.1 no userinfo for http(s)"),
    (get((b'x"y', b"1")), "§4.2 field names are tokens (RFC 9110 §5.1)"),
    (get((b"x(y", b"1")), "§4.2 field names are tokens"),
    (get((b"x@y", b"1")), "§4.2 field names are tokens"),
    (get((b"x{", b"1")), "§4.2 field names are tokens"),
    (get((b"content-length", b"+5")), "RFC 9110 §8.6 Content-Length = 1*DIGIT"),
    (get((b"content-length", b"5_0")), "RFC 9110 §8.6 Content-Length = 1*DIGIT"),
    (get((b"content-length", b"5"), (b"content-length", b"6")),
     "RFC 9110 §8.6: differing Content-Length values are unrecoverable"),
    (get(method=b"GE T"), "RFC 9110 §9.1 method = token"),
    (get(method=b""), "RFC 9110 §9.1 method = token"),
    (get(scheme=b"1http"), "RFC 3986 §3.1 scheme = ALPHA *( ALPHA / DIGIT / + - . )"),
    (get(scheme=b""), "RFC 3986 §3.1 scheme = ALPHA ..."),
]

# accepted by the RFC, rejected by aioquic 1.7 (it requires :authority and parses Content-Length
# with int())
REQUESTS_AIOQUIC_STRICTER: list[tuple[Headers, str]] = [
    ([(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b"host", b"a.example")],
     "§4.3.1: either an :authority pseudo-header field or a Host header field"),
    (get((b"content-length", b"5, 5")), "RFC 9110 §8.6: a list of identical values"),
]


def aioquic_accepts(validator: Callable[[Headers], object], headers: Headers) -> bool:
    try:
        validator(headers)
    except aioquic_h3.MessageError:
        return False
    return True


def ours_accepts(validator: Callable[[Headers], object], headers: Headers) -> bool:
    try:
        validator(headers)
    except MessageError as exc:
        assert exc.error_code == ErrorCode.H3_MESSAGE_ERROR and exc.stream_error
        return False
    return True


def validate_extended(headers: Headers) -> RequestHead:
    return validate_request_headers(headers, enable_connect_protocol=True)


@pytest.mark.parametrize("headers", GOOD_REQUESTS)
def test_headers_good_requests_accepted_by_both(headers: Headers) -> None:
    assert ours_accepts(validate_extended, headers)
    assert aioquic_accepts(aioquic_h3.validate_request_headers, headers)


@pytest.mark.parametrize("headers", BAD_REQUESTS)
def test_headers_bad_requests_rejected_by_both(headers: Headers) -> None:
    assert not ours_accepts(validate_extended, headers)
    assert not aioquic_accepts(aioquic_h3.validate_request_headers, headers)


@pytest.mark.parametrize(("headers", "rule"), BAD_REQUESTS_STRICTER)
def test_headers_bad_requests_rejected_per_rfc(headers: Headers, rule: str) -> None:
    assert not ours_accepts(validate_extended, headers), rule


@pytest.mark.parametrize(("headers", "rule"), REQUESTS_AIOQUIC_STRICTER)
def test_headers_requests_where_aioquic_is_stricter(headers: Headers, rule: str) -> None:
    assert ours_accepts(validate_extended, headers), rule
    assert not aioquic_accepts(aioquic_h3.validate_request_headers, headers)


def test_headers_extended_connect_needs_the_setting() -> None:
    with pytest.raises(MessageError):
        validate_request_headers(CONNECT_UDP)
    head = validate_request_headers(CONNECT_UDP, enable_connect_protocol=True)
    assert head == RequestHead(
        method=b"CONNECT",
        scheme=b"https",
        authority=b"proxy.example:443",
        path=b"/.well-known/masque/udp/192.0.2.6/443/",
        protocol=b"connect-udp",
        content_length=None,
    )


def test_headers_request_head_fields() -> None:
    head = validate_request_headers(
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/x"), (b"host", b"h:80"),
         (b"content-length", b"0")]
    )
    assert (head.method, head.scheme, head.authority, head.path) == (b"GET", b"http", b"h:80",
                                                                     b"/x")
    assert head.protocol is None and head.content_length == 0
    plain = validate_request_headers([(b":method", b"CONNECT"), (b":authority", b"a:9")])
    assert (plain.scheme, plain.path, plain.authority) == (None, None, b"a:9")


GOOD_RESPONSES: list[tuple[Headers, int]] = [
    ([(b":status", b"200")], 200),
    ([(b":status", b"204"), (b"date", b"x")], 204),
    ([(b":status", b"103"), (b"link", b"</s.css>; rel=preload")], 103),
    ([(b":status", b"404"), (b"content-length", b"12")], 404),
    ([(b":status", b"599")], 599),
    ([(b":status", b"999")], 999),
]

BAD_RESPONSES: list[Headers] = [
    [],
    [(b"server", b"x")],
    [(b":status", b"20")],
    [(b":status", b"2000")],
    [(b":status", b"abc")],
    [(b":status", b"101")],
    [(b":status", b"200"), (b":status", b"200")],
    [(b":status", b"200"), (b":path", b"/")],
    [(b"server", b"x"), (b":status", b"200")],
    [(b":status", b"200"), (b"Server", b"x")],
    [(b":status", b"200"), (b"connection", b"close")],
    [(b":status", b"200"), (b"te", b"trailers")],
    [(b":status", b"200"), (b"content-length", b"x")],
]

BAD_RESPONSES_STRICTER: list[tuple[Headers, str]] = [
    ([(b":status", b"099")], "RFC 9110 §15: status codes are 100..599 (600..999 tolerated)"),
    ([(b":status", b"000")], "RFC 9110 §15"),
    ([(b":status", b"200"), (b"x(y", b"1")], "§4.2 field names are tokens"),
]


@pytest.mark.parametrize(("headers", "status"), GOOD_RESPONSES)
def test_headers_good_responses(headers: Headers, status: int) -> None:
    head = validate_response_headers(headers)
    assert head.status == status and head.interim == (status < 200)
    assert aioquic_accepts(aioquic_h3.validate_response_headers, headers)


@pytest.mark.parametrize("headers", BAD_RESPONSES)
def test_headers_bad_responses_rejected_by_both(headers: Headers) -> None:
    assert not ours_accepts(validate_response_headers, headers)
    try:
        accepted = aioquic_accepts(aioquic_h3.validate_response_headers, headers)
    except KeyError:  # aioquic looks :status up without checking it is there
        accepted = False
    assert not accepted


@pytest.mark.parametrize(("headers", "rule"), BAD_RESPONSES_STRICTER)
def test_headers_bad_responses_rejected_per_rfc(headers: Headers, rule: str) -> None:
    assert not ours_accepts(validate_response_headers, headers), rule


@pytest.mark.parametrize(
    ("headers", "good"),
    [
        ([], True),
        ([(b"x-checksum", b"abc"), (b"server-timing", b"db;dur=53")], True),
        ([(b":status", b"200")], False),
        ([(b":path", b"/")], False),
        ([(b"connection", b"close")], False),
        ([(b"te", b"trailers")], False),
        ([(b"X-Checksum", b"abc")], False),
        ([(b"x-a", b"a\r\n")], False),
    ],
)
def test_headers_trailers(headers: Headers, good: bool) -> None:
    assert ours_accepts(validate_trailers, headers) == good
    assert aioquic_accepts(aioquic_h3.validate_trailers, headers) == good


def test_headers_push_promise() -> None:
    head = validate_push_promise_headers(get())
    assert head.path == b"/"
    assert aioquic_accepts(aioquic_h3.validate_push_promise_headers, get())
    for bad in (
        [(b":method", b"CONNECT"), (b":authority", b"a:1")],
        [(b":method", b"GET"), (b":scheme", b"foo"), (b":path", b"/")],
        get((b"host", b"example.com"))[:2] + [(b":path", b"/"), (b"host", b"example.com")],
        CONNECT_UDP,
    ):
        assert not ours_accepts(validate_push_promise_headers, bad)
        assert not aioquic_accepts(aioquic_h3.validate_push_promise_headers, bad)


# --- property: aioquic's rejections are ours too ------------------------------------------------

NAMES = [b":method", b":scheme", b":authority", b":path", b":protocol", b":status", b":x",
         b"host", b"content-length", b"te", b"connection", b"x-a", b"X-A", b"x a", b"x:a", b""]
VALUES = [b"GET", b"CONNECT", b"https", b"http", b"/", b"", b"a.example", b"a.example:443",
          b"trailers", b"5", b"-5", b"x\x00", b" v", b"v ", b"*", b"5, 5"]
BASES = [get(), get((b"content-length", b"5")), CONNECT_UDP,
         [(b":method", b"CONNECT"), (b":authority", b"a.example:443")]]


@st.composite
def mutated_requests(draw: st.DrawFn) -> Headers:
    """A valid request with up to three random edits: insert, delete, replace or swap."""
    headers = list(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(0, 3))):
        edit = draw(st.sampled_from(["insert", "delete", "replace", "swap"]))
        index = draw(st.integers(0, max(len(headers) - 1, 0)))
        field = (draw(st.sampled_from(NAMES)), draw(st.sampled_from(VALUES)))
        if edit == "insert" or not headers:
            headers.insert(index, field)
        elif edit == "delete":
            del headers[index]
        elif edit == "replace":
            headers[index] = (headers[index][0], field[1])
        else:
            other = draw(st.integers(0, len(headers) - 1))
            headers[index], headers[other] = headers[other], headers[index]
    return headers


@given(mutated_requests())
def test_headers_aioquic_rejections_are_ours(headers: Headers) -> None:
    ours = ours_accepts(validate_extended, headers)
    theirs = aioquic_accepts(aioquic_h3.validate_request_headers, headers)
    if ours and not theirs:
        # the only places aioquic is stricter than the RFC (REQUESTS_AIOQUIC_STRICTER)
        assert b":authority" not in dict(headers) or (b"content-length", b"5, 5") in headers, (
            headers
        )


# --- content length ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "length"),
    [([], None), ([b"0"], 0), ([b"42"], 42), ([b"42, 42"], 42), ([b"7", b"7,7"], 7),
     ([b"0042", b"42"], 42), ([b"9" * 19], int("9" * 19))],
)
def test_headers_parse_content_length(values: list[bytes], length: int | None) -> None:
    assert parse_content_length(values) == length


@pytest.mark.parametrize(
    "values",
    [[b""], [b"1, 2"], [b"1", b"2"], [b"0x10"], [b"1 2"], [b"1,"], [b"9" * 20], [b"\xd9\xa3"]],
)
def test_headers_parse_content_length_rejects(values: list[bytes]) -> None:
    with pytest.raises(MessageError):
        parse_content_length(values)


@given(total=st.integers(0, 10_000), sizes=st.lists(st.integers(0, 3000), max_size=10))
def test_headers_content_length_tracker(total: int, sizes: list[int]) -> None:
    tracker = ContentLengthTracker(total)
    received = 0
    for size in sizes:
        received += size
        if received > total:
            with pytest.raises(MessageError):
                tracker.data_received(size)
            return
        tracker.data_received(size)
    if received == total:
        tracker.end_of_message()
    else:
        with pytest.raises(MessageError) as info:
            tracker.end_of_message()
        assert info.value.error_code == ErrorCode.H3_MESSAGE_ERROR


def test_headers_content_length_tracker_unchecked() -> None:
    tracker = ContentLengthTracker(None)
    tracker.data_received(10**9)
    tracker.end_of_message()
    assert tracker.received == 10**9


def test_headers_expected_content_lengths() -> None:
    post = validate_request_headers(
        [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/"),
         (b"content-length", b"10")]
    )
    assert expected_request_content_length(post) == 10
    connect = validate_request_headers(
        [(b":method", b"CONNECT"), (b":authority", b"a:1"), (b"content-length", b"10")]
    )
    assert expected_request_content_length(connect) is None
    ok = ResponseHead(status=200, content_length=99)
    assert expected_response_content_length(b"GET", ok) == 99
    assert expected_response_content_length(b"HEAD", ok) == 0
    assert expected_response_content_length(b"CONNECT", ok) is None
    assert expected_response_content_length(b"CONNECT", ResponseHead(status=407,
                                                                      content_length=3)) == 3
    for status in (204, 304):
        assert expected_response_content_length(b"GET", ResponseHead(status=status,
                                                                      content_length=5)) == 0
    assert expected_response_content_length(b"GET", ResponseHead(status=200,
                                                                 content_length=None)) is None


# --- building -----------------------------------------------------------------------------------


def test_headers_build_request() -> None:
    fields = build_request_headers(
        "GET", "/index.html", authority="example.com",
        headers=[("User-Agent", " trio_zttp "), (b"Accept", b"*/*")],
    )
    assert fields == [
        (b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"example.com"),
        (b":path", b"/index.html"), (b"user-agent", b"trio_zttp"), (b"accept", b"*/*"),
    ]
    assert aioquic_accepts(aioquic_h3.validate_request_headers, fields)
    assert h3.build_request_headers is build_request_headers


def test_headers_build_connect_forms() -> None:
    assert build_request_headers(b"CONNECT", authority=b"a.example:443") == [
        (b":method", b"CONNECT"), (b":authority", b"a.example:443")
    ]
    fields = build_request_headers(
        "CONNECT", "/.well-known/masque/udp/192.0.2.6/443/", authority="proxy.example:443",
        protocol="connect-udp", headers=[("capsule-protocol", "?1")],
    )
    assert validate_extended(fields).protocol == b"connect-udp"
    assert sorted(fields) == sorted(CONNECT_UDP)
    assert build_request_headers("GET", "/", authority="a", scheme="http")[1] == (b":scheme",
                                                                                  b"http")


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("GET",), {"authority": "a"}, ValueError),  # no path
        (("GET", "/"), {}, ValueError),  # https without authority
        (("CONNECT", "/"), {"authority": "a:1"}, ValueError),
        (("CONNECT",), {"authority": "a:1", "scheme": "https"}, ValueError),
        (("GET", "/"), {"authority": "a", "headers": [("connection", "close")]}, ValueError),
        (("GET", "/"), {"authority": "a", "headers": [("x-a", "b\r\nc")]}, ValueError),
        (("GET", "/"), {"authority": "é"}, ValueError),
        (("GET", "/"), {"authority": "a", "headers": [("x", 5)]}, TypeError),
    ],
)
def test_headers_build_request_rejects(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        build_request_headers(*args, **kwargs)  # type: ignore[arg-type]


def test_headers_build_response() -> None:
    assert build_response_headers(200, [("Content-Type", "text/plain")]) == [
        (b":status", b"200"), (b"content-type", b"text/plain")
    ]
    assert build_response_headers(103) == [(b":status", b"103")]
    for bad in (101, 99, 1000):
        with pytest.raises(ValueError):
            build_response_headers(bad)
    with pytest.raises(TypeError):
        build_response_headers("200")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        build_response_headers(True)


def test_headers_normalize() -> None:
    assert normalize_headers([("X-A", "  v  "), (b"X-B", b"\tw")]) == [(b"x-a", b"v"),
                                                                        (b"x-b", b"w")]
    with pytest.raises(ValueError):
        normalize_headers([("x", "caf\u00e9")])


# --- remembered results: valid sections only, per context ----------------------------------


def test_headers_repeated_validation_still_rejects_what_is_malformed() -> None:
    for _ in range(3):  # the first pass may remember results; later passes must agree
        assert validate_request_headers(
            CONNECT_UDP, enable_connect_protocol=True
        ).protocol == b"connect-udp"
        with pytest.raises(MessageError, match="not enabled"):
            validate_request_headers(CONNECT_UDP)
        with pytest.raises(MessageError):
            validate_response_headers(get())  # a valid request is no response
        with pytest.raises(MessageError):
            validate_trailers(get())  # nor a trailer section
        for headers in BAD_REQUESTS:
            with pytest.raises(MessageError):
                validate_request_headers(headers)
        for headers in BAD_RESPONSES:
            with pytest.raises(MessageError):
                validate_response_headers(headers)


def test_headers_repeated_validation_of_a_generator_and_of_a_list_agree() -> None:
    fields = get((b"content-length", b"7"), (b"host", b"example.com"))
    by_list = validate_request_headers(fields)
    by_generator = validate_request_headers(field for field in fields)
    assert by_list == by_generator
    assert by_list.content_length == 7
    assert validate_request_headers(fields).authority == b"example.com"


def test_headers_validation_takes_unhashable_parts() -> None:
    fields: Any = [(name, bytearray(value)) for name, value in get((b"x-a", b"1"))]
    status: Any = [(b":status", bytearray(b"204"))]
    as_lists: Any = [[b"x-a", b"1"]]
    spaced: Any = [(b"x-a", bytearray(b" 1"))]
    for _ in range(2):
        assert validate_request_headers(fields).method == b"GET"
        assert validate_response_headers(status).status == 204
        validate_trailers(as_lists)
        with pytest.raises(MessageError):
            validate_trailers(spaced)


def test_headers_build_with_any_iterable_of_extra_fields() -> None:
    """Empty containers add nothing; a generator is read like a list."""
    extra = [("X-A", " 1 "), (b"x-b", b"2")]
    expected = build_request_headers("GET", "/", authority="a", headers=list(extra))
    assert expected[-2:] == [(b"x-a", b"1"), (b"x-b", b"2")]
    assert build_request_headers("GET", "/", authority="a", headers=iter(extra)) == expected
    plain = build_request_headers(b"GET", b"/", authority=b"a")
    for empty in ((), [], iter(())):
        assert build_request_headers("GET", "/", authority="a", headers=empty) == plain
        assert build_response_headers(204, empty) == [(b":status", b"204")]
    assert build_response_headers(HTTPStatus.OK, (f for f in extra)) == [
        (b":status", b"200"), (b"x-a", b"1"), (b"x-b", b"2")
    ]
