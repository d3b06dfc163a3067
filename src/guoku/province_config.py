"""A province described in TOML: divisions, parties, nodes and desks (two-level construction,
five-level application: the system runs at the province — one finance node hosting every
finance bureau and budget unit of the province, its prefectures and counties as tenants — and
at the central bank and the agent banks).

The ``[province]`` table of a deployment config (``deploy/yunnan.toml``)::

    [province]
    code = "530000"
    name = "云南省"
    finance = "云南省财政厅"            # the provincial finance department, party F530000
    pboc = { code = "P530000", name = "…国库处", desk = "pboc" }
    banks = [ { code = "B-ICBC", name = "…", node = "bank-icbc", desk = "icbc",
                admin = "工行系统管理员" } ]

    [[province.prefectures]]
    code = "533100"
    name = "德宏傣族景颇族自治州"
    finance = "德宏州财政局"            # optional: a prefecture without its own bureau here

    [[province.prefectures.counties]]
    code = "533103"
    name = "芒市"
    finance = "芒市财政局"
    units = [ { code = "U533103001", name = "芒市教育体育局" } ]

Desks are generated as in the demo (:func:`guoku.province.desks`): entry, review, seal and
receive for every finance bureau, budget unit, the central bank and every agent bank in every
county (and prefecture with a bureau), plus the province's finance desks and the
administrators. The demo province written this way loads equal to
:func:`guoku.province.demo_province` (a test holds it to that).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from guoku.domain.controls import Post
from guoku.domain.errors import ValidationError
from guoku.domain.parties import AdmDiv, Party, PartyKind
from guoku.province import NodeSpec, ProvinceSpec, UserSpec, desks

FINANCE_NODE: Final = "finance"
PBOC_NODE: Final = "pboc"


class ProvinceConfigError(ValidationError):
    """The province description is incomplete or inconsistent."""

    code = "PROVINCE_CONFIG"


@dataclass(frozen=True, slots=True)
class _Division:
    code: str
    name: str
    finance: str | None
    units: tuple[tuple[str, str, str], ...]
    """(code, name, desk prefix) of each budget unit."""


def load_province_file(path: Path) -> ProvinceSpec:
    """The ``[province]`` table of a TOML file (a deployment config or a province file)."""
    with path.open("rb") as f:
        data = tomllib.load(f)
    return province_from_mapping(_table(data, "province", str(path)))


def province_from_mapping(data: Mapping[str, Any]) -> ProvinceSpec:
    code, name = _text(data, "code", "province"), _text(data, "name", "province")
    _admdiv(code)
    admdivs = {code: name}
    prefectures: list[_Division] = []
    counties: list[_Division] = []
    for pref in _list(data, "prefectures", "province"):
        prefectures.append(_division(pref, "prefecture"))
        for county in _list(pref, "counties", f"prefecture {pref.get('code')}"):
            counties.append(_division(county, "county"))
    if not counties:
        raise ProvinceConfigError("a province needs at least one county")
    for div in (*prefectures, *counties):
        if div.code in admdivs:
            raise ProvinceConfigError(f"division {div.code} appears twice")
        admdivs[div.code] = div.name
    pboc = _table(data, "pboc", "province")
    banks = _list(data, "banks", "province")
    if not banks:
        raise ProvinceConfigError("a province needs at least one agent bank")

    finances = [Party(f"F{code}", PartyKind.FINANCE, _text(data, "finance", "province"),
                      AdmDiv(code))]
    finances += [Party(f"F{d.code}", PartyKind.FINANCE, d.finance, AdmDiv(d.code))
                 for d in (*prefectures, *counties) if d.finance]
    units = [Party(u, PartyKind.UNIT, n, AdmDiv(d.code)) for d in counties for u, n, _ in d.units]
    central = Party(_text(pboc, "code", "pboc"), PartyKind.PBOC, _text(pboc, "name", "pboc"),
                    AdmDiv(code))
    agents = [Party(_text(b, "code", "bank"), PartyKind.BANK, _text(b, "name", "bank"),
                    AdmDiv(code)) for b in banks]
    parties = [*finances, central, *agents, *units]
    if len({p.code for p in parties}) != len(parties):
        raise ProvinceConfigError("a party code appears twice")

    nodes = [NodeSpec(FINANCE_NODE, tuple(p.code for p in (*finances, *units))),
             NodeSpec(PBOC_NODE, (central.code,))]
    nodes += [NodeSpec(_text(b, "node", "bank"), (a.code,))
              for b, a in zip(banks, agents, strict=True)]
    if len({n.name for n in nodes}) != len(nodes):
        raise ProvinceConfigError("a node name appears twice")

    pboc_desk = _text(pboc, "desk", "pboc")
    bank_desks = [(_text(b, "desk", "bank"), a.code) for b, a in zip(banks, agents, strict=True)]
    users: list[UserSpec] = []
    for div in (*counties, *(p for p in prefectures if p.finance)):
        if div.finance:
            users += desks("fin", f"F{div.code}", div.code)
        for unit, _, desk in div.units:
            users += desks(desk, unit, div.code)
        for desk, bank in bank_desks:
            users += desks(desk, bank, div.code)
        users += desks(pboc_desk, central.code, div.code)
    users += desks("fin", finances[0].code, code)
    users += [
        UserSpec("admin-finance", str(data.get("finance_admin", "财政系统管理员")),
                 finances[0].code, code, (Post.ADMIN,)),
        UserSpec("reconciler", str(data.get("reconciler", "对账员")), finances[0].code, code,
                 (Post.RECONCILE,)),
        UserSpec(f"admin-{pboc_desk}", str(pboc.get("admin", "国库系统管理员")), central.code,
                 code, (Post.ADMIN,)),
    ]
    users += [UserSpec(f"admin-{desk}", str(b.get("admin", f"{desk}系统管理员")), bank, code,
                       (Post.ADMIN,)) for (desk, bank), b in zip(bank_desks, banks, strict=True)]
    if len({u.username for u in users}) != len(users):
        raise ProvinceConfigError("two desks have the same user name (give units a desk prefix)")
    return ProvinceSpec(admdivs, parties, nodes, users)


def _division(data: Mapping[str, Any], what: str) -> _Division:
    code = _text(data, "code", what)
    _admdiv(code)
    finance = data.get("finance")
    units = tuple(
        (_text(u, "code", f"unit of {code}"), _text(u, "name", f"unit of {code}"),
         str(u.get("desk", "unit")))
        for u in _list(data, "units", f"{what} {code}")
    )
    if what == "county" and not finance:
        raise ProvinceConfigError(f"county {code} needs its finance bureau")
    return _Division(code, _text(data, "name", what), str(finance) if finance else None, units)


def _admdiv(code: str) -> None:
    if not (len(code) == 6 and code.isdigit()):
        raise ProvinceConfigError(f"division code {code!r} is not six digits")


def _text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ProvinceConfigError(f"{where}: {key} must be a non-empty string")
    return value


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise ProvinceConfigError(f"{where}: [{key}] is missing")
    return value


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ProvinceConfigError(f"{where}: {key} must be a list of tables")
    return value
