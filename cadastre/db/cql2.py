"""CQL2 (OGC API - Features Part 3) filters to SQLAlchemy expressions.

Both encodings are parsed and validated by the ``cql2`` package (the
standard's grammar, as CQL2 1.0 defines it) into standard CQL2 JSON; this
module walks that JSON and builds SQLAlchemy Core expressions over a fixed set
of queryable columns. Every literal becomes a bound parameter and every
property name must be a declared queryable, so no filter text ever reaches SQL
as text.

Supported: ``and``/``or``/``not``, comparisons, ``like`` (``%`` and ``_``),
``between``, ``in``, ``isNull``, ``casei``; the spatial functions
``S_INTERSECTS``, ``S_WITHIN``, ``S_CONTAINS``, ``S_DISJOINT``, ``S_TOUCHES``,
``S_OVERLAPS``, ``S_CROSSES``, ``S_EQUALS`` (geometries in WGS 84 lon/lat);
the temporal functions ``T_BEFORE``, ``T_AFTER``, ``T_DURING``, ``T_EQUALS``,
``T_INTERSECTS`` on date properties.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import cql2
from sqlalchemy import ColumnElement, and_, func, literal, not_, or_, true

from cadastre.errors import BadQuery

MAX_LENGTH = 10_000
MAX_DEPTH = 20


class BadFilter(BadQuery):
    """A CQL2 filter that cannot be parsed or evaluated; says where."""

    code = "bad_filter"


#: The one CRS of filter geometries: CRS84, by URI or by its short name.
FILTER_CRS = ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "OGC:CRS84")


def check_companions(params: Mapping[str, str]) -> None:
    """``filter-lang`` and ``filter-crs`` need a ``filter``; ``filter-crs`` must be CRS84."""
    for name in ("filter-lang", "filter-crs"):
        if name in params and "filter" not in params:
            raise BadFilter(f"{name} is given without filter", field=name)
    if params.get("filter-crs") not in (None, *FILTER_CRS):
        raise BadFilter(f"filter-crs must be CRS84 ({FILTER_CRS[0]})", field="filter-crs")


def parse(text: str, lang: str = "cql2-text") -> Any:
    """Parse a CQL2 filter (``cql2-text`` or ``cql2-json``) into standard CQL2 JSON."""
    if len(text) > MAX_LENGTH:
        raise BadFilter(f"filter is longer than {MAX_LENGTH} characters", field="filter")
    if lang not in ("cql2-text", "cql2-json"):
        raise BadFilter(
            f"filter-lang must be cql2-text or cql2-json, not {lang!r}", field="filter-lang"
        )
    try:
        expr = cql2.parse_text(text) if lang == "cql2-text" else cql2.parse_json(text)
        return expr.to_json()
    except Exception as exc:  # the parser reports the position as "--> line:column"
        raise BadFilter(_parse_error(str(exc)), field="filter") from None


def to_sql(
    node: Any,
    columns: Mapping[str, Any],
    geometry: Any,
    *,
    dates: frozenset[str] = frozenset(),
    kinds: Mapping[str, str] | None = None,
) -> ColumnElement[bool]:
    """Build a boolean SQL expression from a filter in standard CQL2 JSON.

    ``columns`` maps queryable names to SQLAlchemy column expressions;
    ``geometry`` is the geometry column (EPSG:4326), reachable as
    ``geometry`` or ``geom`` in the filter; ``dates`` are the date properties
    that the temporal functions accept; ``kinds`` gives each queryable's JSON
    Schema type (string, number, integer, boolean, date), so that a comparison
    of a property with a value of another type is refused here, naming both,
    instead of failing in the database.
    """
    walker = _Walker(columns, geometry, dates, kinds or {})
    expr: ColumnElement[bool] = walker.predicate(node, 0)
    return expr


_COMPARE = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}

_SPATIAL = {
    "s_intersects": "ST_Intersects",
    "s_within": "ST_Within",
    "s_contains": "ST_Contains",
    "s_disjoint": "ST_Disjoint",
    "s_touches": "ST_Touches",
    "s_overlaps": "ST_Overlaps",
    "s_crosses": "ST_Crosses",
    "s_equals": "ST_Equals",
}

_TEMPORAL = ("t_before", "t_after", "t_during", "t_equals", "t_intersects")


def _kind_name(kind: str) -> str:
    return {"integer": "number", "date": "date"}.get(kind, kind)


def _is_instant(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


class _Walker:
    def __init__(
        self,
        columns: Mapping[str, Any],
        geometry: Any,
        dates: frozenset[str],
        kinds: Mapping[str, str],
    ) -> None:
        self.columns = columns
        self.geometry = geometry
        self.dates = dates
        self.kinds = kinds

    def kind(self, node: Any) -> tuple[str, str]:
        """(type, how to name it) of an operand: a property's queryable type or a literal's."""
        if isinstance(node, dict):
            if "property" in node:
                self.attribute(node["property"])
                kind = _kind_name(self.kinds.get(node["property"], "any"))
                return kind, f"property {node['property']!r} ({kind})"
            if "date" in node or "timestamp" in node:
                return "date", _show(node)
            if node.get("op") in ("casei", "accenti") and node.get("args"):
                return self.kind(node["args"][0])
            return "any", _show(node)
        if isinstance(node, bool):
            return "boolean", _show(node)
        if isinstance(node, int | float):
            return "number", _show(node)
        if isinstance(node, str):
            return "string", _show(node)
        return "any", _show(node)

    def same_kind(self, op: str, *nodes: Any) -> None:
        """Refuse operands of different types (a date property takes an ISO date string)."""
        kinds = [self.kind(n) for n in nodes]
        known = [(k, d, n) for (k, d), n in zip(kinds, nodes, strict=True) if k != "any"]
        for (k1, d1, n1), (k2, d2, n2) in itertools.combinations(known, 2):
            if k1 == k2:
                continue
            if {k1, k2} == {"date", "string"}:
                text = n2 if k2 == "string" else n1
                if isinstance(text, str) and _is_instant(text):
                    continue
            raise BadFilter(
                f"{op.upper()} compares {d1} with {d2}: the types differ", field="filter"
            )

    def predicate(self, node: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise BadFilter(f"filter nests deeper than {MAX_DEPTH} levels", field="filter")
        if isinstance(node, bool):
            return true() if node else not_(true())
        if not isinstance(node, dict) or "op" not in node:
            raise BadFilter(f"expected a condition, found {_show(node)}", field="filter")
        op, args = node["op"], node.get("args", [])
        d = depth + 1
        if op == "and":
            return and_(*(self.predicate(a, d) for a in args))
        if op == "or":
            return or_(*(self.predicate(a, d) for a in args))
        if op == "not":
            return not_(self.predicate(args[0], d))
        if op in _COMPARE:
            self.same_kind(op, args[0], args[1])
            return _COMPARE[op](self.value(args[0], d), self.value(args[1], d))
        if op == "like":
            for arg in args[:2]:
                kind, name = self.kind(arg)
                if kind not in ("string", "any"):
                    raise BadFilter(f"LIKE works on text; {name} is not text", field="filter")
            return self.value(args[0], d).like(self.value(args[1], d))
        if op == "between":
            self.same_kind(op, *args[:3])
            return self.value(args[0], d).between(self.value(args[1], d), self.value(args[2], d))
        if op == "in":
            if not isinstance(args[1], list):
                raise BadFilter("IN needs a list of values", field="filter")
            for v in args[1]:
                self.same_kind(op, args[0], v)
            return self.value(args[0], d).in_([self.value(v, d) for v in args[1]])
        if op == "isNull":
            return self.value(args[0], d).is_(None)
        if op in _SPATIAL:
            fn = getattr(func, _SPATIAL[op])
            return fn(self.spatial(args[0]), self.spatial(args[1]))
        if op in _TEMPORAL:
            return self.temporal(op, args)
        raise BadFilter(f"unsupported operator {op!r} in filter", field="filter")

    def attribute(self, name: str) -> Any:
        if name not in self.columns:
            raise BadFilter(
                f"unknown property {name!r} in filter; "
                f"queryables: {', '.join(sorted(self.columns))}",
                field="filter",
            )
        return self.columns[name]

    def value(self, node: Any, depth: int) -> Any:
        if isinstance(node, dict):
            if "property" in node:
                return self.attribute(node["property"])
            if "date" in node:
                return literal(date.fromisoformat(node["date"]))
            if "timestamp" in node:
                return literal(datetime.fromisoformat(node["timestamp"].replace("Z", "+00:00")))
            if node.get("op") == "casei":
                return func.lower(self.value(node["args"][0], depth + 1))
            if node.get("op") == "accenti":
                return self.value(node["args"][0], depth + 1)
            if "op" in node:
                raise BadFilter(
                    f"{node['op']!r} expressions are not supported in filters", field="filter"
                )
        if isinstance(node, bool | int | float | str):
            return literal(node)
        raise BadFilter(f"unsupported value {_show(node)} in filter", field="filter")

    def spatial(self, node: Any) -> Any:
        if isinstance(node, dict) and "property" in node:
            if node["property"] in ("geometry", "geom"):
                return self.geometry
            raise BadFilter(
                f"{node['property']!r} is not a geometry; use 'geometry' in spatial functions",
                field="filter",
            )
        if isinstance(node, dict) and "bbox" in node:
            box = node["bbox"]
            if len(box) == 6:
                box = [box[0], box[1], box[3], box[4]]
            return func.ST_MakeEnvelope(*box, 4326)
        if isinstance(node, dict) and "type" in node and "coordinates" in node:
            return func.ST_SetSRID(func.ST_GeomFromGeoJSON(json.dumps(node)), 4326)
        raise BadFilter("a spatial function needs the geometry and a geometry", field="filter")

    def temporal(self, op: str, args: list[Any]) -> Any:
        prop = args[0]
        if not (isinstance(prop, dict) and prop.get("property") in self.dates):
            raise BadFilter(
                f"temporal functions apply to the date properties {', '.join(sorted(self.dates))}",
                field="filter",
            )
        lhs = self.attribute(prop["property"])
        start, end = _period(args[1])
        if op == "t_before" and start is not None:
            return lhs < start
        if op == "t_after" and end is not None:
            return lhs > end
        if op == "t_equals" and start is not None:
            return lhs == start
        if op in ("t_during", "t_intersects"):
            conds = []
            if start is not None:
                conds.append(lhs >= start)
            if end is not None:
                conds.append(lhs <= end)
            return and_(*conds) if conds else true()
        raise BadFilter(f"{op} needs a bounded instant or interval", field="filter")


def _instant(value: Any) -> date | datetime | None:
    if value in ("..", None):
        return None
    if isinstance(value, dict):
        value = value.get("date") or value.get("timestamp")
    text = str(value)
    try:
        if "T" in text:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        return date.fromisoformat(text)
    except ValueError:
        raise BadFilter(f"{text!r} is not a date or timestamp", field="filter") from None


def _period(node: Any) -> tuple[Any, Any]:
    if isinstance(node, dict) and "interval" in node:
        lo, hi = (_instant(v) for v in node["interval"])
    elif isinstance(node, dict) and ("date" in node or "timestamp" in node):
        lo = hi = _instant(node)
    else:
        raise BadFilter("a temporal function needs a date, timestamp or interval", field="filter")
    return (literal(lo) if lo is not None else None, literal(hi) if hi is not None else None)


def _parse_error(message: str) -> str:
    where = re.search(r"-->\s*(\d+):(\d+)", message)
    expected = re.search(r"=\s*(expected .*)", message)
    if where is None:
        detail = " ".join(line.strip() for line in message.splitlines() if line.strip())
        return f"cannot parse the filter: {detail[:300]}"
    line, column = where.groups()
    why = expected.group(1) if expected else "unexpected input"
    return f"cannot parse the filter at line {line}, column {column}: {why[:300]}"


def _show(node: Any) -> str:
    return json.dumps(node)[:80]
