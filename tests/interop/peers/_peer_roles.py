"""The server and client programs of the asyncio peers: what ``main`` runs per role."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import signal
import ssl
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from _peer_core import (
    ECHO_PROTOCOL,
    EXIT_CHECK_FAILED,
    EXIT_CONNECTION_FAILED,
    EXIT_OK,
    PINGPONG_PROTOCOL,
    Library,
    base_record,
    build_parser,
    configuration,
    connection_facts,
    emit,
    generated_body,
    start_watchdog,
)
from _peer_protocols import (
    EchoClient,
    EchoServer,
    H3Client,
    H3Server,
    ServerStats,
    Sink,
    header_map,
    protocol_class,
)


def run(library: Library, argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the role; returns the exit code."""
    parser = build_parser(f"{library.name}_peer")
    args = parser.parse_args(argv)
    if args.role == "client" and args.mode == "h3" and not args.url:
        parser.error("client --mode h3 needs --url")
    if args.role == "client" and args.mode == "echo" and args.port is None:
        parser.error("client --mode echo needs --port")
    if args.role == "server":
        start_watchdog(args.timeout, {"event": "timeout", "timeout_s": args.timeout})
        return asyncio.run(_serve(library, args))
    start_watchdog(
        args.timeout,
        {
            "event": "result",
            "ok": False,
            "peer": library.name,
            "mode": args.mode,
            "error": f"timeout after {args.timeout}s",
        },
    )
    return asyncio.run(_client(library, args))


# --------------------------------------------------------------------------------------
# server role


async def _serve(library: Library, args: argparse.Namespace) -> int:
    config = configuration(library, args, is_client=False)
    config.load_cert_chain(args.cert, args.key)
    stats = ServerStats()
    mixin = H3Server if args.mode == "h3" else EchoServer
    protocol = protocol_class(library, mixin, stats=stats)
    host = args.host or "127.0.0.1"
    server = await library.serve(
        host, args.port or 0, configuration=config, create_protocol=protocol, retry=args.retry
    )
    sockname = server._transport.get_extra_info("sockname")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    emit(
        {
            "event": "ready",
            "host": host,
            "port": sockname[1],
            "pid": os.getpid(),
            "alpn": config.alpn_protocols,
            **base_record(library, args),
        }
    )
    await stop.wait()
    server.close()
    emit({"event": "stats", **stats.counts})
    return EXIT_OK


# --------------------------------------------------------------------------------------
# client role


class _CheckFailed(Exception):
    pass


async def _client(library: Library, args: argparse.Namespace) -> int:
    record = base_record(library, args)
    try:
        if args.mode == "h3":
            url = urlsplit(args.url)
            host = args.host or url.hostname or "127.0.0.1"
            port = args.port or url.port or 443
            name = args.server_name or url.hostname
        else:
            host = args.host or "127.0.0.1"
            port = args.port
            name = args.server_name or host
        config = configuration(library, args, is_client=True)
        config.server_name = name
        if args.insecure:
            config.verify_mode = ssl.CERT_NONE
        elif args.cafile:
            config.load_verify_locations(cafile=args.cafile)
        mixin = H3Client if args.mode == "h3" else EchoClient
        created: list[Any] = []
        cls = protocol_class(library, mixin)

        def make_protocol(*args: Any, **kwargs: Any) -> Any:
            created.append(cls(*args, **kwargs))
            return created[-1]

        started = time.perf_counter()
        record["ok"] = False
        try:
            async with library.connect(
                host, port, configuration=config, create_protocol=make_protocol
            ) as protocol:
                record["handshake_s"] = round(time.perf_counter() - started, 6)
                record.update(connection_facts(protocol._quic))
                if args.mode == "h3":
                    await _h3_client_work(protocol, args, record)
                else:
                    await _echo_client_work(protocol, args, record)
        except ConnectionError as exc:
            if "handshake_s" not in record:
                record["error"] = f"handshake failed: {exc!r}"
            else:
                record["error"] = f"connection failed: {exc!r}"
            record["duration_s"] = round(time.perf_counter() - started, 6)
            if created and created[0].close_info is not None:
                record["close"] = created[0].close_info
            emit({"event": "result", **record})
            return EXIT_CONNECTION_FAILED
        record["duration_s"] = round(time.perf_counter() - started, 6)
    except _CheckFailed as exc:
        record["error"] = str(exc)
        emit({"event": "result", **record})
        return EXIT_CHECK_FAILED
    except OSError as exc:
        record["error"] = f"network error: {exc!r}"
        emit({"event": "result", **record})
        return EXIT_CONNECTION_FAILED
    record["ok"] = not record.get("failures")
    emit({"event": "result", **record})
    return EXIT_OK if record["ok"] else EXIT_CHECK_FAILED


