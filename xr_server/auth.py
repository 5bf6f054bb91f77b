"""Signed, expiring session tokens carrying a username and its roles, and their server-side check.

A token is ``itsdangerous.URLSafeTimedSerializer`` output: the JSON claims (username, roles, a
random token id), the signing time and an HMAC-SHA1 signature over both, keyed by the server's
secret key and a fixed salt. Any process holding the same secret key verifies the signature
(several servers behind a load balancer share the key); rotating the key revokes every token.

The signature alone cannot be taken back, so `SessionGuard` adds the server-side half: a token
whose id was revoked (logout) or whose user was removed is refused, and a user's current roles
cap the roles the token claims. Revocations live in the user store (`content.storage.UserStore`,
table ``revoked_tokens``), so every server process on the same database honours them.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import itsdangerous

log = logging.getLogger(__name__)

#: Default token lifetime: one shift.
DEFAULT_TOKEN_LIFETIME_S = 8 * 3600
#: How old `SessionGuard`'s copy of the revocations and users may get, seconds: a logout or a
#: removed user on another server process takes effect here within this time (at once here).
DEFAULT_SESSION_REFRESH_S = 1.0

_SALT = "xrcell-session-v1"


class TokenError(Exception):
    """A token is missing, forged, malformed, expired or revoked; the message is safe to show to a
    client."""


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says.

    Attributes:
        username: the account that logged in.
        roles: its role names at login time (see `content.storage.Role`); after
            `SessionGuard.check`, only those the account still holds.
        token_id: random id of this token (what a logout revokes).
        expires_at: UNIX seconds when the token stops being valid.
    """

    username: str
    roles: tuple[str, ...]
    token_id: str
    expires_at: float


class TokenSigner:
    """Issues and verifies tokens. Stateless and thread-safe.

    Args:
        secret_key: HMAC key; at least 16 characters (use ``secrets.token_hex(32)``).
        lifetime_s: seconds a token stays valid after it was issued.
    """

    def __init__(self, secret_key: str | bytes, lifetime_s: float = DEFAULT_TOKEN_LIFETIME_S) -> None:
        if len(secret_key) < 16:
            raise ValueError("secret_key must be at least 16 characters")
        if lifetime_s <= 0:
            raise ValueError(f"lifetime_s must be positive, got {lifetime_s}")
        self._serializer = itsdangerous.URLSafeTimedSerializer(secret_key, salt=_SALT)
        self.lifetime_s = float(lifetime_s)

    def issue(self, username: str, roles: tuple[str, ...] | list[str]) -> str:
        """A new token for `username` with `roles`, valid for `lifetime_s` from now."""
        return self._serializer.dumps({"u": username, "r": list(roles), "j": secrets.token_urlsafe(16)})

    def verify(self, token: str | None) -> TokenClaims:
        """The claims of a token with a valid signature that has not expired; raises `TokenError`
        ("missing token" or "invalid or expired token") otherwise. Does not consult the server's
        revocations: see `SessionGuard.check`."""
        if not token:
            raise TokenError("missing token")
        try:
            data, signed_at = self._serializer.loads(token, max_age=self.lifetime_s,  # type: ignore[arg-type]
                                                     return_timestamp=True)  # (a float max_age works)
        except itsdangerous.BadData as exc:  # BadSignature, SignatureExpired, BadPayload
            raise TokenError("invalid or expired token") from exc
        if (not isinstance(data, dict) or not isinstance(data.get("u"), str)
                or not isinstance(data.get("r"), list) or not isinstance(data.get("j"), str)):
            raise TokenError("invalid or expired token")
        return TokenClaims(username=data["u"], roles=tuple(str(r) for r in data["r"]), token_id=data["j"],
                           expires_at=signed_at.timestamp() + self.lifetime_s)


class SessionStore(Protocol):
    """What `SessionGuard` needs of the user store (`content.storage.UserStore` has it)."""

    def list(self) -> Sequence: ...  # of objects with `username` and `roles`

    def revoke_token(self, token_id: str, expires_at: float) -> None: ...

    def revoked_token_ids(self) -> frozenset[str]: ...


class SessionGuard:
    """The server-side check of a token whose signature is valid.

    `check` refuses a token that has expired, was revoked, or belongs to a removed user, and
    narrows its roles to those the user still holds. It reads a copy of the revoked token ids and
    of the users that is at most `refresh_s` old (one store query per refresh, not one per
    request); `revoke` updates this process's copy at once.

    Thread safety: every method may be called from any thread (request threads, Socket.IO
    handlers, the broadcast task); the copy is replaced under a lock.

    Args:
        store: `SessionStore`.
        refresh_s: largest age of the copy, seconds.
        clock: monotonic clock for the copy's age (wall time `time.time` decides expiry).
    """

    def __init__(self, store: SessionStore, refresh_s: float = DEFAULT_SESSION_REFRESH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if refresh_s <= 0:
            raise ValueError(f"refresh_s must be positive, got {refresh_s}")
        self._store = store
        self._refresh_s = float(refresh_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded_at: float | None = None
        self._revoked: frozenset[str] = frozenset()
        self._roles: dict[str, frozenset[str]] = {}

    def _view(self) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
        with self._lock:
            now = self._clock()
            if self._loaded_at is None or now - self._loaded_at >= self._refresh_s:
                try:
                    revoked = self._store.revoked_token_ids()
                    roles = {u.username: frozenset(u.roles) for u in self._store.list()}
                except Exception as exc:  # noqa: BLE001 - fail closed, whatever the store raised
                    log.exception("session check: the user store failed")
                    raise TokenError("cannot check the token: user store unavailable") from exc
                self._revoked, self._roles, self._loaded_at = revoked, roles, now
            return self._revoked, self._roles

    def check(self, claims: TokenClaims) -> TokenClaims:
        """`claims` with the roles the user still holds; raises `TokenError` ("token expired",
        "token revoked", "token of a removed user", "token roles no longer held by <user>",
        "cannot check the token: user store unavailable")."""
        if time.time() >= claims.expires_at:
            raise TokenError("token expired")
        revoked, roles = self._view()
        if claims.token_id in revoked:
            raise TokenError("token revoked")
        held = roles.get(claims.username)
        if held is None:
            raise TokenError("token of a removed user")
        kept = tuple(r for r in claims.roles if r in held)
        if not kept:
            raise TokenError(f"token roles no longer held by {claims.username!r}")
        return claims if kept == claims.roles else replace(claims, roles=kept)

    def revoke(self, claims: TokenClaims) -> None:
        """Revoke the token of `claims` in the store (for every process) and here at once.

        Raises:
            content.errors.StorageError: the store failed (the token is then not revoked).
        """
        self._store.revoke_token(claims.token_id, claims.expires_at)
        with self._lock:
            self._revoked = self._revoked | {claims.token_id}
