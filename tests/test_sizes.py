"""Sizes as people write them, for limit_memory: decimal and binary units."""
import pytest

from mempulse._sizes import format_size, parse_size


@pytest.mark.parametrize(
    "text, expected",
    [
        ("100 MB", 100 * 1000 ** 2),
        ("100MB", 100 * 1000 ** 2),
        ("100 mb", 100 * 1000 ** 2),
        ("100 MiB", 100 * 1024 ** 2),
        ("512KiB", 512 * 1024),
        ("512K", 512 * 1024),
        ("512 kB", 512 * 1000),
        ("1.5GB", 1500 * 1000 ** 2),
        ("1.5 GiB", 3 * 512 * 1024 ** 2),
        ("2G", 2 * 1024 ** 3),
        ("1 TB", 1000 ** 4),
        (" 7 ", 7),
        ("7 B", 7),
        (".5 KB", 500),
        ("512k", 512 * 1024),
        ("10M", 10 * 1024 ** 2),
        ("1TiB", 1 << 40),
        ("100B", 100),
        ("0", 0),
        (4096, 4096),
        (0, 0),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "value, error, message",
    [
        ("ten MB", ValueError, "cannot read 'ten MB' as a size"),
        ("10 XB", ValueError, "cannot read '10 XB' as a size"),
        ("", ValueError, "cannot read '' as a size"),
        ("-1 MB", ValueError, "cannot read '-1 MB' as a size"),
        ("1e6", ValueError, "cannot read '1e6' as a size"),
        ("M", ValueError, "cannot read 'M' as a size"),
        ("10iB", ValueError, "cannot read '10iB' as a size"),
        ("10 M B", ValueError, "cannot read '10 M B' as a size"),
        ("1..5K", ValueError, "cannot read '1..5K' as a size"),
        ("0x10", ValueError, "cannot read '0x10' as a size"),
        (-5, ValueError, "a size cannot be negative, got -5"),
        (True, TypeError, "a size must be a string like '100 MB' or an int number of bytes, got True"),
        (1.5, TypeError, "got 1.5"),
        (None, TypeError, "got None"),
    ],
)
def test_bad_sizes(value, error, message):
    with pytest.raises(error) as info:
        parse_size(value)
    assert message in str(info.value)


def test_format_size():
    assert format_size(52428800) == "52.4 MB (52,428,800 bytes)"
    assert format_size(-1500) == "-1.5 KB (-1,500 bytes)"
    assert format_size(999) == "999 bytes"
