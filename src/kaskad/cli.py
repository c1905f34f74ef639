"""The `kaskad` command: serve, worker, migrate, demo, and the operator's account tools."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
import uvicorn
from pydantic import ValidationError

from kaskad.cli_connectors import connectors_app
from kaskad.config import Settings, load_settings
from kaskad.domain.errors import KaskadError
from kaskad.domain.money import format_rub, parse_rub
from kaskad.logging_setup import configure
from kaskad.services.admin import Admin
from kaskad.simulators.world import DEFAULT_RULES
from kaskad.storage.db import Database
from kaskad.storage.migrate import upgrade

T = TypeVar("T")

app = typer.Typer(help="kaskad: verification codes through the cheapest channel.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
accounts_app = typer.Typer(help="Accounts, API keys, balances, permissions.",
                           no_args_is_help=True)
spam_app = typer.Typer(help="The spam list (global or per account).", no_args_is_help=True)
tariffs_app = typer.Typer(help="Prices per plan, channel and direction.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(spam_app, name="spam")
sms_app = typer.Typer(help="SMS over SMPP: what subscribers sent us.", no_args_is_help=True)
app.add_typer(sms_app, name="sms")
numbering_app = typer.Typer(help="Russia's numbering plan (the DEF/ABC registry): operators.",
                            no_args_is_help=True)
app.add_typer(numbering_app, name="numbering")
simulate_app = typer.Typer(help="Sandbox simulators of the outside world, run on their own.",
                           no_args_is_help=True)
app.add_typer(tariffs_app, name="tariffs")
app.add_typer(simulate_app, name="simulate")
app.add_typer(connectors_app, name="connectors")


def _settings(**overrides: Any) -> Settings:
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        typer.echo(f"error: bad setting ({problems})", err=True)
        raise typer.Exit(2) from None
    configure(settings.log_level)
    return settings


def _with_admin(settings: Settings, fn: Callable[[Admin], Awaitable[T]]) -> T:
    """Open the database (upgrading its schema), run `fn` with an Admin, close it."""

    async def _main() -> T:
        db = Database(settings.effective_database_url)
        try:
            await upgrade(db)
            return await fn(Admin(db, test_balance_kop=settings.test_balance_kop,
                                  default_directions=settings.default_direction_list))
        finally:
            await db.dispose()

    try:
        return asyncio.run(_main())
    except KaskadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _run_admin(fn: Callable[[Admin], Awaitable[T]]) -> T:
    return _with_admin(_settings(), fn)


def _serve(settings: Settings, *, demo_inbox: bool, banner: Callable[[Any], None] | None = None,
           migrate: bool = True) -> None:
    if settings.workers <= 1:
        _run_loop(_serve_main(settings, demo_inbox=demo_inbox, banner=banner, migrate=migrate))
        return
    _serve_workers(settings, demo_inbox=demo_inbox, banner=banner, migrate=migrate)


async def _serve_main(settings: Settings, *, demo_inbox: bool,
                      banner: Callable[[Any], None] | None, migrate: bool,
                      sock: socket.socket | None = None) -> None:
    from kaskad.api.app import create_app
    from kaskad.bootstrap import Gateway

    gw = Gateway(settings)
    if migrate:
        await upgrade(gw.db)
    app_ = create_app(gw, demo_inbox=demo_inbox)
    _tune_gc()
    config = uvicorn.Config(app_, host=settings.host, port=settings.port,
                            log_level="warning", access_log=False, lifespan="on",
                            proxy_headers=settings.proxy_headers,
                            loop="none", http="httptools", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None))
    while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has no event)
        await asyncio.sleep(0.05)
    if server.started and banner is not None:
        banner(gw)
    await serving


def _serve_workers(settings: Settings, *, demo_inbox: bool,
                   banner: Callable[[Any], None] | None, migrate: bool) -> None:
    """`KASKAD_WORKERS=N`: N serving processes on one listening socket (the kernel spreads the
    connections), each a full node with its own engine and writer, like N hosts sharing the
    database. The built-in simulators keep state per process, so they need one worker."""
    modes = (settings.effective_telegram_mode, settings.effective_sms_mode,
             settings.effective_telephony_mode)
    if "simulator" in modes:
        typer.echo("KASKAD_WORKERS > 1 needs real providers or KASKAD_*_MODE=inprocess: the "
                   f"built-in simulators run in one process (modes: {', '.join(modes)})",
                   err=True)
        raise typer.Exit(2)
    if migrate:
        _with_admin(settings, _no_op)
    sock = socket.create_server((settings.host, settings.port), backlog=4096,
                                reuse_port=False)
    children = []
    for index in range(settings.workers):
        pid = os.fork()
        if pid == 0:  # a worker: its own event loop, database connections and node id
            node = settings.model_copy(update={"node_id": f"{settings.node_id}-w{index}"})
            _run_loop(_serve_main(node, demo_inbox=demo_inbox,
                                  banner=banner if index == 0 else None, migrate=False,
                                  sock=sock))
            os._exit(0)
        children.append(pid)
    sock.close()

    def _forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    for child in children:
        os.waitpid(child, 0)


async def _no_op(_: Admin) -> None:
    return None


def _tune_gc() -> None:
    """Move start-up objects out of the collector's way and collect the young generation less
    often: the request path allocates many short-lived objects (measured: cyclic GC showed up
    on allocation lines in the profile)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _run_loop(main: Awaitable[None]) -> None:
    try:
        import uvloop

        uvloop.run(main)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(main)  # type: ignore[arg-type]


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    _run_admin(_no_op)
    typer.echo("database is at the newest schema")


