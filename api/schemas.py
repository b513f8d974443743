"""Request and response models: what the OpenAPI document promises clients."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal

from fastapi import Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
    Tag,
)

from cadastre.domain.lifecycle import ACTIONS, STATUSES

#: No NUL characters: PostgreSQL text cannot hold them.
NO_NUL = r"^[^\x00]*$"


# Text fields: stripped, no NUL, within lengths.
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300, pattern=NO_NUL)
]
Mineral = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=NO_NUL)
]
ProvinceName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60, pattern=NO_NUL)
]
Remark = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000, pattern=NO_NUL)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100, pattern=NO_NUL)]

GEOMETRY_DOC = (
    "A GeoJSON Polygon or MultiPolygon object, or the same as a WKT string. Coordinates are "
    "in the CRS named by the `crs` query parameter (default WGS 84 lon/lat), x (easting or "
    "longitude) first."
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BeneficialOwnerIn(Strict):
    name: Name
    nationality: Short | None = None
    share_pct: StrictFloat | StrictInt | None = Field(default=None, gt=0, le=100)


class HolderIn(Strict):
    """A holder by name; created if no party of that name (ignoring case) exists."""

    name: Name
    kind: Literal["company", "individual", "state", "other"] = "company"
    registration_no: Short | None = None
    country: Short | None = None
    contact: dict[Short, Remark] | None = Field(
        default=None, description="Personal contact details; never shown publicly.", max_length=20
    )
    beneficial_owners: list[BeneficialOwnerIn] = Field(default_factory=list, max_length=100)


def _holder_form(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return "id"
    return "name" if isinstance(value, str) else "details"


# Tagged, so an error names the form that was sent (not the first form tried).
HolderRef = Annotated[
    Annotated[StrictInt, Tag("id"), Field(ge=1)]
    | Annotated[Name, Tag("name")]
    | Annotated[HolderIn, Tag("details")],
    Discriminator(_holder_form),
    Field(description="A party id, a holder name, or a holder with its details."),
]


def _geometry_form(value: Any) -> str:
    return "wkt" if isinstance(value, str) else "geojson"


GeometryIn = Annotated[
    Annotated[dict[str, Any], Tag("geojson")]
    | Annotated[str, Tag("wkt"), StringConstraints(max_length=5_000_000, pattern=NO_NUL)],
    Discriminator(_geometry_form),
    Field(description=GEOMETRY_DOC),
]


class ApplicationProperties(Strict):
    licence_type: str = Field(description="Key of a licence type, see `GET /licence-types`.")
    minerals: list[Mineral] = Field(min_length=1, max_length=50)
    holder: HolderRef
    province: ProvinceName | None = Field(
        default=None,
        description="Province name or ISO 3166-2 code; when given, the shape must lie in it.",
    )
    applied_on: date | None = Field(
        default=None,
        description="Date on the application form, if it predates receipt (not in the future).",
    )
    remarks: Remark | None = None
    published: bool = Field(
        default=True,
        description="In the public register from receipt (default). false holds the "
        "application back: only its province's officers and admins see it until it is "
        "published (PATCH published=true) or granted.",
    )


class ApplicationIn(Strict):
    """A licence application as a GeoJSON Feature."""

    type: Literal["Feature"]
    geometry: GeometryIn
    properties: ApplicationProperties
    id: Any = Field(default=None, description="Ignored: the register assigns ids.")


class LicencePatch(Strict):
    """Attributes that may change without a lifecycle action."""

    minerals: list[Mineral] | None = Field(default=None, min_length=1, max_length=50)
    remarks: Remark | None = None
    applied_on: date | None = None
    published: bool | None = Field(
        default=None,
        description="Publish an application held back (true), or hold one back (false).",
    )
    note: Remark | None = Field(default=None, description="Why; kept in the event.")


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
    geometry: GeometryIn | None = Field(
        default=None,
        description="relinquish: the ground that is RETAINED (must lie within the licence). "
        + GEOMETRY_DOC,
    )
    note: Remark | None = None

    #: The arguments each action takes; any other is refused rather than ignored.
    ARGUMENTS: ClassVar[dict[str, set[str]]] = {
        "grant": {"granted_on", "expires_on"},
        "renew": {"expires_on"},
        "transfer": {"holder"},
        "relinquish": {"geometry"},
    }

    def unused(self) -> list[str]:
        """Arguments given that the action does not take."""
        given = self.model_fields_set - {"action", "note"}
        return sorted(given - self.ARGUMENTS.get(self.action, set()))


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


class Submitted(BaseModel):
    crs: str
    geometry: str = Field(description="The geometry exactly as received: GeoJSON text or WKT.")
    transformation: str


class Obligation(BaseModel):
    """An obligation of a granted title, derived from its type's rules (see
    `GET /licence-types`) and the facts recorded on it."""

    licence_id: int
    licence_no: str
    licence_type: str
    province_code: str
    kind: Literal["start_work", "discovery_report", "rent", "renewal", "expiry"]
    opens_on: date | None = Field(
        description="A window's first day (renewal), or the discovery a report is due for."
    )
    due_on: date
    status: Literal["open", "met", "overdue"]
    met_on: date | None
    notice_event_id: int | None = Field(
        description="The `notice` event issued when it became overdue (see the history)."
    )
    source: str | None = Field(description="Source of the rule that makes it.")


class LicenceDetails(LicenceProperties):
    """A single licence: the public register fields with the holder and beneficial owners;
    signed-in accounts also see the remarks and what was submitted; the province's
    officers and admins the holder's contact details."""

    published: bool | None = Field(
        default=None, description="Signed in: whether it is in the public register."
    )
    approximate_transformation: bool | None = Field(
        default=None,
        description="Signed in: true where the datum shift has no stated accuracy "
        "(Kalianpur 1962).",
    )
    remarks: str | None = Field(default=None, description="Signed in.")
    submitted: Submitted | None = Field(default=None, description="Signed in.")
    holder_details: dict[str, Any]
    conflicts: list[dict[str, Any]] | None = Field(
        default=None, description="Acknowledgement of an application: what the check found."
    )
    repaired: dict[str, Any] | None = Field(
        default=None, description="With repair=true: what the repair changed."
    )
    obligations: list[Obligation] | None = Field(
        default=None,
        description="Read: the title's obligations (none unless granted), soonest due first.",
    )


