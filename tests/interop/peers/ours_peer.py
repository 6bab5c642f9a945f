"""Our own interop peer: trio_zttp's public trio API behind the harness's peer contract.

Usage (``--help`` lists every flag; ``tests/interop/README.md`` has the contract)::

    python ours_peer.py server --mode h3 --cert cert.pem --key key.pem --port 0
    python ours_peer.py client --mode h3 --cafile ca.pem --url https://127.0.0.1:PORT/1000

Server: ``serve_h3`` (mode ``h3``: GET /N, POST /echo, extended CONNECT ``ping-pong`` and
``echo`` with HTTP datagrams) or ``serve_quic`` (mode ``echo``).  Client:
``open_h3_connection`` / ``open_quic_connection``.  The QUIC engine is
``trio_zttp.quic.Connection`` once it exists; until then (or with
``TRIO_ZTTP_INTEROP_ENGINE=aioquic``) aioquic's sans-IO connection behind the trio layer's
test adapter, so the HTTP/3 and trio layers are ours either way.  Every line says which
engine ran (``"engine"``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import trio
from _peer_core import (
    ECHO_PROTOCOL,
    EXIT_CHECK_FAILED,
    EXIT_CONNECTION_FAILED,
    EXIT_OK,
    PINGPONG_PROTOCOL,
    build_parser,
    emit,
    generated_body,
    parse_quic_version,
    start_watchdog,
)

import trio_zttp
from trio_zttp import quic
from trio_zttp.quic._config import Configuration

ENGINE_ENV = "TRIO_ZTTP_INTEROP_ENGINE"


def engine() -> tuple[Any, str]:
    """The QUIC engine factory and its name.

    ``$TRIO_ZTTP_INTEROP_ENGINE``: ``ours`` (default: our ``quic.Connection`` if this build
    has it, else aioquic's), ``ours-only`` (ours or exit 2), ``aioquic`` (aioquic's).
    """
    choice = os.environ.get(ENGINE_ENV, "ours")
    own = getattr(quic, "Connection", None)
    if own is not None and choice != "aioquic":
        return own, "trio_zttp"
    if choice == "ours-only":
        print("ours_peer: needs trio_zttp.quic.Connection, not in this build", file=sys.stderr)
        sys.exit(2)
    from tests.trio_layer._h3_helpers import AioquicH3Engine

    return AioquicH3Engine, "aioquic-adapter"


FACTORY, ENGINE_NAME = engine()


def base_record(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "peer": "ours",
        "peer_version": trio_zttp.__version__,
        "mode": args.mode,
        "engine": ENGINE_NAME,
    }


def configuration(args: argparse.Namespace, *, is_client: bool) -> Configuration:
    alpn = args.alpn or (["h3"] if args.mode == "h3" else ["echo"])
    values: dict[str, Any] = {
        "is_client": is_client,
        "alpn_protocols": tuple(alpn),
        "idle_timeout": args.idle_timeout,
        "max_datagram_frame_size": args.max_datagram_frame_size or None,
    }
    if args.quic_version:
        values["supported_versions"] = tuple(parse_quic_version(v) for v in args.quic_version)
    if args.secrets_log:
        values["secrets_log_file"] = open(args.secrets_log, "a")  # noqa: SIM115
    config = Configuration(**values)
    if not is_client:
        config.load_cert_chain(args.cert, args.key)
    return config


def quic_version(connection: trio_zttp.QuicConnection) -> str | None:
    """Best effort: the negotiated version, from whichever engine runs underneath."""
    engine_ = connection._engine
    for _ in range(3):
        version = getattr(engine_, "version", None) or getattr(
            getattr(engine_, "_conn", None), "_version", None
        )
        if version is not None:
            return f"0x{int(version):08x}"
        engine_ = getattr(engine_, "_inner", None)
        if engine_ is None:
            break
    return None


#: What ``transport_record`` reports from the engine's statistics (ECN and packet counts).
TRANSPORT_FIELDS = (
    "ecn_state", "ecn_failure", "ecn_ect0_received", "ecn_ect1_received", "ecn_ce_received",
    "ecn_ect0_sent", "ecn_ce_reported", "packets_sent", "packets_received", "packets_lost",
    "congestion_window",
)


def transport_record(connection: trio_zttp.QuicConnection) -> dict[str, Any]:
    """The engine's ECN state and counters (None for what an engine does not report)."""
    stats = connection.statistics().transport
    record = {name: getattr(stats, name, None) for name in TRANSPORT_FIELDS}
    if record["ecn_state"] is not None:
        record["ecn_state"] = str(record["ecn_state"])
    return record


