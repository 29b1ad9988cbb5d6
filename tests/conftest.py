"""Shared fixtures. Zoo models are built once and cached as SavedModels on disk (keyed by the zoo's source and the
TensorFlow version), so repeated runs and pytest-xdist workers share them; a file lock keeps builds single."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _cache_root() -> Path:
    zoo_source = (ROOT / "irc" / "zoo.py").read_bytes()
    key = hashlib.sha256(zoo_source).hexdigest()[:12]
    root = Path(os.environ.get("IRC_TEST_CACHE", Path(tempfile.gettempdir()) / "irc-test-cache")) / key
    root.mkdir(parents=True, exist_ok=True)
    return root


class Zoo:
    """Builds zoo models once per session and exports them once per machine."""

    def __init__(self, root: Path):
        self.root = root
        self._keras = {}

    @staticmethod
    def _key(name, kwargs) -> str:
        return name + "".join(f"-{k}{v}" for k, v in sorted(kwargs.items()))

    def keras(self, name: str, **kwargs):
        key = self._key(name, kwargs)
        if key not in self._keras:
            from irc import zoo

            self._keras[key] = zoo.build(name, **kwargs)
        return self._keras[key]

    def saved_model(self, name: str, **kwargs) -> Path:
        key = self._key(name, kwargs)
        path = self.root / key
        with open(self.root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (path / "saved_model.pb").exists():
                from irc import zoo

                zoo.export(self.keras(name, **kwargs), path)
        return path


@pytest.fixture(scope="session")
def zoo_models() -> Zoo:
    return Zoo(_cache_root())
