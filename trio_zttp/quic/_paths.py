"""Network paths: anti-amplification, path validation and migration (RFC 9000 §8, §9).

A :class:`Path` is one peer address as seen by this endpoint.  Until a path is validated a
server may send at most three times what it received on it (RFC 9000 §8.1), counting whole
UDP datagrams: padding, coalesced packets and packets it could not decrypt included.

:class:`PathManager` keeps the current path, a few candidates (bounded), the PATH_CHALLENGE
data we wait to see echoed, and the PATH_RESPONSE frames we owe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, final

__all__ = ["AMPLIFICATION_FACTOR", "MAX_PATHS", "Path", "PathManager"]

Address = Any

#: The anti-amplification factor of RFC 9000 §8.1.
AMPLIFICATION_FACTOR: Final = 3
#: Paths we remember at once (the current one included); the oldest idle one goes first.
MAX_PATHS: Final = 4
#: PATH_RESPONSE frames we queue at most (a peer flooding challenges gets the newest ones).
MAX_PENDING_RESPONSES: Final = 8


@final
class Path:
    """One peer address.

    Attributes:
        address: the peer's address.
        validated: the peer proved it receives at this address (or we are the client).
        bytes_received: UDP payload bytes received from the address.
        bytes_sent: UDP payload bytes sent to it.
        challenge: the PATH_CHALLENGE data we wait to see in a PATH_RESPONSE, or None.
        challenge_pending: a PATH_CHALLENGE must go out.
        challenge_deadline: when the challenge goes out again, or the validation fails, if no
            response came.
        challenge_expiry: when the validation fails.
        challenge_interval: the time until the challenge goes out again (doubling).
        challenge_sends: how many more times the challenge goes out.
        receive_only: an address we moved away from: what still arrives from it is taken,
            nothing is sent to it (the client after moving to a server's preferred address).
    """

    __slots__ = ("address", "bytes_received", "bytes_sent", "challenge", "challenge_deadline",
                 "challenge_expiry", "challenge_interval", "challenge_pending",
                 "challenge_sends", "receive_only", "validated")

    def __init__(self, address: Address, *, validated: bool = False) -> None:
        self.address = address
        self.validated = validated
        self.bytes_received = 0
        self.bytes_sent = 0
        self.challenge: bytes | None = None
        self.challenge_pending = False
        self.challenge_deadline: float | None = None
        self.challenge_expiry: float | None = None
        self.challenge_interval = 0.0
        self.challenge_sends = 0
        self.receive_only = False

    def amplification_budget(self) -> int | None:
        """Bytes we may still send before validation; None once validated."""
        if self.validated:
            return None
        budget = AMPLIFICATION_FACTOR * self.bytes_received - self.bytes_sent
        return budget if budget > 0 else 0

    def __repr__(self) -> str:
        return (f"<Path {self.address!r} validated={self.validated} "
                f"rx={self.bytes_received} tx={self.bytes_sent}>")


@final
class PathManager:
    """The paths of one connection (see module doc)."""

    __slots__ = ("_paths", "_random", "current", "deadline", "responses")

    def __init__(self, random_bytes: Callable[[int], bytes]) -> None:
        self._random = random_bytes
        self._paths: dict[Any, Path] = {}
        self.current: Path | None = None
        #: (path, data) of PATH_RESPONSE frames to send.
        self.responses: list[tuple[Path, bytes]] = []
        #: The earliest path-validation deadline, or None.
        self.deadline: float | None = None

    def get(self, address: Address) -> Path | None:
        return self._paths.get(address)

    def paths(self) -> list[Path]:
        return list(self._paths.values())

    def get_or_create(self, address: Address, *, validated: bool = False) -> Path:
        path = self._paths.get(address)
        if path is None:
            if len(self._paths) >= MAX_PATHS:
                for key, old in list(self._paths.items()):
                    if old is not self.current:
                        del self._paths[key]
                        self.responses = [(p, d) for p, d in self.responses if p is not old]
                        self.deadline = self.next_deadline()
                        break
            path = self._paths[address] = Path(address, validated=validated)
        if self.current is None:
            self.current = path
        return path

    def start_validation(self, path: Path, now: float, pto: float, sends: int = 2) -> None:
        """Send a PATH_CHALLENGE on ``path``, ``sends`` times in all, the PTO ``pto`` apart and
        doubling, as the PTO backs off (RFC 9000 §8.2.1 allows several, no more often than an
        Initial would go; the same data is fine). Without an answer the validation fails one
        doubled interval after the last send: with two sends at ``3 * pto``, the timeout
        RFC 9000 §8.2.4 recommends."""
        if sends < 1:
            raise ValueError("a path validation sends its challenge at least once")
        path.challenge = self._random(8)
        path.challenge_pending = True
        path.challenge_sends = sends - 1
        path.challenge_interval = pto
        path.challenge_expiry = now + pto * ((1 << sends) - 1)
        path.challenge_deadline = now + pto
        self.deadline = self.next_deadline()

    def on_challenge(self, path: Path, data: bytes) -> None:
        """The peer sent PATH_CHALLENGE on ``path``: owe it a PATH_RESPONSE there (never on a
        receive-only path)."""
        if path.receive_only:
            return
        if len(self.responses) >= MAX_PENDING_RESPONSES:
            del self.responses[0]
        self.responses.append((path, data))

    def on_response(self, data: bytes) -> Path | None:
        """A PATH_RESPONSE arrived: the path it validates, or None (RFC 9000 §8.2.3)."""
        for path in self._paths.values():
            if path.challenge is not None and path.challenge == data:
                path.validated = True
                path.challenge = None
                path.challenge_pending = False
                path.challenge_deadline = path.challenge_expiry = None
                self.deadline = self.next_deadline()
                return path
        return None

    def next_deadline(self) -> float | None:
        deadlines = [p.challenge_deadline for p in self._paths.values()
                     if p.challenge_deadline is not None]
        return min(deadlines) if deadlines else None

    def expire(self, now: float) -> list[Path]:
        """Paths whose validation timed out at ``now`` (their challenge is abandoned); the
        challenges of the others whose resend time came are due again."""
        failed = []
        for path in self._paths.values():
            deadline = path.challenge_deadline
            if deadline is not None and deadline <= now:
                expiry = path.challenge_expiry
                if path.challenge_sends > 0 and expiry is not None and now < expiry:
                    path.challenge_pending = True  # once more
                    path.challenge_sends -= 1
                    path.challenge_interval *= 2
                    path.challenge_deadline = min(expiry, now + path.challenge_interval)
                    continue
                path.challenge = None
                path.challenge_pending = False
                path.challenge_deadline = path.challenge_expiry = None
                failed.append(path)
        self.deadline = self.next_deadline()
        return failed

    def leave(self, path: Path) -> None:
        """The connection moved away from ``path``: it stays known so that what still comes
        from there is taken, but nothing more goes there (no challenge, no response)."""
        path.receive_only = True
        path.challenge = None
        path.challenge_pending = False
        path.challenge_deadline = path.challenge_expiry = None
        self.responses = [(p, d) for p, d in self.responses if p is not path]
        self.deadline = self.next_deadline()

    def forget(self, path: Path) -> None:
        if path is not self.current:
            self._paths.pop(path.address, None)
            self.responses = [(p, d) for p, d in self.responses if p is not path]
            self.deadline = self.next_deadline()