@app.command()
def serve(host: str = typer.Option(None), port: int = typer.Option(None),
          no_migrate: bool = typer.Option(False, help="Do not upgrade the schema first.")) -> None:
    """Run the API (and, unless KASKAD_ENGINE=false, the cascade engine)."""
    settings = _settings(host=host, port=port)
    _serve(settings, demo_inbox=False, migrate=not no_migrate)


@app.command()
def worker() -> None:
    """Run only the cascade engine and callback sender (scale-out: any number of these)."""
    from kaskad.bootstrap import Gateway

    settings = _settings()
    if settings.sms_mode == "auto" and not settings.smpp.connectors:
        settings.sms_mode = "inprocess"  # the SMSC simulator lives in `serve`, not in workers
    if settings.telephony_mode == "auto" and not settings.sip.trunks:
        settings.telephony_mode = "inprocess"  # so do the sandbox phones

    async def _main() -> None:
        gw = Gateway(settings)
        await upgrade(gw.db)
        await gw.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        typer.echo(f"kaskad worker {settings.node_id} running", err=True)
        await stop.wait()
        await gw.stop()

    _run_loop(_main())


@app.command()
def demo(port: int = typer.Option(8765, help="Port on 127.0.0.1."),
         data_dir: Path = typer.Option(Path("kaskad-data"), help="Where the SQLite file lives.")
         ) -> None:
    """Start a complete gateway on SQLite with the sandbox world and a demo account."""
    settings = _settings(port=port, data_dir=data_dir, host="127.0.0.1")
    if "KASKAD_TELEGRAM_TIMEOUT_S" not in _env():
        settings.telegram_timeout_s = 10.0  # so the "silent Telegram" numbers fall back soon

    base = f"http://127.0.0.1:{port}"

    passwords = {"demo": secrets.token_urlsafe(9), "admin": secrets.token_urlsafe(9)}

    async def _prepare(admin: Admin) -> str:
        await admin.ensure_demo_tariffs()
        names = {a.name for a in await admin.accounts()}
        if "demo" in names:
            key = await admin.new_key("demo", "demo")
        else:
            key = (await admin.create_account("demo", email="demo@example.com")).api_key
        if "admin" not in names:  # the operator's login for /admin/ (its balance is unused)
            await admin.create_account("admin", email="admin@example.com", balance_kop=0)
        await admin.set_admin("admin", True)
        # Fresh passwords on every start, printed in the banner: nothing guessable stays open.
        for name, password in passwords.items():
            await admin.set_password(name, password)
        # Message statuses and incoming-call notifications land in the demo's inbox.
        await admin.settings("demo", {"status_url": f"{base}/demo/callbacks",
                                      "incoming_call_url": f"{base}/demo/hook",
                                      "senders": "Kaskad,DemoShop"})
        return key

    key = _with_admin(settings, _prepare)
    pool = ", ".join(settings.telephony.pool)

    def banner(gw: Any) -> None:
        sip = gw.telephony.address
        sip_line = (f"Our SIP endpoint: {sip[0]}:{sip[1]} (UDP and TCP); the sandbox phones "
                    f"answer voice calls and ring for flash calls." if sip else "")
        typer.echo(f"""
kaskad demo is running at {base}  (SQLite: {settings.effective_database_url})
API key: {key}
Cabinet: {base}/cabinet/  log in as demo@example.com, password {passwords["demo"]}
Admin:   {base}/admin/    log in as admin@example.com, password {passwords["admin"]}

Send a code (Telegram first, SMS if the number has no Telegram):
curl -s {base}/api/send/ -H 'Content-Type: application/json' -H 'Authorization: {key}' \\
  -d '{{"number": "79001234564", "resending": "sms", "callback_url": "{base}/demo/callbacks"}}'

Read its state:      curl -s '{base}/api/status/?request_id=<request_id>' -H 'Authorization: {key}'
Check a typed code:  curl -s {base}/api/check/ -H 'Authorization: {key}' \\
                       -d '{{"request_id": "<request_id>", "code": "<code>"}}'
Callbacks received:  curl -s {base}/demo/callbacks
Balance:             kaskad accounts show demo   (with KASKAD_DATA_DIR={data_dir})

The ssms-family API answers at the root (XML unless format=json), as its clients expect:
curl -s '{base}/?method=push_msg&format=json&key={key}&phone=79001234564&text=Hello'
curl -s '{base}/?method=get_msg_report&format=json&key={key}&id=<id>'
A voice call when the number has no Telegram (seed 002 `resending: voice`, over SIP):
curl -s {base}/api/send/ -H 'Authorization: {key}' \\
  -d '{{"number": "79001234564", "resending": "voice"}}'
{sip_line}
Verification by the subscriber's call (our numbers: {pool}):
curl -s '{base}/?method=wait_call&format=json&key={key}&phone=79001234565&call_protection=120'
then "call" from the subscriber's phone (a sandbox phone that does not call by itself):
curl -s -X POST '{base}/sandbox/calls?from=79001234565&to=<call_to_number>'

Telegram goes through the real Gateway API client to the built-in simulator at
{base}/sandbox/telegram/ (signed reports come back to {base}/webhooks/telegram);
SMS goes over SMPP 3.4 to the built-in SMSC simulator on 127.0.0.1 (receipts come back on the
same bind).
Sandbox numbers: the last digit picks the behaviour (any Russian mobile, e.g. 7900123456X):""")
        for digit, rule in DEFAULT_RULES.items():
            typer.echo(f"  ...{digit}  {rule.note}")
        typer.echo("Press Ctrl+C to stop.", err=False)

    _serve(settings, demo_inbox=True, banner=banner, migrate=False)


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _show(account: Any) -> None:
    state = "disabled" if account.disabled else "enabled"
    allowed = ",".join(account.allowed_directions)
    typer.echo(f"{account.id}\t{account.name}\t{state}\tbalance {format_rub(account.balance)}"
               f"\theld {format_rub(account.held)}\tdirections {allowed}"
               f"\tplan {account.tariff_plan}")


