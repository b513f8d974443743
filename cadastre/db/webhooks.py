"""Webhooks: each public change-feed event POSTed to every subscriber, signed, in order.

Delivery reads the event log after each subscriber's cursor, so writes never wait
for a subscriber: a slow or dead one only delays its own deliveries. Per subscriber
events go out one at a time in feed (commit) order, hence in order per licence; the
cursor moves on only after a 2xx, so every event is delivered at least once (a
receiver may see one again after a crash and should key on ``event_id``). A failed
delivery is retried from the same event after an exponential backoff.

The body is the change as ``GET /changes`` gives it to the public; the header
``X-Cadastre-Signature: sha256=<hex>`` is the HMAC-SHA256 of the body bytes keyed
with the subscriber's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, func, insert, select, text, update

from cadastre.auth import PUBLIC
from cadastre.db.changes import changes
from cadastre.db.engine import Database
from cadastre.db.tables import licence_events, webhook_subscriptions
from cadastre.errors import InvalidInput, NotFound

SIGNATURE_HEADER = "X-Cadastre-Signature"
MIN_SECRET = 16


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise InvalidInput("url must be an http or https URL with a host", field="url")


def subscribe(
    conn: Connection, url: str, secret: str, *, actor: str, since: int | None = None
) -> dict[str, Any]:
    """Add a subscriber; it receives events after ``since`` (default: from now on)."""
    _check_url(url)
    if len(secret) < MIN_SECRET:
        raise InvalidInput(f"secret must have at least {MIN_SECRET} characters", field="secret")
    if since is None:
        since = conn.execute(select(func.coalesce(func.max(licence_events.c.id), 0))).scalar_one()
    row = conn.execute(
        insert(webhook_subscriptions)
        .values(url=url, secret=secret, cursor=since, created_by=actor)
        .returning(*_PUBLIC_COLUMNS)
    ).one()
    return dict(row._mapping)


_PUBLIC_COLUMNS = [c for c in webhook_subscriptions.c if c.name != "secret"]


def list_subscriptions(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(*_PUBLIC_COLUMNS)
        .where(webhook_subscriptions.c.disabled_at.is_(None))
        .order_by(webhook_subscriptions.c.id)
    )
    return [dict(r._mapping) for r in rows]


def unsubscribe(conn: Connection, sub_id: int) -> None:
    done = conn.execute(
        update(webhook_subscriptions)
        .where(webhook_subscriptions.c.id == sub_id)
        .where(webhook_subscriptions.c.disabled_at.is_(None))
        .values(disabled_at=func.now())
    )
    if done.rowcount == 0:
        raise NotFound(f"no webhook subscription with id {sub_id}")


# ------------------------------------------------------------------- delivery

# Straight to the subscriber: no proxy from the environment sees the signed bodies.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
Poster = Callable[[str, bytes, dict[str, str], float], int]


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body``; the status code (an exception for no answer)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@dataclass(frozen=True)
class Backoff:
    """Seconds before retry n (1, 2, ...): ``base * 2**(n-1)``, at most ``cap``."""

    base: float = 1.0
    cap: float = 3600.0

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.base * 2 ** max(0, failures - 1)))


_CLAIM = text(
    """
    SELECT id, url, secret, cursor, failures FROM webhook_subscriptions
    WHERE id = :id AND disabled_at IS NULL AND next_attempt_at <= clock_timestamp()
    FOR UPDATE SKIP LOCKED
    """
)

_RECORD = text(
    """
    UPDATE webhook_subscriptions
    SET cursor = :cursor, delivered = delivered + :n, failures = :failures,
        last_error = :error, next_attempt_at = clock_timestamp() + make_interval(secs => :delay)
    WHERE id = :id
    """
)


def deliver_one(
    db: Database,
    sub_id: int,
    *,
    batch: int = 100,
    timeout: float = 5.0,
    backoff: Backoff = Backoff(),
    post: Poster = http_post,
) -> int:
    """Deliver the next events to one subscriber, in order, until one fails or none are
    left (at most ``batch``). Returns how many were delivered.

    The subscriber's row stays locked meanwhile (``SKIP LOCKED``: other workers pass it
    by), so two workers never deliver to one subscriber at once.
    """
    delivered = 0
    with db.begin() as conn:
        sub = conn.execute(_CLAIM, {"id": sub_id}).first()
        if sub is None:
            return 0
        page = changes(conn, sub.cursor, limit=batch, who=PUBLIC)
        items: list[dict[str, Any]] = json.loads("[" + page.changes_json + "]")
        cursor, error = sub.cursor, None
        for item in items:
            body = json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "pakistan-mining-cadastre-webhooks",
                SIGNATURE_HEADER: sign(sub.secret, body),
                "X-Cadastre-Event-Id": str(item["event_id"]),
            }
            try:
                status = post(sub.url, body, headers, timeout)
            except Exception as exc:  # no answer: refused, timed out, reset
                error = f"event {item['event_id']}: {type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 300:
                    cursor, delivered = item["event_id"], delivered + 1
                    continue
                error = f"event {item['event_id']}: HTTP {status}"
            break
        else:
            cursor = page.next_cursor if not page.has_more else cursor
        failures = 0 if error is None else sub.failures + 1
        conn.execute(
            _RECORD,
            {
                "id": sub_id,
                "cursor": cursor,
                "n": delivered,
                "failures": failures,
                "error": None if error is None else error[:1000],
                "delay": 0.0 if error is None else backoff.delay(failures),
            },
        )
    return delivered


def deliver_due(db: Database, *, workers: int = 8, **options: Any) -> int:
    """One round: every subscriber that is due, each in a worker thread of its own (so
    a slow subscriber holds up only itself). Returns the events delivered."""
    with db.begin() as conn:
        due = list(
            conn.scalars(
                select(webhook_subscriptions.c.id)
                .where(webhook_subscriptions.c.disabled_at.is_(None))
                .where(webhook_subscriptions.c.next_attempt_at <= func.clock_timestamp())
                .order_by(webhook_subscriptions.c.id)
            )
        )
    if not due:
        return 0
    with ThreadPoolExecutor(max_workers=min(workers, len(due))) as pool:
        return sum(pool.map(lambda i: deliver_one(db, i, **options), due))