class Stats:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, key: str, amount: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + amount


_body_cache = b""

#: HTTP/3 connections the server remembers for its closing ``transport`` records (the latest).
SEEN_LIMIT = 32


def cached_body(size: int) -> bytes:
    global _body_cache
    if size > len(_body_cache):
        _body_cache = generated_body(size)
    return _body_cache if size == len(_body_cache) else _body_cache[:size]


# --------------------------------------------------------------------------------------
# server


async def h3_handler(request: trio_zttp.H3Request, stats: Stats,
                     seen: dict[int, trio_zttp.H3Connection]) -> None:
    connection = request.connection
    if id(connection) not in seen:
        seen[id(connection)] = connection
        if len(seen) > SEEN_LIMIT:  # a long-running server (the benchmark) must not hoard them
            del seen[next(iter(seen))]
        emit({"event": "connection", "alpn": connection.quic.alpn_protocol,
              "quic_version": quic_version(connection.quic)})
    method, path = request.method, request.path
    stats.add(f"requests_{method}")
    if method == "CONNECT":
        if request.protocol not in (PINGPONG_PROTOCOL, ECHO_PROTOCOL):
            await request.respond(501, body=b"")
            return
        with trio.move_on_after(5):
            await connection.received_settings()
        settings = connection.peer_settings
        if settings is None or not settings.h3_datagram:
            await request.respond(400, body=b"")
            return
        stats.add(f"sessions_{request.protocol}")
        await request.respond(200)
        stream = request.http_stream()
        while True:
            try:
                data = await stream.receive_datagram()
            except trio.EndOfChannel:
                return
            stats.add("datagrams")
            if request.protocol == ECHO_PROTOCOL:
                await stream.send_datagram(data)
            elif data.isdigit():
                await stream.send_datagram(str(int(data) + 1).encode())
    if method == "POST" and path == "/echo":
        body = await request.read()
        stats.add("post_bytes", len(body))
        await request.respond(200, body=body)
        return
    if method in ("GET", "HEAD") and path[1:].isdigit():
        body = cached_body(int(path[1:]))
        stats.add("get_bytes", len(body))
        if method == "HEAD":
            await request.respond(200, [("content-length", str(len(body)))])
        else:
            await request.respond(200, body=body)
        return
    await request.respond(404 if method in ("GET", "HEAD", "POST") else 405, body=b"")


async def echo_handler(connection: trio_zttp.QuicConnection, stats: Stats) -> None:
    emit({"event": "connection", "alpn": connection.alpn_protocol,
          "quic_version": quic_version(connection)})

    async def echo_stream(stream: trio_zttp.QuicStream) -> None:
        async with stream:
            while data := await stream.receive_some():
                await stream.send_all(data)
                stats.add("stream_bytes", len(data))
            await stream.send_eof()
            stats.add("streams")

    async def echo_datagrams() -> None:
        while True:
            data = await connection.receive_datagram()
            await connection.send_datagram(data)
            stats.add("datagrams")

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_datagrams)
            while True:
                nursery.start_soon(echo_stream, await connection.accept_stream())
    except* trio.BrokenResourceError as group:
        error = group.exceptions[0]
        emit({"event": "closed", "error_code": getattr(error, "error_code", None),
              "reason": getattr(error, "reason", str(error))})


