"""Byte sizes written the way people write them: ``512K``, ``10MB``, ``1GiB``."""
import re

# Like GNU coreutils: a bare letter or an "iB" suffix is binary (1024-based),
# an SI "B" suffix is decimal (1000-based); letters are case-insensitive.
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(text):
    """Bytes in a size like ``4096``, ``512K``, ``1.5 GiB`` or ``10MB``.

    ``K``, ``M``, ``G``, ``T`` and ``KiB`` ... ``TiB`` are powers of 1024;
    ``KB`` ... ``TB`` are powers of 1000; ``B`` or no unit is bytes.
    Letters may be in any case and a space may separate number and unit::

        parse_size("512K")    # 524288
        parse_size("10MB")    # 10000000
        parse_size("1GiB")    # 1073741824

    Raises ValueError for anything else (negative sizes included).
    """
    if isinstance(text, bool) or not isinstance(text, (str, type(u""))):
        raise TypeError("a size must be a string like '10MB', got %r" % (text,))
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(_bad(text))
    number, prefix, suffix = match.group(1), match.group(2).lower(), match.group(3).lower()
    if suffix == "i" or (suffix == "ib" and not prefix):
        raise ValueError(_bad(text))  # "10i", "10iB"
    base = 1000 if suffix == "b" and prefix else 1024
    scale = base ** _POWERS[prefix]
    if "." in number:
        return int(round(float(number) * scale))
    return int(number) * scale  # exact, however large


def _bad(text):
    return (
        "invalid size %r: use a number with an optional unit, e.g. 4096, 512K, "
        "10MB, 1GiB (K/M/G/T and KiB/MiB/GiB/TiB are 1024-based, KB/MB/GB/TB "
        "1000-based)" % (text,)
    )
