"""Who reads which survey layers.

A layer marked ``public`` (open data) is read by anyone; any other layer only by
signed-in callers (:attr:`cadastre.auth.Principal.reads_restricted_layers`). To
everyone else a restricted layer does not exist: every read of the catalogue
(lists, entries, collections, tiles, raster reads, the area-of-interest report)
applies :func:`visible`, so it is left out of lists and is "not found" by slug.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, true

from cadastre.auth import Principal
from cadastre.db.tables import survey_layers


def visible(who: Principal) -> ColumnElement[bool]:
    """The condition on ``survey_layers`` rows that ``who`` may read."""
    return true() if who.reads_restricted_layers else survey_layers.c.public.is_(True)
