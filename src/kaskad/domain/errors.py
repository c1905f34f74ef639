"""One error hierarchy for the whole gateway; the API edges translate it to wire codes.

Each error names the *situation*, not a protocol: the seed API maps it to its `error_code`
strings, the ssms-family API (later) to its numeric codes.
"""

from __future__ import annotations


class KaskadError(Exception):
    """Base of every error kaskad raises on purpose."""

    code: str = "internal"
    text_ru: str = "Внутренняя ошибка"
    text_en: str = "Internal error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.text_en)
        self.detail = detail


class BadRequest(KaskadError):
    code = "unknown_request"
    text_ru = "Ошибочный запрос"
    text_en = "Malformed request"


class AuthFailed(KaskadError):
    code = "authorisation_failed"
    text_ru = "Ошибка авторизации"
    text_en = "Authorisation failed"


class AccountDisabled(KaskadError):
    code = "user_disabled"
    text_ru = "Ваш аккаунт заблокирован"
    text_en = "Your account is disabled"


class NumberEmpty(KaskadError):
    code = "number_is_empty"
    text_ru = "Некорректно указан номер абонента"
    text_en = "The subscriber's number is missing or malformed"


class NumberNotValid(KaskadError):
    code = "number_not_valid"
    text_ru = "Не удалось определить направление"
    text_en = "The number's direction could not be determined"


class NumberNotPermitted(KaskadError):
    code = "number_not_permitted"
    text_ru = "Звонки на данное направление запрещены"
    text_en = "This direction is not permitted for the account"


class NumberInSpamList(KaskadError):
    code = "number_in_spam_list"
    text_ru = "Номер занесен в СПАМ лист"
    text_en = "The number is in the spam list"


class NumberInGlobalSpamList(NumberInSpamList):
    """The gateway operator's list, not the account's own (APIs that tell them apart)."""


class NoTariff(NumberNotPermitted):
    """The account's plan has no price for this channel and direction: we cannot bill it, so
    we do not send it."""


class NotEnoughMoney(KaskadError):
    code = "not_enough_money"
    text_ru = "Недостаточно средств"
    text_en = "Not enough money"


class CodeLengthNotPermitted(KaskadError):
    code = "code_length_not_permitted"
    text_ru = "Указана некорректная длина кода"
    text_en = "The code length is not permitted"


class CodeNotCorrect(KaskadError):
    code = "code_not_correct"
    text_ru = "Не корректно указан код"
    text_en = "The code is not correct"


class CodeLengthMismatch(KaskadError):
    code = "code_length_error"
    text_ru = "Длина кода не совпадает с параметром code_length"
    text_en = "The code length does not match code_length"


class NotFound(KaskadError):
    code = "not_found"
    text_ru = "Запрос не найден"
    text_en = "No such request"


class ConfigError(KaskadError):
    code = "config"
    text_ru = "Ошибка конфигурации"
    text_en = "Configuration error"
