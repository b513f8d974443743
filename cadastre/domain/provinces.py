"""Pakistan's provinces and territories: names and ISO 3166-2 codes.

Minerals are a provincial subject since the 18th Amendment, so every licence
belongs to exactly one of these jurisdictions.
"""

from __future__ import annotations

from cadastre.errors import InvalidInput

PROVINCES: dict[str, str] = {
    "PK-BA": "Balochistan",
    "PK-PB": "Punjab",
    "PK-SD": "Sindh",
    "PK-KP": "Khyber Pakhtunkhwa",
    "PK-GB": "Gilgit-Baltistan",
    "PK-JK": "Azad Jammu and Kashmir",
    "PK-IS": "Islamabad Capital Territory",
}

_BY_KEY = {code.lower(): code for code in PROVINCES} | {
    name.lower(): code for code, name in PROVINCES.items()
}


def province_code(value: str, *, field: str = "province") -> str:
    """Return the ISO 3166-2 code of a province given by name or code.

    Examples
    --------
    >>> province_code("Khyber Pakhtunkhwa")
    'PK-KP'
    >>> province_code("pk-ba")
    'PK-BA'
    """
    code = _BY_KEY.get(value.strip().lower())
    if code is None:
        known = ", ".join(f"{c} ({n})" for c, n in PROVINCES.items())
        raise InvalidInput(f"unknown province {value!r}; expected one of {known}", field=field)
    return code


def short_code(code: str) -> str:
    """The two letters after ``PK-``, as used in licence numbers (``BA``)."""
    return code.split("-", 1)[1]
