"""``guoku verify FILE... [--trust DIR]``: verify sealed voucher XML offline."""

from __future__ import annotations

from pathlib import Path

import typer

from guoku.cli._common import JsonOption, console, print_json
from guoku.domain.errors import GuokuError

app = typer.Typer()


@app.command("verify")
def verify_cmd(
    files: list[Path] = typer.Argument(..., help="Sealed voucher XML files"),
    trust: Path = typer.Option(Path("demo-workspace/trust"), "--trust",
                               help="Trust anchors: CA certificates and CRLs"),
    as_json: bool = JsonOption,
) -> None:
    """Check XSD, every stamp (data, signatures, seal, chain, revocation, party, positions).

    Exit 0 when every file is valid; otherwise each failure is named with its typed reason and
    the exit code is 1.
    """
    from guoku.security.certs import TrustStore
    from guoku.security.sealing import VoucherVerifier
    from guoku.xml.codec import from_xml

    verifier = VoucherVerifier(TrustStore.from_directory(trust))
    results: list[dict[str, object]] = []
    for path in files:
        try:
            doc = from_xml(path.read_bytes())
            stamps = verifier.report(doc, None, None)
            results.append({
                "file": str(path), "valid": True, "voucher": f"{doc.vt_code}/{doc.voucher_no}"
                f"/v{doc.version}", "amount": doc.amount.wire(),
                "stamps": [{"position": s.position, "kind": s.kind, "seal": s.seal_name,
                            "party": s.party, "signer": s.signer,
                            "signed_at": s.signed_at.isoformat()} for s in stamps],
            })
        except GuokuError as exc:
            results.append({"file": str(path), "valid": False, "code": exc.code,
                            "reason": exc.message})
        except OSError as exc:
            results.append({"file": str(path), "valid": False, "code": "FILE_UNREADABLE",
                            "reason": str(exc)})
    if as_json:
        print_json(results)
    else:
        for r in results:
            if r["valid"]:
                console.print(f"[green]valid[/]   {r['file']}: {r['voucher']} {r['amount']}")
                for s in r["stamps"]:  # type: ignore[attr-defined]
                    console.print(f"        stamp {s['position']} {s['kind']} 「{s['seal']}」 "
                                  f"party {s['party']} signed {s['signed_at']}")
            else:
                console.print(f"[red]INVALID[/] {r['file']}: {r['code']}: {r['reason']}")
    raise typer.Exit(0 if all(r["valid"] for r in results) else 1)
