/* Unicode helpers for the tokenizer: character classes exactly as the Rust
 * `tokenizers` library sees them, NFD and lowercase through utf8proc, and a UTF-8
 * decoder that replaces invalid bytes the way every UTF-8 -> string conversion on the
 * reference side does (one U+FFFD per maximal subpart). */
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode_tables.h"

#include <utf8proc.h>

/* Binary search in the generated range table; 0 when c is in no range. */
static int uc_flags(uint32_t c) {
  size_t lo = 0, hi = sizeof ae__uc_ranges / sizeof ae__uc_ranges[0];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (c < ae__uc_ranges[mid].lo) hi = mid;
    else if (c > ae__uc_ranges[mid].hi) lo = mid + 1;
    else return ae__uc_ranges[mid].flags;
  }
  return 0;
}

int ae__uc_is_other(uint32_t c) {
  if (c < 0x80) return c < 0x20 || c == 0x7F;
  return (uc_flags(c) & AE_UC_OTHER) != 0;
}

int ae__uc_is_mn(uint32_t c) { return c >= 0x300 && (uc_flags(c) & AE_UC_MN) != 0; }

int ae__uc_is_punct(uint32_t c) {
  if (c < 0x80)
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
           (c >= 123 && c <= 126);
  return (uc_flags(c) & AE_UC_PUNCT) != 0;
}

/* The White_Space property, which is what Rust's char::is_whitespace tests. */
int ae__uc_is_space(uint32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  switch (c) {
  case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F:
  case 0x205F: case 0x3000:
    return 1;
  default:
    return c >= 0x2000 && c <= 0x200A;
  }
}

/* BertNormalizer's ranges. Note 0x2B920 (not 0x2B820, as in Google's original BERT):
 * the Rust library starts Extension E there, so U+2B820..U+2B91F are not padded;
 * confirmed against the reference binding. */
int ae__uc_is_chinese(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

int ae__uc_is_word(uint32_t c) {
  if (c < 0x80)
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '_';
  if (c == 0x200C || c == 0x200D) return 1;
  switch (utf8proc_category((utf8proc_int32_t)c)) {
  case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
  case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
  case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
  case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: case UTF8PROC_CATEGORY_PC:
    return 1;
  default:
    return 0;
  }
}

int ae__uc_decompose(uint32_t c, uint32_t *out, int cap) {
  int last = 0;
  utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)c, (utf8proc_int32_t *)out,
                                               cap, UTF8PROC_DECOMPOSE, &last);
  if (n < 1 || n > cap) { out[0] = c; return 1; }
  return (int)n;
}

int ae__uc_ccc(uint32_t c) {
  if (c < 0x300) return 0;
  return utf8proc_get_property((utf8proc_int32_t)c)->combining_class;
}

/* Rust's char::to_lowercase applies the unconditional full mappings of
 * SpecialCasing.txt on top of the simple mapping; for lowercase the only one is
 * U+0130 LATIN CAPITAL LETTER I WITH DOT ABOVE -> "i" + U+0307. */
int ae__uc_lower(uint32_t c, uint32_t out[2]) {
  if (c < 0x80) { out[0] = (c >= 'A' && c <= 'Z') ? c + 32 : c; return 1; }
  if (c == 0x130) { out[0] = 'i'; out[1] = 0x307; return 2; }
  out[0] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
  return 1;
}

/* Well-formed UTF-8 per Unicode table 3-7. On an ill-formed sequence the maximal
 * subpart (the longest prefix that could start a valid sequence) becomes one U+FFFD
 * and decoding resumes at the offending byte. */
size_t ae__utf8_decode(const uint8_t *s, size_t n, uint32_t *c) {
  uint8_t b = s[0];
  if (b < 0x80) { *c = b; return 1; }
  int need;
  uint8_t lo = 0x80, hi = 0xBF;
  uint32_t v;
  if (b >= 0xC2 && b <= 0xDF) { need = 1; v = b & 0x1F; }
  else if (b >= 0xE0 && b <= 0xEF) {
    need = 2; v = b & 0x0F;
    if (b == 0xE0) lo = 0xA0;
    else if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3; v = b & 0x07;
    if (b == 0xF0) lo = 0x90;
    else if (b == 0xF4) hi = 0x8F;
  } else { *c = 0xFFFD; return 1; }
  size_t i = 1;
  for (int k = 0; k < need; k++, i++) {
    if (i >= n) { *c = 0xFFFD; return i; }
    uint8_t t = s[i];
    if (t < lo || t > hi) { *c = 0xFFFD; return i; }
    lo = 0x80; hi = 0xBF;
    v = (v << 6) | (t & 0x3F);
  }
  *c = v;
  return i;
}

int ae__utf8_encode(uint32_t c, uint8_t *out) {
  if (c < 0x80) { out[0] = (uint8_t)c; return 1; }
  if (c < 0x800) {
    out[0] = (uint8_t)(0xC0 | (c >> 6));
    out[1] = (uint8_t)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    out[0] = (uint8_t)(0xE0 | (c >> 12));
    out[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
    out[2] = (uint8_t)(0x80 | (c & 0x3F));
    return 3;
  }
  out[0] = (uint8_t)(0xF0 | (c >> 18));
  out[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
  out[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
  out[3] = (uint8_t)(0x80 | (c & 0x3F));
  return 4;
}
