/* A growable byte buffer used by the text cleaners and the configuration writer.
 * Allocation failure is sticky: after it, appends are ignored and sb_finish returns
 * NULL. */
#ifndef AE_STRBUF_H
#define AE_STRBUF_H
#include "common/common.h"
#include <string.h>

typedef struct {
  char *p;
  size_t n, cap;
  int failed;
} ae__sb;

static inline void sb_reserve(ae__sb *b, size_t extra) {
  if (b->failed || b->n + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->n + extra + 1) cap *= 2;
  char *np = ae__realloc(b->p, cap);
  if (!np) { b->failed = 1; return; }
  b->p = np;
  b->cap = cap;
}
static inline void sb_putn(ae__sb *b, const char *s, size_t n) {
  sb_reserve(b, n);
  if (b->failed) return;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}
static inline void sb_puts(ae__sb *b, const char *s) { sb_putn(b, s, strlen(s)); }
static inline void sb_putc(ae__sb *b, char c) { sb_putn(b, &c, 1); }
/* Returns the NUL-terminated string (caller frees with ae__free), or NULL on failure. */
static inline char *sb_finish(ae__sb *b, size_t *len) {
  if (!b->failed) sb_reserve(b, 0);
  if (b->failed) { ae__free(b->p); b->p = NULL; return NULL; }
  b->p[b->n] = 0;
  if (len) *len = b->n;
  char *r = b->p;
  b->p = NULL;
  b->n = b->cap = 0;
  return r;
}
#endif
