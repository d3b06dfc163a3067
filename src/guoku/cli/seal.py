"""``guoku seal``: look inside GB/T 38540 seals (SES_Seal) and seal signatures (SES_Signature).

``inspect`` prints what a file holds and verifies it: the maker's signature for a seal; for a
seal signature also the signer's signature, that the signer holds the seal and that the seal
and certificate were valid at the signing time (and, with ``--data``, SM3 of the data).
Certificate chains are checked only against ``--trust DIR`` (a trust dir written by the CA:
roots, intermediates and CRLs); without it the output says ``chain: unchecked``.
``--save-picture FILE`` writes the seal's picture out, to look at.

A failed check is a :class:`~guoku.security.seals.SealInvalid`: ``guoku.cli.main`` prints its
code in one line and exits 2; with ``--json`` the object says ``"verified": false`` and the
error, and the exit code is 2 as well.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from guoku.cli._common import JsonOption, print_json
from guoku.domain.errors import GuokuError
from guoku.security.certs import TrustStore
from guoku.security.crypto import sm3
from guoku.security.seals import (
    Seal,
    SealChainInvalid,
    SealDataMismatch,
    SealMalformed,
    SealSignature,
    check_seal_signature,
    detect,
    parse_seal,
    parse_seal_signature,
)
from guoku.security.ses import SEAL_TYPE_ORGANIZATION, SEAL_TYPE_PERSONAL
from guoku.security.x509 import Certificate, CertificateInvalid, KeyUsage

app = typer.Typer(help="Electronic seals (电子印章, GB/T 38540): inspect and verify.")

_TYPES = {SEAL_TYPE_ORGANIZATION: "单位印章 organization", SEAL_TYPE_PERSONAL: "个人印章 personal"}
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_DATA_BYTES = 256 * 1024 * 1024


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cert(cert: Certificate) -> dict[str, Any]:
    return {
        "subject": cert.subject,
        "issuer": cert.issuer,
        "serial": f"{cert.serial:x}",
        "not_before": _iso(cert.not_before),
        "not_after": _iso(cert.not_after),
    }


def _seal_fields(seal: Seal, now: datetime) -> dict[str, Any]:
    return {
        "version": seal.version,
        "vendor_id": seal.vendor_id,
        "es_id": seal.es_id,
        "name": seal.name,
        "type": seal.seal_type,
        "kind": None if seal.kind is None else str(seal.kind),
        "created": _iso(seal.created_at),
        "valid_start": _iso(seal.valid_start),
        "valid_end": _iso(seal.valid_end),
        "valid_now": seal.is_valid_at(now),
        "picture": {
            "type": seal.picture_type,
            "bytes": len(seal.picture),
            "width_mm": seal.picture_width_mm,
            "height_mm": seal.picture_height_mm,
        },
        "cert_list_type": seal.cert_list_type,
        "holders": [_cert(c) for c in seal.holder_certs],
        "holder_digests": [
            {"type": d.algorithm, "value": d.value.hex()} for d in seal.holder_digests
        ],
        "maker": _cert(seal.maker_cert),
        "time_stamp_bytes": None if seal.time_stamp is None else len(seal.time_stamp),
    }


def _read(path: Path, limit: int, what: str) -> bytes:
    if not path.is_file():
        raise typer.BadParameter(f"{what} {path} is not a file")
    if path.stat().st_size > limit:
        raise SealMalformed(f"{what} {path} is larger than {limit} bytes")
    return path.read_bytes()


def _check_seal(seal: Seal, trust: TrustStore | None, checks: dict[str, str]) -> None:
    seal.verify_maker_signature()
    checks["maker signature"] = "OK (SM2-with-SM3, embedded maker certificate)"
    if trust is None:
        checks["chain"] = "unchecked (no --trust)"
        return
    try:
        trust.validate(seal.maker_cert, seal.created_at, KeyUsage.DIGITAL_SIGNATURE)
    except CertificateInvalid as exc:
        raise SealChainInvalid(f"the seal maker certificate is not trusted: {exc}") from exc
    checks["chain"] = "OK (maker certificate at the seal's creation time)"


def _check_signature(
    sig: SealSignature, data: bytes | None, trust: TrustStore | None, checks: dict[str, str]
) -> None:
    check_seal_signature(sig, None, trust)
    checks["signer signature"] = "OK (SM2-with-SM3 over TBS_Sign, embedded signer certificate)"
    checks["maker signature"] = "OK (SM2-with-SM3, embedded maker certificate)"
    checks["signer holds the seal"] = "OK"
    checks["valid at signing time"] = "OK (seal and signer certificate)"
    checks["chain"] = (
        "unchecked (no --trust)" if trust is None else "OK (signer and maker certificates)"
    )
    if data is None:
        checks["data"] = "unchecked (no --data)"
    elif sm3(data) != sig.data_hash:
        raise SealDataMismatch("SM3 of --data is not the signature's dataHash")
    else:
        checks["data"] = "OK (SM3 matches dataHash)"


def _print_human(report: dict[str, Any]) -> None:
    seal = report["seal"]
    echo = typer.echo
    echo(
        f"{report['structure']} (GB/T 38540 format version {seal['version']}, "
        f"vendor {seal['vendor_id']})"
    )
    echo(f"  esID:      {seal['es_id']}")
    echo(f"  name:      {seal['name']}")
    kind = f", guoku kind {seal['kind']}" if seal["kind"] else ""
    echo(f"  type:      {seal['type']} ({_TYPES.get(seal['type'], 'other')}{kind})")
    echo(
        f"  validity:  {seal['valid_start']} .. {seal['valid_end']}"
        f" (created {seal['created']}; {'valid' if seal['valid_now'] else 'NOT valid'} now)"
    )
    pic = seal["picture"]
    echo(
        f"  picture:   {pic['type']}, {pic['bytes']} bytes, "
        f"{pic['width_mm']} x {pic['height_mm']} mm"
    )
    echo(f"  holders (certListType {seal['cert_list_type']}):")
    for h in seal["holders"]:
        echo(f"    serial {h['serial']}  {h['subject']}  ({h['not_before']} .. {h['not_after']})")
    for d in seal["holder_digests"]:
        echo(f"    digest {d['type']} {d['value']}")
    maker = seal["maker"]
    echo(f"  maker:     serial {maker['serial']}  {maker['subject']}")
    if seal["time_stamp_bytes"] is not None:
        echo(f"  seal timeStamp: {seal['time_stamp_bytes']} bytes (not verified)")
    signed = report.get("signature")
    if signed:
        signer = signed["signer"]
        echo(f"  signer:    serial {signer['serial']}  {signer['subject']}")
        echo(f"  signed at: {signed['signed_at']}  (TBS_Sign version {signed['version']})")
        echo(f"  dataHash:  {signed['data_hash']}")
        echo(f"  propertyInfo: {signed['property_info']!r}")
        if signed["time_stamp_bytes"] is not None:
            echo(f"  timeStamp: {signed['time_stamp_bytes']} bytes (not verified)")
    for name, outcome in report["checks"].items():
        echo(f"{name}: {outcome}")


@app.command("inspect")
def inspect(
    file: Annotated[Path, typer.Argument(help="A DER SES_Seal (.esl) or SES_Signature file.")],
    trust: Annotated[
        Path | None,
        typer.Option("--trust", help="Trust dir from the CA (roots/, intermediates/, crls/)."),
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="The stamped data, to check SM3 = dataHash.")
    ] = None,
    save_picture: Annotated[
        Path | None,
        typer.Option(
            "--save-picture", help="Also write the seal picture to this file.", dir_okay=False
        ),
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Print a seal's or seal signature's fields and verify it."""
    der = _read(file, MAX_FILE_BYTES, "seal file")
    content = _read(data, MAX_DATA_BYTES, "data file") if data is not None else None
    store = TrustStore.from_directory(trust) if trust is not None else None
    now = datetime.now(UTC)
    checks: dict[str, str] = {}
    report: dict[str, Any] = {"file": str(file), "checks": checks}
    parsed: Seal | SealSignature
    if detect(der) == "seal":
        parsed = parse_seal(der)
        report.update(structure="SES_Seal", seal=_seal_fields(parsed, now))
    else:
        parsed = parse_seal_signature(der)
        report.update(
            structure="SES_Signature",
            seal=_seal_fields(parsed.seal, now),
            signature={
                "signer": _cert(parsed.signer_cert),
                "signed_at": _iso(parsed.signed_at),
                "version": parsed.version,
                "data_hash": parsed.data_hash.hex(),
                "property_info": parsed.property_info,
                "time_stamp_bytes": None if parsed.time_stamp is None else len(parsed.time_stamp),
            },
        )
    if save_picture is not None:
        picture = parsed.picture if isinstance(parsed, Seal) else parsed.seal.picture
        save_picture.write_bytes(picture)
        report["picture_saved_to"] = str(save_picture)
    try:
        if isinstance(parsed, Seal):
            _check_seal(parsed, store, checks)
        else:
            _check_signature(parsed, content, store, checks)
    except GuokuError as exc:
        if not as_json:
            _print_human(report)
            raise
        report.update(verified=False, error=exc.to_dict())
        print_json(report)
        raise typer.Exit(2) from exc
    report["verified"] = True
    if as_json:
        print_json(report)
    else:
        _print_human(report)
