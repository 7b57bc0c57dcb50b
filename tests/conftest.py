"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_AUDIO = (REPO_ROOT / ".." / "shared" / "audio").resolve()


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    """The reference recordings in ``../shared/audio`` (skips when the folder is missing)."""
    if not SHARED_AUDIO.is_dir():
        pytest.skip(f"reference audio not found at {SHARED_AUDIO}")
    return SHARED_AUDIO