async def serve(args: argparse.Namespace) -> int:
    config = configuration(args, is_client=False)
    stats = Stats()
    host = args.host or "127.0.0.1"
    retry = "always" if args.retry else "never"
    seen: dict[int, trio_zttp.H3Connection] = {}
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            if args.mode == "h3":
                async def handler(request: trio_zttp.H3Request) -> None:
                    await h3_handler(request, stats, seen)

                endpoint = await nursery.start(
                    lambda task_status: trio_zttp.serve_h3(
                        handler, host, args.port or 0, config, connection_factory=FACTORY,
                        drain_timeout=1.0, retry=retry, task_status=task_status,
                    )
                )
            else:
                async def quic_handler(connection: trio_zttp.QuicConnection) -> None:
                    await echo_handler(connection, stats)

                endpoint = await nursery.start(
                    lambda task_status: trio_zttp.serve_quic(
                        quic_handler, host, args.port or 0, config,
                        connection_factory=FACTORY, task_status=task_status,
                    )
                )
            emit({"event": "ready", "host": host, "port": endpoint.local_address[1],
                  "pid": os.getpid(), "alpn": list(config.alpn_protocols), **base_record(args)})
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()
    for connection in seen.values():  # one line per HTTP/3 connection served (the latest)
        emit({"event": "transport", **transport_record(connection.quic)})
    emit({"event": "stats", **stats.counts})
    return EXIT_OK


# --------------------------------------------------------------------------------------
# client


class CheckFailed(Exception):
    pass


def client_configuration(args: argparse.Namespace, name: str) -> Configuration:
    config = configuration(args, is_client=True)
    config.server_name = name
    if args.insecure:
        config.verify_peer = False
    elif args.cafile:
        config.cafile = args.cafile
    return config


async def run_client(args: argparse.Namespace) -> int:
    record = base_record(args)
    record["ok"] = False
    started = time.perf_counter()
    if args.mode == "h3":
        url = urlsplit(args.url)
        host = args.host or url.hostname or "127.0.0.1"
        port = args.port or url.port or 443
        name = args.server_name or url.hostname or host
    else:
        host = args.host or "127.0.0.1"
        port = args.port
        name = args.server_name or host
    config = client_configuration(args, name)
    try:
        try:
            if args.mode == "h3":
                async with trio_zttp.open_h3_connection(
                    host, port, config, server_name=name, connection_factory=FACTORY
                ) as connection:
                    record["handshake_s"] = round(time.perf_counter() - started, 6)
                    record["quic_version"] = quic_version(connection.quic)
                    await h3_work(connection, args, record)
                    await trio.sleep(0.05)  # the last ACK frames, for the ECN counts
                    record["transport"] = transport_record(connection.quic)
            else:
                async with trio_zttp.open_quic_connection(
                    (host, port), config, server_name=name, connection_factory=FACTORY
                ) as connection:
                    record["handshake_s"] = round(time.perf_counter() - started, 6)
                    record["quic_version"] = quic_version(connection)
                    await echo_work(connection, args, record)
                    record["transport"] = transport_record(connection)
        except trio_zttp.ConnectionClosedError as exc:
            stage = "connection" if "handshake_s" in record else "handshake"
            record["error"] = f"{stage} failed: {exc}"
            record["close"] = {"error_code": exc.error_code, "frame_type": exc.frame_type,
                               "reason": exc.reason}
            record["duration_s"] = round(time.perf_counter() - started, 6)
            emit({"event": "result", **record})
            return EXIT_CONNECTION_FAILED
        except trio.BrokenResourceError as exc:
            record["error"] = f"connection failed: {exc!r}"
            emit({"event": "result", **record})
            return EXIT_CONNECTION_FAILED
        except OSError as exc:
            record["error"] = f"network error: {exc!r}"
            emit({"event": "result", **record})
            return EXIT_CONNECTION_FAILED
    except CheckFailed as exc:
        record["error"] = str(exc)
        emit({"event": "result", **record})
        return EXIT_CHECK_FAILED
    record["duration_s"] = round(time.perf_counter() - started, 6)
    record["ok"] = not record.get("failures")
    emit({"event": "result", **record})
    return EXIT_OK if record["ok"] else EXIT_CHECK_FAILED


