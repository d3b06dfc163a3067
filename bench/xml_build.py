"""Voucher XML: to_xml, from_xml (hardened parse + XSD + domain) and canonical bytes, vs bare lxml.

Builds ``--count`` vouchers of every catalogue type in turn (``guoku.xml.samples``), then times
each stage over all of them. The baseline, measured in the same run on the same bytes, is what
lxml does with no checks at all: ``fromstring`` with its default parser, then ``tostring``. The
ratio says what the hardening and the two validations cost on top of plain XML handling.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from lxml import etree

from guoku.domain.document import VoucherDocument, validate
from guoku.domain.vouchers import all_types
from guoku.xml.canonical import canonical_bytes
from guoku.xml.codec import from_xml, to_xml
from guoku.xml.parser import parse_xml
from guoku.xml.samples import sample_document
from guoku.xml.xsd import schema_for

COUNT: Final = 10_000
MAX_SAMPLE_DETAILS: Final = 5
"""Detail lines per voucher cycle through 1..5, as in an ordinary day's payments."""

T = TypeVar("T")


def build_documents(count: int) -> list[VoucherDocument]:
    """``count`` vouchers, types in catalogue rotation, numbers and amounts all different."""
    types = all_types()
    return [
        sample_document(
            types[i % len(types)],
            voucher_no=f"B{i:08d}",
            amount=f"{i % 90_000 + 1}.{i % 100:02d}",
            details=1 + i % MAX_SAMPLE_DETAILS,
        )
        for i in range(count)
    ]


def timed(func: Callable[[T], Any], items: Sequence[T]) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    results = [func(item) for item in items]
    return time.perf_counter() - start, results


def _plain_round_trip(data: bytes) -> bytes:
    result: bytes = etree.tostring(etree.fromstring(data))
    return result


def measure(count: int) -> dict[str, Any]:
    docs = build_documents(count)
    start = time.perf_counter()
    for vtype in all_types():
        schema_for(vtype)
    compile_s = time.perf_counter() - start

    to_xml_s, xmls = timed(to_xml, docs)
    from_xml_s, parsed = timed(from_xml, xmls)
    canonical_s, _ = timed(canonical_bytes, parsed)
    if parsed != docs:
        raise AssertionError("round trip changed a document")
    # Where from_xml's time goes, measured separately on the same inputs.
    parse_s, roots = timed(parse_xml, xmls)
    xsd_s, _ = timed(
        lambda pair: schema_for(pair[0].vtype).validate(pair[1]),
        list(zip(docs, roots, strict=True)),
    )
    domain_s, _ = timed(validate, docs)
    baseline_s, _ = timed(_plain_round_trip, xmls)

    pipeline_s = to_xml_s + from_xml_s + canonical_s
    return {
        "bench": "xml_build",
        "count": count,
        "mean_bytes": round(sum(map(len, xmls)) / count),
        "schema_compile_ms": round(compile_s * 1000, 1),
        "stages_per_s": {
            "to_xml": round(count / to_xml_s),
            "from_xml": round(count / from_xml_s),
            "canonical_bytes": round(count / canonical_s),
            "from_xml.parse_xml": round(count / parse_s),
            "from_xml.xsd_validate": round(count / xsd_s),
            "from_xml.domain_validate": round(count / domain_s),
        },
        "guoku_vouchers_per_s": round(count / pipeline_s),
        "baseline_lxml_vouchers_per_s": round(count / baseline_s),
        "time_ratio_guoku_over_baseline": round(pipeline_s / baseline_s, 2),
    }


def report(result: dict[str, Any]) -> None:
    print(
        f"{result['count']} vouchers of {len(all_types())} types, "
        f"{result['mean_bytes']} bytes each on average; "
        f"{len(all_types())} schemas compiled in {result['schema_compile_ms']} ms"
    )
    for stage, rate in result["stages_per_s"].items():
        print(f"  {stage:26} {rate:>10,} vouchers/s")
    print(
        f"guoku to_xml + from_xml + canonical_bytes: {result['guoku_vouchers_per_s']:>10,} "
        "vouchers/s"
    )
    print(
        f"baseline lxml fromstring + tostring:       "
        f"{result['baseline_lxml_vouchers_per_s']:>10,} vouchers/s"
    )
    ratio = result["time_ratio_guoku_over_baseline"]
    print(f"guoku pipeline takes {ratio}x the time of the baseline")
    print(json.dumps(result, sort_keys=True))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench xml_build", description=__doc__)
    parser.add_argument("--count", type=int, default=COUNT, help=f"vouchers (default {COUNT})")
    args = parser.parse_args()
    report(measure(args.count))


if __name__ == "__main__":
    main()
