"""Reading an HTTP response body with a cap, so no server can make the runner hold more.

``read`` takes a response opened with ``client.stream`` and reads its body chunk by chunk,
decoding gzip and deflate itself with a bound on each step's output: at most ``limit`` bytes of
decoded body are kept, ``truncated`` says there was more, and reading stops there (closing the
response drops the connection, so the rest is never received). Neither a long body nor a
compression bomb gets past the cap. httpx's read timeout bounds each read, not the body, so a
``seconds`` budget bounds the whole read too (``TooSlow``). ``valid_text`` makes text that
JSON allowed but UTF-8 cannot encode (a lone surrogate from a ``\\ud800`` escape) storable.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Callable

import httpx

__all__ = ["Body", "TooSlow", "UnsupportedEncoding", "read", "valid_text"]


class TooSlow(Exception):
    """The body did not arrive within its time budget."""


class UnsupportedEncoding(Exception):
    """The body is compressed in a way this reader cannot decode within bounds."""


@dataclasses.dataclass(frozen=True)
class Body:
    """At most the cap's worth of a decoded body; ``truncated`` when the body was longer."""

    data: bytes
    truncated: bool = False

    def text(self, encoding: str | None = None) -> str:
        return self.data.decode(encoding or "utf-8", errors="replace")


class _Inflater:
    """zlib's incremental decoder, asked for a bounded amount of output at a time."""

    def __init__(self, wbits: int, fallback_wbits: int | None = None) -> None:
        self._wbits, self._fallback = wbits, fallback_wbits
        self._inflate = zlib.decompressobj(wbits)
        self._started = False

    def __call__(self, data: bytes, most: int) -> bytes:
        try:
            out = self._inflate.decompress(data, most)
        except zlib.error:
            if self._started or self._fallback is None:
                raise
            # "deflate" is sometimes sent raw, without the zlib header (as httpx also allows).
            self._inflate = zlib.decompressobj(self._fallback)
            out = self._inflate.decompress(data, most)
        self._started = True
        while len(out) < most and self._inflate.unconsumed_tail:
            out += self._inflate.decompress(self._inflate.unconsumed_tail, most - len(out))
        return out


_Decode = Callable[[bytes, int], bytes]


def _decoder(content_encoding: str) -> _Decode:
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return lambda data, most: data
    if encoding in ("gzip", "x-gzip"):
        return _Inflater(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return _Inflater(zlib.MAX_WBITS, -zlib.MAX_WBITS)
    raise UnsupportedEncoding(f"content-encoding {content_encoding!r} is not supported")


def read(
    response: httpx.Response,
    limit: int,
    seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Body:
    """At most ``limit`` decoded bytes of ``response``'s body, read within ``seconds``."""
    if response.is_stream_consumed:
        # Already read and decoded (a response made in memory): only the cap is left to apply.
        data = response.content
        return Body(data[:limit], truncated=len(data) > limit)
    decode = _decoder(response.headers.get("content-encoding", ""))
    deadline = None if seconds is None else clock() + seconds
    kept = bytearray()
    for raw in response.iter_raw():
        if deadline is not None and clock() > deadline:
            raise TooSlow(f"the body took longer than {seconds:g}s")
        try:
            # One byte more than there is room for tells a body that is too long.
            chunk = decode(raw, limit - len(kept) + 1)
        except zlib.error as err:
            raise UnsupportedEncoding(f"the body does not decode: {err}") from err
        kept += chunk
        if len(kept) > limit:
            return Body(bytes(kept[:limit]), truncated=True)
    return Body(bytes(kept))


def valid_text(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates) replaced by ``?``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace").decode("utf-8")
    return text
