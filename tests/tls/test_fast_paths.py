"""Fast paths of the handshake compared with their general (or standard-library) spelling.

Each optimisation that duplicates a general path is checked here against that path on many
inputs, so a divergence fails.
"""

from __future__ import annotations

import datetime
import hmac
import random
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding

from trio_zttp._buffer import BufferReadError
from trio_zttp._tls import verify as verify_module
from trio_zttp._tls.alerts import AlertDescription, AlertError
from trio_zttp._tls.client import ClientFlow, _Grease
from trio_zttp._tls.config import GREASE, ClientHelloSpec, TlsConfiguration
from trio_zttp._tls.key_exchange import ClientKeyShare
from trio_zttp._tls.suites import CipherSuite, hkdf_expand_label, hmac_digest, hmac_new
from trio_zttp._tls.tickets import SessionTicket
from trio_zttp._tls.verify import parse_certificate, verify_certificate_chain
from trio_zttp.testing import CertificateAuthority

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)
SECOND = datetime.timedelta(seconds=1)

_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384()}


@pytest.mark.parametrize("name", ["sha256", "sha384"])
def test_hmac_digest_matches_stdlib(name: str) -> None:
    rng = random.Random(1)
    for _ in range(300):
        key = rng.randbytes(rng.randrange(0, 200))  # longer than a block too
        message = rng.randbytes(rng.randrange(0, 300))
        expected = hmac.digest(key, message, name)
        assert hmac_digest(key, message, name) == expected
        assert hmac_new(key, message, name).digest() == expected


@pytest.mark.parametrize("name", ["sha256", "sha384"])
def test_hkdf_expand_label_matches_cryptography_hkdf(name: str) -> None:
    rng = random.Random(2)
    size = 32 if name == "sha256" else 48
    for _ in range(200):
        secret = rng.randbytes(size)
        label = rng.randbytes(rng.randrange(1, 30))
        context = rng.randbytes(rng.choice((0, size)))
        length = rng.randrange(1, 3 * size)
        full = b"tls13 " + label
        info = length.to_bytes(2, "big") + bytes((len(full),)) + full
        info += bytes((len(context),)) + context
        expected = HKDFExpand(_HASHES[name], length, info).derive(secret)
        assert hkdf_expand_label(name, secret, label, context, length) == expected


# ------------------------------------------------------------------ verified-chain cache


def _outcome(chain: list[x509.Certificate], name: str | None, trusted: CertificateAuthority,
             is_server: bool, now: datetime.datetime) -> object:
    try:
        return verify_certificate_chain(chain, server_name=name, now=now, cadata=trusted.pem,
                                        is_server_cert=is_server)
    except AlertError as error:
        return error.description


def test_verified_chain_cache_answers_like_a_fresh_verification() -> None:
    """After a chain verified once, every later question (other times, names, trust stores,
    naive times, the validity boundaries) gets the answer a cold verification gives."""
    ca = CertificateAuthority.create()
    other_ca = CertificateAuthority.create(name="other")
    intermediate = ca.intermediate()
    leaves = [
        ca.issue(["localhost", "127.0.0.1"]),
        intermediate.issue(["localhost"]),
        ca.issue(["localhost"], not_after=NOW + 2 * DAY),
    ]
    for leaf in leaves:
        chain = list(leaf.chain)
        path = [*leaf.chain, ca.certificate]
        start = max(c.not_valid_before_utc for c in path)
        end = min(c.not_valid_after_utc for c in path)
        times = [NOW, NOW + DAY, start, end, start - SECOND, end + SECOND,
                 start + SECOND, end - SECOND, end + 400 * DAY, NOW.replace(tzinfo=None),
                 end.replace(tzinfo=None), (end + SECOND).replace(tzinfo=None)]
        for name in ("localhost", "127.0.0.1", "example.com", None):
            for trusted in (ca, other_ca):
                for is_server in (True, False):
                    for now in times:
                        question = (chain, name, trusted, is_server, now)
                        verify_module._VERIFIED.clear()
                        cold = _outcome(*question)
                        # warm the cache with verifications that succeed, then ask again
                        assert _outcome(chain, "localhost", ca, True, NOW) == path
                        _outcome(chain, None, ca, False, NOW)  # a client certificate?
                        assert _outcome(*question) == cold, question[1:]
                        assert _outcome(*question) == cold, question[1:]


