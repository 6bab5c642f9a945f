"""Drive the sans-IO QUIC core yourself: an echo over loopback UDP, plain sockets, no trio.

A client and a server ``trio_zttp.quic.Connection`` live in one process; a small select()
loop feeds them datagrams and ``now``, sends what they want sent, fires their timers and
reacts to their events.  The client opens a stream, sends a line, the server echoes it back
and both close.  Everything the core needs is in the loop below; nothing else happens behind
your back.

Run it with trio_zttp installed (or from the repository root with PYTHONPATH=.):
    python examples/sansio_loop.py
"""

from __future__ import annotations

import selectors
import socket
import time

from trio_zttp import quic
from trio_zttp.testing import CertificateAuthority


def flush(conn: quic.Connection | None, sock: socket.socket) -> None:
    """Send whatever the connection has to send."""
    if conn is not None:
        for data, addr in conn.datagrams_to_send(time.monotonic()):
            sock.sendto(data, addr)


def main() -> None:
    # an in-memory CA and server certificate, so the example needs no files
    ca = CertificateAuthority.create()
    leaf = ca.issue(["localhost"])
    server_config = quic.Configuration(
        is_client=False, alpn_protocols=["echo"], certificate_chain=leaf.chain,
        private_key=leaf.private_key)
    client_config = quic.Configuration(
        is_client=True, alpn_protocols=["echo"], server_name="localhost", cadata=ca.pem)

    server_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server_sock.bind(("127.0.0.1", 0))
    client_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client_sock.bind(("127.0.0.1", 0))
    selector = selectors.DefaultSelector()
    for sock in (server_sock, client_sock):
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)

    client = quic.Connection(client_config)
    server: quic.Connection | None = None  # created from the first datagram, as endpoints do
    client.connect(server_sock.getsockname(), time.monotonic())
    echoed = bytearray()
    deadline = time.monotonic() + 10

    while client.get_timer() is not None and time.monotonic() < deadline:
        flush(client, client_sock)
        flush(server, server_sock)

        # sleep until a datagram arrives or the earliest timer is due
        timers = [t for t in (client.get_timer(), server and server.get_timer()) if t]
        timeout = max(0.0, min(timers) - time.monotonic()) if timers else None
        for key, _ in selector.select(timeout):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            while True:
                try:
                    data, addr = sock.recvfrom(65536)
                except BlockingIOError:
                    break
                if sock is server_sock:
                    if server is None:
                        server = quic.Connection(server_config)
                    server.receive_datagram(data, addr, time.monotonic())
                else:
                    client.receive_datagram(data, addr, time.monotonic())

        # timers that are due
        now = time.monotonic()
        for conn in (client, server):
            timer = conn.get_timer() if conn is not None else None
            if conn is not None and timer is not None and timer <= now:
                conn.handle_timer(now)

        # events: the server echoes, the client collects and closes
        while server is not None and (event := server.next_event()) is not None:
            if isinstance(event, quic.StreamDataReceived):
                server.send_stream_data(event.stream_id, event.data.upper(), event.end_stream)
        while (event := client.next_event()) is not None:
            match event:
                case quic.HandshakeCompleted(alpn_protocol=alpn):
                    print(f"client: handshake done, ALPN {alpn}")
                    stream_id = client.get_next_available_stream_id()
                    client.send_stream_data(stream_id, b"hello, quic\n", end_stream=True)
                case quic.StreamDataReceived(data=data, end_stream=end):
                    echoed += data
                    if end:
                        print(f"client: echo {bytes(echoed)!r}")
                        client.close(reason_phrase="done")
                case quic.ConnectionTerminated(reason_phrase=reason, by_peer=by_peer):
                    print(f"client: closed ({'by peer' if by_peer else 'by us'}: {reason})")
    flush(client, client_sock)  # the last CONNECTION_CLOSE
    stats = client.statistics()
    print(f"client: {stats.packets_sent} packets sent, RTT {stats.smoothed_rtt * 1000:.2f} ms")
    selector.close()
    server_sock.close()
    client_sock.close()
    if bytes(echoed) != b"HELLO, QUIC\n":
        raise SystemExit("no echo")


if __name__ == "__main__":
    main()
