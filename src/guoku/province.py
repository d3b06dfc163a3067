"""The shape of a deployment: divisions, parties, nodes and users (two-level construction,
five-level application). The demo province and the sample deployment config both build one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from guoku.domain.controls import ANY_VOUCHER_TYPE, Post
from guoku.domain.parties import AdmDiv, Party, PartyKind


@dataclass(frozen=True, slots=True)
class UserSpec:
    username: str
    name: str
    party: str
    admdiv: str
    posts: tuple[Post, ...]
    vt_code: str = ANY_VOUCHER_TYPE


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One voucher-library node: its own database, serving ``parties`` (first = node party)."""

    name: str
    parties: tuple[str, ...]

    @property
    def node_party(self) -> str:
        return self.parties[0]


@dataclass
class ProvinceSpec:
    admdivs: dict[str, str]
    parties: list[Party]
    nodes: list[NodeSpec]
    users: list[UserSpec] = field(default_factory=list)

    def party(self, code: str) -> Party:
        for p in self.parties:
            if p.code == code:
                return p
        raise KeyError(code)

    def node_of(self, party_code: str) -> NodeSpec:
        for node in self.nodes:
            if party_code in node.parties:
                return node
        raise KeyError(party_code)

    def users_of(self, node: NodeSpec) -> list[UserSpec]:
        return [u for u in self.users if u.party in node.parties]


SENDER_POSTS = {
    "entry": (Post.ENTRY,),
    "review": (Post.REVIEW,),
    "seal": (Post.SEAL, Post.SEND),
    "recv": (Post.RECEIVE, Post.PRINT),
}
"""The four desks of a party in one county: 录入, 审核, 盖章+发送, 签收+打印."""


_SURNAMES = "张王李赵刘陈杨黄周吴徐孙马朱胡郭何林罗高"
_GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛",
          "明", "超", "秀兰", "霞", "平", "刚", "桂英")


def person_name(seed: str) -> str:
    """A deterministic two- or three-character Chinese name for a demo clerk (私章 needs one)."""
    n = sum((i + 1) * ord(c) for i, c in enumerate(seed))
    return _SURNAMES[n % len(_SURNAMES)] + _GIVEN[(n // len(_SURNAMES)) % len(_GIVEN)]


def desks(prefix: str, party: str, admdiv: str) -> list[UserSpec]:
    return [
        UserSpec(f"{prefix}-{admdiv}-{desk}", person_name(f"{prefix}-{admdiv}-{desk}"), party,
                 admdiv, posts)
        for desk, posts in SENDER_POSTS.items()
    ]


def demo_province() -> ProvinceSpec:
    """Yunnan with Dehong prefecture and two of its counties, Mangshi and Ruili."""
    divs = {"530000": "云南省", "533100": "德宏傣族景颇族自治州", "533103": "芒市",
            "533102": "瑞丽市"}
    P = Party
    parties = [
        P("F530000", PartyKind.FINANCE, "云南省财政厅", AdmDiv("530000")),
        P("F533103", PartyKind.FINANCE, "芒市财政局", AdmDiv("533103")),
        P("F533102", PartyKind.FINANCE, "瑞丽市财政局", AdmDiv("533102")),
        P("P530000", PartyKind.PBOC, "中国人民银行云南省分行国库处", AdmDiv("530000")),
        P("B-ICBC", PartyKind.BANK, "中国工商银行云南省分行", AdmDiv("530000")),
        P("B-ABC", PartyKind.BANK, "中国农业银行云南省分行", AdmDiv("530000")),
        P("U533103001", PartyKind.UNIT, "芒市教育体育局", AdmDiv("533103")),
        P("U533102001", PartyKind.UNIT, "瑞丽市卫生健康局", AdmDiv("533102")),
    ]
    nodes = [
        NodeSpec("finance", ("F530000", "F533103", "F533102", "U533103001", "U533102001")),
        NodeSpec("pboc", ("P530000",)),
        NodeSpec("bank-icbc", ("B-ICBC",)),
        NodeSpec("bank-abc", ("B-ABC",)),
    ]
    users: list[UserSpec] = []
    for county, unit in (("533103", "U533103001"), ("533102", "U533102001")):
        users += desks("fin", f"F{county}", county)
        users += desks("unit", unit, county)
        users += desks("icbc", "B-ICBC", county)
        users += desks("abc", "B-ABC", county)
        users += desks("pboc", "P530000", county)
    users += desks("fin", "F530000", "530000")
    users += [
        UserSpec("admin-finance", "财政系统管理员", "F530000", "530000", (Post.ADMIN,)),
        UserSpec("reconciler", "对账员", "F530000", "530000", (Post.RECONCILE,)),
        UserSpec("admin-pboc", "国库系统管理员", "P530000", "530000", (Post.ADMIN,)),
        UserSpec("admin-icbc", "工行系统管理员", "B-ICBC", "530000", (Post.ADMIN,)),
        UserSpec("admin-abc", "农行系统管理员", "B-ABC", "530000", (Post.ADMIN,)),
    ]
    return ProvinceSpec(divs, parties, nodes, users)