@accounts_app.command("create")
def accounts_create(name: str, email: str = typer.Option(None),
                    balance: str = typer.Option(None, help="Roubles; default the test balance."),
                    directions: str = typer.Option(None, help='e.g. "RU,KZ" or "*"')) -> None:
    """Create an account and print its first API key (shown once)."""
    created = _run_admin(lambda a: a.create_account(
        name, email=email, balance_kop=parse_rub(balance) if balance else None,
        directions=directions.split(",") if directions else None))
    _show(created.account)
    typer.echo(f"API key: {created.api_key}")


@accounts_app.command("list")
def accounts_list() -> None:
    for account in _run_admin(lambda a: a.accounts()):
        _show(account)


@accounts_app.command("show")
def accounts_show(account: str) -> None:
    _show(_run_admin(lambda a: a.account(account)))
    secret = _run_admin(lambda a: a.account(account)).callback_secret
    typer.echo(f"callback secret: {secret}")


@accounts_app.command("password")
def accounts_password(account: str, password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True)) -> None:
    """Set the password the ssms API's email + password login (and the cabinet) use."""
    _run_admin(lambda a: a.set_password(account, password))
    typer.echo("password set")


@accounts_app.command("admin")
def accounts_admin(account: str, on: bool = typer.Option(
        ..., "--on/--off", help="Give or take away the operator's /admin pages.")) -> None:
    """Let an account's login open the admin pages (it logs in through /cabinet/login)."""
    _run_admin(lambda a: a.set_admin(account, on))
    typer.echo("admin" if on else "not admin")


