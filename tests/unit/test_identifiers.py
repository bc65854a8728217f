"""Norwegian person numbers: mod-11, kinds, synthetic series, deployment modes."""

from __future__ import annotations

import random

import pytest

from ingestion.exceptions import InvalidIdentifierError
from ingestion.identifiers import (
    DNR_SYSTEM,
    FNR_SYSTEM,
    HNR_SYSTEM,
    IdentityMode,
    check_digits,
    parse_person_number,
    patient_key,
    synthetic_person_number,
)

SYNTHETIC_FNR = "04677406998"  # 04.02.1974, month + 65


def _with_check_digits(head: str) -> str:
    digits = check_digits(head)
    assert digits is not None
    return head + digits


def test_synthetic_fnr_is_recognised() -> None:
    """A month + 65 number with valid check digits is a synthetic fødselsnummer."""
    number = parse_person_number(SYNTHETIC_FNR)
    assert (number.kind, number.synthetic) == ("fnr", True)
    assert number.birth_date is not None
    assert number.birth_date.isoformat() == "1974-02-04"


@pytest.mark.parametrize("offset", [65, 80])
def test_generated_synthetic_numbers_pass(offset: int) -> None:
    """Generated synthetic numbers pass their own checks, for both synthetic series."""
    rng = random.Random(offset)
    for _ in range(200):
        assert parse_person_number(synthetic_person_number(rng, offset=offset)).synthetic


def test_wrong_check_digit_is_refused() -> None:
    """Changing the last digit breaks mod-11."""
    broken = SYNTHETIC_FNR[:-1] + str((int(SYNTHETIC_FNR[-1]) + 1) % 10)
    with pytest.raises(InvalidIdentifierError, match="check digits"):
        parse_person_number(broken)


@pytest.mark.parametrize("value", ["0467740699", "046774069981", "0467740699x", ""])
def test_wrong_shape_is_refused(value: str) -> None:
    """Only exactly eleven digits are a person number."""
    with pytest.raises(InvalidIdentifierError, match="11 digits"):
        parse_person_number(value)


def test_d_number_needs_the_d_system() -> None:
    """A D-nummer (day + 40) is accepted under its own system only."""
    dnr = _with_check_digits("446774069")
    assert parse_person_number(dnr, system=DNR_SYSTEM).kind == "dnr"
    with pytest.raises(InvalidIdentifierError, match="dnr"):
        parse_person_number(dnr, system=FNR_SYSTEM)


def test_h_number_is_understood() -> None:
    """An H-nummer (month + 40) is recognised; it is not synthetic, so production mode takes it."""
    hnr = _with_check_digits("044274069")
    number = parse_person_number(hnr, system=HNR_SYSTEM, mode=IdentityMode.PRODUCTION)
    assert (number.kind, number.synthetic) == ("hnr", False)


def test_test_mode_refuses_real_numbers() -> None:
    """A test deployment takes synthetic numbers only."""
    real = _with_check_digits("040274069")
    with pytest.raises(InvalidIdentifierError, match="synthetic"):
        parse_person_number(real, mode=IdentityMode.TEST)


def test_production_mode_refuses_synthetic_numbers() -> None:
    """A production deployment refuses synthetic numbers."""
    with pytest.raises(InvalidIdentifierError, match="production"):
        parse_person_number(SYNTHETIC_FNR, mode=IdentityMode.PRODUCTION)


def test_errors_never_repeat_the_number() -> None:
    """Error messages must not leak the identity number into logs or responses."""
    with pytest.raises(InvalidIdentifierError) as info:
        parse_person_number(SYNTHETIC_FNR, mode=IdentityMode.PRODUCTION)
    assert SYNTHETIC_FNR not in str(info.value)


def test_unknown_system_is_refused() -> None:
    """Only the three national person identifier systems identify a patient."""
    with pytest.raises(InvalidIdentifierError, match="not a Norwegian person identifier"):
        parse_person_number(SYNTHETIC_FNR, system="urn:oid:1.2.3")


def test_patient_key_is_stable_and_distinct() -> None:
    """The same identifier always maps to the same key; another one to another key."""
    assert patient_key(FNR_SYSTEM, SYNTHETIC_FNR) == patient_key(FNR_SYSTEM, SYNTHETIC_FNR)
    assert patient_key(FNR_SYSTEM, SYNTHETIC_FNR) != patient_key(DNR_SYSTEM, SYNTHETIC_FNR)
