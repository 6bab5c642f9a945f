"""Test helpers for users and for this project: certificates, a sans-IO pair driver with a
seeded lossy link, and a virtual datagram network for trio.
"""

__all__: list[str] = []
