"""The operator's pages: accounts, tariffs, channels (routes, SMPP binds, Telegram, SIP, the
number pool) and the spam list. Only accounts with `is_admin` reach them; everyone else gets
403 (and the anonymous the login form)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from kaskad.domain.channels import ChannelName
from kaskad.domain.errors import KaskadError, NotEnoughMoney, NotFound
from kaskad.domain.money import parse_rub
from kaskad.storage import accounts as accounts_repo
from kaskad.storage import form_tokens
from kaskad.storage.web_sessions import SessionRow
from kaskad.web.core import Web, WebError, redirect, token_hash

PLAN = r"^[A-Za-z0-9_.-]{1,50}$"
# What ?done= may announce after a POST-redirect-GET (anything else in the query is ignored).
DONE = ("topup", "topup_repeat", "plan", "senders", "enable", "disable", "tariff", "add",
        "remove")
TOKEN_MS = 86_400_000  # a top-up form left open longer asks to be reloaded


def _account_id(raw: str) -> str:
    if not raw.isdigit() or len(raw) > 18:
        raise WebError(404, "error.404")
    return raw


def build_router(web: Web) -> APIRouter:
    router = APIRouter(prefix="/admin", include_in_schema=False)

    async def render(request: Request, session: SessionRow, template: str,
                     context: dict[str, Any], status: int = 200) -> Response:
        done = request.query_params.get("done", "")
        context |= {"done": f"done.{done}" if done in DONE else ""}
        return await web.render(request, template, context, status=status, session=session)

    @router.get("/")
    async def accounts(request: Request) -> Response:
        session = await web.operator(request)
        return await render(request, session, "admin/accounts.html",
                            {"accounts": await web.admin.accounts()})

    async def account_page(request: Request, session: SessionRow, ref: str,
                           errors: dict[str, str], status: int = 200) -> Response:
        try:
            account = await web.admin.account(ref)
        except NotFound as exc:
            raise WebError(404, "error.404") from exc
        settings = await web.admin.settings(str(account.id))
        plans = sorted({p for p, *_ in await web.admin.tariffs()} | {account.tariff_plan})
        once, now = secrets.token_urlsafe(24), web.now_ms()
        async with web.gw.db.write() as conn:
            await form_tokens.issue(conn, token_hash(once), session.token_hash,
                                    f"topup:{account.id}", now, now + TOKEN_MS)
        return await render(request, session, "admin/account.html", {
            "a": account, "s": settings, "plans": plans, "errors": errors, "once": once},
            status)

    @router.get("/accounts/{account_id}")
    async def account(request: Request, account_id: str) -> Response:
        session = await web.operator(request)
        return await account_page(request, session, _account_id(account_id), {})

    @router.post("/accounts/{account_id}/{action}")
    async def account_action(request: Request, account_id: str, action: str) -> Response:
        session = await web.operator(request)
        ref = _account_id(account_id)
        fields = await web.form(request, session)
        done = action
        try:
            await web.admin.account(ref)
            if action == "topup":
                errors, done = await _topup(web, session, ref, fields)
            else:
                errors = await _apply(web, ref, action, fields)
        except NotFound as exc:
            raise WebError(404, "error.404") from exc
        if errors:
            return await account_page(request, session, ref, errors, status=400)
        web.gw.auth.invalidate()  # a disabled account stops sending now
        web.gw.account_settings.invalidate()
        return redirect(f"/admin/accounts/{ref}?done={done}")

    @router.get("/tariffs")
    async def tariffs(request: Request) -> Response:
        session = await web.operator(request)
        return await render(request, session, "admin/tariffs.html", {
            "tariffs": await web.admin.tariffs(), "errors": {}, "f": {},
            "channels": [c.value for c in ChannelName]})

    @router.post("/tariffs")
    async def set_tariff(request: Request) -> Response:
        session = await web.operator(request)
        f = await web.form(request, session)
        errors = _tariff_errors(f)
        if not errors:
            try:
                await web.admin.set_tariff(f["plan"].strip(), f["channel"],
                                           f["direction"].strip(), parse_rub(f["price"]))
            except (KaskadError, ValueError):
                errors["direction"] = "err.direction"
        if errors:
            return await render(request, session, "admin/tariffs.html", {
                "tariffs": await web.admin.tariffs(), "errors": errors, "f": f,
                "channels": [c.value for c in ChannelName]}, status=400)
        return redirect("/admin/tariffs?done=tariff")

    @router.get("/channels")
    async def channels(request: Request) -> Response:
        session = await web.operator(request)
        gw = web.gw
        sms = gw.settings.smpp
        connectors = [{"name": c.name, "host": c.host, "port": c.port, "routes": c.routes,
                       "binds": c.binds} for c in sms.connectors]
        if gw.smsc_port is not None:
            connectors.append({"name": "sandbox", "host": "127.0.0.1", "port": gw.smsc_port,
                               "routes": ["*"], "binds": 1})
        return await render(request, session, "admin/channels.html", {
            "status": await gw.channel_status(), "connectors": connectors,
            "telegram_stats": gw.telegram.stats if gw.telegram is not None else None,
            "telegram_mode": gw.settings.effective_telegram_mode,
            "trunks": gw.settings.sip.trunks, "pool": sorted(gw.telephony.pool()),
            "sip_address": gw.telephony.address, "telephony_mode": gw.telephony.mode})

    @router.get("/spam")
    async def spam(request: Request) -> Response:
        session = await web.operator(request)
        return await spam_page(request, session, {}, {})

    async def spam_page(request: Request, session: SessionRow, errors: dict[str, str],
                        f: dict[str, str], status: int = 200) -> Response:
        names = {a.id: a.name for a in await web.admin.accounts()}
        entries = [(names.get(aid, "") if aid else "", number)
                   for aid, number in await web.admin.spam()]
        return await render(request, session, "admin/spam.html", {
            "entries": entries, "errors": errors, "f": f}, status)

    @router.post("/spam/{action}")
    async def spam_change(request: Request, action: str) -> Response:
        session = await web.operator(request)
        f = await web.form(request, session)
        if action not in ("add", "remove"):
            raise WebError(404, "error.404")
        ref = f.get("account", "").strip() or None
        try:
            if action == "add":
                await web.admin.spam_add(f.get("number", ""), ref)
            else:
                await web.admin.spam_remove(f.get("number", ""), ref)
        except NotFound:
            return await spam_page(request, session, {"account": "err.no_account"}, f, 400)
        except KaskadError:
            return await spam_page(request, session, {"number": "err.phone"}, f, 400)
        return redirect(f"/admin/spam?done={action}")

    return router


def _tariff_errors(f: dict[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not re.match(PLAN, f.get("plan", "").strip()):
        errors["plan"] = "err.plan"
    if f.get("channel") not in {c.value for c in ChannelName}:
        errors["channel"] = "err.channel"
    if not f.get("direction", "").strip() or len(f["direction"]) > 40:
        errors["direction"] = "err.direction"
    try:
        if parse_rub(f.get("price", "")) < 0:
            errors["price"] = "err.price_negative"
    except ValueError:
        errors["price"] = "err.price"
    return errors


async def _apply(web: Web, ref: str, action: str, f: dict[str, str]) -> dict[str, str]:
    """One account action; the errors to show beside its form (nothing written then)."""
    if action in ("enable", "disable"):
        await web.admin.set_disabled(ref, action == "disable")
    elif action == "plan":
        plan = f.get("plan", "").strip()
        if not re.match(PLAN, plan):
            return {"plan": "err.plan"}
        await web.admin.set_plan(ref, plan)
    elif action == "senders":
        names = [n.strip() for n in f.get("senders", "").split(",") if n.strip()]
        changes = {"senders": ",".join(names)}
        if (await web.admin.settings(ref)).default_sender not in names:
            changes["default_sender"] = ""  # a withdrawn name is no longer the default
        try:
            await web.admin.settings(ref, changes)
        except KaskadError:
            return {"senders": "err.senders"}
    else:
        raise WebError(404, "error.404")
    return {}


async def _topup(web: Web, session: SessionRow, ref: str,
                 f: dict[str, str]) -> tuple[dict[str, str], str]:
    """A top-up that happens once per form however often the form is sent: its one-time
    token is used up in the transaction that moves the money (a failed top-up keeps it)."""
    try:
        amount = parse_rub(f.get("amount", ""))
    except ValueError:
        return {"amount": "err.amount"}, ""
    if amount == 0:
        return {"amount": "err.amount"}, ""
    note, now = (f.get("note", "").strip() or "top-up")[:200], web.now_ms()
    try:
        async with web.gw.db.write() as conn:
            account = await accounts_repo.find_account(conn, ref)
            used = await form_tokens.use(conn, token_hash(f.get("once", "")[:100]),
                                         session.token_hash, f"topup:{account.id}", now)
            if used is form_tokens.Use.FRESH:
                await accounts_repo.topup(conn, account.id, amount, note, now)
    except NotEnoughMoney:
        return {"amount": "err.below_zero"}, ""
    if used is form_tokens.Use.UNKNOWN:
        return {"amount": "error.csrf"}, ""
    return {}, "topup" if used is form_tokens.Use.FRESH else "topup_repeat"
