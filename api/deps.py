"""Dependencies as ``Annotated`` aliases: handlers declare what they need by type."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from cadastre.db.engine import Database
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


def _actor(
    x_actor: Annotated[
        str | None,
        Header(
            description="Who makes the change, recorded in the event log "
            "(until accounts exist, the caller names itself).",
            max_length=200,
            pattern=r"^[^\x00]*$",
        ),
    ] = None,
) -> str:
    return (x_actor or "anonymous").strip() or "anonymous"


# Handlers open the transaction themselves (``with db.begin() as conn``) so that a
# failed commit is the client's answer, never something after the response.
DbDep = Annotated[Database, Depends(_db)]
SettingsDep = Annotated[Settings, Depends(_settings)]
RulesDep = Annotated[RuleBook, Depends(_rules)]
ActorDep = Annotated[str, Depends(_actor)]