class LicenceDetailFeature(BaseModel):
    type: Literal["Feature"]
    id: int
    geometry: dict[str, Any] = Field(description="GeoJSON MultiPolygon, WGS 84 lon/lat.")
    properties: LicenceDetails


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


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    detail: str
    field: str | None = None
    where: dict[str, Any] | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="422 from request validation: every field that failed."
    )


_ERROR_TEXT = {
    400: "Unknown or malformed query parameter: names it",
    401: "Not signed in, or the token or key is not valid: says which; WWW-Authenticate",
    403: "The account's role does not allow it: names the rule (where.rule)",
    404: "No such record",
    409: "Conflicts with the register's state",
    422: "Invalid input: names the field and the rule",
    503: "Database unavailable; see Retry-After",
}


def query_param(
    name: str, description: str, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An OpenAPI query parameter, for routes that read their parameters themselves."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


#: The filters tiles and items share (see cadastre/db/filters.py and the CQL2 module).
FILTER_OPENAPI_PARAMETERS = [
    query_param("status", "licences only: comma-separated statuses"),
    query_param("type", "licences only: comma-separated licence types"),
    query_param("province", "licences only: comma-separated provinces (PK-BA, BA or Balochistan)"),
    query_param("mineral", "licences only: comma-separated minerals"),
    query_param("filter", "a CQL2 filter over the collection's queryables"),
    query_param(
        "filter-lang",
        "cql2-text (default) or cql2-json",
        {"type": "string", "enum": ["cql2-text", "cql2-json"]},
    ),
    query_param("filter-crs", "CRS of the filter's geometries: CRS84 only"),
]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer (503 always)."""
    return {c: {"model": ErrorBody, "description": _ERROR_TEXT[c]} for c in (*codes, 503)}


ERRORS = errors(404, 409, 422)


class GeoJSONResponse(Response):
    """A response whose body PostGIS already wrote as GeoJSON."""

    media_type = "application/geo+json"
