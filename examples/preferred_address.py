# A server offers a preferred address and its client moves there by itself (RFC 9000 §9.6),
# server and client in one process over loopback.
#
#     python examples/preferred_address.py
#
# The server listens on a first port and names a second one, on the same host, in its
# preferred_address transport parameter; its endpoint binds both.  Once the handshake is
# confirmed, the client checks the second address with a PATH_CHALLENGE and, answered, moves
# the connection there: a 1 MB download finishes through it.  Nothing in the client's code
# asks for the move (quic.Configuration(use_preferred_address=False) would stay put).
from __future__ import annotations

import hashlib
import socket

import trio

import trio_zttp
from trio_zttp import quic
from trio_zttp.testing import CertificateAuthority

BODY = bytes(range(256)) * 4096  # 1 MiB


def log(who: str, text: str) -> None:
    print(f"{who:>6}: {text}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def handler(request: trio_zttp.H3Request) -> None:
    await request.respond(200, body=BODY)


async def client(port: int, preferred: tuple[str, int], ca: CertificateAuthority) -> None:
    configuration = quic.Configuration(is_client=True, alpn_protocols=("h3",), cadata=ca.pem)
    async with trio_zttp.open_h3_connection(
        "127.0.0.1", port, configuration, server_name="localhost"
    ) as connection:
        quic_connection = connection.quic
        log("client", f"connected to port {quic_connection.remote_address[1]}")
        response = await connection.request("GET", "/body")
        digest = hashlib.sha256()
        async for chunk in response.body:
            digest.update(chunk)
        for _ in range(100):  # (the move may finish after a short download)
            if quic_connection.remote_address == preferred:
                break
            await trio.sleep(0.01)
        intact = digest.digest() == hashlib.sha256(BODY).digest()
        log("client", f"done: {'intact' if intact else 'CORRUPT'}, now talking to port "
                      f"{quic_connection.remote_address[1]}")
        if quic_connection.remote_address != preferred:
            raise SystemExit("the client did not move to the preferred address")


async def main() -> None:
    ca = CertificateAuthority.create()  # a throwaway CA and certificate, in memory
    leaf = ca.issue(["localhost"])
    preferred = ("127.0.0.1", free_port())
    configuration = quic.Configuration(is_client=False, alpn_protocols=("h3",),
                                       certificate_chain=leaf.chain,
                                       private_key=leaf.private_key,
                                       preferred_ipv4_address=preferred)
    async with trio.open_nursery() as nursery:
        endpoint = await nursery.start(trio_zttp.serve_h3, handler, "127.0.0.1", 0, configuration)
        log("server", f"listening on port {endpoint.local_address[1]}, "
                      f"preferred address port {endpoint.preferred_addresses[0][1]}")
        await client(endpoint.local_address[1], preferred, ca)
        received = endpoint.statistics().datagrams_received_at_preferred_address
        log("server", f"{received} datagrams arrived at the preferred address")
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