@accounts_app.command("key-create")
def key_create(account: str, name: str = typer.Option("")) -> None:
    typer.echo(f"API key: {_run_admin(lambda a: a.new_key(account, name))}")


@accounts_app.command("keys")
def keys(account: str) -> None:
    for k in _run_admin(lambda a: a.keys(account)):
        revoked = "revoked" if k["revoked_at"] else "live"
        typer.echo(f"{k['id']}\t{k['prefix']}…\t{k['name']}\t{revoked}")


@accounts_app.command("key-revoke")
def key_revoke(account: str, key_id: int) -> None:
    _run_admin(lambda a: a.revoke_key(account, key_id))
    typer.echo("revoked")


@accounts_app.command("topup")
def topup(account: str,
          amount: str = typer.Argument(..., help="Roubles, e.g. 100 or 12.50")) -> None:
    """Add money (a negative amount takes it back, never below zero)."""
    _show(_run_admin(lambda a: a.topup(account, parse_rub(amount))))


@accounts_app.command("disable")
def disable(account: str) -> None:
    _run_admin(lambda a: a.set_disabled(account, True))
    typer.echo("disabled")


@accounts_app.command("enable")
def enable(account: str) -> None:
    _run_admin(lambda a: a.set_disabled(account, False))
    typer.echo("enabled")


@accounts_app.command("directions")
def directions(account: str, allowed: str = typer.Argument(..., help='"RU,KZ" or "*"')) -> None:
    _run_admin(lambda a: a.set_directions(account, [d.strip() for d in allowed.split(",")
                                                    if d.strip()]))
    typer.echo("directions set")


@accounts_app.command("plan")
def plan(account: str, tariff_plan: str) -> None:
    _run_admin(lambda a: a.set_plan(account, tariff_plan))
    typer.echo("plan set")


@accounts_app.command("settings")
def account_settings(account: str, changes: list[str] = typer.Argument(
        None, help='NAME=VALUE pairs, e.g. telegram_sender=MyShop lang=en; "NAME=" clears')
        ) -> None:
    """Show an account's settings, or change some (the same ones the cabinet offers)."""
    parsed: dict[str, str] = {}
    for change in changes or []:
        name, sep, value = change.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {change!r}")
        parsed[name.strip()] = value.strip()
    current = _run_admin(lambda a: a.settings(account, parsed))
    for name, value in current.model_dump().items():
        typer.echo(f"{name}\t{'' if value is None else value}")


@app.command()
def margins(usd_rub: str = typer.Option(None, help="RUB per USD, to show the margin in RUB.")
            ) -> None:
    """What customers paid per channel against what providers charged us."""
    from decimal import Decimal

    rate = Decimal(usd_rub) if usd_rub else None
    for row in _run_admin(lambda a: a.margins()):
        costs = ", ".join(f"{Decimal(v) / 10**6:.4f} {cur}"
                          for cur, v in sorted(row.provider_micros.items())) or "0"
        refunded = ", ".join(f"{Decimal(v) / 10**6:.4f} {cur}"
                             for cur, v in sorted(row.refunded_micros.items())) or "0"
        line = (f"{row.channel}\tdelivered {row.delivered}\trevenue "
                f"{format_rub(row.revenue_kop)} RUB\tprovider {costs} (refunded {refunded})")
        if rate is not None:
            cost_kop = int(Decimal(row.provider_micros.get("USD", 0)) * rate / 10**4)
            line += f"\tmargin {format_rub(row.revenue_kop - cost_kop)} RUB"
        typer.echo(line)


