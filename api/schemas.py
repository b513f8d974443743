"""Request and response models: what the OpenAPI document promises clients."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cadastre.domain.lifecycle import ACTIONS, STATUSES

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Mineral = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]

GEOMETRY_DOC = (
    "A GeoJSON Polygon or MultiPolygon object, or the same as a WKT string. Coordinates are "
    "in the CRS named by the `crs` query parameter (default WGS 84 lon/lat), x (easting or "
    "longitude) first."
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BeneficialOwnerIn(Strict):
    name: Name
    nationality: str | None = Field(default=None, max_length=100)
    share_pct: float | None = Field(default=None, gt=0, le=100)


class HolderIn(Strict):
    """A holder by name; created if no party of that name (ignoring case) exists."""

    name: Name
    kind: Literal["company", "individual", "state", "other"] = "company"
    registration_no: str | None = Field(default=None, max_length=100)
    country: str | None = Field(default=None, max_length=100)
    contact: dict[str, str] | None = Field(
        default=None, description="Personal contact details; never shown publicly."
    )
    beneficial_owners: list[BeneficialOwnerIn] = Field(default_factory=list, max_length=100)


HolderRef = Annotated[
    int | Name | HolderIn,
    Field(description="A party id, a holder name, or a holder with its details."),
]


class ApplicationProperties(Strict):
    licence_type: str = Field(description="Key of a licence type, see `GET /licence-types`.")
    minerals: list[Mineral] = Field(min_length=1, max_length=50)
    holder: HolderRef
    province: str | None = Field(
        default=None,
        description="Province name or ISO 3166-2 code; when given, the shape must lie in it.",
    )
    licence_no: str | None = Field(
        default=None,
        max_length=60,
        description="Only for titles registered from paper; new applications get one.",
    )
    applied_on: date | None = Field(
        default=None, description="Date on the application form, if it predates receipt."
    )
    remarks: str | None = Field(default=None, max_length=2000)


class ApplicationIn(Strict):
    """A licence application as a GeoJSON Feature."""

    type: Literal["Feature"]
    geometry: dict[str, Any] | str = Field(description=GEOMETRY_DOC)
    properties: ApplicationProperties
    id: Any = Field(default=None, description="Ignored: the register assigns ids.")


class LicencePatch(Strict):
    """Attributes that may change without a lifecycle action."""

    minerals: list[Mineral] | None = Field(default=None, min_length=1, max_length=50)
    remarks: str | None = Field(default=None, max_length=2000)
    applied_on: date | None = None
    note: str | None = Field(default=None, max_length=2000, description="Why; kept in the event.")


class TransitionIn(Strict):
    """A lifecycle action and the arguments it takes."""

    action: Literal[ACTIONS]  # type: ignore[valid-type]
    granted_on: date | None = Field(default=None, description="grant: default today.")
    expires_on: date | None = Field(
        default=None,
        description="grant: default granted_on + the type's term; renew: the new expiry, "
        "default old expiry + the renewal term.",
    )
    holder: HolderRef | None = Field(default=None, description="transfer: the new holder.")
    geometry: dict[str, Any] | str | None = Field(
        default=None,
        description="relinquish: the ground that is RETAINED (must lie within the licence). "
        + GEOMETRY_DOC,
    )
    note: str | None = Field(default=None, max_length=2000)


class LicenceProperties(BaseModel):
    licence_no: str
    licence_type: str
    minerals: list[str]
    holder: str
    holder_id: int
    province: str
    province_code: str
    status: Literal[STATUSES]  # type: ignore[valid-type]
    area_km2: float = Field(description="Geodesic area on the WGS 84 ellipsoid, km².")
    received_at: datetime = Field(description="Server time of receipt, microseconds.")
    receipt_seq: int = Field(description="Receipt number within the province.")
    applied_on: date | None
    granted_on: date | None
    expires_on: date | None
    version: int


class LicenceFeature(BaseModel):
    type: Literal["Feature"]
    id: int
    geometry: dict[str, Any] = Field(description="GeoJSON MultiPolygon, WGS 84 lon/lat.")
    properties: LicenceProperties


class Link(BaseModel):
    href: str
    rel: str
    type: str | None = None


class LicenceCollection(BaseModel):
    type: Literal["FeatureCollection"]
    numberMatched: int
    numberReturned: int
    timeStamp: datetime
    links: list[Link]
    features: list[LicenceFeature]


class Event(BaseModel):
    id: int
    licence_id: int
    version: int
    action: str
    actor: str
    occurred_at: datetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    note: str | None


class ErrorBody(BaseModel):
    code: str
    detail: str
    field: str | None = None
    where: dict[str, Any] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such record"},
    409: {"model": ErrorBody, "description": "Conflicts with the register's state"},
    422: {"model": ErrorBody, "description": "Invalid input: names the field and the rule"},
    503: {"model": ErrorBody, "description": "Database unavailable; see Retry-After"},
}
