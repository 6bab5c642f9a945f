"""Our client moves to a new local address mid-download (RFC 9000 §9, ``QuicConnection.migrate``)
and updates its 1-RTT keys (RFC 9001 §6), against servers nobody here wrote: aioquic's and
ngtcp2's ``gtlsserver`` (with its packet loss on); and it follows ``gtlsserver``'s preferred
address (RFC 9000 §9.6).  The client runs in this process, over loopback; the servers are the
interop peers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trio

import trio_zttp
from tests.interop.harness import (
    InteropCertificates,
    InteropSession,
    free_udp_port,
    generated_body,
)
from tests.interop.ngtcp2 import server_body, start_gtlsserver
from trio_zttp import quic

MB = 1_000_000


async def _download_moving(port: int, cafile: str, size: int) -> tuple[str, dict[str, object]]:
    """GET /<size>; after a quarter, migrate; after half, a key update; then one more GET
    from the new address.  Returns the body's sha256 and what happened."""
    config = quic.Configuration(is_client=True, alpn_protocols=("h3",), cafile=cafile,
                                server_name="localhost", idle_timeout=30.0)
    with trio.fail_after(120):
        async with trio_zttp.open_h3_connection("127.0.0.1", port, config) as conn:
            connection = conn.quic
            before = connection.local_address
            response = await conn.request("GET", f"/{size}")
            digest = hashlib.sha256()
            received = 0
            moved = None
            updated = False
            while data := await response.body.receive_some():
                digest.update(data)
                received += len(data)
                if moved is None and received >= size // 4:
                    moved = await connection.migrate()
                if not updated and received >= size // 2:
                    connection.request_key_update()
                    updated = True
            again = await (await conn.request("GET", "/1000")).read()
            facts: dict[str, object] = {
                "received": received, "before": before, "moved": moved,
                "after": connection.local_address, "again": len(again),
                "key_updates": connection.statistics().transport.key_updates,
            }
            return digest.hexdigest(), facts


def _check(facts: dict[str, object], size: int) -> None:
    assert facts["received"] == size
    assert facts["moved"] is not None and facts["moved"] != facts["before"]
    assert facts["after"] == facts["moved"]
    assert facts["again"] == 1000
    key_updates = facts["key_updates"]
    assert isinstance(key_updates, int) and key_updates >= 1


def test_our_client_migrates_and_updates_keys_against_aioquic(
    interop: InteropSession, interop_certs: InteropCertificates
) -> None:
    peer = interop.server("aioquic", "h3")
    assert peer.port is not None
    digest, facts = trio.run(_download_moving, peer.port, str(interop_certs.cafile), 5 * MB)
    assert digest == hashlib.sha256(generated_body(5 * MB)).hexdigest()
    _check(facts, 5 * MB)


def test_our_client_migrates_and_updates_keys_against_gtlsserver_with_loss(
    interop: InteropSession, interop_certs: InteropCertificates, gtlsserver: str,
    tmp_path: Path,
) -> None:
    server = start_gtlsserver(interop, gtlsserver, key=interop_certs.key,
                              cert=interop_certs.cert, htdocs=tmp_path, tx_loss=0.02,
                              rx_loss=0.02)
    assert server.port is not None
    digest, facts = trio.run(_download_moving, server.port, str(interop_certs.cafile), 10 * MB)
    assert digest == hashlib.sha256(server_body(10 * MB)).hexdigest()
    _check(facts, 10 * MB)


async def _download_from(port: int, cafile: str, size: int, *, follow: bool,
                         expect: tuple[str, int]) -> tuple[str, tuple[str, int], tuple[str, int]]:
    """GET /<size>; then, once the connection is at ``expect`` (the client moves when its
    probe is answered: lost packets can delay that past the download), GET /1000.  Returns
    the body's sha256 and the server address the connection used at the start and end."""
    config = quic.Configuration(is_client=True, alpn_protocols=("h3",), cafile=cafile,
                                server_name="localhost", idle_timeout=30.0,
                                use_preferred_address=follow)
    with trio.fail_after(120):
        async with trio_zttp.open_h3_connection("127.0.0.1", port, config) as conn:
            first = conn.quic.remote_address
            response = await conn.request("GET", f"/{size}")
            digest = hashlib.sha256()
            while data := await response.body.receive_some():
                digest.update(data)
            for _ in range(500):  # up to ~10 s
                if conn.quic.remote_address == expect:
                    break
                await trio.sleep(0.02)
            assert len(await (await conn.request("GET", "/1000")).read()) == 1000
            return digest.hexdigest(), first, conn.quic.remote_address


@pytest.mark.parametrize("loss", [None, 0.02])
def test_our_client_follows_gtlsservers_preferred_address(
    interop: InteropSession, interop_certs: InteropCertificates, gtlsserver: str,
    tmp_path: Path, loss: float | None,
) -> None:
    preferred = ("127.0.0.1", free_udp_port("127.0.0.1"))
    server = start_gtlsserver(
        interop, gtlsserver, key=interop_certs.key, cert=interop_certs.cert,
        htdocs=tmp_path, tx_loss=loss, rx_loss=loss,
        extra=[f"--preferred-ipv4-addr={preferred[0]}:{preferred[1]}"])
    assert server.port is not None and server.port != preferred[1]
    digest, first, last = trio.run(
        lambda: _download_from(server.port, str(interop_certs.cafile), 2 * MB, follow=True,
                               expect=preferred))
    assert digest == hashlib.sha256(server_body(2 * MB)).hexdigest()
    assert first == ("127.0.0.1", server.port)
    assert last == preferred


def test_our_client_told_not_to_follow_stays_on_gtlsservers_address(
    interop: InteropSession, interop_certs: InteropCertificates, gtlsserver: str,
    tmp_path: Path,
) -> None:
    preferred = ("127.0.0.1", free_udp_port("127.0.0.1"))
    server = start_gtlsserver(
        interop, gtlsserver, key=interop_certs.key, cert=interop_certs.cert,
        htdocs=tmp_path, extra=[f"--preferred-ipv4-addr={preferred[0]}:{preferred[1]}"])
    assert server.port is not None
    digest, first, last = trio.run(
        lambda: _download_from(server.port, str(interop_certs.cafile), MB, follow=False,
                               expect=("127.0.0.1", server.port)))
    assert digest == hashlib.sha256(server_body(MB)).hexdigest()
    assert first == last == ("127.0.0.1", server.port)
