"""Licence types and their per-province rules, loaded from a TOML file.

Each rule value carries its source. A value the file does not give is
``None`` and is not enforced.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cadastre.errors import InvalidInput

#: Rules of the licence itself.
LICENCE_RULE_KEYS = ("exclusive", "max_area_km2", "term_years", "renewable", "renewal_term_years")
#: Rules that make obligations of a title (see :mod:`cadastre.db.obligations`).
OBLIGATION_RULE_KEYS = (
    "start_work_months",
    "discovery_report_days",
    "rent_interval_months",
    "renewal_window_months",
)
RULE_KEYS = LICENCE_RULE_KEYS + OBLIGATION_RULE_KEYS


@dataclass(frozen=True)
class TypeRule:
    """The rules of one licence type in one province."""

    key: str
    name: str
    abbreviation: str
    scale: str
    province: str | None
    exclusive: bool | None = None
    max_area_km2: float | None = None
    term_years: int | None = None
    renewable: bool | None = None
    renewal_term_years: int | None = None
    #: Work starts within this many months of the grant.
    start_work_months: int | None = None
    #: A discovery is reported within this many days.
    discovery_report_days: int | None = None
    #: Rent (or dead rent) falls due every this many months from the grant.
    rent_interval_months: int | None = None
    #: Renewal may be sought from this many months before expiry.
    renewal_window_months: int | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "abbreviation": self.abbreviation,
            "scale": self.scale,
            "province": self.province,
            "rules": {
                k: {"value": getattr(self, k), "source": self.sources.get(k)} for k in RULE_KEYS
            },
        }


class RuleBook:
    """All licence types with their default and per-province rules."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._types: dict[str, dict[str, Any]] = data.get("types", {})
        if not self._types:
            raise ValueError("the licence-type file defines no [types.*] table")

    @classmethod
    def load(cls, path: Path | None = None) -> RuleBook:
        """Read the rule book; the packaged ``config/licence_types.toml`` by default."""
        if path is None:
            text = resources.files("cadastre").joinpath("config/licence_types.toml").read_text()
        else:
            text = path.read_text()
        return cls(tomllib.loads(text))

    @property
    def types(self) -> list[str]:
        return list(self._types)

    def check_type(self, key: str, *, field: str = "licence_type") -> str:
        if key not in self._types:
            raise InvalidInput(
                f"unknown licence type {key!r}; expected one of {', '.join(self._types)}",
                field=field,
            )
        return key

    def rule(self, key: str, province: str | None = None) -> TypeRule:
        """The rules of type ``key``, with the overrides of ``province`` (ISO code)."""
        self.check_type(key)
        base = self._types[key]
        merged: dict[str, Any] = {k: v for k, v in base.items() if k != "provinces"}
        if province is not None:
            merged.update(base.get("provinces", {}).get(province, {}))
        return TypeRule(
            key=key,
            name=merged["name"],
            abbreviation=merged["abbreviation"],
            scale=merged["scale"],
            province=province,
            sources={k: merged[f"{k}_source"] for k in RULE_KEYS if f"{k}_source" in merged},
            **{k: merged.get(k) for k in RULE_KEYS},
        )
