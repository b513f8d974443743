"""Reference data of the register: provinces and licence types."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api.deps import DbDep, RulesDep, strict_query
from cadastre.db.jurisdictions import list_jurisdictions
from cadastre.domain.provinces import PROVINCES, province_code

router = APIRouter(tags=["register"], dependencies=[Depends(strict_query)])


@router.get("/jurisdictions", summary="Provinces and territories")
def jurisdictions(db: DbDep) -> list[dict[str, Any]]:
    """Pakistan's provinces and territories with their geodesic areas (km²)."""
    with db.begin() as conn:
        return list_jurisdictions(conn)


@router.get("/licence-types", summary="Licence types and their rules")
def licence_types(
    rules: RulesDep,
    province: Annotated[
        str | None, Query(description="Name or ISO code: that province's rules", max_length=60)
    ] = None,
) -> list[dict[str, Any]]:
    """Each licence type with its rules (value and source); a null rule is not enforced."""
    codes = [province_code(province)] if province else list(PROVINCES)
    return [
        {
            **rules.rule(key).to_dict(),
            "provinces": {c: rules.rule(key, c).to_dict()["rules"] for c in codes},
        }
        for key in rules.types
    ]
