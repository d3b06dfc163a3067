"""Scale-out harness: a sender and a receiver node, each as N worker processes over one database
and P partition queues, started the way ``guoku deploy`` starts them (:class:`Launch`).

Shared by ``tests/fault/test_scaleout.py`` (nothing doubled, nothing lost, order per voucher
kept, with a worker killed) and ``bench/node_scaleout.py`` (throughput at 1, 2 and 4 workers).
bank-icbc sends 申请划款凭证 (2301) to the central bank for every county of a generated
province; the central bank's receiving desks (one per county) accept them, or return every
``return_every``-th, as they arrive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, create_engine, select

from guoku.deploy.local import Child, Launch
from guoku.node.bootstrap import assemble, prepare_database, resolve_node
from guoku.province import ProvinceSpec
from guoku.province_config import load_province_file
from guoku.store.tables import voucher_events, vouchers
from guoku.xml.samples import sample_document
from tests.fault.harness import Databases, db_name

SENDER: Final = "bank-icbc"
RECEIVER: Final = "pboc"
VT_CODE: Final = "2301"
BUILD_CHUNK: Final = 250


def province_toml(counties: int) -> str:
    """A province whose one prefecture (530100) has ``counties`` counties, 530101 upwards."""
    lines = ['[province]', 'code = "530000"', 'name = "云南省"', 'finance = "云南省财政厅"',
             'pboc = { code = "P530000", name = "中国人民银行云南省分行国库处", desk = "pboc" }',
             'banks = [', '  { code = "B-ICBC", name = "中国工商银行云南省分行", '
             'node = "bank-icbc", desk = "icbc" },',
             '  { code = "B-ABC", name = "中国农业银行云南省分行", node = "bank-abc", '
             'desk = "abc" },', ']', '', '[[province.prefectures]]', 'code = "530100"',
             'name = "昆明市"']
    for i in range(1, counties + 1):
        code = f"5301{i:02d}"
        lines += ['', '[[province.prefectures.counties]]', f'code = "{code}"',
                  f'name = "第{i}区"', f'finance = "第{i}区财政局"',
                  f'units = [{{ code = "U{code}001", name = "第{i}区教育体育局" }}]']
    return "\n".join(lines) + "\n"


def counties_of(province: ProvinceSpec) -> list[str]:
    return sorted(code for code in province.admdivs if code[4:] != "00")


def voucher_no(i: int) -> str:
    return f"SO{i:08d}"


def build_sent_vouchers(home: Path, province: ProvinceSpec, db_url: str, count: int) -> None:
    """bank-icbc's desks in every county: ``count`` vouchers entered, checked, sealed and sent,
    spread evenly over the counties."""
    assembled = assemble(home, resolve_node(province, SENDER), db_url, province=province)
    library = assembled.node.library
    counties = counties_of(province)
    try:
        for n, county in enumerate(counties):
            numbers = list(range(n, count, len(counties)))
            for start in range(0, len(numbers), BUILD_CHUNK):
                entries = []
                for i in numbers[start:start + BUILD_CHUNK]:
                    doc = sample_document(VT_CODE, voucher_no=voucher_no(i),
                                          amount=f"{i % 90_000 + 1}.{i % 100:02d}", admdiv=county)
                    entries.append((doc.header, doc.details))
                desk = f"icbc-{county}"
                ids = [r.id for r in library.create_many(f"{desk}-entry", VT_CODE, entries,
                                                         receiver="P530000")]
                library.check_many(f"{desk}-review", ids)
                library.seal_many(f"{desk}-seal", ids)
                library.send_many(f"{desk}-seal", ids)
    finally:
        assembled.close()


class ScaleoutPair:
    """The sender and the receiver, ``workers`` processes each, over ``partitions`` queues."""

    def __init__(self, *, home: Path, province_file: Path, databases: Databases,
                 amqp_url: str, workdir: Path, run: str, workers: int, partitions: int,
                 sender_template: str) -> None:
        self.province = load_province_file(province_file)
        self.databases = databases
        self.run = run
        self.urls = {SENDER: databases.create(db_name(run, SENDER), sender_template),
                     RECEIVER: databases.create(db_name(run, RECEIVER))}
        for node in (SENDER, RECEIVER):  # the template may predate a newer migration
            prepare_database(self.urls[node], self.province, resolve_node(self.province, node))
        self.engines: dict[str, Engine] = {
            n: create_engine(u, pool_size=1, max_overflow=2) for n, u in self.urls.items()}
        pair = ProvinceSpec(self.province.admdivs, self.province.parties,
                            [resolve_node(self.province, n) for n in (SENDER, RECEIVER)],
                            self.province.users)
        self.launch = Launch(home, pair, self.urls, amqp_url, f"gs-{run}", workdir,
                             province_file=province_file, partitions=partitions,
                             workers={SENDER: workers, RECEIVER: workers})
        self.signing: list[Child] = []
        self.workers: dict[str, Child] = {}

    def start(self) -> None:
        self.launch.declare_queues()
        for spec in self.launch.province.nodes:
            self.signing.append(self.launch.signing_child(spec))
            self.signing[-1].start()
        for child in self.signing:
            child.wait_ready()
        for spec, signing in zip(self.launch.province.nodes, self.signing, strict=True):
            for child in self.launch.node_children(spec, signing.health.removesuffix("/health")):
                self.workers[child.name] = child
                child.start()
        for child in self.workers.values():
            child.wait_ready()

    def health(self, name: str) -> dict[str, Any]:
        import json
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.workers[name].health, timeout=5) as answer:
                document: dict[str, Any] = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            document = json.loads(exc.read())
        return document

    def stop(self) -> dict[str, int | None]:
        codes = {name: child.stop() for name, child in self.workers.items()}
        codes.update({child.name: child.stop() for child in self.signing})
        return codes

    def close(self) -> None:
        try:
            for child in [*self.workers.values(), *self.signing]:
                child.kill()
            self.launch.delete_queues()
        finally:
            for engine in self.engines.values():
                engine.dispose()
            for node in self.urls:
                self.databases.drop(db_name(self.run, node))

    def tails(self) -> str:
        return "\n".join(f"[{c.name}]\n{c.tail(10)}" for c in [*self.workers.values(),
                                                                 *self.signing])


def event_sequences(engine: Engine) -> dict[str, list[str]]:
    """Each outgoing voucher's events in the order the sender applied them."""
    query = (select(vouchers.c.voucher_no, voucher_events.c.event)
             .join(vouchers, vouchers.c.id == voucher_events.c.voucher_id)
             .where(vouchers.c.direction == "out").order_by(voucher_events.c.id))
    sequences: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for no, event in conn.execute(query):
            sequences.setdefault(str(no), []).append(str(event))
    return sequences


def out_of_order(sequences: dict[str, list[str]]) -> list[str]:
    """Vouchers whose answer (accept or return) was applied before their delivered receipt, or
    whose receipts are missing or doubled."""
    wrong = []
    for no, events in sequences.items():
        after = events[events.index("send") + 1:] if "send" in events else events
        if len(after) != 2 or after[0] != "deliver" or after[1] not in ("accept", "return"):
            wrong.append(f"{no}: {events}")
    return wrong


def tally(values: Iterable[str]) -> Counter[str]:
    return Counter(values)
