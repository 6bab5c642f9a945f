# An HTTP/3 client with trio: concurrent requests on one connection, streamed bodies.
#
#     python examples/h3_server.py &                  # prints the path of its CA
#     python examples/h3_client.py --cafile CA https://localhost:4433/
#
# Fetches the URL, then (against examples/h3_server.py) POSTs to /echo and reads /slow and
# its trailers, all three at once on one QUIC connection.  --insecure skips certificate
# verification instead of --cafile; without either the system trust store is used.
from __future__ import annotations

import argparse
from urllib.parse import urlsplit

import trio

import trio_zttp
from trio_zttp import quic


async def fetch(h3: trio_zttp.H3Connection, method: str, path: str, body: bytes | None = None,
                results: dict[str, bytes] | None = None) -> None:
    async with await h3.request(method, path, body=body,
                                headers=[("user-agent", "h3_client.py")]) as response:
        data = b""
        async for chunk in response.body:  # streams as it arrives
            data += chunk
        trailers = f" trailers {response.trailers}" if response.trailers else ""
        print(f"{method} {path} -> {response.status}, {len(data)} bytes{trailers}", flush=True)
        if results is not None:
            results[path] = data


async def main(url: str, cafile: str | None = None, insecure: bool = False,
               cadata: bytes | None = None) -> dict[str, bytes]:
    parts = urlsplit(url)
    config = quic.Configuration(is_client=True, alpn_protocols=("h3",), cafile=cafile,
                                cadata=cadata, verify_peer=not insecure)
    results: dict[str, bytes] = {}
    async with trio_zttp.open_h3_connection(
        parts.hostname or "localhost", parts.port or 443, config
    ) as h3:
        await fetch(h3, "GET", parts.path or "/", results=results)
        async with trio.open_nursery() as nursery:  # concurrent requests, one connection
            nursery.start_soon(fetch, h3, "POST", "/echo", b"ping " * 1000, results)
            nursery.start_soon(fetch, h3, "GET", "/slow", None, results)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="fetch a URL over HTTP/3")
    parser.add_argument("url")
    parser.add_argument("--cafile")
    parser.add_argument("--insecure", action="store_true")
    args = parser.parse_args()
    got = trio.run(main, args.url, args.cafile, args.insecure)
    print(got.get(urlsplit(args.url).path or "/", b"").decode(errors="replace"), end="")
