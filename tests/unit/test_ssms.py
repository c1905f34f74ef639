"""The ssms-family API's pure rules (spec/ssms-api.md): envelope, XML, routes, senders,
look-alike words, message state codes, and what a push_msg text becomes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kaskad.domain.ssms as ssms
from kaskad.domain import errors as e
from kaskad.domain.channels import ChannelName
from kaskad.domain.messages import plan_message

TG, SMS, PC = ChannelName.TELEGRAM, ChannelName.SMS, ChannelName.FLASH_CALL


def test_envelope_shapes() -> None:
    ok = ssms.envelope(0, {"id": 5})
    assert ok == {"response": {"msg": {"err_code": "0", "text": "Операция выполнена успешно",
                                       "type": "message"}, "data": {"id": 5}}}
    bad = ssms.envelope(623, {"ignored": 1})
    assert bad["response"]["msg"]["type"] == "error"
    assert bad["response"]["msg"]["err_code"] == "623" and bad["response"]["data"] is None


scalars = st.one_of(st.none(), st.integers(), st.text(), st.booleans())
trees = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(min_size=1, max_size=8), inner,
                                                 max_size=3)), max_leaves=10)


@given(trees)
def test_any_payload_renders_as_well_formed_xml(data: object) -> None:
    text = ssms.to_xml(ssms.envelope(0, data))
    root = ET.fromstring(text.encode())
    assert root.tag == "response" and root.findtext("msg/err_code") == "0"


def test_xml_paths_clients_read() -> None:
    root = ET.fromstring(ssms.to_xml(ssms.envelope(0, {"id": 7, "credits": "3.50",
                                                       "ids": [7, 8]})).encode())
    assert root.findtext("data/id") == "7" and root.findtext("data/credits") == "3.50"
    assert [i.text for i in root.findall("data/ids/item")] == ["7", "8"]


@pytest.mark.parametrize(("raw", "channels"), [
    (None, (SMS,)), ("", (SMS,)), ("sms", (SMS,)), ("TG-SMS", (TG, SMS)), ("pc", (PC,)),
    ("tg-sms-sms", (TG, SMS)),
])
def test_routes(raw: str | None, channels: tuple[ChannelName, ...]) -> None:
    assert ssms.parse_route(raw) == channels


def test_unknown_and_messenger_routes() -> None:
    with pytest.raises(ssms.SsmsError) as messenger:
        ssms.parse_route("vb-sms")
    assert messenger.value.err_code == ssms.NO_ROUTE
    with pytest.raises(ssms.SsmsError) as unknown:
        ssms.parse_route("fax")
    assert unknown.value.err_code == ssms.MISSING_PARAMS


@pytest.mark.parametrize(("name", "code"), [
    ("", ssms.SENDER_LENGTH), ("ABCDEFGHIJKL", ssms.SENDER_LENGTH),
    ("Магазин", ssms.SENDER_NOT_LATIN), ("a/b", ssms.SENDER_INCORRECT),
    ("Other", ssms.SENDER_NOT_ALLOWED),
])
def test_sender_refusals(name: str, code: int) -> None:
    with pytest.raises(ssms.SsmsError) as refused:
        ssms.check_sender(name, ["Shop"])
    assert refused.value.err_code == code


def test_sender_matches_case_insensitively_and_is_sent_as_approved() -> None:
    assert ssms.check_sender(" shop ", ["Shop"]) == "Shop"
    assert ssms.check_sender("79001234567", ["79001234567"]) == "79001234567"


@pytest.mark.parametrize(("text", "mixed"), [
    ("Сбeрбанк", True), ("Paypаl", True), ("Ваш код 1234", False), ("Hello мир", False),
    ("SMS-код", False), ("iPhone-у", False),
])
def test_look_alike_words(text: str, mixed: bool) -> None:
    assert ssms.mixes_scripts(text) is mixed


@given(st.text(alphabet="абвгдеёжзийклмнопрстуфхцчшщъыьэюя ", max_size=40),
       st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", max_size=40))
def test_words_of_one_script_are_never_refused(cyrillic: str, latin: str) -> None:
    assert not ssms.mixes_scripts(f"{cyrillic} {latin}")


def test_error_codes_for_our_errors() -> None:
    assert ssms.err_code_for(e.NumberInGlobalSpamList()) == ssms.GLOBAL_BLACKLIST
    assert ssms.err_code_for(e.NumberInSpamList()) == ssms.ACCOUNT_BLACKLIST
    assert ssms.err_code_for(e.NoTariff()) == ssms.NO_ROUTE
    assert ssms.err_code_for(e.NotEnoughMoney()) == ssms.NO_MONEY
    assert ssms.err_code_for(e.NumberNotValid()) == ssms.BAD_NUMBER
    assert ssms.err_code_for(e.AccountDisabled()) == ssms.USER_BLOCKED
    assert all(code in ssms.TEXTS for code in (2, 3, 5, 7, 18, 42, 99, 602, 605, 607, 608,
                                               609, 610, 617, 618, 620, 621, 622, 623, 625,
                                               627, 629, 631, 699))


def facts(**kw: object) -> ssms.MessageFacts:
    base: dict[str, object] = dict(final=False, delivered=False, state_reason="",
                                   sms_accepted=False, last_stat="")
    base.update(kw)
    return ssms.MessageFacts(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("f", "code"), [
    (facts(), 0), (facts(sms_accepted=True), 8), (facts(final=True, delivered=True), 1),
    (facts(final=True, state_reason="sms_rejected"), 16),
    (facts(final=True, state_reason="sms_not_delivered", last_stat="EXPIRED"), 34),
    (facts(final=True, state_reason="sms_not_delivered", last_stat="UNDELIV err:001"), 2),
    (facts(final=True, state_reason="sms_timeout"), 34),
    (facts(final=True, state_reason="telegram_rejected", last_stat=""), 16),
])
def test_state_codes(f: ssms.MessageFacts, code: int) -> None:
    assert ssms.state_code(f) == code


# --------------------------------------------------------------------------- plan_message

CODE_TEXT = "Ваш код подтверждения: 4821"


def test_codes_go_to_telegram_only_when_asked_and_in_range() -> None:
    asked = plan_message(CODE_TEXT, (SMS,), codes_to_telegram=True, code_range=(4, 8))
    assert asked.channels == (TG, SMS) and asked.code == "4821"
    off = plan_message(CODE_TEXT, (SMS,), codes_to_telegram=False, code_range=(4, 8))
    assert off.channels == (SMS,) and off.code == ""
    narrow = plan_message(CODE_TEXT, (SMS,), codes_to_telegram=True, code_range=(6, 8))
    assert narrow.channels == (SMS,)
    reminder = plan_message("Семинар 12.03 в 15:00", (SMS,), codes_to_telegram=True,
                            code_range=(4, 8))
    assert reminder.channels == (SMS,)


def test_explicit_routes() -> None:
    assert plan_message(CODE_TEXT, (TG, SMS), codes_to_telegram=False,
                        code_range=(4, 8)).channels == (TG, SMS)
    assert plan_message("no code", (TG, SMS), codes_to_telegram=False,
                        code_range=(4, 8)).channels == (SMS,)
    flash = plan_message("Код 123", (PC,), codes_to_telegram=False, code_range=(4, 8))
    assert flash.channels == (PC,) and flash.code == "123"
    with pytest.raises(e.BadRequest):
        plan_message("no code", (TG,), codes_to_telegram=False, code_range=(4, 8))
