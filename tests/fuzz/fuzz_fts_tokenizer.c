/* libFuzzer target: the astcode FTS5 tokenizer (document and query mode) and the
 * MATCH expression builder on arbitrary bytes. Every token is non-empty, at most
 * AE__LEX_MAX_TOKEN bytes, holds no ASCII upper case, space, '"' or NUL, lies within
 * the input ([start, end) in bounds), and only the whole-word token is colocated;
 * the expression is a list of quoted terms joined by " OR ". */
#include "common/common.h"
#include "store/lexical.h"

#include <stdlib.h>
#include <string.h>

typedef struct { int len, tokens, mode_query; } ctx;

static int check(void *ud, int flags, const char *t, int n, int s, int e) {
  ctx *c = ud;
  if (n <= 0 || n > AE__LEX_MAX_TOKEN || s < 0 || e > c->len || s >= e) abort();
  if (flags & ~FTS5_TOKEN_COLOCATED) abort();
  if ((flags & FTS5_TOKEN_COLOCATED) && (c->tokens == 0 || c->mode_query)) abort();
  for (int i = 0; i < n; i++) {
    unsigned char b = (unsigned char)t[i];
    if (!c->mode_query && ((b >= 'A' && b <= 'Z') || b == ' ' || b == '"' || b == 0)) abort();
  }
  c->tokens++;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1 << 20)) return 0;
  ctx c = {(int)size, 0, 0};
  ae__lex_tokenize((const char *)data, (int)size, check, &c);
  ctx q = {(int)size, 0, 1};
  ae__lex_tokenize_terms((const char *)data, (int)size, check, &q);
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  int n = 0;
  char *e = ae__lex_match_expr(text, &n);
  if (!e) abort();
  /* "t1" OR "t2" ...: quotes balanced, n terms */
  int quotes = 0;
  for (const char *p = e; *p; p++) quotes += *p == '"';
  if (quotes != 2 * n || (n == 0) != (*e == 0)) abort();
  ae__free(e);
  free(text);
  return 0;
}