async def echo_work(
    connection: trio_zttp.QuicConnection, args: argparse.Namespace, record: dict[str, Any]
) -> None:
    failures: list[str] = record.setdefault("failures", [])
    results: list[dict[str, Any]] = []
    started = time.perf_counter()

    async def one_stream() -> None:
        payload = hashlib.shake_128(os.urandom(16)).digest(args.bytes)
        digest = hashlib.sha256()
        size = 0
        async with connection.open_stream() as stream:

            async def send() -> None:
                await stream.send_all(payload)
                await stream.send_eof()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                while data := await stream.receive_some():
                    digest.update(data)
                    size += len(data)
        sent = hashlib.sha256(payload).hexdigest()
        match = digest.hexdigest() == sent and size == len(payload)
        if not match:
            failures.append(f"stream {stream.stream_id}: echo differs")
        results.append({"stream_id": stream.stream_id, "bytes_sent": len(payload),
                        "bytes_received": size, "sha256_sent": sent,
                        "sha256_received": digest.hexdigest(), "match": match})

    async with trio.open_nursery() as nursery:
        for _ in range(args.streams):
            nursery.start_soon(one_stream)
    elapsed = time.perf_counter() - started
    record["streams"] = sorted(results, key=lambda r: r["stream_id"])
    record["streams_s"] = round(elapsed, 6)
    total = args.bytes * args.streams
    record["streams_mbps"] = round(total * 8 / elapsed / 1e6, 3) if elapsed > 0 else None
    if args.datagrams:
        size = max(args.datagram_size, 4)
        expected = {i: i.to_bytes(4, "big") + os.urandom(size - 4) for i in range(args.datagrams)}
        for payload in expected.values():
            await connection.send_datagram(payload)
        received: set[int] = set()
        wrong = 0
        with trio.move_on_after(args.datagram_wait):
            while len(received) < len(expected):
                data = await connection.receive_datagram()
                index = int.from_bytes(data[:4], "big")
                if expected.get(index) == data:
                    received.add(index)
                else:
                    wrong += 1
        record["datagrams"] = {"sent": len(expected), "received": len(received), "wrong": wrong}
        if len(received) != args.datagrams:
            failures.append("datagram echoes missing or wrong")


def settings_record(settings: Any) -> dict[str, int]:
    out = {
        "1": settings.qpack_max_table_capacity,
        "7": settings.qpack_blocked_streams,
        "8": int(settings.enable_connect_protocol),
        "51": int(settings.h3_datagram),
    }
    if settings.max_field_section_size is not None:
        out["6"] = settings.max_field_section_size
    out.update({str(k): v for k, v in settings.unknown})
    return out


async def h3_work(
    connection: trio_zttp.H3Connection, args: argparse.Namespace, record: dict[str, Any]
) -> None:
    failures: list[str] = record.setdefault("failures", [])
    url = urlsplit(args.url)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    count = args.concurrency if args.requests is None else args.requests
    expected = args.expect_sha256
    if expected is None and path[1:].isdigit():
        expected = hashlib.sha256(generated_body(int(path[1:]))).hexdigest()
    if expected == "none":
        expected = None
    agent = [("user-agent", "trio_zttp")]

    async def exchange(method: str, target: str, body: bytes | None) -> dict[str, Any]:
        begun = time.perf_counter()
        digest = hashlib.sha256()
        size = 0
        async with await connection.request(method, target, headers=agent, body=body) as resp:
            while data := await resp.body.receive_some():
                digest.update(data)
                size += len(data)
        return {"method": method, "path": target, "status": resp.status, "bytes": size,
                "sha256": digest.hexdigest(), "duration_s": round(time.perf_counter() - begun, 6)}

    if count:
        results: list[dict[str, Any]] = []
        limiter = trio.CapacityLimiter(max(args.concurrency, 1))

        async def get() -> None:
            async with limiter:
                result = await exchange("GET", path, None)
            result["ok"] = result["status"] == 200 and (
                expected is None or result["sha256"] == expected)
            results.append(result)

        begun = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(get)
        elapsed = time.perf_counter() - begun
        record["requests"] = results
        record["expected_sha256"] = expected
        record["gets_s"] = round(elapsed, 6)
        total = sum(r["bytes"] for r in results)
        record["gets_mbps"] = round(total * 8 / elapsed / 1e6, 3) if elapsed > 0 else None
        bad = [r for r in results if not r["ok"]]
        if bad:
            failures.append(f"{len(bad)} of {count} GETs failed (first: status "
                            f"{bad[0]['status']}, sha256 {bad[0]['sha256']})")
    if args.post is not None:
        body = os.urandom(args.post)
        result = await exchange("POST", args.post_path, body)
        result["sha256_sent"] = hashlib.sha256(body).hexdigest()
        result["ok"] = result["status"] == 200 and result["sha256"] == result["sha256_sent"]
        record["post"] = result
        if not result["ok"]:
            failures.append(f"POST echo failed: status {result['status']}")
    if args.pingpong or args.h3_datagrams:
        with trio.fail_after(5):
            settings = await connection.received_settings()
        record["peer_settings"] = settings_record(settings)
        missing = [name for name, on in (("ENABLE_CONNECT_PROTOCOL",
                                          settings.enable_connect_protocol),
                                         ("H3_DATAGRAM", settings.h3_datagram)) if not on]
        if missing:
            raise CheckFailed(f"server does not offer {', '.join(missing)}")
    if args.pingpong:
        record["pingpong"] = await pingpong(connection, args.pingpong_rounds)
        if not record["pingpong"]["ok"]:
            failures.append("ping-pong did not reach its final count")
    if args.h3_datagrams:
        record["h3_datagrams"] = await datagram_echo(connection, args)
        if record["h3_datagrams"]["received"] != args.h3_datagrams:
            failures.append("HTTP datagram echoes missing")


