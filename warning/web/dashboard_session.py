"""Browser sessions for the dashboard: an HMAC-signed cookie (token name + expiry), CSRF tokens, one-time login links.

The cookie never holds the token itself: it names the token and is signed with a key that also covers a
fingerprint of the token's value, so rotating a token in the configuration ends its sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from warning import keys
from warning.settings import Settings, Token

COOKIE = "ew_session"
#: the pre-login cookie the login form's CSRF token is bound to
LOGIN_COOKIE = "ew_login"
#: roles that may use the dashboard (feed tokens are for machines)
DASHBOARD_ROLES = ("admin", "issuer", "approver", "viewer")
LINK_TTL_S = 120


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: whose token, until when, and the id its CSRF token is bound to."""

    token: Token
    expires: int
    sid: str


@dataclass
class SessionBook:
    """Signs and checks session cookies, CSRF tokens and login links with one secret."""

    secret: bytes
    ttl_s: int
    tokens: tuple[Token, ...]
    secure: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionBook:
        """The configured `[server] session_secret`, or a random one for this process."""
        raw = settings.server.session_secret
        secret = raw.encode() if raw else secrets.token_bytes(32)
        return cls(secret=secret, ttl_s=max(60, settings.server.session_ttl_s), tokens=settings.tokens,
                   secure=settings.server.public_url.startswith("https://"))

    def _mac(self, purpose: str, *parts: str) -> str:
        msg = "\x1f".join((purpose, *parts)).encode()
        return _b64(hmac.new(self.secret, msg, hashlib.sha256).digest())

    def _token(self, name: str) -> Token | None:
        return next((t for t in self.tokens if t.name == name), None)

    @staticmethod
    def _fingerprint(token: Token) -> str:
        return hashlib.sha256(token.token.encode()).hexdigest()[:16]

    # ---- sessions ----------------------------------------------------------------------
    def issue(self, token: Token, now: datetime) -> str:
        """A cookie value for `token`, valid for ttl_s from now."""
        payload = _b64(json.dumps({"n": token.name, "e": int(now.timestamp()) + self.ttl_s,
                                   "s": secrets.token_hex(8)}, separators=(",", ":")).encode())
        return f"{payload}.{self._mac('session', payload, self._fingerprint(token))}"

    def verify(self, value: str, now: datetime) -> Session | None:
        """The session a cookie value stands for; None when forged, altered, expired or its token is gone."""
        payload, _, mac = value.partition(".")
        try:
            doc = json.loads(_unb64(payload))
            name, expires, sid = str(doc["n"]), int(doc["e"]), str(doc["s"])
        except (ValueError, KeyError, TypeError):
            return None
        token = self._token(name)
        if token is None or token.role not in DASHBOARD_ROLES:
            return None
        if not hmac.compare_digest(mac.encode(), self._mac("session", payload, self._fingerprint(token)).encode()):
            return None
        if expires <= now.timestamp():
            return None
        return Session(token, expires, sid)

    def find_token(self, presented: str) -> Token | None:
        """The token with this value, compared in constant time against every token."""
        found = None
        for token in self.tokens:
            if hmac.compare_digest(token.token.encode(), presented.strip().encode()):
                found = token
        return found

    # ---- CSRF ----------------------------------------------------------------------------
    def csrf(self, anchor: str) -> str:
        """The CSRF token of a session id (or of the pre-login nonce)."""
        return self._mac("csrf", anchor)

    def csrf_ok(self, anchor: str, presented: str) -> bool:
        # bytes: compare_digest refuses str with non-ASCII characters (a TypeError, not a mismatch)
        return bool(anchor) and hmac.compare_digest(self.csrf(anchor).encode(), presented.encode())

    # ---- one-time login links ------------------------------------------------------------
    def link_signature(self, nonce: str) -> str:
        return self._mac("link", nonce)

    def link_ok(self, nonce: str, presented: str) -> bool:
        """Whether `presented` is the signature of a one-time link's nonce (any text; compared as bytes)."""
        return bool(nonce) and hmac.compare_digest(self.link_signature(nonce).encode(), presented.encode())

    def set_cookie(self, response: web.StreamResponse, name: str, value: str, max_age: int | None) -> None:
        """HttpOnly, SameSite=Strict, path /; Secure when the service is reached over https."""
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="Strict",
                            secure=self.secure)


def link_key(nonce: str) -> str:
    """String: the token name a one-time login link stands for (short TTL, deleted when used)."""
    return f"{keys.PREFIX}login:{nonce}"


def revoked_key(sid: str) -> str:
    """String: a signed-out session id, kept until the session would have expired."""
    return f"{keys.PREFIX}session:revoked:{sid}"


async def issue_login_link(app: web.Application, token_name: str, *, next_path: str = "/dashboard") -> str:
    """A one-time path that signs `token_name` in (for the demo and browser tests); valid LINK_TTL_S seconds."""
    from urllib.parse import quote

    from warning.web.keys import redis_key, session_book_key

    book = app[session_book_key]
    if book._token(token_name) is None:
        raise KeyError(token_name)
    nonce = secrets.token_urlsafe(18)
    await app[redis_key].set(link_key(nonce), token_name, ex=LINK_TTL_S)
    return f"/login/link?t={nonce}.{book.link_signature(nonce)}&next={quote(next_path, safe='/')}"
