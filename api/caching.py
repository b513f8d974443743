"""HTTP caching: strong ETags from the register's generation, 304s, compression and a tile cache.

Every map answer (tiles, feature pages, licence lists) is a function of the
request and of the register's committed state. The state is summed up by the
generation number (:mod:`cadastre.db.generation`), which changes the moment a
change commits. So

* the ETag is a hash of (generation, request, content coding), and a matching
  ``If-None-Match`` is answered 304 before any map query runs;
* ``Cache-Control: no-cache`` makes clients revalidate every time, so no client
  shows a licence as pending after its grant committed;
* tiles are cached in memory under (generation, tile), so a change makes every
  older entry unreachable at once; the least recently used go first. A cached
  tile keeps its compressed forms (gzip, brotli), made once on first demand.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import brotli
import zstandard
from fastapi import Request, Response

from cadastre.db.features import extent

CACHE_CONTROL = "no-cache"
#: Content codings, best first: the compression middleware's order, so a tile and
#: a page in the same coding carry the same kind of ETag.
CODINGS = ("zstd", "br", "gzip")


def accepted_codings(request: Request) -> set[str]:
    """Content codings the client accepts (``q`` > 0), lower case."""
    accepted: set[str] = set()
    for part in request.headers.get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            key, _, value = p.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name and q > 0:
            accepted.add(name.strip().lower())
    return accepted


def response_coding(request: Request) -> str:
    """The coding the compression middleware chooses for a compressible answer (and tiles)."""
    accepted = accepted_codings(request)
    for coding in CODINGS:
        if coding in accepted:
            return coding
    return "identity"


def view_key(request: Request) -> str:
    """What the caller may see, as a key: answers differ by role (and an officer's
    province), so validators and cached tiles are kept per view."""
    who = getattr(request.state, "principal", None)
    if who is None or not who.signed_in:
        return "public"
    return f"{who.role}:{who.province or ''}"


def etag_for(request: Request, generation: int | str, coding: str | None = None) -> str:
    """A strong ETag for this request's answer at ``generation`` in ``coding``, as the
    caller's role sees it."""
    coding = coding or response_coding(request)
    accept = request.headers.get("accept", "")
    view = view_key(request)
    key = f"{generation}|{request.url.path}|{request.url.query}|{accept}|{coding}|{view}"
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


class Tile:
    """A finished tile: its bytes (empty for an empty tile) and their compressed forms."""

    __slots__ = ("_coded", "body")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._coded: dict[str, bytes] = {}

    def coded(self, coding: str) -> bytes:
        """The body in ``coding`` (identity, zstd, br or gzip), compressed once."""
        if coding == "identity" or not self.body:
            return self.body
        found = self._coded.get(coding)
        if found is None:
            if coding == "br":
                found = brotli.compress(self.body, quality=5)
            elif coding == "zstd":
                found = zstandard.ZstdCompressor(level=6).compress(self.body)
            else:
                found = gzip.compress(self.body, compresslevel=6, mtime=0)
            self._coded[coding] = found
        return found

    @property
    def size(self) -> int:
        """Bytes charged to the cache: room for the body and its compressed forms."""
        return 2 * len(self.body) + 64


class TileCache:
    """Finished tiles by (generation, key), bounded in bytes, least recently used out first."""

    def __init__(self, max_bytes: int = 128 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[int, Hashable], Tile] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes charged to the cache (see :attr:`Tile.size`)."""
        return self._size

    def get(self, generation: int, key: Hashable) -> Tile | None:
        with self._lock:
            found = self._items.get((generation, key))
            if found is not None:
                self._items.move_to_end((generation, key))
                self.hits += 1
            else:
                self.misses += 1
            return found

    def put(self, generation: int, key: Hashable, tile: Tile) -> Tile:
        """Keep ``tile`` (unless one was stored meanwhile, which is returned instead)."""
        with self._lock:
            held = self._items.get((generation, key))
            if held is not None:
                return held
            if tile.size <= self.max_bytes:
                self._items[(generation, key)] = tile
                self._size += tile.size
                while self._size > self.max_bytes:
                    _, old = self._items.popitem(last=False)
                    self._size -= old.size
            return tile


def cached_extent(request: Request, conn: Any, c: Any, generation: int) -> Any:
    """A collection's extent, computed once per generation of the register (a full scan of
    a large collection otherwise, each time a client such as GDAL opens the service)."""
    held: dict[tuple[str, int], Any] = request.app.state.extents
    key = (c.id, generation)
    if key not in held:
        if len(held) > 1000:
            held.clear()
        held[key] = extent(conn, c)
    return held[key]
