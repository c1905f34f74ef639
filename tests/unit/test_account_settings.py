"""Account settings: validated on write, forgiving on read."""

from __future__ import annotations

import pytest

from kaskad.domain.account_settings import (
    AccountSettings,
    dump_settings,
    parse_settings,
    updated,
)
from kaskad.domain.errors import BadRequest


def test_round_trip_and_defaults() -> None:
    s = updated(AccountSettings(), {"telegram_sender": "acme_codes", "lang": "en"})
    assert parse_settings(dump_settings(s)) == s
    assert parse_settings(None) == AccountSettings() == parse_settings("not json")
    assert dump_settings(AccountSettings()) == "{}"


def test_empty_value_clears() -> None:
    s = updated(AccountSettings(telegram_sender="acme_codes"), {"telegram_sender": ""})
    assert s.telegram_sender is None


def test_code_detection_settings_from_cli_strings() -> None:
    s = updated(AccountSettings(), {"sms_codes_to_telegram": "true", "code_length_min": "6"})
    assert s.sms_codes_to_telegram is True and (s.code_length_min, s.code_length_max) == (6, 8)


@pytest.mark.parametrize("changes", [{"lang": "de"}, {"telegram_sender": "a b"},
                                     {"no_such_setting": "1"}, {"code_length_min": "3"},
                                     {"code_length_min": "7", "code_length_max": "6"},
                                     {"sms_codes_to_telegram": "maybe"}])
def test_bad_values_are_refused(changes: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        updated(AccountSettings(), changes)