def test_parse_certificate_cache_returns_the_same_certificate() -> None:
    ca = CertificateAuthority.create()
    for leaf in (ca.issue(["a.example"]), ca.issue(["b.example"])):
        der = leaf.certificate.public_bytes(Encoding.DER)
        first = parse_certificate(der)
        assert first == leaf.certificate
        assert parse_certificate(bytes(der)) is first
        with pytest.raises(AlertError):
            parse_certificate(der[:-1])


def test_certificate_message_is_the_encoded_chain() -> None:
    from trio_zttp._tls.messages import encode_certificate
    from trio_zttp._tls.messages import parse_certificate as parse_certificate_message

    ca = CertificateAuthority.create()
    leaf = ca.intermediate().issue(["localhost"])
    config = TlsConfiguration(is_client=False, alpn_protocols=("h3",),
                              certificate_chain=leaf.chain, private_key=leaf.private_key)
    ders = [c.public_bytes(Encoding.DER) for c in leaf.chain]
    assert len(ders) == 2
    assert config.certificate_message == encode_certificate(b"", ders)
    parsed = parse_certificate_message(config.certificate_message[4:])
    assert [der for der, _ in parsed.entries] == ders
    client = TlsConfiguration(is_client=True, alpn_protocols=("h3",))
    assert client.certificate_message == b""


# ------------------------------------------------------------------ ClientHello plan


def _random_spec(rng: random.Random) -> tuple[dict[str, object], ClientHelloSpec]:
    from trio_zttp._tls.config import DEFAULT_EXTENSION_ORDER
    from trio_zttp._tls.extensions import ExtensionType as E

    order = [slot for slot in DEFAULT_EXTENSION_ORDER if slot != E.pre_shared_key]
    rng.shuffle(order)
    order = [slot for slot in order if rng.random() < 0.85]
    if rng.random() < 0.3:
        order.insert(rng.randrange(len(order) + 1), GREASE)
    if rng.random() < 0.3:
        order.append(E.signature_algorithms_cert)
    extras: list[tuple[int, bytes]] = []
    if rng.random() < 0.4:
        extras.append((0x001C, b"\x40\x01"))  # record_size_limit, unlisted: appended
    if rng.random() < 0.3 and order:
        extras.append((int(order[rng.randrange(len(order))]) if order[0] != GREASE
                       else 0x0015, rng.randbytes(rng.randrange(0, 9))))
    if rng.random() < 0.5:
        order.append(E.pre_shared_key)
    suites = list(CipherSuite)
    rng.shuffle(suites)
    spec = ClientHelloSpec(
        extension_order=tuple(order),
        cipher_suites=None if rng.random() < 0.5 else (
            *suites[:rng.randrange(1, 4)], *((GREASE,) if rng.random() < 0.3 else ())),
        signature_algorithms=None if rng.random() < 0.5 else (0x0403, 0x0804, GREASE),
        signature_algorithms_cert=None if rng.random() < 0.5 else (0x0401,),
        alpn_protocols=None if rng.random() < 0.5 else ("h3", "hq-interop"),
        extra_extensions=tuple(dict(extras).items()),
        grease=rng.random() < 0.2,
    )
    settings: dict[str, object] = {
        "server_name": rng.choice(["localhost", "example.com", "192.0.2.1", "[::1]", None]),
        "alpn_protocols": rng.choice([("h3",), ("hq-interop", "h3")]),
        "enable_early_data": rng.random() < 0.5,
    }
    return settings, spec


def _ticket(rng: random.Random, server_name: str) -> SessionTicket:
    return SessionTicket(
        ticket=rng.randbytes(rng.randrange(16, 200)), psk=rng.randbytes(32),
        cipher_suite=CipherSuite.AES_128_GCM_SHA256, server_name=server_name,
        received_at=NOW.timestamp() - 5, lifetime=3600, age_add=rng.getrandbits(32),
        max_early_data_size=0xFFFFFFFF, alpn="h3")


