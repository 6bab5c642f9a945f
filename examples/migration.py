# A client moves to a new local address in the middle of a download (connection migration,
# RFC 9000 §9), server and client in one process over loopback.
#
#     python examples/migration.py
#
# The client GETs a 1 MB body; after the first 256 KB it calls connection.migrate(): its
# endpoint binds a new UDP port, the connection switches to a fresh connection ID, and the
# old socket is closed.  The server notices packets from the new address, validates it, and
# goes on sending there; the download completes without a restart.  A second request asks the
# server which address it now sees.  (Migration waits for the handshake to be confirmed: the
# first response from the server confirms it.)
from __future__ import annotations

import hashlib

import trio

import trio_zttp
from trio_zttp import quic
from trio_zttp.testing import CertificateAuthority

BODY = bytes(range(256)) * 4096  # 1 MiB


def log(who: str, text: str) -> None:
    print(f"{who:>6}: {text}", flush=True)


async def handler(request: trio_zttp.H3Request) -> None:
    peer = request.connection.quic.remote_address
    if request.path == "/who":
        await request.respond(200, body=f"{peer[0]}:{peer[1]}".encode())
        return
    log("server", f"GET {request.path} from {peer[0]}:{peer[1]}")
    await request.respond(200, body=BODY)


async def client(port: int, ca: CertificateAuthority) -> None:
    configuration = quic.Configuration(is_client=True, alpn_protocols=("h3",), cadata=ca.pem)
    async with trio_zttp.open_h3_connection(
        "127.0.0.1", port, configuration, server_name="localhost"
    ) as connection:
        quic_connection = connection.quic
        log("client", f"from port {quic_connection.local_address[1]}")  # bound to any address
        response = await connection.request("GET", "/body")
        digest, received, moved = hashlib.sha256(), 0, False
        async for chunk in response.body:
            digest.update(chunk)
            received += len(chunk)
            if not moved and received >= 256 * 1024:
                new = await quic_connection.migrate()
                moved = True
                log("client", f"moved to port {new[1]} after {received} bytes")
        intact = digest.digest() == hashlib.sha256(BODY).digest()
        log("client", f"done: {received} bytes, {'intact' if intact else 'CORRUPT'}")
        port = quic_connection.local_address[1]
        for _ in range(100):  # the server follows once it has validated the new path
            seen = (await (await connection.request("GET", "/who")).read()).decode()
            if seen.endswith(f":{port}"):
                break
            await trio.sleep(0.01)
        else:
            raise SystemExit(f"the server still sees {seen}, not port {port}")
        log("client", f"the server now sees {seen}")


async def main() -> None:
    ca = CertificateAuthority.create()  # a throwaway CA and certificate, in memory
    leaf = ca.issue(["localhost"])
    configuration = quic.Configuration(is_client=False, alpn_protocols=("h3",),
                                       certificate_chain=leaf.chain,
                                       private_key=leaf.private_key)
    async with trio.open_nursery() as nursery:
        endpoint = await nursery.start(trio_zttp.serve_h3, handler, "127.0.0.1", 0, configuration)
        await client(endpoint.local_address[1], ca)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
