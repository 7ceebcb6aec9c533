"""Browser sessions for the dashboard: an HMAC-signed cookie (token name + expiry), CSRF tokens, one-time login links.

The cookie never holds the token itself: it names the token and is signed with a key that also covers a
fingerprint of the token's value, so rotating a token in the configuration ends its sessions.

A one-time link is a random nonce kept in Redis (naming the token, with a TTL, deleted when used) and a signature
keyed by the token's own value: whoever makes a link holds the token (the service's configuration, as
`warning login-link` does), the running service checks it without sharing a secret with the command, and a
rotated token ends its links.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from warning import keys
from warning.settings import Settings, Token

COOKIE = "ew_session"
#: the pre-login cookie the login form's CSRF token is bound to
LOGIN_COOKIE = "ew_login"
#: roles that may use the dashboard (feed tokens are for machines)
DASHBOARD_ROLES = ("admin", "issuer", "approver", "viewer")
#: the token roles as people in the office call them
ROLE_ZH = {"admin": "管理员", "issuer": "发布员", "approver": "审签人", "viewer": "查看员", "feed": "数据源"}
#: how long a link made for a browser test or the API lasts, unless said otherwise
LINK_TTL_S = 120
#: the longest a one-time link may stay valid (a link is as good as the token until it is used)
MAX_LINK_TTL_S = 24 * 3600


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

    def token_named(self, name: str) -> Token | None:
        """The configured token of that name."""
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
        token = self.token_named(name)
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


def link_signature(token: Token, nonce: str) -> str:
    """The signature of a one-time link's nonce, keyed by the value of the token it signs in as."""
    return _b64(hmac.new(token.token.encode(), f"login-link\x1f{nonce}".encode(), hashlib.sha256).digest())


async def create_login_link(redis: Any, token: Token, *, ttl_s: int, next_path: str = "/dashboard") -> str:
    """A one-time path that signs `token` in, valid `ttl_s` seconds, stored in the service's Redis."""
    if not 1 <= ttl_s <= MAX_LINK_TTL_S:
        raise ValueError(f"a link lasts 1 s to {MAX_LINK_TTL_S} s, not {ttl_s}")
    nonce = secrets.token_urlsafe(18)
    await redis.set(link_key(nonce), token.name, ex=ttl_s)
    return f"/login/link?t={nonce}.{link_signature(token, nonce)}&next={quote(next_path, safe='/')}"


async def issue_login_link(app: web.Application, token_name: str, *, next_path: str = "/dashboard",
                           ttl_s: int = LINK_TTL_S) -> str:
    """A one-time path that signs `token_name` in (the demo's links, browser tests); KeyError for an unknown name."""
    from warning.web.keys import redis_key, session_book_key

    token = app[session_book_key].token_named(token_name)
    if token is None:
        raise KeyError(token_name)
    return await create_login_link(app[redis_key], token, ttl_s=ttl_s, next_path=next_path)