def _hello_and_state(flow: ClientFlow, general: bool) -> tuple[object, ...]:
    flow._offered_suites = ()
    flow._offered_extensions = frozenset()
    flow._signature_algorithms = ()
    hello = flow._client_hello_general() if general else flow._client_hello()
    return (hello, flow._offered_suites, flow._offered_extensions, flow._signature_algorithms)


def test_client_hello_plan_matches_general_encoding() -> None:
    """The ClientHello from the per-configuration plan is byte for byte the general one, with
    the same offered suites, extensions and signature algorithms, over many shapes: extension
    orders, extras, GREASE, tickets (binders), cookies, HelloRetryRequest groups."""
    rng = random.Random(11)
    compared = 0
    for _ in range(150):
        settings, spec = _random_spec(rng)
        config = TlsConfiguration(
            is_client=True, client_hello=spec, random_bytes=rng.randbytes,
            wall_clock=lambda: NOW, **settings)  # type: ignore[arg-type]
        for _ in range(3):  # the plan is built by the first and reused by the others
            parameters = rng.randbytes(rng.randrange(0, 120))
            flow = ClientFlow(config, parameters)
            flow.client_random = rng.randbytes(32)
            if spec.grease:
                flow._grease = _Grease(rng.randbytes(6))
            flow._shares = [ClientKeyShare(0x001D, rng.randbytes)]
            if rng.random() < 0.4:
                flow._ticket = _ticket(rng, str(settings["server_name"] or ""))
                flow._now = NOW.timestamp()
                flow._early_data_offered = rng.random() < 0.5
            if rng.random() < 0.3:
                flow._cookie = rng.randbytes(rng.randrange(1, 40))
            if rng.random() < 0.2:
                flow._hello_retry_group = 0x0017
            assert _hello_and_state(flow, False) == _hello_and_state(flow, True)
            compared += 1
    assert compared == 450


# ------------------------------------------------------------------ decoded-extension cache


def _decode_outcome(call: Callable[[], object]) -> object:
    try:
        return ("ok", call())
    except AlertError as error:
        return ("alert", error.description)
    except BufferReadError:
        return ("truncated",)


def test_client_hello_extension_cache_answers_like_the_decoders() -> None:
    """Cached decodes of the constant ClientHello extensions equal the decoders' results, and
    a body that does not decode raises every time (errors are not cached)."""
    from trio_zttp._tls import extensions as ext
    from trio_zttp._tls.extensions import ExtensionType as E
    from trio_zttp._tls.messages import _decoded

    decoders: dict[int, Callable[[bytes], object]] = {
        E.server_name: ext.decode_server_name,
        E.supported_groups: lambda body: ext.decode_u16_list(body, "supported_groups"),
        E.signature_algorithms: lambda body: ext.decode_u16_list(body, "signature_algorithms"),
        E.signature_algorithms_cert: lambda body: ext.decode_u16_list(body, "x"),
        E.application_layer_protocol_negotiation: ext.decode_alpn,
        E.supported_versions: ext.decode_supported_versions_client,
        E.psk_key_exchange_modes: ext.decode_psk_modes,
    }
    valid = {
        E.server_name: ext.encode_server_name("example.com"),
        E.supported_groups: ext.encode_u16_list([0x1D, 0x17]),
        E.signature_algorithms: ext.encode_u16_list([0x0403, 0x0804]),
        E.signature_algorithms_cert: ext.encode_u16_list([0x0401]),
        E.application_layer_protocol_negotiation: ext.encode_alpn([b"h3", b"hq"]),
        E.supported_versions: ext.encode_supported_versions_client([0x0304]),
        E.psk_key_exchange_modes: ext.encode_psk_modes([1]),
    }
    rng = random.Random(3)
    for _ in range(60):
        for ext_type, decode in decoders.items():
            body = valid[ext_type]
            if rng.random() < 0.6:  # damage it: truncate, extend or flip a byte
                choice = rng.randrange(3)
                if choice == 0:
                    body = body[:rng.randrange(len(body) + 1)]
                elif choice == 1:
                    body += rng.randbytes(rng.randrange(1, 4))
                elif body:
                    i = rng.randrange(len(body))
                    body = body[:i] + bytes((body[i] ^ (1 << rng.randrange(8)),)) + body[i + 1:]
            expected = _decode_outcome(lambda: decode(body))  # noqa: B023
            for _ in range(2):
                assert _decode_outcome(lambda: _decoded(ext_type, body)) == expected  # noqa: B023


