"""verify's text report: the side-by-side table stays within 100 columns, a long value
is cut in its column and printed whole, wrapped, under the table."""

from bootforge.loader.policies import policy
from bootforge.loader.recipe import read_recipe
from bootforge.verify.run import TABLE_COLUMNS, Row, VerifyReport, compare_rows  # noqa: F401
from conftest import REPO


def ovmf_tag17_rows():
    """The grub-efi-mb2 prediction on qemu-q35-ovmf:256M (the mmap GRUB derives from OVMF's
    EFI map, ~20 ranges) as verify's rows, observed equal to predicted."""
    req = read_recipe(REPO / "recipes" / "load-grub-pc-mb2.toml", "qemu-q35-ovmf:256M", "grub-efi-mb2")
    res = policy(req.loader)(req)
    tag17 = list(res.mmap)
    assert len(tag17) > 8
    return [Row("kernel entry", 0x100000, 0x100000, True), Row("mbi address", 0x7e000, 0x7e000, True),
            Row("mem lower", 639, 639, True, False), Row("mmap from tag 17", tag17, list(tag17), True, False),
            Row("module 0 string", "mod1-args", "mod1-args", True)], tag17


def test_table_fits_100_columns_and_keeps_the_whole_value():
    rows, tag17 = ovmf_tag17_rows()
    report = VerifyReport("r.toml", "grub-efi-mb2", "qemu-q35-ovmf:256M", "q35", status="entry",
                          registers={"rax": 0x36D76289, "rbx": 0x7E000}, rows=rows)
    text = report.render_text()
    assert max(map(len, text.splitlines())) <= TABLE_COLUMNS, text
    row = next(line for line in text.splitlines() if line.startswith("  mmap from tag 17  "))
    assert row.rstrip().endswith("same") and "..." in row
    # The whole value, wrapped under the table: every range is there.
    below = text[text.index("  mmap from tag 17, predicted and observed: "):]
    joined = " ".join(part.strip() for part in below.splitlines())
    assert f"{len(tag17)} ranges: " in joined
    assert all(f"{start:#x}+{size:#x}" in joined for start, size, _type in tag17)
    # Values that differ are both printed.
    rows[3] = Row("mmap from tag 17", tag17, tag17[:-1], False, False)
    text = VerifyReport("r.toml", "grub-efi-mb2", "qemu-q35-ovmf:256M", "q35", rows=rows).render_text()
    assert max(map(len, text.splitlines())) <= TABLE_COLUMNS
    assert "  mmap from tag 17, predicted: " in text and "  mmap from tag 17, observed: " in text
