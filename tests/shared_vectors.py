"""Where the project's shared test vectors live (``shared/`` sits beside the repository)."""

from __future__ import annotations

from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def shared_vectors(*parts: str) -> Path:
    """Path under ``shared/vectors``: beside the checkout, else the workplace's copy."""
    for base in (_REPO.parent / "shared" / "vectors", Path("/work/shared/vectors")):
        candidate = base.joinpath(*parts)
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"shared vectors not found: {'/'.join(parts)}")
