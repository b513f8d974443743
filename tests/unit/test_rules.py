"""Licence-type rules (from the packaged TOML) and the lifecycle state machine; no database."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

import pytest

from cadastre.domain.lifecycle import (
    ACTIONS,
    STATUSES,
    TRANSITIONS,
    allowed_actions,
    check_status,
    next_status,
)
from cadastre.domain.provinces import PROVINCES
from cadastre.errors import IllegalTransition, InvalidInput
from cadastre.rules import RULE_KEYS, RuleBook

TYPES = (
    "reconnaissance_licence",
    "exploration_licence",
    "mineral_deposit_retention_licence",
    "mining_lease",
    "prospecting_licence",
    "small_scale_mining_lease",
    "surface_mineral_lease",
)
FINAL = ("refused", "surrendered", "cancelled", "expired")


@pytest.fixture(scope="module")
def book() -> RuleBook:
    return RuleBook.load()


def _raw() -> dict[str, Any]:
    text = resources.files("cadastre").joinpath("config/licence_types.toml").read_text()
    return tomllib.loads(text)


# ---------------------------------------------------------------------------- RuleBook


def test_rulebook_loads_packaged_toml(book: RuleBook) -> None:
    assert set(book.types) == set(TYPES)


def test_rulebook_load_from_path(tmp_path: Any) -> None:
    path = tmp_path / "types.toml"
    path.write_text(
        '[types.x]\nname = "X"\nabbreviation = "X"\nscale = "small"\n'
        'term_years = 2\nterm_years_source = "test"\n'
    )
    rule = RuleBook.load(path).rule("x")
    assert rule.term_years == 2
    assert rule.sources == {"term_years": "test"}


def test_rulebook_without_types_is_refused(tmp_path: Any) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("title = 'nothing'\n")
    with pytest.raises(ValueError, match="types"):
        RuleBook.load(path)


@pytest.mark.parametrize("key", TYPES)
@pytest.mark.parametrize("province", [None, *PROVINCES])
def test_every_set_rule_has_a_source(book: RuleBook, key: str, province: str | None) -> None:
    rule = book.rule(key, province)
    for k in RULE_KEYS:
        if getattr(rule, k) is not None:
            assert rule.sources.get(k), f"{key}/{province}: {k} has no source"
    assert set(rule.sources) <= {k for k in RULE_KEYS if getattr(rule, k) is not None}


def test_every_value_in_the_file_has_a_source() -> None:
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, t in _raw()["types"].items():
        tables.append((key, t))
        tables += [(f"{key}/{p}", o) for p, o in t.get("provinces", {}).items()]
    for where, table in tables:
        for k in RULE_KEYS:
            if k in table:
                assert str(table.get(f"{k}_source", "")).strip(), f"{where}: {k} has no source"


def test_province_overrides_use_iso_codes() -> None:
    for t in _raw()["types"].values():
        assert set(t.get("provinces", {})) <= set(PROVINCES)


@pytest.mark.parametrize(
    ("key", "province", "field"),
    [
        ("reconnaissance_licence", None, "max_area_km2"),
        ("reconnaissance_licence", "PK-BA", "term_years"),
        ("exploration_licence", "PK-BA", "term_years"),
        ("exploration_licence", None, "term_years"),
        ("mining_lease", "PK-BA", "max_area_km2"),
        ("mining_lease", None, "max_area_km2"),
        ("prospecting_licence", "PK-SD", "renewable"),
        ("mineral_deposit_retention_licence", "PK-KP", "renewal_term_years"),
    ],
)
def test_unknown_values_are_none(
    book: RuleBook, key: str, province: str | None, field: str
) -> None:
    rule = book.rule(key, province)
    assert getattr(rule, field) is None
    assert field not in rule.sources


def test_punjab_mining_lease_area_limit(book: RuleBook) -> None:
    rule = book.rule("mining_lease", "PK-PB")
    assert rule.max_area_km2 == 250
    assert rule.sources["max_area_km2"]
    assert rule.province == "PK-PB"


def test_kp_exploration_term(book: RuleBook) -> None:
    rule = book.rule("exploration_licence", "PK-KP")
    assert rule.term_years == 3
    assert "3" in rule.sources["term_years"]


def test_override_does_not_leak_to_other_provinces(book: RuleBook) -> None:
    assert book.rule("exploration_licence", "PK-PB").term_years is None
    assert book.rule("mining_lease", "PK-KP").max_area_km2 is None


def test_override_keeps_the_type_defaults(book: RuleBook) -> None:
    rule = book.rule("mining_lease", "PK-PB")
    assert rule.exclusive is True
    assert rule.sources["exclusive"]
    assert rule.abbreviation == "ML"


def test_surface_mineral_lease_punjab(book: RuleBook) -> None:
    rule = book.rule("surface_mineral_lease", "PK-PB")
    assert (rule.term_years, rule.renewable, rule.renewal_term_years) == (5, True, 5)


def test_reconnaissance_licence_not_exclusive(book: RuleBook) -> None:
    rule = book.rule("reconnaissance_licence")
    assert rule.exclusive is False
    assert rule.sources["exclusive"]


def test_to_dict_pairs_values_and_sources(book: RuleBook) -> None:
    d = book.rule("mining_lease", "PK-PB").to_dict()
    assert d["rules"]["max_area_km2"]["value"] == 250
    assert d["rules"]["max_area_km2"]["source"]
    assert d["rules"]["term_years"] == {"value": None, "source": None}
    assert set(d["rules"]) == set(RULE_KEYS)


@pytest.mark.parametrize("call", ["rule", "check_type"])
def test_unknown_type_is_invalid_input_naming_it(book: RuleBook, call: str) -> None:
    with pytest.raises(InvalidInput) as info:
        getattr(book, call)("gold_rush_permit")
    assert "gold_rush_permit" in info.value.message
    assert info.value.field == "licence_type"


def test_check_type_reports_the_given_field(book: RuleBook) -> None:
    with pytest.raises(InvalidInput) as info:
        book.check_type("nope", field="properties.licence_type")
    assert info.value.field == "properties.licence_type"


def test_check_type_returns_known_key(book: RuleBook) -> None:
    assert book.check_type("mining_lease") == "mining_lease"


# --------------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize(
    ("status", "action", "result"),
    [
        ("applied", "grant", "granted"),
        ("applied", "refuse", "refused"),
        ("granted", "renew", "granted"),
        ("granted", "transfer", "granted"),
        ("granted", "relinquish", "granted"),
        ("granted", "surrender", "surrendered"),
        ("granted", "cancel", "cancelled"),
        ("granted", "expire", "expired"),
    ],
)
def test_next_status_legal(status: str, action: str, result: str) -> None:
    assert next_status(status, action) == result


def test_legal_transitions_are_exactly_those() -> None:
    legal = {(s, a) for s in STATUSES for a in ACTIONS if a in TRANSITIONS[s]}
    assert legal == {
        ("applied", "grant"),
        ("applied", "refuse"),
        *(("granted", a) for a in ("renew", "transfer", "relinquish")),
        *(("granted", a) for a in ("surrender", "cancel", "expire")),
    }


@pytest.mark.parametrize(
    ("status", "action"),
    [(s, a) for s in STATUSES for a in ACTIONS if a not in TRANSITIONS[s]],
)
def test_next_status_illegal(status: str, action: str) -> None:
    with pytest.raises(IllegalTransition) as info:
        next_status(status, action)
    err = info.value
    assert err.where == {"current_status": status, "allowed_actions": allowed_actions(status)}
    assert err.field == "action"
    assert status in err.message and action in err.message
    assert all(a in err.message for a in allowed_actions(status))
    assert err.to_dict()["code"] == "illegal_transition"


def test_next_status_unknown_action() -> None:
    with pytest.raises(InvalidInput) as info:
        next_status("applied", "annex")
    assert not isinstance(info.value, IllegalTransition)
    assert info.value.field == "action"
    assert "annex" in info.value.message


def test_allowed_actions_applied() -> None:
    assert allowed_actions("applied") == ["grant", "refuse"]


def test_allowed_actions_granted() -> None:
    assert allowed_actions("granted") == [
        "renew",
        "transfer",
        "relinquish",
        "surrender",
        "cancel",
        "expire",
    ]


@pytest.mark.parametrize("status", FINAL)
def test_final_states_allow_nothing(status: str) -> None:
    assert allowed_actions(status) == []


def test_allowed_actions_returns_a_copy() -> None:
    allowed_actions("applied").append("grant")
    assert allowed_actions("applied") == ["grant", "refuse"]


def test_every_status_has_a_transition_table() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    for targets in TRANSITIONS.values():
        assert set(targets) <= set(ACTIONS)
        assert set(targets.values()) <= set(STATUSES)


def test_every_action_is_reachable() -> None:
    used = {a for targets in TRANSITIONS.values() for a in targets}
    assert used == set(ACTIONS)


@pytest.mark.parametrize("status", STATUSES)
def test_check_status_known(status: str) -> None:
    assert check_status(status) == status


def test_check_status_unknown() -> None:
    with pytest.raises(InvalidInput) as info:
        check_status("pending", field="properties.status")
    assert info.value.field == "properties.status"
    assert "pending" in info.value.message
