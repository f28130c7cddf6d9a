"""app.vocabulary.ascii_int: the one reading of a number that came from outside."""

import pytest

from app.infrastructure.cache import versioned
from app.infrastructure.webhooks.sender import retry_after_seconds
from app.vocabulary import ascii_int


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("9" * 18, int("9" * 18)),
        ("9" * 19, None),
        ("", None),
        ("³", None),
        ("٣", None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1.0", None),
        ("abc", None),
    ],
)
def test_only_ascii_digits_within_the_limit_are_numbers(text, expected):
    assert ascii_int(text) == expected


def test_a_superscript_retry_after_is_unreadable_not_an_exception():
    assert retry_after_seconds("³") is None
    assert retry_after_seconds("7") == 7.0


def test_a_cached_value_with_a_non_ascii_version_is_a_miss():
    assert versioned.decode("³|payload") is None
    assert versioned.decode("12|payload") == (12, "payload")
