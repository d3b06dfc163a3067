"""Element and attribute names of the voucher XML format (no namespace).

Shared by the XSD generator, the codec and the canonical form, so the three cannot drift apart.
Field elements take their names from the catalogue (``guoku.domain.fields``); these are the
structural names around them.
"""

from __future__ import annotations

from typing import Final

VOUCHER: Final = "Voucher"
VERSION: Final = "Version"
"""Attribute of ``Voucher``: the voucher version (凭证版本), a positive integer."""
VT_CODE: Final = "VtCode"
"""Header field naming the voucher type; read first to choose the schema."""
DETAIL_LIST: Final = "DetailList"
DETAIL: Final = "Detail"
STAMPS: Final = "Stamps"
STAMP: Final = "Stamp"
STAMP_NO: Final = "No"
"""Attribute of ``Stamp``: the seal position on the voucher."""
