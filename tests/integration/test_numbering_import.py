"""The numbering plan through storage and the CLI's use case, on both databases."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest

from kaskad.domain.errors import BadRequest
from kaskad.domain.numbering import HEADER
from kaskad.services.admin import Admin

SAMPLE = files("kaskad").joinpath("data/numbering_sample.csv").read_text("utf-8")


async def test_import_replaces_the_plan_and_lookups_find_operators(admin: Admin) -> None:
    assert await admin.import_numbering(SAMPLE) == 10
    found = await admin.lookup_number("+7 916 123-45-67")
    assert found is not None and found.operator == "mts"
    smaller = "\ufeff" + ";".join(HEADER) + "\n916;0;9999999;10000000;X;R;T;7812014560\n"
    assert await admin.import_numbering(smaller) == 1
    assert (await admin.lookup_number("79161234567")).operator == "megafon"  # type: ignore[union-attr]
    assert await admin.lookup_number("79261234567") is None


async def test_a_bad_file_leaves_the_old_plan(admin: Admin) -> None:
    await admin.import_numbering(SAMPLE)
    with pytest.raises(BadRequest):
        await admin.import_numbering(SAMPLE + "916;1;2;2;X;R;T;1\n")  # overlaps 916
    assert (await admin.lookup_number("79161234567")).operator == "mts"  # type: ignore[union-attr]


async def test_a_running_gateway_picks_up_a_changed_plan(make_gateway: Any) -> None:
    gw = await make_gateway()
    admin = Admin(gw.db, test_balance_kop=0, default_directions=["RU"])
    await admin.import_numbering(SAMPLE)
    assert await gw.reload_numbering() == 10
    assert gw.numbering.lookup("79161234567").operator == "mts"  # type: ignore[union-attr]
    # the same number of ranges, another operator: still noticed (each import is stamped)
    await admin.import_numbering(SAMPLE.replace("7740000076", "7812014560"))
    await gw.reload_numbering()
    assert gw.numbering.lookup("79161234567").operator == "megafon"  # type: ignore[union-attr]