async def _echo_client_work(
    protocol: Any, args: argparse.Namespace, record: dict[str, Any]
) -> None:
    failures: list[str] = record.setdefault("failures", [])
    quic = protocol._quic
    started = time.perf_counter()
    streams = []
    for _ in range(args.streams):
        stream_id = quic.get_next_available_stream_id()
        payload = hashlib.shake_128(os.urandom(16)).digest(args.bytes)
        sink = protocol.open_sink(stream_id)
        quic.send_stream_data(stream_id, payload, end_stream=True)
        streams.append((stream_id, hashlib.sha256(payload).hexdigest(), len(payload), sink))
    protocol.transmit()
    results = []
    for stream_id, sent_digest, sent_size, sink in streams:
        await sink.done
        received = sink.digest.hexdigest()
        match = received == sent_digest and sink.size == sent_size
        if not match:
            failures.append(f"stream {stream_id}: echo differs")
        results.append(
            {
                "stream_id": stream_id,
                "bytes_sent": sent_size,
                "bytes_received": sink.size,
                "sha256_sent": sent_digest,
                "sha256_received": received,
                "match": match,
            }
        )
    transfer = time.perf_counter() - started
    record["streams"] = results
    record["streams_s"] = round(transfer, 6)
    total = args.bytes * args.streams
    record["streams_mbps"] = round(total * 8 / transfer / 1e6, 3) if transfer > 0 else None
    if args.datagrams:
        record["datagrams"] = await _raw_datagrams(protocol, args)
        if record["datagrams"]["received"] != args.datagrams:
            failures.append("datagram echoes missing or wrong")


async def _raw_datagrams(protocol: Any, args: argparse.Namespace) -> dict[str, Any]:
    quic = protocol._quic
    size = max(args.datagram_size, 4)
    expected = {
        index: index.to_bytes(4, "big") + os.urandom(size - 4) for index in range(args.datagrams)
    }
    started = time.perf_counter()
    for payload in expected.values():
        quic.send_datagram_frame(payload)
    protocol.transmit()
    received: set[int] = set()
    wrong = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(args.datagram_wait):
            while len(received) < len(expected):
                data = await protocol.datagrams.get()
                index = int.from_bytes(data[:4], "big")
                if expected.get(index) == data:
                    received.add(index)
                else:
                    wrong += 1
    return {
        "sent": len(expected),
        "received": len(received),
        "wrong": wrong,
        "duration_s": round(time.perf_counter() - started, 6),
    }


async def _h3_client_work(protocol: Any, args: argparse.Namespace, record: dict[str, Any]) -> None:
    failures: list[str] = record.setdefault("failures", [])
    url = urlsplit(args.url)
    authority = (url.netloc or f"{args.host}:{args.port}").encode()
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    requests = args.concurrency if args.requests is None else args.requests
    expected = args.expect_sha256
    if expected is None and path[1:].isdigit():
        expected = hashlib.sha256(generated_body(int(path[1:]))).hexdigest()
    if expected == "none":
        expected = None

    def request_headers(method: str, target: str, **extra: str) -> list[tuple[bytes, bytes]]:
        headers = [(b":method", method.encode())]
        if "protocol" in extra:
            headers.append((b":protocol", extra["protocol"].encode()))
        headers += [
            (b":scheme", b"https"),
            (b":authority", authority),
            (b":path", target.encode()),
            (b"user-agent", protocol.lib.name.encode()),
        ]
        return headers

    async def exchange(method: str, target: str, body: bytes | None) -> dict[str, Any]:
        started = time.perf_counter()
        _, sink = protocol.send_request(request_headers(method, target), body)
        headers = header_map(await sink.headers)
        await sink.done
        return {
            "method": method,
            "path": target,
            "status": int(headers.get(b":status", b"0")),
            "bytes": sink.size,
            "sha256": sink.digest.hexdigest(),
            "duration_s": round(time.perf_counter() - started, 6),
        }

    if requests:
        semaphore = asyncio.Semaphore(max(args.concurrency, 1))

        async def get() -> dict[str, Any]:
            async with semaphore:
                result = await exchange("GET", path, None)
            result["ok"] = result["status"] == 200 and (
                expected is None or result["sha256"] == expected
            )
            return result

        started = time.perf_counter()
        results = await asyncio.gather(*(get() for _ in range(requests)))
        elapsed = time.perf_counter() - started
        record["requests"] = results
        record["expected_sha256"] = expected
        record["gets_s"] = round(elapsed, 6)
        received = sum(r["bytes"] for r in results)
        record["gets_mbps"] = round(received * 8 / elapsed / 1e6, 3) if elapsed > 0 else None
        bad = [r for r in results if not r["ok"]]
        if bad:
            failures.append(
                f"{len(bad)} of {requests} GETs failed (first: status "
                f"{bad[0]['status']}, sha256 {bad[0]['sha256']})"
            )
    if args.post is not None:
        body = os.urandom(args.post)
        result = await exchange("POST", args.post_path, body)
        result["sha256_sent"] = hashlib.sha256(body).hexdigest()
        result["ok"] = result["status"] == 200 and result["sha256"] == result["sha256_sent"]
        record["post"] = result
        if not result["ok"]:
            failures.append(f"POST echo failed: status {result['status']}")
    if args.pingpong or args.h3_datagrams:
        async with asyncio.timeout(5):
            await protocol.settings_received.wait()
        settings = protocol.peer_settings()
        record["peer_settings"] = {str(k): v for k, v in (settings or {}).items()}
        missing = [
            name
            for name in ("ENABLE_CONNECT_PROTOCOL", "H3_DATAGRAM")
            if not protocol.peer_offers(name)
        ]
        if missing:
            raise _CheckFailed(f"server does not offer {', '.join(missing)}")
    if args.pingpong:
        record["pingpong"] = await _pingpong(protocol, request_headers, args.pingpong_rounds)
        if not record["pingpong"]["ok"]:
            failures.append("ping-pong did not reach its final count")
    if args.h3_datagrams:
        record["h3_datagrams"] = await _h3_datagram_echo(protocol, request_headers, args)
        if record["h3_datagrams"]["received"] != args.h3_datagrams:
            failures.append("HTTP datagram echoes missing")


