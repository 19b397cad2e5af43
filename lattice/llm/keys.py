"""Short-lived keys scoped to one pool and one run: what a task gets instead of the head's token.

A key is ``lpk_<alias>.<run>.<expiry>.<mac>``: the head signs alias, run and expiry with a secret it
draws at start-up (HMAC-SHA256), so checking one is a hash and no store lookup, and a key dies with the
head that minted it. A key opens only ``/api/v1/llm/<alias>/...`` (never another pool, never the rest of
the API) and its requests are counted and queued as that run's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

PREFIX = "lpk_"
DEFAULT_TTL_S = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class PoolKey:
    alias: str
    run: str
    expires_at: float


def _b64(data: str) -> str:
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def _unb64(data: str) -> str:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode()


class PoolKeys:
    def __init__(self, secret: bytes | None = None, ttl_s: float = DEFAULT_TTL_S) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.ttl_s = ttl_s

    def mint(self, alias: str, run: str, ttl_s: float | None = None, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + (ttl_s if ttl_s is not None else self.ttl_s))
        body = f"{_b64(alias)}.{_b64(run)}.{expires}"
        return f"{PREFIX}{body}.{self._mac(body)}"

    def check(self, key: str, alias: str, now: float | None = None) -> PoolKey | None:
        """The key's scope when it is ours, unexpired and for ``alias``; else None."""
        if not key.startswith(PREFIX):
            return None
        try:
            a, r, expiry, mac = key[len(PREFIX):].split(".")
            body = f"{a}.{r}.{expiry}"
            if not hmac.compare_digest(mac, self._mac(body)):
                return None
            scoped = PoolKey(_unb64(a), _unb64(r), float(expiry))
        except (ValueError, UnicodeDecodeError):
            return None
        if scoped.alias != alias or scoped.expires_at < (now if now is not None else time.time()):
            return None
        return scoped

    def _mac(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()[:40]
