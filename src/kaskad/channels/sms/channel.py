"""SMS as a cascade channel: the code's text, segmented by us, submitted over SMPP.

Connectors are tried in priority order: a connector that is down or answers a temporary error
passes the message to the next one; a permanent error (bad number, bad sender) ends the step.
The attempt's provider reference is `<connector>:<first part's message id>`; a long message
also names every part's reference, since each part has its own receipt and the message is
delivered only when all of its parts are (storage.verifications aggregates them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, cast

import structlog

from kaskad.channels.base import Delivery, ReportSink, SendResult
from kaskad.channels.sms.connector import (
    MobileOriginated,
    MoSink,
    Part,
    SmppConnector,
    SubmitResult,
)
from kaskad.domain.channels import ChannelName, Outcome
from kaskad.domain.dlr import Receipt, matching_id
from kaskad.domain.numbering import direction_matches
from kaskad.domain.smpp import SubmitVerdict, udh
from kaskad.domain.sms import Segmented, segment

log = structlog.get_logger(__name__)

CODE_TEXT = {"ru": "Ваш код: {code}", "en": "Your code: {code}"}


def code_text(code: str, lang: str) -> str:
    return CODE_TEXT.get(lang, CODE_TEXT["ru"]).format(code=code)


def provider_ref(connector: str, message_id: str) -> str:
    return f"{connector}:{message_id}"


class SmsChannel:
    name = ChannelName.SMS

    def __init__(self, connectors: Sequence[SmppConnector], sink: ReportSink, *,
                 sender: str, route: Callable[[str], Sequence[SmppConnector]] | None = None,
                 mo_sink: MoSink | None = None) -> None:
        self.connectors = connectors
        self.sink = sink
        self.mo_sink = mo_sink
        self.sender = sender
        self.route = route or self._by_direction
        self._refs = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connectors(self) -> list[SmppConnector]:
        return self._connectors

    @connectors.setter
    def connectors(self, value: Sequence[SmppConnector]) -> None:
        self._connectors = list(value)
        self._routes: dict[str, list[SmppConnector]] = {}
        self._receipt_ids = {c.name: c.settings.receipt_ids for c in self._connectors}

    def _by_direction(self, direction: str) -> list[SmppConnector]:
        """Connectors whose routes cover the direction, in their declared (priority) order
        (remembered per direction: routes change only with the connectors)."""
        found = self._routes.get(direction)
        if found is None:
            found = [c for c in self._connectors
                     if not direction or direction_matches(c.settings.routes, direction)]
            if len(self._routes) > 10_000:
                self._routes.clear()
            self._routes[direction] = found
        return found

    async def send(self, delivery: Delivery) -> SendResult:
        text = delivery.text if delivery.text is not None else code_text(delivery.code,
                                                                          delivery.lang)
        segmented = segment(text)
        sender = delivery.sender or self.sender
        last = SubmitResult(SubmitVerdict.TEMPORARY, None, "no SMPP connector for this number")
        for connector in self.route(delivery.direction):
            last, ids = await self._send_parts(connector, segmented, delivery.number, sender)
            if last.verdict is SubmitVerdict.ACCEPTED and ids:
                form = connector.settings.receipt_ids
                refs = tuple(provider_ref(connector.name,
                                          matching_id(i, form, in_receipt=False)) for i in ids)
                return SendResult(Outcome.ACCEPTED, refs[0],
                                  f"{connector.name}: {segmented.count} part(s) accepted",
                                  part_refs=refs if len(refs) > 1 else ())
            if last.verdict is SubmitVerdict.PERMANENT:
                return SendResult(Outcome.REJECTED_PERMANENT, None,
                                  f"{connector.name}: {last.detail}")
        return SendResult(Outcome.REJECTED_TEMPORARY, None, last.detail)

    async def _send_parts(self, connector: SmppConnector, segmented: Segmented,
                          number: str, sender: str) -> tuple[SubmitResult, list[str]]:
        """Every part submitted in order; the parts' message ids once all are accepted."""
        payloads = segmented.payloads()
        concatenated = len(payloads) > 1
        self._refs = (self._refs + 1) % 256
        ids: list[str] = []
        result = SubmitResult(SubmitVerdict.TEMPORARY)
        for index, payload in enumerate(payloads, start=1):
            body = (udh(self._refs, len(payloads), index) + payload) if concatenated else payload
            result = await connector.submit(Part(sender, number, segmented.encoding, body,
                                                 concatenated))
            if result.verdict is not SubmitVerdict.ACCEPTED or result.message_id is None:
                return result, []  # parts already accepted stay sent; the step retries
            ids.append(result.message_id)
        return result, ids

    def on_receipt(self, connector: str, receipt: Receipt) -> asyncio.Future[Any]:
        """From a connector's receive loop: hand the receipt to the cascade without blocking;
        the future of its storage (the connector acknowledges the receipt when it is done)."""
        outcome = receipt.state.outcome or Outcome.ACCEPTED  # ENROUTE/ACCEPTD: recorded only
        ref = provider_ref(connector, matching_id(
            receipt.message_id, self._receipt_ids.get(connector, "same"), in_receipt=True))
        detail = receipt.state.stat + (f" err:{receipt.error}" if receipt.error else "")
        soon = getattr(self.sink, "report_soon", None)
        if soon is not None:
            return cast("asyncio.Future[Any]", soon(self.name, ref, outcome, detail))
        task = asyncio.create_task(self.sink.report(self.name, ref, outcome, detail))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def on_mo(self, connector: str, mo: MobileOriginated) -> asyncio.Future[Any] | None:
        """A subscriber's message to us, from a connector's receive loop (must not block);
        the future of its storage."""
        return None if self.mo_sink is None else self.mo_sink(connector, mo)

    async def start(self) -> None:
        for connector in self.connectors:
            await connector.start()

    async def close(self) -> None:
        for connector in self.connectors:
            await connector.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