async def _open_session(protocol: Any, headers: list[tuple[bytes, bytes]]) -> tuple[int, Sink, int]:
    stream_id, sink = protocol.send_request(headers, None, end=False)
    status = int(header_map(await sink.headers).get(b":status", b"0"))
    return stream_id, sink, status


async def _close_session(protocol: Any, stream_id: int, sink: Sink) -> bool:
    protocol._h3.send_data(stream_id, b"", end_stream=True)
    protocol.transmit()
    try:
        async with asyncio.timeout(2):
            await sink.done
    except TimeoutError:
        return False
    return True


async def _pingpong(protocol: Any, request_headers: Any, rounds: int) -> dict[str, Any]:
    """Client sends odd counts, the server answers count + 1, until ``rounds`` comes back.

    A datagram may be lost: the client resends its current count every 250 ms.
    """
    started = time.perf_counter()
    stream_id, sink, status = await _open_session(
        protocol, request_headers("CONNECT", "/ping-pong", protocol=PINGPONG_PROTOCOL)
    )
    result: dict[str, Any] = {
        "status": status,
        "stream_id": stream_id,
        "final": 0,
        "resends": 0,
        "received": [],
    }
    if status != 200:
        result["ok"] = False
        return result
    count = 1
    while True:
        protocol.lib.h3_send_datagram(protocol._h3, stream_id, str(count).encode())
        protocol.transmit()
        try:
            async with asyncio.timeout(0.25):
                while True:
                    data = await sink.datagrams.get()
                    result["received"].append(data.decode(errors="replace"))
                    if data == str(count + 1).encode():
                        break
        except TimeoutError:
            if sink.done.done():
                sink.done.result()  # raises the connection's error, if that ended it
                raise _CheckFailed("server ended the ping-pong session early") from None
            result["resends"] += 1
            continue
        result["final"] = count + 1
        if count + 1 >= rounds:
            break
        count += 2
    result["server_fin"] = await _close_session(protocol, stream_id, sink)
    result["ok"] = result["final"] == rounds
    result["duration_s"] = round(time.perf_counter() - started, 6)
    return result


async def _h3_datagram_echo(
    protocol: Any, request_headers: Any, args: argparse.Namespace
) -> dict[str, Any]:
    started = time.perf_counter()
    stream_id, sink, status = await _open_session(
        protocol, request_headers("CONNECT", "/echo", protocol=ECHO_PROTOCOL)
    )
    result: dict[str, Any] = {"status": status, "sent": 0, "received": 0}
    if status != 200:
        return result
    size = max(args.datagram_size, 4)
    expected = {i: i.to_bytes(4, "big") + os.urandom(size - 4) for i in range(args.h3_datagrams)}
    for payload in expected.values():
        protocol.lib.h3_send_datagram(protocol._h3, stream_id, payload)
    protocol.transmit()
    result["sent"] = len(expected)
    received: set[int] = set()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(args.datagram_wait):
            while len(received) < len(expected):
                data = await sink.datagrams.get()
                index = int.from_bytes(data[:4], "big")
                if expected.get(index) == data:
                    received.add(index)
    result["received"] = len(received)
    result["server_fin"] = await _close_session(protocol, stream_id, sink)
    result["duration_s"] = round(time.perf_counter() - started, 6)
    return result


def main(library: Library) -> None:
    sys.exit(run(library))
