"""Signed, expiring session tokens carrying a username and its roles.

A token is ``itsdangerous.URLSafeTimedSerializer`` output: the JSON claims, the signing time and
an HMAC-SHA1 signature over both, keyed by the server's secret key and a fixed salt. Nothing is
stored on the server: any process holding the same secret key verifies it (several servers
behind a load balancer share the key), and logging out only removes the browser's cookie; the
token itself stays valid until it expires. Rotate the secret key to revoke every token.
"""

from __future__ import annotations

from dataclasses import dataclass

import itsdangerous

#: Default token lifetime: one shift.
DEFAULT_TOKEN_LIFETIME_S = 8 * 3600

_SALT = "xrcell-session-v1"


class TokenError(Exception):
    """A token is missing, forged, malformed or expired; the message is safe to show to a client."""


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says.

    Attributes:
        username: the account that logged in.
        roles: its role names at login time (see `content.storage.Role`).
    """

    username: str
    roles: tuple[str, ...]


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
        return self._serializer.dumps({"u": username, "r": list(roles)})

    def verify(self, token: str | None) -> TokenClaims:
        """The claims of a valid token; raises `TokenError` ("missing token" or
        "invalid or expired token") otherwise."""
        if not token:
            raise TokenError("missing token")
        try:
            data = self._serializer.loads(token, max_age=self.lifetime_s)
        except itsdangerous.BadData as exc:  # BadSignature, SignatureExpired, BadPayload
            raise TokenError("invalid or expired token") from exc
        if (not isinstance(data, dict) or not isinstance(data.get("u"), str)
                or not isinstance(data.get("r"), list)):
            raise TokenError("invalid or expired token")
        return TokenClaims(username=data["u"], roles=tuple(str(r) for r in data["r"]))
