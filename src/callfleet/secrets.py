"""Secrets that must be recoverable, encrypted at rest: webhook signing secrets, LLM API keys.

Such a secret cannot be hashed like an API key (the sender computes an HMAC with it, the LLM
client sends it), so it is encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from
``cryptography``) under a deployment key that is *not* in the database:
``CALLFLEET_SECRET_KEY`` (one or more comma-separated Fernet keys; the first encrypts, all
decrypt, so keys can be rotated), or else ``<data_dir>/secret.key``, created with mode 0600 on
first use. A database dump alone therefore reveals no secret. Every process of a deployment
must see the same key (docs/decisions/0009-webhooks.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from callfleet.config import Settings, get_settings

KEY_FILE = "secret.key"


class SecretKeyError(RuntimeError):
    """The stored secret cannot be decrypted with this process's key."""


def _key_file(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


class SecretBox:
    def __init__(self, keys: list[bytes]) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        # Signing keys for links (HMAC-SHA256), derived from the same deployment keys: the
        # first signs, all verify (rotation works as for encryption).
        self._signing = [hashlib.sha256(b"callfleet-link:" + k).digest() for k in keys]

    def sign(self, message: str) -> str:
        """A hex HMAC of ``message`` under the deployment key (e.g. an expiring link)."""
        return hmac.new(self._signing[0], message.encode(), hashlib.sha256).hexdigest()

    def verify(self, message: str, signature: str) -> bool:
        return any(hmac.compare_digest(
            hmac.new(k, message.encode(), hashlib.sha256).hexdigest(), signature)
            for k in self._signing)

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "the stored secret cannot be decrypted with this process's "
                "CALLFLEET_SECRET_KEY (every process must use the same key)"
            ) from None


@lru_cache(maxsize=8)
def _box(configured: str | None, data_dir: str) -> SecretBox:
    if configured:
        keys = [k.strip().encode() for k in configured.split(",") if k.strip()]
        try:
            return SecretBox(keys)
        except ValueError:
            raise ValueError(
                "CALLFLEET_SECRET_KEY must be Fernet keys (32 url-safe base64 bytes), "
                "comma-separated"
            ) from None
    return SecretBox([_key_file(Path(data_dir))])


_configured: Settings | None = None


def configure(settings: Settings) -> None:
    """Use this process's settings for the key (the app and workers call this at start)."""
    global _configured
    _configured = settings


def secret_box(settings: Settings | None = None) -> SecretBox:
    settings = settings or _configured or get_settings()
    return _box(settings.secret_key, str(settings.data_dir))
