"""The sandbox's phone network, as far as HTTP reaches it: ask a sandbox subscriber to call
one of our pool numbers (what a real phone does over the SIP trunk), to try wait_call by hand.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from kaskad.api.errors import json_response
from kaskad.bootstrap import Gateway


def build_router(gw: Gateway) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.post("/sandbox/calls")
    async def call(request: Request) -> Response:
        """Form or query: `from` (the subscriber), `to` (a pool number). In serve and demo the
    call goes over SIP from the sandbox phone network to our endpoint."""
        params = dict(request.query_params)
        if request.headers.get("content-type", "").startswith("application/x-www-form"):
            params.update({k: v for k, v in (await request.form()).items()
                           if isinstance(v, str)})
        caller, callee = params.get("from", ""), params.get("to", "")
        if not caller or not callee:
            return json_response({"error": "from and to are required"}, 400)
        disposition = await gw.telephony.place_call(caller, callee)
        return json_response({"disposition": disposition})

    return router
