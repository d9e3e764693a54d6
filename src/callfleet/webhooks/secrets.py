"""Webhook signing secrets: generated, masked in responses, encrypted at rest with
``callfleet.secrets`` (re-exported here)."""

from __future__ import annotations

import base64
import secrets

from callfleet.secrets import SecretBox, SecretKeyError, secret_box

__all__ = ["SecretBox", "SecretKeyError", "generate_secret", "hint_of", "mask", "secret_box"]


def generate_secret() -> str:
    """``whsec_`` + 32 random bytes, URL-safe base64 (43 characters)."""
    return "whsec_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def mask(hint: str) -> str:
    """What every response but the create response shows instead of the secret."""
    return f"whsec_****{hint}" if hint else "****"


def hint_of(secret: str) -> str:
    return secret[-4:] if len(secret) >= 16 else ""
