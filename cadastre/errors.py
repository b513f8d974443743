"""Domain errors.

Every error the register raises on purpose is a :class:`CadastreError`. Each
carries a stable machine ``code``, a message that is safe to show to the
client, and optionally the ``field`` it concerns and a ``where`` mapping that
locates the problem (ring and vertex index, a coordinate). HTTP status codes
are chosen only in ``api/errors.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class CadastreError(Exception):
    """Base class of every error the register raises on purpose."""

    code = "cadastre_error"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.where = dict(where) if where else None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "detail": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.where is not None:
            body["where"] = self.where
        return body


class InvalidInput(CadastreError):
    """A value is malformed or breaks a rule (unknown type, bad date...)."""

    code = "invalid_input"


class BadQuery(InvalidInput):
    """A query parameter the service cannot answer: unknown, malformed or unsupported."""

    code = "bad_query"


class InvalidGeometry(InvalidInput):
    """A geometry cannot be accepted as submitted."""

    code = "invalid_geometry"


class UnknownCRS(InvalidInput):
    """The coordinate reference system is not one the register accepts."""

    code = "unknown_crs"


class OutsideArea(InvalidGeometry):
    """Coordinates fall outside the CRS's area of use, or outside Pakistan."""

    code = "outside_area"


class ProvinceMismatch(InvalidGeometry):
    """The shape crosses a provincial boundary or lies in another province."""

    code = "province_mismatch"


class AreaLimitExceeded(InvalidGeometry):
    """The shape is larger than the licence type allows in that province."""

    code = "area_limit_exceeded"


class NotFound(CadastreError):
    """A referenced record does not exist."""

    code = "not_found"


class Conflict(CadastreError):
    """The request conflicts with the register's current state."""

    code = "conflict"


class IllegalTransition(Conflict):
    """A lifecycle action is not allowed from the licence's current state."""

    code = "illegal_transition"

    def __init__(self, action: str, current: str, allowed: Sequence[str]) -> None:
        allowed_text = ", ".join(allowed) if allowed else "none (final state)"
        super().__init__(
            f"cannot {action} a licence whose status is {current!r}; "
            f"allowed actions from {current!r}: {allowed_text}",
            field="action",
            where={"current_status": current, "allowed_actions": list(allowed)},
        )
        self.action = action
        self.current = current
        self.allowed = list(allowed)


class DuplicateLicenceNo(Conflict):
    """A licence number is already in the register."""

    code = "duplicate_licence_no"


class ImportRejected(InvalidInput):
    """A bulk import was refused; ``rejections`` lists every bad row."""

    code = "import_rejected"

    def __init__(self, rejections: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(
            f"{len(rejections)} row(s) rejected; nothing was imported",
            where={"rejections": [dict(r) for r in rejections]},
        )
        self.rejections = [dict(r) for r in rejections]


class UploadTooLarge(InvalidInput):
    """An uploaded file is larger than the configured limit."""

    code = "upload_too_large"


class RasterRefused(InvalidInput):
    """A raster file cannot be imported: unreadable, empty, without CRS or georeferencing."""

    code = "raster_refused"


class OutsideRaster(BadQuery):
    """A point or a polygon lies outside a raster's extent."""

    code = "outside_raster"


class RasterUnavailable(CadastreError):
    """A catalogued raster's file cannot be read (being replaced, or lost)."""

    code = "raster_unavailable"


class DatabaseUnavailable(CadastreError):
    """The database could not be reached."""

    code = "database_unavailable"


class Unauthenticated(CadastreError):
    """The request needs a signed-in account (or a valid key) and has none."""

    code = "unauthenticated"


class Forbidden(CadastreError):
    """The signed-in account's role does not allow this; ``rule`` names the rule."""

    code = "forbidden"

    def __init__(self, message: str, *, rule: str, field: str | None = None) -> None:
        super().__init__(message, field=field, where={"rule": rule})
        self.rule = rule
