"""Who measured and who owns the data: the performer slices of VkpObservation, and the municipality.

``performer`` has two slices: the author (a person by fødselsnummer/D-/H-nummer or HPR number)
and the originally responsible organisation (org number or RESH id). The organisation keeps the
data responsibility (dataansvar), so both are kept. The municipality comes from
``Bundle.meta.tag`` (geonorge kommunenummer, four digits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingestion.exceptions import InvalidReadingError
from ingestion.identifiers import PERSON_SYSTEMS, IdentityMode, parse_person_number

__all__ = [
    "HPR_SYSTEM",
    "ORGNR_SYSTEM",
    "RESH_SYSTEM",
    "Performers",
    "municipality_of",
    "read_performers",
    "valid_org_number",
]

HPR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.4"
ORGNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.101"
RESH_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.102"
_ORG_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)


@dataclass(frozen=True, slots=True)
class Performers:
    """The author (system, value) and the responsible organisation (system, value)."""

    author: tuple[str, str] | None = None
    organisation: tuple[str, str] | None = None


def read_performers(resource: dict[str, Any], path: str, mode: IdentityMode) -> Performers:
    """Read the performer slices; performers by reference only are ignored.

    Raises:
        InvalidReadingError: an identifier of a known system fails its checks.
    """
    author = organisation = None
    for index, performer in enumerate(resource.get("performer") or ()):
        ident = performer.get("identifier") or {}
        system, value = ident.get("system"), ident.get("value")
        where = f"{path}.performer[{index}].identifier.value"
        if not system or not value:
            continue
        if system in (ORGNR_SYSTEM, RESH_SYSTEM):
            _check_organisation(system, value, where)
            organisation = organisation or (system, value)
        elif system in PERSON_SYSTEMS or system == HPR_SYSTEM:
            _check_person(system, value, where, mode)
            author = author or (system, value)
    return Performers(author, organisation)


def _check_organisation(system: str, value: str, where: str) -> None:
    if system == ORGNR_SYSTEM and not valid_org_number(value):
        raise InvalidReadingError(
            "an organisation number has 9 digits and a valid mod-11 check digit",
            expression=where,
            code="value",
        )
    if system == RESH_SYSTEM and not (value.isascii() and value.isdigit()):
        raise InvalidReadingError("a RESH id is digits only", expression=where, code="value")


def _check_person(system: str, value: str, where: str, mode: IdentityMode) -> None:
    if system == HPR_SYSTEM:
        if not (value.isascii() and value.isdigit() and 1 <= len(value) <= 9):
            raise InvalidReadingError("an HPR number is 1–9 digits", expression=where, code="value")
        return
    try:
        parse_person_number(value, system=system, mode=mode)
    except InvalidReadingError as exc:
        exc.expression = where
        raise


def valid_org_number(value: str) -> bool:
    """Return whether ``value`` is a 9-digit Norwegian organisation number with a valid check."""
    if len(value) != 9 or not value.isascii() or not value.isdigit():
        return False
    remainder = sum(int(d) * w for d, w in zip(value[:8], _ORG_WEIGHTS, strict=True)) % 11
    check = 0 if remainder == 0 else 11 - remainder
    return check != 10 and check == int(value[8])


def municipality_of(bundle: dict[str, Any]) -> str | None:
    """Return the kommunenummer tagged on a Bundle, or None.

    Raises:
        InvalidReadingError: a kommunenummer tag whose code is not four digits.
    """
    tags = (bundle.get("meta") or {}).get("tag") or ()
    for index, tag in enumerate(tags if isinstance(tags, list) else [tags]):
        if isinstance(tag, dict) and "kommunenummer" in str(tag.get("system", "")):
            code = str(tag.get("code", ""))
            if len(code) != 4 or not code.isdigit():
                raise InvalidReadingError(
                    "a kommunenummer has four digits, with a leading zero (e.g. 0301 for Oslo)",
                    expression=f"Bundle.meta.tag[{index}].code",
                    code="value",
                )
            return code
    return None
