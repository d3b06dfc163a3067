"""Raw national-algorithm speed on one core: SM2 sign/verify/encrypt/decrypt, SM3, cert checks.

Each primitive runs for ``--seconds`` in a tight loop on a single thread (pinned to one CPU where
the OS allows), first straight on the backend library, then through guoku's adapter, so the gap
shows what guoku's wrapping costs. Backends: tongsuopy (SM2 signatures), gmssl-pyx (SM2
encryption, GM/T 0009 DER), cryptography (SM3). Certificate rows: a parse without and with the
DER cache; a validation of leaf -> root with a CRL on a fresh store (three SM2 verifies: root
self-signature, leaf, CRL) and on a warm one (signatures remembered, times and CRL re-checked).
Figures go to docs/decisions/0003-crypto-backends.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import gmssl_pyx
from cryptography.hazmat.primitives import hashes as c_hashes
from tongsuopy.crypto import hashes as t_hashes
from tongsuopy.crypto.asymciphers import ec as t_ec

from guoku.security.certs import TrustStore, build_crl
from guoku.security.crypto import SM2PrivateKey, sm3
from guoku.security.x509 import Certificate, KeyUsage, build_certificate, subject_name

SECONDS: Final = 1.0
MESSAGE: Final = b"<Voucher>" + b"x" * 1014 + b"</Voucher>"  # ~1 KiB, a voucher's order of size
SM3_BLOCK: Final = 1 << 20


def rate(func: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``func`` over at least ``seconds`` (batches of growing size)."""
    calls, batch = 0, 8
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(batch):
            func()
        calls += batch
        batch = min(batch * 2, 4096)
    return calls / (time.perf_counter() - start) if calls else 0.0


def _pin_one_cpu() -> str:
    if hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned"


def _chain() -> tuple[TrustStore, Certificate, datetime]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    root_key, leaf_key = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    ca_usage = frozenset({KeyUsage.KEY_CERT_SIGN, KeyUsage.CRL_SIGN})
    root = build_certificate(
        subject=subject_name("Bench Root", "Bench"),
        public_key=root_key.public_key(),
        serial=1,
        not_before=now,
        not_after=now + timedelta(days=99),
        key_usage=ca_usage,
        signer=root_key,
        is_ca=True,
    )
    leaf = build_certificate(
        subject=subject_name("Clerk", "Bench", "F530000"),
        public_key=leaf_key.public_key(),
        serial=2,
        not_before=now,
        not_after=now + timedelta(days=9),
        key_usage=frozenset({KeyUsage.DIGITAL_SIGNATURE}),
        signer=root_key,
        issuer=root,
    )
    crl = build_crl(
        issuer=root,
        signer=root_key,
        this_update=now,
        next_update=now + timedelta(days=7),
        crl_number=1,
        revocations=[],
    )
    return TrustStore([root], [], [crl]), leaf, now + timedelta(days=1)


def measure(seconds: float) -> dict[str, Any]:
    raw_key = t_ec.generate_private_key(t_ec.SM2())
    raw_pub = raw_key.public_key()
    algo = t_ec.ECDSA(t_hashes.SM3())
    raw_sig = raw_key.sign(MESSAGE, algo)

    key = SM2PrivateKey.generate()
    pub = key.public_key()
    sig = key.sign(MESSAGE)
    point, scalar = pub.point[1:], key.scalar()
    sm4_key = bytes(16)
    wrapped = gmssl_pyx.sm2_encrypt(point, sm4_key)

    block = os.urandom(SM3_BLOCK)

    def sm3_raw() -> bytes:
        h = c_hashes.Hash(c_hashes.SM3())
        h.update(block)
        return h.finalize()

    store, leaf, at = _chain()
    leaf_der = leaf.der
    ops: dict[str, Callable[[], object]] = {
        "sm2_sign.tongsuopy": lambda: raw_key.sign(MESSAGE, algo),
        "sm2_sign.guoku": lambda: key.sign(MESSAGE),
        "sm2_verify.tongsuopy": lambda: raw_pub.verify(raw_sig, MESSAGE, algo),
        "sm2_verify.guoku": lambda: pub.verify(sig, MESSAGE),
        "sm2_encrypt_16B.gmssl_pyx": lambda: gmssl_pyx.sm2_encrypt(point, sm4_key),
        "sm2_encrypt_16B.guoku": lambda: pub.encrypt(sm4_key),
        "sm2_decrypt_16B.gmssl_pyx": lambda: gmssl_pyx.sm2_decrypt(scalar, wrapped),
        "sm2_decrypt_16B.guoku": lambda: key.decrypt(wrapped),
        "sm2_keygen.guoku": SM2PrivateKey.generate,
        "cert_parse_uncached.guoku": lambda: Certificate(leaf_der),
        "cert_parse_cached.guoku": lambda: Certificate.from_der(leaf_der),
        "cert_validate_cold.guoku": lambda: TrustStore(store.roots, (), store.crls).validate(
            leaf, at
        ),
        "cert_validate_warm.guoku": lambda: store.validate(leaf, at),
    }
    rates = {name: round(rate(op, seconds)) for name, op in ops.items()}
    sm3_mb_s = rate(sm3_raw, seconds) * SM3_BLOCK / 1e6
    sm3_guoku_mb_s = rate(lambda: sm3(block), seconds) * SM3_BLOCK / 1e6
    return {
        "bench": "crypto_raw",
        "seconds_per_op": seconds,
        "message_bytes": len(MESSAGE),
        "ops_per_s": rates,
        "sm3_mb_per_s": {"cryptography": round(sm3_mb_s, 1), "guoku": round(sm3_guoku_mb_s, 1)},
    }


def report(result: dict[str, Any], pinned: str) -> None:
    print(
        f"crypto_raw: one thread, {pinned}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(f"SM2 over a {result['message_bytes']}-byte message; encryption wraps a 16-byte SM4 key")
    for name, value in result["ops_per_s"].items():
        print(f"  {name:30} {value:>10,} /s")
    for lib, value in result["sm3_mb_per_s"].items():
        print(f"  {'sm3.' + lib:30} {value:>10,.1f} MB/s")
    print(json.dumps(result, sort_keys=True))


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench crypto_raw", description=__doc__)
    parser.add_argument("--seconds", type=float, default=SECONDS, help="time per primitive")
    args = parser.parse_args()
    pinned = _pin_one_cpu()
    report(measure(args.seconds), pinned)


if __name__ == "__main__":
    main()
