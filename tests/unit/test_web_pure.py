"""The cabinet's pure parts: every text in both languages, the chart arithmetic, and the
settings form's field-by-field validation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import kaskad.web
from kaskad.domain.account_settings import AccountSettings
from kaskad.domain.channels import ChannelName
from kaskad.domain.login_throttle import LoginThrottle
from kaskad.storage.cabinet import DAY_MS
from kaskad.web import admin, charts
from kaskad.web.i18n import TEXTS, pick_lang, text
from kaskad.web.settings_page import form_changes, validate


def test_every_text_has_russian_and_english() -> None:
    for key, (ru, en) in TEXTS.items():
        assert ru.strip() and en.strip(), key
    assert text("login.title", "ru") == "Вход" and text("login.title", "en") == "Log in"
    assert text("overview.period", "en", days=30) == "In the last 30 days"
    assert pick_lang("en", "ru", "ru") == "en" and pick_lang(None, None, "en") == "en"
    assert pick_lang("xx", None, None) == "ru"


WEB = Path(kaskad.web.__file__).parent
# t('key') in templates; "err.x" / "login.x" / ... keys handed to templates from the routers.
TEMPLATE_KEY = re.compile(r"""\bt\('([a-z0-9_.]*[a-z0-9_])'\s*[,)]""")
CODE_KEY = re.compile(r"""["']((?:err|done|login|register|admin|error|form)\.[a-z0-9_]+)["']""")


def test_every_key_the_pages_use_has_both_languages() -> None:
    """Cabinet and admin alike: a key used by a template or a router is in TEXTS (so in both
    languages, by the test above), including the ones built at run time."""
    used = set()
    for template in (WEB / "templates").rglob("*.html"):
        used |= set(TEMPLATE_KEY.findall(template.read_text()))
    for module in WEB.glob("*.py"):
        used |= {k for k in CODE_KEY.findall(module.read_text()) if not k.endswith(".html")}
    used |= {f"done.{action}" for action in admin.DONE}
    used |= {f"ch.{c.value}" for c in ChannelName}  # channel names in the admin tables
    assert any(k.startswith("admin.") for k in used) and "err.below_zero" in used
    assert sorted(used - TEXTS.keys()) == []
    admin_keys = {k for k in TEXTS if k.startswith(("admin.", "done."))}
    assert all(text(k, "ru") != text(k, "en") or k in ("admin.smpp.smsc", "admin.sip.title",
                                                        "admin.telegram.title")
               for k in admin_keys)


def test_overview_counts_rates_medians_and_savings() -> None:
    days, labels = charts.day_range(20_000, 3, 3 * 3_600_000)
    assert days == [19_998, 19_999, 20_000] and len(labels) == 3
    per_day = [(19_999, "telegram", "delivered", 3), (19_999, "sms", "sms", 1),
               (19_999, None, "not_delivered", 1), (20_000, None, "sent", 2),
               (10, "sms", "sms", 99)]  # outside the window: ignored
    times = [(19_999, 1000), (19_999, 3000), (19_999, 2000), (20_000, 500)]
    charges = [(19_999, "RU:mts", 1, 3, 450), (19_999, "RU", 2, 1, 700),
               (19_999, "KZ", 1, 5, 0)]
    sms = {"RU:mts": 350, "RU": 350}
    o = charts.build(days, labels, per_day, times, charges, sms.get)
    assert o.total == 7 and o.finished == 5 and o.delivered == 4
    assert o.by_channel["telegram"] == [0, 3, 0] and o.by_channel["none"] == [0, 1, 2]
    assert o.rate == [None, 80.0, None] and o.rate_all == 80.0
    assert o.median_s == [None, 2.0, 0.5] and o.median_all_s == 1.5
    # 3 Telegram codes at 1.50 instead of 3.50; a 2-part SMS charged as SMS saves nothing;
    # KZ has no SMS tariff, so no saving is claimed for it.
    assert o.saved_kop == [0, 3 * 350 - 450 + (2 * 350 - 700), 0]
    assert DAY_MS == 86_400_000


def test_settings_form_reports_every_bad_field() -> None:
    current = AccountSettings(senders=["Shop"])
    changes, errors = form_changes({
        "inn": "12 34", "kpp": "abc", "code_length_min": "x", "code_length_max": "5",
        "status_url": "ftp://no", "default_sender": "Other", "lang": "en"})
    checked, errors = validate(current, changes, errors)
    assert checked is None
    assert errors == {"code_length_min": "err.code_length", "default_sender": "err.sender",
                      "inn": "err.inn", "kpp": "err.kpp", "status_url": "err.url"}
    changes, errors = form_changes({"code_length_min": "7", "code_length_max": "5"})
    assert validate(current, changes, errors)[1] == {"code_length_min": "err.code_range"}
    changes, errors = form_changes({"inn": "7707 083 893", "code_length_min": "4",
                                    "code_length_max": "6", "default_sender": "Shop"})
    checked, errors = validate(current, changes, errors)
    assert errors == {} and checked is not None and checked.inn == "7707083893"


def test_login_throttle_counts_per_email_and_per_address() -> None:
    throttle = LoginThrottle(limit=5, window_ms=600_000)
    keys = throttle.keys(" Ann@Example.com", "10.0.0.1")
    assert keys == ["email:ann@example.com", "ip:10.0.0.1"]
    for second in range(4):
        throttle.failed(keys, second * 1000)
        assert throttle.wait_ms(keys, second * 1000) == 0
    throttle.failed(keys, 60_000)  # the fifth failure within ten minutes
    assert throttle.wait_ms(keys, 60_000) == 540_000  # until the first leaves the window
    # Another address is refused for this email; another email from this address too.
    assert throttle.wait_ms(throttle.keys("ann@example.com", "10.0.0.2"), 60_000) > 0
    assert throttle.wait_ms(throttle.keys("bob@example.com", "10.0.0.1"), 60_000) > 0
    assert throttle.wait_ms(throttle.keys("bob@example.com", "10.0.0.2"), 60_000) == 0
    assert throttle.wait_ms(keys, 599_999) == 1
    assert throttle.wait_ms(keys, 600_000) == 0  # four failures in the window: let through
    # A success clears the email's count but not the address's.
    for ms in range(5):
        throttle.failed(keys, 700_000 + ms)
    throttle.succeeded("ANN@example.com")
    assert throttle.wait_ms(["email:ann@example.com"], 700_010) == 0
    assert throttle.wait_ms(["ip:10.0.0.1"], 700_010) > 0


def test_login_throttle_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kaskad.domain.login_throttle.MAX_KEYS", 100)
    throttle = LoginThrottle()
    for n in range(300):
        throttle.failed([f"email:{n}@example.com"], n)
    assert len(throttle._failures) <= 101
    assert throttle.wait_ms(["email:299@example.com"], 300) == 0  # one failure: no refusal
