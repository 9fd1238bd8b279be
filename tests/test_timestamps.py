"""One RFC 3339 parser for the CLI, the API and the window (issue 14): offsets are applied,
a time without one is UTC, and the local zone's summer time changes nothing."""

from __future__ import annotations

import calendar
import os
import time
from collections.abc import Iterator

import pytest

from explorer.cli.format import human_ago, mode_string
from explorer.gui import fmt
from explorer.timestamps import epoch, human_duration, parse_rfc3339

NOON_JULY = calendar.timegm((2024, 7, 1, 12, 0, 0))


@pytest.fixture(params=["Europe/Berlin", "America/New_York", "UTC"])
def zone(request: pytest.FixtureRequest) -> Iterator[str]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-07-01T12:00:00Z", NOON_JULY),
        ("2024-07-01T12:00:00.123456789Z", NOON_JULY + 0.123456),
        ("2024-07-01T14:00:00+02:00", NOON_JULY),
        ("2024-07-01T06:30:00-05:30", NOON_JULY),
        ("2024-07-01T12:00:00", NOON_JULY),  # no offset: UTC, as Docker writes
        ("2024-07-01T12:00:00.5z", NOON_JULY + 0.5),
    ],
)
def test_rfc3339_in_summer_in_any_zone(zone: str, text: str, expected: float) -> None:
    assert parse_rfc3339(text) == pytest.approx(expected)
    assert fmt.to_epoch(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-07-01T12:00:00+25:00"])
def test_what_does_not_read_is_none(text: str) -> None:
    assert parse_rfc3339(text) is None
    assert epoch(text) is None


def test_ages_read_as_docker_words() -> None:
    now = NOON_JULY + 3600 * 5
    assert human_ago("2024-07-01T14:00:00+02:00", now) == "5 hours ago"
    assert human_ago(NOON_JULY, NOON_JULY + 0.2) == "Less than a second ago"
    assert human_ago(None) == "N/A" and human_ago(0) == "N/A"
    assert [human_duration(s) for s in (59, 60, 3599, 3600, 7200, 86400 * 3, 86400 * 20)] == [
        "59 seconds",
        "About a minute",
        "59 minutes",
        "About an hour",
        "2 hours",
        "3 days",
        "2 weeks",
    ]


def test_mode_strings_are_ls_modes() -> None:
    assert mode_string("dir", 0o755) == "drwxr-xr-x"
    assert mode_string("file", 0o4755) == "-rwsr-xr-x"
    assert mode_string("file", 0o2644) == "-rw-r-Sr--"
    assert mode_string("dir", 0o1777) == "drwxrwxrwt"
    assert mode_string("symlink", 0o777) == "lrwxrwxrwx"
    assert mode_string("hardlink", 0o600) == "hrw-------"
    assert mode_string("char", 0o666) == "crw-rw-rw-"
