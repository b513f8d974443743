"""HTTP caching: strong ETags from the register's generation, 304s, and a tile cache.

Every map answer (tiles, feature pages, licence lists) is a function of the
request and of the register's committed state. The state is summed up by the
generation number (:mod:`cadastre.db.generation`), which changes the moment a
change commits. So

* the ETag is a hash of (generation, request, whether the body is gzipped), and
  a matching ``If-None-Match`` is answered 304 before any map query runs;
* ``Cache-Control: no-cache`` makes clients revalidate every time, so no client
  shows a licence as pending after its grant committed;
* tiles are cached in memory under (generation, tile), so a change makes every
  older entry unreachable at once; the least recently used go first.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

from fastapi import Request, Response

CACHE_CONTROL = "no-cache"


def etag_for(request: Request, generation: int) -> str:
    """A strong ETag for this request's answer at ``generation``."""
    gzip = "gzip" in request.headers.get("accept-encoding", "")
    accept = request.headers.get("accept", "")
    key = f"{generation}|{request.url.path}|{request.url.query}|{accept}|{gzip}"
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


def not_modified(request: Request, etag: str) -> Response | None:
    """A 304 when the client already holds ``etag``, else None."""
    held = request.headers.get("if-none-match", "")
    if etag in (t.strip() for t in held.split(",")) or held.strip() == "*":
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE_CONTROL})
    return None


def tag(response: Response, etag: str) -> Response:
    """Put the validators on an answer."""
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


class TileCache:
    """Finished tiles by (generation, key), bounded in bytes, least recently used out first."""

    def __init__(self, max_bytes: int = 128 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[int, str], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_make(self, generation: int, key: str, make: Callable[[], bytes]) -> bytes:
        """The cached tile, or ``make()`` stored under this generation."""
        with self._lock:
            found = self._items.get((generation, key))
            if found is not None:
                self._items.move_to_end((generation, key))
                self.hits += 1
                return found
            self.misses += 1
        body = make()
        with self._lock:
            if (generation, key) not in self._items and len(body) <= self.max_bytes:
                self._items[(generation, key)] = body
                self._size += len(body)
                while self._size > self.max_bytes:
                    _, old = self._items.popitem(last=False)
                    self._size -= len(old)
        return body
