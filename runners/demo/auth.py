"""Authentication of the demo target: salted PBKDF2 passwords and HMAC-signed expiring tokens.

A token is `base64url(claims JSON) "." base64url(HMAC-SHA256(secret, claims part))`; claims are
`sub` (user), `typ` (`access` or `refresh`), `exp` (epoch seconds) and `jti` (random id).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MIN_PASSWORD", "Claims", "TokenSigner", "UserStore"]

MIN_PASSWORD = 8
"""Shortest accepted password."""

_PBKDF2_ROUNDS = 1000


@dataclass(frozen=True, kw_only=True)
class Claims:
    """What a valid token says."""

    sub: str
    """User name."""
    typ: str
    """`access` or `refresh`."""
    exp: float
    """Expiry, epoch seconds."""
    jti: str
    """Random token id."""


class TokenSigner:
    """Issues and checks HMAC-signed tokens with fixed lifetimes per token type."""

    def __init__(
        self,
        *,
        secret: bytes,
        access_ttl: float,
        refresh_ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if access_ttl <= 0 or refresh_ttl <= 0:
            raise ValueError("token lifetimes must be > 0 seconds")
        self._secret = secret
        self.ttl = {"access": access_ttl, "refresh": refresh_ttl}
        self._clock = clock

    def issue(self, user: str, typ: str) -> str:
        """A new `typ` token for `user`, valid for that type's lifetime from now."""
        claims = {"sub": user, "typ": typ, "exp": self._clock() + self.ttl[typ], "jti": os.urandom(8).hex()}
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str, typ: str) -> Claims | None:
        """The claims of `token` if its signature is good, its type is `typ` and it has not expired."""
        body, _, signature = token.partition(".")
        if not signature or not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            raw = json.loads(_unb64(body))
            claims = Claims(sub=str(raw["sub"]), typ=str(raw["typ"]), exp=float(raw["exp"]), jti=str(raw["jti"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if claims.typ != typ or claims.exp <= self._clock():
            return None
        return claims

    def remaining(self, claims: Claims) -> float:
        """Seconds until `claims` expire."""
        return max(0.0, claims.exp - self._clock())

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())


class UserStore:
    """Accounts created on first login; later logins must give the same password."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, tuple[bytes, bytes]] = {}

    def login(self, user: str, password: str) -> bool:
        """True if `password` is this user's (registering the user on first sight)."""
        if not user or len(password) < MIN_PASSWORD:
            return False
        with self._lock:
            known = self._users.get(user)
        if known is None:
            salt = os.urandom(16)
            digest = _hash(password, salt)
            with self._lock:
                known = self._users.setdefault(user, (salt, digest))
        salt, digest = known
        return hmac.compare_digest(digest, _hash(password, salt))

    def __len__(self) -> int:
        with self._lock:
            return len(self._users)


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _PBKDF2_ROUNDS)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
