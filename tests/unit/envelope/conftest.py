"""The ``net`` fixture: see :mod:`envelope_net` for the network and the attacker's tools."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from envelope_net import (
    CA_NAME,
    ISSUED,
    NOW,
    OTHER,
    PASSPHRASE,
    RECEIVER,
    SENDER,
    Network,
    institution,
)

from guoku.security.ca import MIN_KDF_ITERATIONS, CertificateAuthority
from guoku.security.certs import TrustStore


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Network:
    base: Path = tmp_path_factory.mktemp("envelope-net")
    ca = CertificateAuthority.create(base / "ca", CA_NAME, PASSPHRASE, ISSUED - timedelta(days=1),
                                     kdf_iterations=MIN_KDF_ITERATIONS)
    sender = institution(ca, SENDER, "云南省财政厅国库处")
    receiver = institution(ca, RECEIVER, "中国工商银行云南省分行")
    other = institution(ca, OTHER, "中国农业银行云南省分行")
    trust = TrustStore.from_directory(ca.export_trust(base / "trust", NOW))
    return Network(ca, trust, sender, receiver, other)
