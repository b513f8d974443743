"""Dependencies as ``Annotated`` aliases: handlers declare what they need by type."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from cadastre.db.engine import Database
from cadastre.errors import BadQuery
from cadastre.rules import RuleBook
from cadastre.settings import Settings


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _rules(request: Request) -> RuleBook:
    rules: RuleBook = request.app.state.rules
    return rules


def _declared(dependant: Any) -> set[str]:
    names = {str(p.alias) for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared(sub)
    return names


def strict_query(request: Request) -> None:
    """Refuse query parameters the route does not declare (400 naming the first), so a
    misspelt parameter is never silently ignored. For routers whose routes declare all
    their query parameters; the OGC items and vector tile routes check their own."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed = _declared(dependant)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise BadQuery(
            f"unknown query parameter {unknown[0]!r}; this route takes: {takes}",
            field=unknown[0],
        )


# Handlers open the transaction themselves (``with db.begin() as conn``) so that a
# failed commit is the client's answer, never something after the response.
DbDep = Annotated[Database, Depends(_db)]
SettingsDep = Annotated[Settings, Depends(_settings)]
RulesDep = Annotated[RuleBook, Depends(_rules)]
