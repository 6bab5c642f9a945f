# An HTTP/3 server with trio: one handler task per request.
#
#     python examples/h3_server.py [--port 4433] [--cert cert.pem --key key.pem]
#
# Without --cert/--key it makes a throwaway CA and certificate and prints where the CA is,
# so that examples/h3_client.py (or `python -m trio_zttp get --cafile CA URL`) can trust it.
# Routes: GET / (a greeting), POST /echo (the body back, streamed as it arrives),
# GET /slow (a body sent in pieces, with trailers).  Ctrl-C shuts down gracefully: GOAWAY,
# then the requests in progress get up to 5 seconds to finish.
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import trio

import trio_zttp
from trio_zttp import quic
from trio_zttp.testing import CertificateAuthority


async def handler(request: trio_zttp.H3Request) -> None:
    print(f"{request.remote_address[0]} {request.method} {request.path}", flush=True)
    if request.method == "GET" and request.path == "/":
        agent = (request.get_header("user-agent") or b"?").decode()
        await request.respond(200, [("content-type", "text/plain")],
                              body=f"Hello over HTTP/3, {agent}!\n".encode())
    elif request.method == "POST" and request.path == "/echo":
        await request.respond(200, [("content-type", "application/octet-stream")])
        async for chunk in request.body:  # the request body is a trio ReceiveStream
            await request.send_body(chunk)  # waits when the client reads slowly
    elif request.method == "GET" and request.path == "/slow":
        await request.respond(200, [("content-type", "text/plain")])
        for i in range(5):
            await request.send_body(b"piece %d\n" % i)
            await trio.sleep(0.05)
        await request.send_trailers([("x-pieces", "5")])
    else:
        await request.respond(404, body=b"not found\n")
    # returning ends the response; an exception would reset the stream instead


def configuration(cert: str | None, key: str | None, cert_dir: str | None) -> quic.Configuration:
    config = quic.Configuration(is_client=False, alpn_protocols=("h3",),
                                max_datagram_frame_size=65536)
    if cert is not None:
        config.load_cert_chain(cert, key)
        return config
    directory = Path(cert_dir or tempfile.mkdtemp(prefix="h3-server-"))
    ca = CertificateAuthority.create()
    leaf = ca.issue(["localhost", "127.0.0.1"])
    ca.write_pem(directory / "ca.pem")
    config.certificate_chain, config.private_key = leaf.chain, leaf.private_key
    print(f"certificate issued by a throwaway CA: {directory / 'ca.pem'}", flush=True)
    return config


async def main(
    port: int = 4433,
    config: quic.Configuration | None = None,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = config or configuration(None, None, None)
    async with trio.open_nursery() as nursery:
        endpoint = await nursery.start(trio_zttp.serve_h3, handler, "127.0.0.1", port, config)
        bound = endpoint.local_address[1]
        print(f"serving https://localhost:{bound}/ over HTTP/3 (Ctrl-C stops)", flush=True)
        task_status.started(bound)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=4433)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--cert-dir", help="where to write the throwaway CA")
    args = parser.parse_args()
    try:
        trio.run(main, args.port, configuration(args.cert, args.key, args.cert_dir))
    except* KeyboardInterrupt:  # Ctrl-C cancelled serve_h3, which shut down gracefully
        pass
