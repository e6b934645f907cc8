"""File and function names as text for reports, whatever bytes they hold.

A file name is bytes to the operating system: Python 3 hands the ones that
are not UTF-8 to us as str with lone surrogates (``os.fsdecode``'s
"surrogateescape"), Python 2 as a byte str.  Neither encodes to UTF-8 as is,
so every output goes through one of two forms:

- :func:`display`: for people (the table, CSV cells): each byte that is not
  UTF-8 is written ``\\xNN``, the rest unchanged;
- :func:`to_json` / :func:`from_json`: for JSON, which must round-trip:
  each such byte is the lone surrogate U+DC80+byte (Python 3's own
  surrogateescape form, which ``json`` writes as ``\\udcNN``), so Python 2
  and 3 write and read the same JSON for the same name.
"""
import re
import sys

_PY2 = sys.version_info[0] == 2
_UNICODE = type(u"")
_UNICHR = unichr if _PY2 else chr  # noqa: F821 - Python 2

# A surrogate from U+DC80..U+DCFF stands for one undecodable byte unless it
# is the low half of a pair (a narrow Python 2 build stores non-BMP
# characters as pairs).
_ESCAPED_BYTE = re.compile(u"(?<![\ud800-\udbff])[\udc80-\udcff]")


def _bytes_of(name):
    """The bytes a name stands for."""
    if isinstance(name, bytes):
        return name
    if _PY2:
        return name.encode("utf-8")  # Python 2 encodes lone surrogates too
    try:
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is no escaped byte
        return name.encode("utf-8", "surrogatepass")


def _pieces(data):
    """Decoded runs of ``data`` as unicode, and each undecodable byte as an int."""
    while data:
        try:
            yield data.decode("utf-8")
            return
        except UnicodeDecodeError as e:
            if e.start:
                yield data[: e.start].decode("utf-8")
            for byte in bytearray(data[e.start:e.end]):
                yield byte
            data = data[e.end:]


def _native(text):
    return text.encode("utf-8") if _PY2 else text


def display(name):
    """``name`` as a native str that encodes to UTF-8: bad bytes as ``\\xNN``."""
    if isinstance(name, str) and not _PY2:
        try:
            name.encode("utf-8")
            return name
        except UnicodeEncodeError:
            pass
    text = u"".join(p if isinstance(p, _UNICODE) else u"\\x%02x" % p for p in _pieces(_bytes_of(name)))
    return _native(text)


def to_json(name):
    """``name`` as unicode that ``json`` writes and :func:`from_json` reads back."""
    if isinstance(name, _UNICODE):
        return name  # Python 3's str already is this form
    return u"".join(p if isinstance(p, _UNICODE) else _UNICHR(0xDC00 + p) for p in _pieces(name))


def from_json(text):
    """The native str :func:`to_json` made ``text`` from."""
    if not _PY2:
        return text
    parts = []
    position = 0
    for match in _ESCAPED_BYTE.finditer(text):
        parts.append(text[position:match.start()].encode("utf-8"))
        parts.append(chr(ord(match.group()) - 0xDC00))  # a one-byte str on Python 2
        position = match.end()
    parts.append(text[position:].encode("utf-8"))
    return b"".join(parts)