@pytest.mark.parametrize("suite", list(CipherSuite))
def test_key_schedule_derivations_match_derive_secret(suite: CipherSuite) -> None:
    from trio_zttp._tls.key_schedule import KeySchedule, derive_secret
    from trio_zttp._tls.suites import hash_length, hash_name

    rng = random.Random(int(suite))
    name, size = hash_name(suite), hash_length(suite)
    for _ in range(30):
        schedule = KeySchedule(suite, rng.randbytes(size) if rng.random() < 0.5 else None)
        schedule.set_shared_secret(rng.randbytes(32))
        schedule.set_master()
        transcript = rng.randbytes(size)
        for secret, label, method in (
            (schedule.early_secret, b"c e traffic", schedule.client_early_traffic_secret),
            (schedule.handshake_secret, b"c hs traffic",
             schedule.client_handshake_traffic_secret),
            (schedule.handshake_secret, b"s hs traffic",
             schedule.server_handshake_traffic_secret),
            (schedule.master_secret, b"c ap traffic", schedule.client_application_traffic_secret),
            (schedule.master_secret, b"s ap traffic", schedule.server_application_traffic_secret),
            (schedule.master_secret, b"exp master", schedule.exporter_master_secret),
            (schedule.master_secret, b"res master", schedule.resumption_master_secret),
        ):
            assert secret is not None
            expected = derive_secret(name, secret, label, transcript)
            assert method(transcript) == expected
            full = b"tls13 " + label
            info = (size.to_bytes(2, "big") + bytes((len(full),)) + full
                    + bytes((len(transcript),)) + transcript)
            assert expected == HKDFExpand(_HASHES[name], size, info).derive(secret)


def _reference_extensions(data: bytes, psk_last: bool) -> object:
    """The extension-block reader spelled out field by field (RFC 8446 §4.2)."""
    try:
        size = int.from_bytes(data[0:2], "big")
        if len(data) < 2 or len(data) < 2 + size:
            return ("truncated",)
        pos, end, out, seen = 2, 2 + size, [], set()
        while pos < end:
            if psk_last and 41 in seen:
                return ("alert", AlertDescription.illegal_parameter)
            if pos + 2 > end:
                return ("truncated",)
            ext_type = int.from_bytes(data[pos:pos + 2], "big")
            if ext_type in seen:
                return ("alert", AlertDescription.illegal_parameter)
            seen.add(ext_type)
            if pos + 4 > end:
                return ("truncated",)
            stop = pos + 4 + int.from_bytes(data[pos + 2:pos + 4], "big")
            if stop > end:
                return ("truncated",)
            out.append((ext_type, data[pos + 4:stop]))
            pos = stop
        return ("ok", tuple(out))
    except AlertError as error:  # pragma: no cover - the reference raises none
        return ("alert", error.description)


def test_extension_block_reader_matches_reference() -> None:
    from trio_zttp._buffer import Reader
    from trio_zttp._tls.messages import _pull_extensions

    rng = random.Random(9)
    for _ in range(3000):
        entries = b""
        for _ in range(rng.randrange(0, 6)):
            ext_type = rng.choice([0, 10, 13, 16, 41, 43, 51, 57, 0x0A0A, rng.randrange(65536)])
            body = rng.randbytes(rng.randrange(0, 6))
            entries += ext_type.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body
        if rng.random() < 0.5 and entries:
            entries = entries[:rng.randrange(len(entries))]  # cut inside an entry
        block = len(entries).to_bytes(2, "big") + entries
        psk_last = rng.random() < 0.5
        expected = _reference_extensions(block, psk_last)
        try:
            got: object = ("ok", _pull_extensions(Reader(block), psk_last=psk_last))
        except AlertError as error:
            got = ("alert", error.description)
        except BufferReadError:
            got = ("truncated",)
        assert got == expected, block.hex()