async def finish_session(stream: trio_zttp.H3RequestStream) -> bool:
    await stream.send_eof()
    with trio.move_on_after(2):
        while await stream.receive_some():
            pass
        return True
    return False


async def pingpong(connection: trio_zttp.H3Connection, rounds: int) -> dict[str, Any]:
    started = time.perf_counter()
    async with connection.open_request_stream() as stream:
        await stream.send_request_header("CONNECT", "/ping-pong", protocol=PINGPONG_PROTOCOL)
        response = await stream.read_response()
        result: dict[str, Any] = {"status": response.status, "stream_id": stream.stream_id,
                                  "final": 0, "resends": 0, "received": []}
        if response.status != 200:
            result["ok"] = False
            return result
        count = 1
        while True:
            await stream.send_datagram(str(count).encode())
            with trio.move_on_after(0.25) as scope:
                while True:
                    try:
                        data = await stream.receive_datagram()
                    except trio.EndOfChannel:
                        raise CheckFailed("server ended the ping-pong session early") from None
                    result["received"].append(data.decode(errors="replace"))
                    if data == str(count + 1).encode():
                        break
            if scope.cancelled_caught:
                result["resends"] += 1
                continue
            result["final"] = count + 1
            if count + 1 >= rounds:
                break
            count += 2
        result["server_fin"] = await finish_session(stream)
    result["ok"] = result["final"] == rounds
    result["duration_s"] = round(time.perf_counter() - started, 6)
    return result


async def datagram_echo(connection: trio_zttp.H3Connection,
                        args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    async with connection.open_request_stream() as stream:
        await stream.send_request_header("CONNECT", "/echo", protocol=ECHO_PROTOCOL)
        response = await stream.read_response()
        result: dict[str, Any] = {"status": response.status, "sent": 0, "received": 0}
        if response.status != 200:
            return result
        size = max(args.datagram_size, 4)
        expected = {i: i.to_bytes(4, "big") + os.urandom(size - 4)
                    for i in range(args.h3_datagrams)}
        for payload in expected.values():
            await stream.send_datagram(payload)
        result["sent"] = len(expected)
        received: set[int] = set()
        with trio.move_on_after(args.datagram_wait):
            while len(received) < len(expected):
                data = await stream.receive_datagram()
                index = int.from_bytes(data[:4], "big")
                if expected.get(index) == data:
                    received.add(index)
        result["received"] = len(received)
        result["server_fin"] = await finish_session(stream)
    result["duration_s"] = round(time.perf_counter() - started, 6)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("ours_peer")
    args = parser.parse_args(argv)
    if args.role == "client" and args.mode == "h3" and not args.url:
        parser.error("client --mode h3 needs --url")
    if args.role == "client" and args.mode == "echo" and args.port is None:
        parser.error("client --mode echo needs --port")
    if args.role == "server":
        start_watchdog(args.timeout, {"event": "timeout", "timeout_s": args.timeout})
        return trio.run(serve, args)
    start_watchdog(args.timeout, {"event": "result", "ok": False, "peer": "ours",
                                  "mode": args.mode, "error": f"timeout after {args.timeout}s"})
    return trio.run(run_client, args)


if __name__ == "__main__":
    sys.exit(main())
