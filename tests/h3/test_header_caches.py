"""``simple_request`` / ``simple_response`` (remembered field lists the trio layer uses for
``respond(status, body=...)`` without headers and for requests without header fields) equal
what ``h3.build_*_headers`` build, errors included."""

from __future__ import annotations

import random

import pytest

from trio_zttp import h3
from trio_zttp.h3 import _headers


def _outcome(build: object, *args: object, **kwargs: object) -> object:
    try:
        return build(*args, **kwargs)  # type: ignore[operator]
    except (ValueError, TypeError) as exc:
        return type(exc)


@pytest.mark.parametrize("seed", range(20))
def test_simple_request_matches_build_request_headers(seed: int) -> None:
    rng = random.Random(seed)
    methods = ["GET", "POST", "HEAD", "CONNECT", "G ET", "GÉT", b"GET"]
    paths = ["/", "/index.html?q=1", "*", "relative", None, "/é", b"/bytes"]
    authorities = ["localhost:4433", "example.com", None, "", "user@host", b"h:1"]
    schemes = [None, "https", "http", "ftp", "1bad"]
    for _ in range(60):
        args = (rng.choice(methods), rng.choice(paths), rng.choice(authorities),
                rng.choice(schemes))
        for _ in range(2):  # built, then remembered
            got = _outcome(_headers.simple_request, *args)
            want = _outcome(h3.build_request_headers, args[0], args[1], authority=args[2],
                            scheme=args[3])
            assert got == want, args


@pytest.mark.parametrize("seed", range(10))
def test_simple_response_matches_build_response_headers(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(60):
        status = rng.choice([200, 204, 404, 500, 103, 101, 99, 1000, True, 200.0])
        length = rng.choice([0, 1, 100, 65536])
        for _ in range(2):
            got = _outcome(_headers.simple_response, status, length)
            want = _outcome(h3.build_response_headers, status,
                            [(b"content-length", str(length).encode())])
            assert got == want, (status, length)


def test_simple_fields_are_fresh_lists() -> None:
    first = _headers.simple_response(200, 5)
    first.append((b"x", b"y"))
    assert _headers.simple_response(200, 5) == [(b":status", b"200"),
                                                   (b"content-length", b"5")]
