"""A dead letter says where and why a record failed, and never repeats the record's content:
`malestrom dlq list` prints these headers to an operator's terminal."""

from __future__ import annotations

import psycopg.errors

from ingestion.exceptions import InvalidReadingError
from streams.deadletter import dead_letter_headers, reason

SECRET = "04677406998"  # a synthetic fødselsnummer standing in for any content of the record


def test_our_own_errors_keep_their_message() -> None:
    error = InvalidReadingError("unit must be mm[Hg]", expression="$.unit")
    assert reason(error) == str(error)


def test_a_database_error_keeps_only_its_sqlstate_and_condition() -> None:
    error = psycopg.errors.InvalidTextRepresentation(
        f'invalid input syntax for type uuid: "{SECRET}"'
    )
    text = reason(error)
    assert SECRET not in text
    assert "InvalidTextRepresentation" in text


def test_any_other_error_is_named_by_its_type_only() -> None:
    text = reason(ValueError(f"could not parse {SECRET}"))
    assert SECRET not in text
    assert text.startswith("ValueError")


def test_the_headers_carry_the_reason_not_the_message() -> None:
    headers = dead_letter_headers(
        error=KeyError(SECRET), stage="store", topic="t", partition=0, offset=7
    )
    assert SECRET.encode() not in b"".join(headers.values())
    assert headers["dlq-error-type"] == b"KeyError"
