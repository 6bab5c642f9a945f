"""Regenerate ``corpus.json``: synthetic, realistic-looking HTTP/3 header sets.

Nothing here is copied from captured traffic or another project; names follow common HTTP
usage and values are made up (seeded, so the output is stable).  Run from the repository
root: ``python tests/vectors/qpack/make_corpus.py``.

Byte strings are stored as Latin-1 text: each JSON code point U+0000..U+00FF is one byte.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

HERE = Path(__file__).resolve().parent
rng = random.Random(20240917)

IMG = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"
UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/126.0.0.0 Safari/537.36")
SEC_CH_UA = '"Not/A)Brand";v="8", "Chromium";v="126", "Google Chrome";v="126"'


def token(n: int, alphabet: str = string.ascii_letters + string.digits + "-_") -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def cookie_header(total: int) -> str:
    pairs = []
    size = 0
    while size < total:
        key = token(rng.randint(3, 12), string.ascii_lowercase + "_")
        pair = f"{key}={token(rng.randint(8, 90))}"
        pairs.append(pair)
        size += len(pair) + 2
    return "; ".join(pairs)[:total]


def browser_session() -> list[list[list[str]]]:
    """About 20 requests a browser makes to load one page and its subresources."""
    session_cookie = cookie_header(180)
    paths = [
        ("/", "document", "text/html,application/xhtml+xml,application/xml;q=0.9,"
         "image/avif,image/webp,image/apng,*/*;q=0.8"),
        ("/static/css/main.4f9a1c2e.css", "style", "text/css,*/*;q=0.1"),
        ("/static/js/runtime.8b1e77.js", "script", "*/*"),
        ("/static/js/vendor.1c9e0d3a.chunk.js", "script", "*/*"),
        ("/static/js/main.77ab02f1.chunk.js", "script", "*/*"),
        ("/static/fonts/inter-var-latin.woff2", "font", "*/*"),
        ("/api/v2/session", "empty", "application/json"),
        ("/api/v2/feed?limit=20&cursor=eyJpZCI6MTIzNDU2fQ", "empty", "application/json"),
        ("/images/hero@2x.webp", "image", IMG),
        ("/images/avatars/u/8812.png", "image", IMG),
        ("/images/avatars/u/1290.png", "image", IMG),
        ("/images/avatars/u/5521.png", "image", IMG),
        ("/api/v2/notifications/count", "empty", "application/json"),
        ("/favicon.ico", "image", IMG),
        ("/manifest.webmanifest", "manifest", "*/*"),
        ("/api/v2/feed?limit=20&cursor=eyJpZCI6MTIzNDM3fQ", "empty", "application/json"),
        ("/static/js/lazy-comments.0d1e2f.chunk.js", "script", "*/*"),
        ("/api/v2/comments?post=98123&sort=top", "empty", "application/json"),
        ("/api/v2/notifications/count", "empty", "application/json"),
        ("/sw.js", "serviceworker", "*/*"),
    ]
    requests = []
    for path, dest, accept in paths:
        method = "GET"
        headers = [
            [":method", method],
            [":scheme", "https"],
            [":authority", "www.example.net"],
            [":path", path],
            ["sec-ch-ua", SEC_CH_UA],
            ["sec-ch-ua-mobile", "?0"],
            ["sec-ch-ua-platform", '"Linux"'],
            ["user-agent", UA],
            ["accept", accept],
            ["sec-fetch-site", "same-origin" if path != "/" else "none"],
            ["sec-fetch-mode", "navigate" if dest == "document" else "cors" if dest == "empty"
             else "no-cors"],
            ["sec-fetch-dest", dest],
        ]
        if path != "/":
            headers.append(["referer", "https://www.example.net/"])
        headers += [
            ["accept-encoding", "gzip, deflate, br, zstd"],
            ["accept-language", "en-GB,en;q=0.9,fr;q=0.8"],
            ["cookie", session_cookie],
        ]
        if dest == "empty":
            headers.append(["x-csrf-token", "c3a1f0a2-55d1-4c1e-9e1b-7d2a6b0c9f31"])
            headers.append(["authorization", "Bearer eyJhbGciOiJIUzI1NiJ9." + token(60)])
        if path.startswith("/images/avatars"):
            headers.append(["if-none-match", f'W/"{token(16, string.hexdigits.lower())}"'])
        if path == "/":
            headers.append(["upgrade-insecure-requests", "1"])
            headers.append(["priority", "u=0, i"])
        else:
            headers.append(["priority", "u=1" if dest in ("script", "style") else "u=3, i"])
        requests.append(headers)
    return requests


def large_cookie_requests() -> list[list[list[str]]]:
    """Requests carrying a 4 KB cookie, as some sites with many trackers send."""
    big = cookie_header(4096)
    out = []
    for n in range(8):
        out.append([
            [":method", "GET"],
            [":scheme", "https"],
            [":authority", "shop.example.org"],
            [":path", f"/product/{1000 + 37 * n}?ref=home&utm_source=newsletter"],
            ["user-agent", UA],
            ["accept", "text/html,application/xhtml+xml"],
            ["accept-encoding", "gzip, deflate, br"],
            ["cookie", big],
            ["cookie", f"cart={token(24)}"],
        ])
    return out


def responses() -> list[list[list[str]]]:
    """Responses with many fields (HTML, assets, API, redirects, errors)."""
    out = []
    csp = ("default-src 'self'; script-src 'self' 'nonce-{n}' https://cdn.example.net; "
           "style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; "
           "connect-src 'self' https://api.example.net wss://rt.example.net; "
           "frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
    kinds = [
        ("200", "text/html; charset=utf-8"),
        ("200", "text/css"),
        ("200", "application/javascript"),
        ("200", "application/javascript"),
        ("200", "font/woff2"),
        ("200", "application/json"),
        ("200", "application/json"),
        ("200", "image/webp"),
        ("304", ""),
        ("200", "image/png"),
        ("404", "text/html; charset=utf-8"),
        ("200", "application/json"),
        ("302", "text/html; charset=utf-8"),
        ("200", "application/manifest+json"),
        ("200", "application/json"),
        ("200", "application/javascript"),
        ("200", "application/json"),
        ("503", "text/plain"),
        ("200", "application/json"),
        ("200", "application/javascript"),
    ]
    for n, (status, ctype) in enumerate(kinds):
        second = 11 + n // 3
        headers = [
            [":status", status],
            ["date", f"Tue, 17 Sep 2024 10:42:{second:02d} GMT"],
            ["server", "examplecdn/2.4"],
        ]
        if ctype:
            headers.append(["content-type", ctype])
            headers.append(["content-length", str(rng.randint(90, 250000))])
        if status == "302":
            headers.append(["location", "https://www.example.net/login?next=%2Faccount"])
        if ctype.startswith("text/html"):
            headers.append(["content-security-policy", csp.format(n=token(22))])
            headers.append(["cache-control", "no-cache, private"])
            headers.append(["set-cookie", f"sid={token(40)}; Path=/; Secure; HttpOnly; "
                                          "SameSite=Lax; Max-Age=1209600"])
        elif ctype.startswith("application/json"):
            headers.append(["cache-control", "no-store"])
            headers.append(["access-control-allow-origin", "https://www.example.net"])
            headers.append(["access-control-allow-credentials", "true"])
            headers.append(["vary", "Origin, Accept-Encoding"])
            headers.append(["x-request-id", token(26, string.hexdigits.lower())])
        else:
            headers.append(["cache-control", "public, max-age=31536000, immutable"])
            headers.append(["etag", f'"{token(20, string.hexdigits.lower())}"'])
            headers.append(["last-modified", "Mon, 02 Sep 2024 08:15:00 GMT"])
            headers.append(["accept-ranges", "bytes"])
            headers.append(["vary", "Accept-Encoding"])
        if ctype and status == "200" and ctype != "image/png":
            headers.append(["content-encoding", "br" if n % 2 else "gzip"])
        headers += [
            ["strict-transport-security", "max-age=63072000; includeSubDomains; preload"],
            ["x-content-type-options", "nosniff"],
            ["x-frame-options", "DENY"],
            ["referrer-policy", "strict-origin-when-cross-origin"],
            ["alt-svc", 'h3=":443"; ma=86400'],
            ["x-cache", "HIT" if n % 3 else "MISS"],
            ["age", str(rng.randint(0, 5000))],
            ["server-timing", f"cdn-cache;desc={'HIT' if n % 3 else 'MISS'}, edge;dur={n + 3}"],
        ]
        out.append(headers)
    return out


def odd_values() -> list[list[list[str]]]:
    """Non-ASCII, binary-ish and empty values; long names; repeated names."""
    all_bytes = "".join(chr(b) for b in range(256))
    utf8 = "naïve café – 東京 – 😀".encode().decode("latin-1")
    return [
        [[":method", "POST"], [":scheme", "https"], [":authority", "upload.example.com"],
         [":path", "/v1/blobs"], ["x-binary", all_bytes], ["x-utf8", utf8],
         ["x-empty", ""], ["content-length", "0"], ["x-zeroes", "\x00" * 40]],
        [[":status", "200"], ["x-empty", ""], ["x-utf8", utf8], ["x-high", "\xff\xfe\x80" * 30],
         ["x-" + "long-name-" * 20, "v"], ["vary", ""], ["link", ""]],
        [[":method", "GET"], [":scheme", "https"], [":authority", "upload.example.com"],
         [":path", "/v1/blobs/" + "%E6%9D%B1" * 10], ["x-binary", all_bytes[::-1]],
         ["x-empty", ""], ["accept", "*/*"], ["accept", "application/json"],
         ["x-repeated", "a"], ["x-repeated", "a"], ["x-repeated", "b"]],
        [[":status", "204"]],
        [["x-tab-and-controls", "\t\x01\x7f\x1b[0m"], ["x-name-only", ""], ["x-empty", ""]],
    ]


def main() -> None:
    corpus = {
        "description": "Synthetic header sets made up for QPACK tests and benchmarks; see README",
        "encoding": "latin-1",
        "sets": {
            "browser_session": browser_session(),
            "large_cookies": large_cookie_requests(),
            "responses": responses(),
            "odd_values": odd_values(),
        },
    }
    text = json.dumps(corpus, indent=1, ensure_ascii=True)
    (HERE / "corpus.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
