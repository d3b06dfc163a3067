"""The text a guoku PDF shows, for assertions: its page streams inflated, the strings of its
``Tj`` operators decoded (reportlab writes the CID font's text as UTF-16BE literals)."""

from __future__ import annotations

import base64
import re
import zlib

_STREAM = re.compile(rb"stream\r?\n(.*?)endstream", re.S)
_STRING = re.compile(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", re.S)
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|.)", re.S)
_SIMPLE = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(literal: bytes) -> bytes:
    def one(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code[:1].isdigit():
            return bytes([int(code, 8)])
        return _SIMPLE.get(code, code)

    return _ESCAPE.sub(one, literal)


def pdf_text(pdf: bytes) -> str:
    lines = []
    for match in _STREAM.finditer(pdf):
        raw = match.group(1).strip()
        if raw.endswith(b"~>"):
            raw = base64.a85decode(raw[:-2])
        try:
            content = zlib.decompress(raw)
        except zlib.error:
            continue
        lines += [_unescape(s).decode("utf-16-be", "replace") for s in _STRING.findall(content)]
    return "\n".join(lines)
