# HTTP Datagrams (RFC 9297) ping-pong over HTTP/3, server and client in one process.
#
#     python examples/datagram_pingpong.py
#
# The client opens an extended CONNECT stream (RFC 9220, :protocol "ping-pong") and sends
# the counter 1 in an HTTP datagram; the server answers 2, the client 3, and so on: each
# side increments the counter it receives and logs it, until it reaches 10.  HTTP datagrams
# ride in QUIC DATAGRAM frames (RFC 9221), so they may be lost: the client resends its
# current value if no answer comes within 250 ms.  Datagrams need SETTINGS_H3_DATAGRAM from
# both sides; the server checks the client's with received_settings() before it agrees.
from __future__ import annotations

import trio

import trio_zttp
from trio_zttp import quic
from trio_zttp.testing import CertificateAuthority

FINAL = 10


def log(who: str, text: str) -> None:
    print(f"{who:>6}: {text}", flush=True)


async def handler(request: trio_zttp.H3Request) -> None:
    """One task per request stream."""
    if request.method != "CONNECT" or request.protocol != "ping-pong":
        await request.respond(404)
        return
    with trio.move_on_after(5):
        await request.connection.received_settings()  # SETTINGS may come after the request
    settings = request.connection.peer_settings
    if settings is None or not settings.h3_datagram:
        await request.respond(400)  # the client cannot take HTTP datagrams
        return
    await request.respond(200)  # the stream stays open
    stream = request.http_stream()  # take it over: raw stream bytes plus datagrams
    while True:
        try:
            value = int(await stream.receive_datagram())
        except trio.EndOfChannel:  # the client finished the stream
            return
        log("server", f"got {value}, sends {value + 1}")
        await stream.send_datagram(b"%d" % (value + 1))


async def client(port: int, ca: CertificateAuthority) -> list[int]:
    configuration = quic.Configuration(
        is_client=True, alpn_protocols=("h3",), cadata=ca.pem, max_datagram_frame_size=65536
    )
    seen = []
    async with trio_zttp.open_h3_connection(
        "127.0.0.1", port, configuration, server_name="localhost"
    ) as connection:
        async with connection.open_request_stream() as stream:
            await stream.send_request_header("CONNECT", "/ping-pong", protocol="ping-pong")
            value = 1
            log("client", f"sends {value}")
            await stream.send_datagram(b"%d" % value)  # allowed before the response
            response = await stream.read_response()
            log("client", f"CONNECT answered {response.status}")
            while value < FINAL:
                with trio.move_on_after(0.25) as timer:
                    answer = int(await stream.receive_datagram())
                if timer.cancelled_caught:
                    log("client", f"no answer, resends {value}")
                    await stream.send_datagram(b"%d" % value)
                    continue
                if answer != value + 1:
                    continue  # an old answer to a resent value
                seen.append(answer)
                value = answer
                if value < FINAL:
                    value += 1
                    log("client", f"got {answer}, sends {value}")
                    await stream.send_datagram(b"%d" % value)
            log("client", f"got {value}: done")
            await stream.send_eof()  # the server's handler sees EndOfChannel and returns
    return seen


async def main() -> list[int]:
    ca = CertificateAuthority.create()  # a throwaway CA and certificate, in memory
    leaf = ca.issue(["localhost"])
    configuration = quic.Configuration(
        is_client=False,
        alpn_protocols=("h3",),
        certificate_chain=leaf.chain,
        private_key=leaf.private_key,
        max_datagram_frame_size=65536,  # QUIC DATAGRAM frames: HTTP datagrams are offered
    )
    async with trio.open_nursery() as nursery:
        endpoint = await nursery.start(trio_zttp.serve_h3, handler, "127.0.0.1", 0, configuration)
        seen = await client(endpoint.local_address[1], ca)
        nursery.cancel_scope.cancel()  # graceful: GOAWAY, then the server stops
    return seen


if __name__ == "__main__":
    trio.run(main)
