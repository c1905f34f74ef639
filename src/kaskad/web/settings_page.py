"""The cabinet's settings form: what a customer may change about their own account. Sender
names are the operator's to approve (admin pages); the customer picks the default among them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from kaskad.domain.account_settings import AccountSettings
from kaskad.storage import accounts as repo
from kaskad.web.core import Web, redirect

TEXT_FIELDS = ("incoming_call_url", "status_url", "default_resending", "default_sender",
               "company_name", "inn", "kpp", "address", "lang")
ERROR_KEYS = {"incoming_call_url": "err.url", "status_url": "err.url", "inn": "err.inn",
              "kpp": "err.kpp", "company_name": "err.too_long", "address": "err.too_long",
              "code_length_min": "err.code_length", "code_length_max": "err.code_length",
              "default_resending": "err.choice", "lang": "err.choice",
              "default_sender": "err.sender"}


def form_changes(fields: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The posted form as setting values, and the errors of values that are not even of the
    right type (a code length that is not a number)."""
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in TEXT_FIELDS:
        value = fields.get(name, "").strip()
        if name == "inn" or name == "kpp":
            value = value.replace(" ", "")
        changes[name] = value or None
    changes["sms_codes_to_telegram"] = fields.get("sms_codes_to_telegram") == "on"
    for name in ("code_length_min", "code_length_max"):
        raw = fields.get(name, "").strip()
        if raw.isdigit() and len(raw) < 3:
            changes[name] = int(raw)
        else:
            errors[name] = "err.code_length"
    if changes["lang"] is None:
        changes["lang"] = "ru"
    return changes, errors


def validate(current: AccountSettings, changes: dict[str, Any],
             errors: dict[str, str]) -> tuple[AccountSettings | None, dict[str, str]]:
    """Every field's error at once (not just the first), keyed by field, as message keys."""
    if changes.get("default_sender") and changes["default_sender"] not in current.senders:
        errors["default_sender"] = "err.sender"
    data = current.model_dump() | {k: v for k, v in changes.items() if k not in errors}
    try:
        checked = AccountSettings.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "code_length_min"
            key = ERROR_KEYS.get(field, "err.invalid") if error["loc"] else "err.code_range"
            errors.setdefault(field, key)
        return None, errors
    return (None, errors) if errors else (checked, errors)


def build_router(web: Web) -> APIRouter:
    router = APIRouter(prefix="/cabinet", include_in_schema=False)

    async def page(request: Request, values: dict[str, Any], errors: dict[str, str],
                   saved: bool, status: int = 200) -> Response:
        session = await web.user(request)
        current = await web.gw.account_settings.get(session.account_id)
        return await web.render(request, "settings.html", {
            "v": values, "senders": current.senders, "errors": errors, "saved": saved},
            status=status, session=session)

    @router.get("/settings")
    async def show(request: Request) -> Response:
        session = await web.user(request)
        web.gw.account_settings.invalidate(session.account_id)
        current = await web.gw.account_settings.get(session.account_id)
        return await page(request, current.model_dump(), {},
                          request.query_params.get("saved") == "1")

    @router.post("/settings")
    async def save(request: Request) -> Response:
        session = await web.user(request)
        fields = await web.form(request, session)
        async with web.gw.db.read() as conn:
            current = await repo.get_settings(conn, session.account_id)
        changes, errors = form_changes(fields)
        checked, errors = validate(current, changes, errors)
        if checked is None:  # nothing is written; the form comes back with what was typed
            shown = current.model_dump() | changes | {
                k: fields.get(k, "") for k in ("code_length_min", "code_length_max")}
            return await page(request, shown, errors, False, status=400)
        async with web.gw.db.write() as conn:
            saved = await repo.change_settings(conn, session.account_id, {
                k: ("" if v is None else v) for k, v in changes.items()})
        web.gw.account_settings.invalidate(session.account_id)
        # ?lang= also switches the cabinet to the language just chosen (its cookie)
        return redirect(f"/cabinet/settings?saved=1&lang={saved.lang}")

    return router