@sms_app.command("mo")
def sms_mo(limit: int = typer.Option(50, min=1, max=10_000)) -> None:
    """The latest mobile-originated messages (newest first)."""
    from datetime import UTC, datetime

    for m in _run_admin(lambda a: a.recent_mo(limit)):
        when = datetime.fromtimestamp(m.received_at / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{when}\t{m.connector}\t{m.source} -> {m.destination}\t{m.text}")


@numbering_app.command("import")
def numbering_import(path: Path = typer.Argument(None, help="The registry CSV (UTF-8 with BOM, "
                                                 "';'-separated); default: the shipped sample."),
                     ) -> None:
    """Replace the numbering plan with a DEF/ABC registry file (from the ministry's site)."""
    from importlib.resources import files

    if path is None:
        text = files("kaskad").joinpath("data/numbering_sample.csv").read_text("utf-8")
    else:
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {path}: {exc}") from exc
    count = _run_admin(lambda a: a.import_numbering(text))
    typer.echo(f"{count} ranges imported")


@numbering_app.command("lookup")
def numbering_lookup(number: str) -> None:
    """Which operator and region hold a number."""
    found = _run_admin(lambda a: a.lookup_number(number))
    if found is None:
        typer.echo("not in the numbering plan")
        raise typer.Exit(1)
    typer.echo(f"{found.operator}\t{found.operator_name}\t{found.region}\tINN {found.inn}")


@simulate_app.command("smsc")
def simulate_smsc(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(2776),
                  receipt_delay: float = typer.Option(0.2, help="Seconds before receipts.")
                  ) -> None:
    """Run the SMSC simulator on its own (SMPP 3.4; receipts; the sandbox's number rules).

    Declare it as a connector in the TOML config: [[smpp.connectors]] host/port/system_id."""
    from kaskad.simulators.smsc import serve_forever

    _run_loop(serve_forever(host, port, receipt_delay_s=receipt_delay))


@simulate_app.command("phones")
def simulate_phones(listen: str = typer.Option("127.0.0.1:5070", help="host:port (UDP, TCP)")
                    ) -> None:
    """Run the sandbox phone network on its own: subscribers' phones behind a SIP trunk.

    Point a trunk at it: [[sip.trunks]] proxy = {host = "127.0.0.1", port = 5070}."""
    from kaskad.simulators.phones import serve_forever

    _run_loop(serve_forever(listen))


@simulate_app.command("telegram")
def simulate_telegram(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8081),
                      token: str = typer.Option("kaskad-sandbox-token"),
                      report_delay: float = typer.Option(0.2, help="Seconds before reports.")
                      ) -> None:
    """Run the Telegram Gateway simulator on its own (same four methods, signed reports).

    Point kaskad at it with KASKAD_TELEGRAM_URL=http://HOST:PORT/ and KASKAD_TELEGRAM_TOKEN."""
    from kaskad.simulators.telegram_gateway import serve_forever

    typer.echo(f"Telegram Gateway simulator on http://{host}:{port}/ (token {token})", err=True)
    _run_loop(serve_forever(host, port, token, report_delay))


@spam_app.command("add")
def spam_add(number: str, account: str = typer.Option(None, help="Only for this account.")) -> None:
    typer.echo(_run_admin(lambda a: a.spam_add(number, account)))


@spam_app.command("remove")
def spam_remove(number: str, account: str = typer.Option(None)) -> None:
    _run_admin(lambda a: a.spam_remove(number, account))
    typer.echo("removed")


@spam_app.command("list")
def spam_list() -> None:
    for account_id, number in _run_admin(lambda a: a.spam()):
        typer.echo(f"{number}\t{'global' if account_id is None else account_id}")


@tariffs_app.command("set")
def tariffs_set(plan: str, channel: str, direction: str, price: str) -> None:
    """e.g. `kaskad tariffs set default sms RU 3.50`"""
    _run_admin(lambda a: a.set_tariff(plan, channel, direction, parse_rub(price)))
    typer.echo("tariff set")


@tariffs_app.command("list")
def tariffs_list() -> None:
    for plan_, channel, direction, price in _run_admin(lambda a: a.tariffs()):
        typer.echo(f"{plan_}\t{channel}\t{direction}\t{format_rub(price)}")


def main() -> None:
    app()
