"""Norwegian person identifiers: fødselsnummer, D-nummer, H-nummer, synthetic numbers.

All three share the 11-digit shape ``DDMMYYIIICC`` and the mod-11 check digits; they differ in
offsets on the day (D: +4 on the first digit) and month (H: +40; synthetic: +65 or +80).
The check rule is kept in one function so that the 2032 rule can be plugged in beside it.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass
from enum import StrEnum

from ingestion.exceptions import InvalidIdentifierError

__all__ = [
    "DNR_SYSTEM",
    "FNR_SYSTEM",
    "HNR_SYSTEM",
    "PERSON_SYSTEMS",
    "IdentityMode",
    "PersonNumber",
    "check_digits",
    "parse_person_number",
    "patient_key",
    "person_system",
    "synthetic_person_number",
]

FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.2"
HNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.3"
PERSON_SYSTEMS = frozenset({FNR_SYSTEM, DNR_SYSTEM, HNR_SYSTEM})

_K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_SYNTHETIC_MONTH_OFFSETS = (65, 80)
_H_MONTH_OFFSET = 40
_D_DAY_OFFSET = 40

# Namespace for patient keys: a stable pseudonymous key per identifier, used as Kafka key and
# database key so that the national identity number is not needed to route or join.
_PATIENT_NAMESPACE = uuid.UUID("6f1d3c52-3f0e-4d8a-9a55-8c2f3b1e9d10")


class IdentityMode(StrEnum):
    """Which numbers a deployment accepts (as NHN's JFT does)."""

    TEST = "test"  # synthetic numbers only
    PRODUCTION = "production"  # real numbers only


@dataclass(frozen=True, slots=True)
class PersonNumber:
    """A checked person number and what it is."""

    value: str
    kind: str  # "fnr", "dnr" or "hnr"
    synthetic: bool
    birth_date: dt.date | None


def check_digits(digits: str) -> str | None:
    """Return the two mod-11 check digits for the first nine digits, or None if none exist."""
    k1 = _mod11(digits[:9], _K1_WEIGHTS)
    if k1 is None:
        return None
    k2 = _mod11(digits[:9] + str(k1), _K2_WEIGHTS)
    if k2 is None:
        return None
    return f"{k1}{k2}"


def _mod11(digits: str, weights: tuple[int, ...]) -> int | None:
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    k = 11 - remainder
    if k == 11:
        return 0
    return None if k == 10 else k


def parse_person_number(
    value: str, *, system: str = FNR_SYSTEM, mode: IdentityMode = IdentityMode.TEST
) -> PersonNumber:
    """Check a person number against its system and the deployment's mode.

    Raises:
        InvalidIdentifierError: wrong shape, wrong check digits, wrong kind for the system, or a
            synthetic number in production (or a real one in test). The message never repeats
            the number.
    """
    if system not in PERSON_SYSTEMS:
        raise InvalidIdentifierError(
            f"identifier system {system!r} is not a Norwegian person identifier; use one of "
            f"{sorted(PERSON_SYSTEMS)}",
            code="code-invalid",
        )
    if len(value) != 11 or not value.isascii() or not value.isdigit():
        raise InvalidIdentifierError(
            "a person number has exactly 11 digits; send them without spaces", code="value"
        )
    if check_digits(value) != value[9:]:
        raise InvalidIdentifierError(
            "the check digits (mod 11) do not match; check the number for a typing error",
            code="value",
        )
    day, month = int(value[0:2]), int(value[2:4])
    kind = "fnr"
    if day > _D_DAY_OFFSET:
        kind, day = "dnr", day - _D_DAY_OFFSET
    synthetic = False
    for offset in _SYNTHETIC_MONTH_OFFSETS:
        if month > offset:
            synthetic, month = True, month - offset
            break
    if not synthetic and month > _H_MONTH_OFFSET:
        kind, month = "hnr", month - _H_MONTH_OFFSET
    _require_kind_matches_system(kind, system)
    _require_mode(synthetic, mode)
    return PersonNumber(value, kind, synthetic, _birth_date(day, month, value))


def person_system(value: str) -> str:
    """The identifier system a person number's shape says: fødselsnummer, D- or H-nummer."""
    if len(value) != 11 or not value.isdigit():
        return FNR_SYSTEM
    day, month = int(value[0:2]), int(value[2:4]) % 100
    month -= next((o for o in _SYNTHETIC_MONTH_OFFSETS if month > o), 0)
    if day > _D_DAY_OFFSET:
        return DNR_SYSTEM
    return HNR_SYSTEM if month > _H_MONTH_OFFSET else FNR_SYSTEM


def _require_kind_matches_system(kind: str, system: str) -> None:
    expected = {"fnr": FNR_SYSTEM, "dnr": DNR_SYSTEM, "hnr": HNR_SYSTEM}[kind]
    if system != expected:
        raise InvalidIdentifierError(
            f"the number is a {kind} but the system says otherwise; use {expected}",
            code="value",
        )


def _require_mode(synthetic: bool, mode: IdentityMode) -> None:
    if mode is IdentityMode.TEST and not synthetic:
        raise InvalidIdentifierError(
            "this is a test deployment: only synthetic person numbers (month + 65 or + 80) "
            "are accepted; send a synthetic one",
            code="business-rule",
        )
    if mode is IdentityMode.PRODUCTION and synthetic:
        raise InvalidIdentifierError(
            "this is a production deployment: synthetic person numbers are refused; send the "
            "person's real number",
            code="business-rule",
        )


def _birth_date(day: int, month: int, value: str) -> dt.date | None:
    year2, individual = int(value[4:6]), int(value[6:9])
    if individual < 500:
        century = 1900
    elif individual < 750 and year2 >= 54:
        century = 1800
    elif year2 < 40:
        century = 2000
    else:
        century = 1900
    try:
        return dt.date(century + year2, month, day)
    except ValueError:
        return None  # H-numbers and some synthetic series carry no real date


def patient_key(system: str, value: str) -> uuid.UUID:
    """Return the stable pseudonymous key of a patient identifier."""
    return uuid.uuid5(_PATIENT_NAMESPACE, f"{system}|{value}")


def synthetic_person_number(rng: random.Random, *, offset: int = 65) -> str:
    """Return a random synthetic fødselsnummer (month + 65 or + 80) with valid check digits."""
    if offset not in _SYNTHETIC_MONTH_OFFSETS:
        raise ValueError(f"synthetic offsets are {_SYNTHETIC_MONTH_OFFSETS}")
    while True:
        birth = dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 75))
        individual = rng.randrange(0, 500) if birth.year < 2000 else rng.randrange(500, 1000)
        head = f"{birth.day:02d}{birth.month + offset:02d}{birth.year % 100:02d}{individual:03d}"
        digits = check_digits(head)
        if digits is not None:
            return head + digits
