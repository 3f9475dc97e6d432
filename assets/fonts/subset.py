#!/usr/bin/env python3
"""Reproduce assets/fonts/ChatCRMSansSC-Regular.otf, the font the PNG charts embed (src/chart.rs).

Source: Noto Sans CJK SC Regular 2.004 from Debian's `fonts-noto-cjk` (1:20220127+repack1-1), the
face at index 2 of NotoSansCJK-Regular.ttc. Licence: SIL Open Font License 1.1 (OFL.txt here).

The subset keeps ASCII, Latin-1, general punctuation, arrows, a few shapes, CJK symbols and
punctuation, full-width forms and all 6,763 GB2312 hanzi. Layout tables, vertical metrics and
hints are dropped: the renderer places glyphs one after another with horizontal advances only.

The upstream copyright declares 'Source' a Reserved Font Name and Noto is a Google trademark, so
the subset is renamed "ChatCRM Sans SC" (OFL section 3 for modified versions).

    apt-get install -y fonts-noto-cjk && pip install fonttools
    python3 assets/fonts/subset.py [path/to/NotoSansCJK-Regular.ttc]
"""

import os
import sys

from fontTools import subset
from fontTools.ttLib import TTFont

SRC = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
FONT_NUMBER = 2  # Noto Sans CJK SC in the collection
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ChatCRMSansSC-Regular.otf")
FAMILY = "ChatCRM Sans SC"


def gb2312_hanzi():
    chars = []
    for hi in range(0xB0, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.append(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:
                pass  # the five unassigned cells at the end of row 0xD7
    return chars


def codepoints():
    cps = set(range(0x20, 0x7F))  # ASCII
    cps |= set(range(0xA0, 0x100))  # Latin-1 (¥ is U+00A5)
    cps |= set(range(0x2010, 0x2040))  # dashes, quotes, …, ‰, ※
    cps |= set(range(0x2190, 0x21A0))  # arrows ← ↑ → ↓
    cps |= {0x2116, 0x2122, 0x2103, 0x00D7, 0x00F7, 0x2212, 0x221E, 0x2248, 0x2264, 0x2265}
    cps |= set(range(0x25A0, 0x25D0))  # ■ □ ▲ △ ▼ ▽ ◆ ○ ● …
    cps |= {0x2605, 0x2606, 0x2713, 0x2714, 0x2715}  # ★ ☆ ✓ ✔ ✕
    cps |= set(range(0x3000, 0x3040))  # CJK symbols and punctuation
    cps |= set(range(0xFF00, 0xFFF0))  # full-width forms (incl. ￥)
    cps |= {ord(c) for c in gb2312_hanzi()}
    return sorted(cps)


def main():
    hanzi = gb2312_hanzi()
    assert len(hanzi) == 6763, len(hanzi)
    options = subset.Options()
    options.font_number = FONT_NUMBER
    options.layout_features = []
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "BASE", "VORG", "vhea", "vmtx", "DSIG"]
    options.hinting = False
    options.notdef_outline = True
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 13, 14]
    options.name_languages = [0x409]
    font = subset.load_font(SRC, options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=codepoints())
    subsetter.subset(font)

    name = font["name"]
    version = name.getDebugName(5) or "Version 2.004"
    rename = {
        1: FAMILY,
        3: "2.004;ChatCRM;ChatCRMSansSC-Regular",
        4: FAMILY + " Regular",
        5: version.split(";")[0] + "; subset of Noto Sans CJK SC for chatcrm",
        6: "ChatCRMSansSC-Regular",
    }
    for record in list(name.names):
        if record.nameID in rename:
            name.setName(rename[record.nameID], record.nameID, record.platformID, record.platEncID, record.langID)
    # The CFF table carries its own names.
    cff = font["CFF "].cff
    cff.fontNames = ["ChatCRMSansSC-Regular"]
    top = cff.topDictIndex[0]
    for attr, value in (("FullName", FAMILY + " Regular"), ("FamilyName", FAMILY)):
        if hasattr(top, attr):
            setattr(top, attr, value)
    # Keep head.modified from the source, so the same input gives the same bytes.
    font.recalcTimestamp = False
    font.save(OUT)
    check = TTFont(OUT)
    cmap = check.getBestCmap()
    missing = [c for c in hanzi if ord(c) not in cmap]
    assert not missing, missing[:20]
    print(f"{OUT}: {os.path.getsize(OUT)} bytes, {len(check.getGlyphOrder())} glyphs, {len(cmap)} code points")


if __name__ == "__main__":
    main()
