"""The plain licence filters that items, tiles and exports share: status, type, province, mineral.

``?status=granted,applied&type=mining_lease&province=PK-BA&mineral=copper``: each
parameter takes a comma-separated list (any of them matches); parameters
combine with AND. Values are checked against what the register knows, so a
typo is a 400 that lists the accepted values, never an empty answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, any_, bindparam, exists, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text

from cadastre.domain.lifecycle import STATUSES
from cadastre.domain.provinces import province_code
from cadastre.errors import BadQuery, InvalidInput

PARAMS = ("status", "type", "province", "mineral")
MAX_VALUES = 50


def _values(raw: str, name: str) -> list[str]:
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not values:
        raise BadQuery(
            f"{name} is empty; give one value or several separated by commas", field=name
        )
    if len(values) > MAX_VALUES:
        raise BadQuery(f"{name} takes at most {MAX_VALUES} values", field=name)
    return values


@dataclass(frozen=True)
class LicenceFilter:
    """Validated plain filters; an empty filter matches every licence."""

    statuses: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    provinces: tuple[str, ...] = ()
    minerals: tuple[str, ...] = ()  # lower case

    @classmethod
    def from_params(cls, params: Mapping[str, str], types: Iterable[str]) -> LicenceFilter:
        """Read ``status``, ``type``, ``province`` and ``mineral`` from query parameters."""
        known_types = set(types)
        statuses: list[str] = []
        for value in _values(params["status"], "status") if "status" in params else []:
            if value.lower() not in STATUSES:
                raise BadQuery(
                    f"status: unknown status {value!r}; expected one of {', '.join(STATUSES)}",
                    field="status",
                )
            statuses.append(value.lower())
        kinds: list[str] = []
        for value in _values(params["type"], "type") if "type" in params else []:
            if value.lower() not in known_types:
                raise BadQuery(
                    f"type: unknown licence type {value!r}; expected one of "
                    f"{', '.join(sorted(known_types))}",
                    field="type",
                )
            kinds.append(value.lower())
        provinces: list[str] = []
        for value in _values(params["province"], "province") if "province" in params else []:
            try:
                provinces.append(province_code(value, field="province"))
            except InvalidInput as exc:
                try:  # the two letters of licence numbers (BA) are fine too
                    provinces.append(province_code(f"PK-{value}", field="province"))
                except InvalidInput:
                    raise BadQuery(exc.message, field="province") from None
        minerals = [
            v.lower()
            for v in (_values(params["mineral"], "mineral") if "mineral" in params else [])
        ]
        return cls(
            tuple(sorted(set(statuses))),
            tuple(sorted(set(kinds))),
            tuple(sorted(set(provinces))),
            tuple(sorted(set(minerals))),
        )

    def __bool__(self) -> bool:
        return bool(self.statuses or self.types or self.provinces or self.minerals)

    def key(self) -> str:
        """A canonical text of the filter, for cache keys."""
        return "|".join(
            ",".join(v) for v in (self.statuses, self.types, self.provinces, self.minerals)
        )

    def conditions(
        self,
        status: Any,
        licence_type: Any,
        province: Any,
        minerals: Any | None = None,
    ) -> list[ColumnElement[bool]]:
        """The filter over the given column expressions (``minerals``: a text array)."""
        conds: list[ColumnElement[bool]] = []
        if self.statuses:
            conds.append(status.in_(self.statuses))
        if self.types:
            conds.append(licence_type.in_(self.types))
        if self.provinces:
            conds.append(province.in_(self.provinces))
        if self.minerals:
            if minerals is None:
                raise BadQuery("mineral cannot filter this collection", field="mineral")
            mineral = func.unnest(minerals).column_valued("mineral")
            conds.append(
                exists(
                    select(literal_column("1")).where(
                        func.lower(mineral) == any_(_text_array(self.minerals))
                    )
                )
            )
        return conds

    def where(self, *args: Any) -> ColumnElement[bool] | None:
        conds = self.conditions(*args)
        return and_(*conds) if conds else None


def _text_array(values: tuple[str, ...]) -> Any:
    return bindparam("minerals_any", list(values), type_=ARRAY(Text), unique=True)
