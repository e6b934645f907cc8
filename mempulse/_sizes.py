"""Byte sizes written for people: ``"100 MB"``, ``"512KiB"``, ``"1.5GB"``."""
import re

# Decimal (SI) units are powers of 1000, binary (IEC) units powers of 1024;
# a bare K, M, G or T is binary, as in GNU tools and ulimit.
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10 ** 3,
    "mb": 10 ** 6,
    "gb": 10 ** 9,
    "tb": 10 ** 12,
    "k": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tib": 1 << 40,
}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")

try:
    _TEXT_TYPES = (str, unicode)  # noqa: F821 - Python 2
    _INTEGER_TYPES = (int, long)  # noqa: F821 - Python 2
except NameError:
    _TEXT_TYPES = (str,)
    _INTEGER_TYPES = (int,)


def parse_size(value):
    """Bytes in ``value``: an int, or a number with an optional unit.

    Units are case-insensitive: ``B``; decimal ``KB MB GB TB`` (1000**n);
    binary ``KiB MiB GiB TiB`` and bare ``K M G T`` (1024**n)::

        >>> parse_size("100 MB"), parse_size("512KiB"), parse_size("1.5GB")
        (100000000, 524288, 1500000000)

    Anything else (negative, no number, unknown unit, bool) -> ValueError or
    TypeError naming the value and the accepted forms.
    """
    if isinstance(value, bool) or not isinstance(value, _INTEGER_TYPES + _TEXT_TYPES):
        raise TypeError(
            "a size must be a string like '100 MB' or an int number of bytes, got %r"
            % (value,)
        )
    if isinstance(value, _INTEGER_TYPES):
        if value < 0:
            raise ValueError("a size cannot be negative, got %r" % (value,))
        return int(value)
    match = _SIZE.match(value)
    factor = _UNITS.get(match.group(2).lower()) if match else None
    if factor is None:
        raise ValueError(
            "cannot read %r as a size: write a number and a unit, e.g. '100 MB' "
            "(units: B, KB MB GB TB = 1000**n, KiB MiB GiB TiB or K M G T = 1024**n)"
            % (value,)
        )
    number = match.group(1)
    if "." in number:
        return int(round(float(number) * factor))
    return int(number) * factor


def format_size(n):
    """``n`` bytes for a message: ``"52.4 MB (52,428,800 bytes)"``."""
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit, factor in (("TB", 10 ** 12), ("GB", 10 ** 9), ("MB", 10 ** 6), ("KB", 10 ** 3)):
        if n >= factor:
            return "%s%.1f %s (%s%s bytes)" % (sign, float(n) / factor, unit, sign, "{:,}".format(n))
    return "%s%d bytes" % (sign, n)
