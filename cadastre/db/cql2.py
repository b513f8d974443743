"""CQL2 (OGC API - Features Part 3) filters to SQLAlchemy expressions.

The text and JSON encodings are parsed by pygeofilter; this module walks the
syntax tree and builds SQLAlchemy Core expressions over a fixed set of
queryable columns. Every literal becomes a bound parameter and every property
name must be a declared queryable, so no filter text ever reaches SQL as text.

Supported: ``AND``/``OR``/``NOT``, comparisons, ``IN``, ``LIKE`` (``%`` and
``_``), ``BETWEEN``, ``IS NULL``, the spatial predicates ``S_INTERSECTS``,
``S_WITHIN``, ``S_CONTAINS``, ``S_DISJOINT`` (geometries in WGS 84 lon/lat),
and the temporal predicates ``T_BEFORE``, ``T_AFTER``, ``T_DURING``,
``T_EQUALS``, ``T_INTERSECTS`` on date properties.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from pygeofilter import ast, values
from pygeofilter.parsers.cql2_json import parse as parse_json
from pygeofilter.parsers.cql2_text import parse as parse_text
from sqlalchemy import ColumnElement, and_, func, literal, not_, or_, true

from cadastre.errors import BadQuery

MAX_LENGTH = 10_000
MAX_DEPTH = 20


class BadFilter(BadQuery):
    """A CQL2 filter that cannot be parsed or evaluated; says where."""

    code = "bad_filter"


def parse(text: str, lang: str = "cql2-text") -> Any:
    """Parse a CQL2 filter (``cql2-text`` or ``cql2-json``) into a pygeofilter AST."""
    if len(text) > MAX_LENGTH:
        raise BadFilter(f"filter is longer than {MAX_LENGTH} characters", field="filter")
    try:
        if lang == "cql2-json":
            return parse_json(json.loads(text))
        if lang == "cql2-text":
            return parse_text(text)
    except BadFilter:
        raise
    except Exception as exc:  # lark and json raise many kinds; each says where
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadFilter(f"cannot parse the filter: {first}", field="filter") from None
    raise BadFilter(
        f"filter-lang must be cql2-text or cql2-json, not {lang!r}", field="filter-lang"
    )


def to_sql(
    node: Any,
    columns: Mapping[str, Any],
    geometry: Any,
    *,
    dates: frozenset[str] = frozenset(),
) -> ColumnElement[bool]:
    """Build a boolean SQL expression from a CQL2 syntax tree.

    ``columns`` maps queryable names to SQLAlchemy column expressions;
    ``geometry`` is the geometry column (EPSG:4326), reachable as
    ``geometry`` or ``geom`` in the filter.
    """
    expr: ColumnElement[bool] = _Walker(columns, geometry, dates).predicate(node, 0)
    return expr


_COMPARE = {
    ast.Equal: lambda a, b: a == b,
    ast.NotEqual: lambda a, b: a != b,
    ast.LessThan: lambda a, b: a < b,
    ast.LessEqual: lambda a, b: a <= b,
    ast.GreaterThan: lambda a, b: a > b,
    ast.GreaterEqual: lambda a, b: a >= b,
}

_SPATIAL = {
    ast.GeometryIntersects: "ST_Intersects",
    ast.GeometryWithin: "ST_Within",
    ast.GeometryContains: "ST_Contains",
    ast.GeometryDisjoint: "ST_Disjoint",
    ast.GeometryTouches: "ST_Touches",
    ast.GeometryOverlaps: "ST_Overlaps",
    ast.GeometryCrosses: "ST_Crosses",
    ast.GeometryEquals: "ST_Equals",
}


class _Walker:
    def __init__(self, columns: Mapping[str, Any], geometry: Any, dates: frozenset[str]) -> None:
        self.columns = columns
        self.geometry = geometry
        self.dates = dates

    def predicate(self, node: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise BadFilter(f"filter nests deeper than {MAX_DEPTH} levels", field="filter")
        d = depth + 1
        if isinstance(node, ast.And):
            return and_(self.predicate(node.lhs, d), self.predicate(node.rhs, d))
        if isinstance(node, ast.Or):
            return or_(self.predicate(node.lhs, d), self.predicate(node.rhs, d))
        if isinstance(node, ast.Not):
            return not_(self.predicate(node.sub_node, d))
        if type(node) in _COMPARE:
            return _COMPARE[type(node)](self.value(node.lhs), self.value(node.rhs))
        if isinstance(node, ast.In):
            expr = self.value(node.lhs).in_([self.value(v) for v in node.sub_nodes])
            return not_(expr) if node.not_ else expr
        if isinstance(node, ast.Like):
            pattern = self._like_pattern(node)
            lhs = self.value(node.lhs)
            expr = (
                lhs.ilike(pattern, escape="\\") if node.nocase else lhs.like(pattern, escape="\\")
            )
            return not_(expr) if node.not_ else expr
        if isinstance(node, ast.Between):
            expr = self.value(node.lhs).between(self.value(node.low), self.value(node.high))
            return not_(expr) if node.not_ else expr
        if isinstance(node, ast.IsNull):
            lhs = self.value(node.lhs)
            return lhs.is_not(None) if node.not_ else lhs.is_(None)
        if type(node) in _SPATIAL:
            fn = getattr(func, _SPATIAL[type(node)])
            return fn(self.spatial(node.lhs), self.spatial(node.rhs))
        if isinstance(node, ast.BBox):
            env = func.ST_MakeEnvelope(node.minx, node.miny, node.maxx, node.maxy, 4326)
            return func.ST_Intersects(self.spatial(node.lhs), env)
        if isinstance(node, ast.TemporalPredicate):
            return self.temporal(node)
        if isinstance(node, bool):
            return true() if node else not_(true())
        raise BadFilter(f"unsupported filter element {type(node).__name__}", field="filter")

    def _like_pattern(self, node: Any) -> str:
        pattern = node.pattern
        if not isinstance(pattern, str):
            raise BadFilter("LIKE needs a text pattern", field="filter")
        # CQL2 uses % and _ as wildcards, like SQL; pygeofilter reports '.' as single char.
        return str(pattern)

    def attribute(self, name: str) -> Any:
        if name not in self.columns:
            raise BadFilter(
                f"unknown property {name!r} in filter; "
                f"queryables: {', '.join(sorted(self.columns))}",
                field="filter",
            )
        return self.columns[name]

    def value(self, node: Any) -> Any:
        if isinstance(node, ast.Attribute):
            return self.attribute(node.name)
        if isinstance(node, bool | int | float | str | date | datetime):
            return literal(node)
        if isinstance(node, ast.Arithmetic | ast.Function):
            raise BadFilter(
                f"{type(node).__name__.lower()} expressions are not supported in filters",
                field="filter",
            )
        raise BadFilter(f"unsupported value {type(node).__name__} in filter", field="filter")

    def spatial(self, node: Any) -> Any:
        if isinstance(node, ast.Attribute):
            if node.name in ("geometry", "geom"):
                return self.geometry
            raise BadFilter(
                f"{node.name!r} is not a geometry; use 'geometry' in spatial predicates",
                field="filter",
            )
        if isinstance(node, values.Geometry):
            return func.ST_SetSRID(func.ST_GeomFromGeoJSON(json.dumps(node.geometry)), 4326)
        if isinstance(node, values.Envelope):
            return func.ST_MakeEnvelope(node.x1, node.y1, node.x2, node.y2, 4326)
        raise BadFilter("a spatial predicate needs the geometry and a geometry", field="filter")

    def temporal(self, node: Any) -> Any:
        if not isinstance(node.lhs, ast.Attribute) or node.lhs.name not in self.dates:
            raise BadFilter(
                f"temporal predicates apply to the date properties {', '.join(sorted(self.dates))}",
                field="filter",
            )
        lhs = self.attribute(node.lhs.name)
        rhs = node.rhs
        if isinstance(rhs, values.Interval):
            start, end = rhs.start, rhs.end
        elif isinstance(rhs, date | datetime):
            start = end = rhs
        else:
            raise BadFilter(
                "a temporal predicate needs a date, timestamp or interval", field="filter"
            )
        lo = literal(start) if start is not None else None
        hi = literal(end) if end is not None else None
        name = type(node).__name__
        if name == "TimeBefore" and lo is not None:
            return lhs < lo
        if name == "TimeAfter" and hi is not None:
            return lhs > hi
        if name == "TimeEquals" and lo is not None:
            return lhs == lo
        if name in ("TimeDuring", "TimeIntersects"):
            conds = [
                c
                for c in (lo is not None and lhs >= lo, hi is not None and lhs <= hi)
                if c is not False
            ]
            return and_(*conds) if conds else true()
        raise BadFilter(f"unsupported temporal predicate {name}", field="filter")
