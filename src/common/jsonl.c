/* JSONL reading on top of jansson. */
#define _GNU_SOURCE
#include "common/jsonl.h"
#include "common/common.h"

#include <errno.h>
#include <string.h>

struct ae_jsonl {
  FILE *f;
  char *name;
  char *line;   /* getline buffer (libc-allocated) */
  size_t cap;
  size_t line_no;
};

int ae_jsonl_open(FILE *f, const char *name, ae_jsonl **out) {
  ae_jsonl *r = ae__calloc(1, sizeof *r);
  if (!r) return ae__error(AE_ENOMEM, "%s: out of memory", name);
  r->name = ae__strdup(name ? name : "input");
  if (!r->name) { ae__free(r); return ae__error(AE_ENOMEM, "%s: out of memory", name); }
  r->f = f;
  *out = r;
  return AE_OK;
}

static int is_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
  return 1;
}

int ae__jsonl_parse(const char *line, size_t len, const char *name, size_t line_no,
                    json_t **val) {
  json_error_t err;
  *val = json_loadb(line, len, JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL | JSON_DECODE_ANY, &err);
  if (!*val)
    return ae__error(AE_EFORMAT, "%s:%zu: invalid JSON at column %d: %s", name, line_no,
                     err.column, err.text);
  /* Anything but whitespace after the value is an error, as in strict JSONL. */
  size_t used = (size_t)err.position;
  if (used < len && !is_blank(line + used, len - used)) {
    json_decref(*val);
    *val = NULL;
    return ae__error(AE_EFORMAT, "%s:%zu: extra data after the JSON value", name, line_no);
  }
  return AE_OK;
}

int ae_jsonl_next(ae_jsonl *r, json_t **val, size_t *line_no) {
  *val = NULL;
  for (;;) {
    errno = 0;
    ssize_t n = getline(&r->line, &r->cap, r->f);
    if (n < 0) {
      if (ferror(r->f)) return ae__error(AE_EIO, "%s: read failed: %s", r->name, strerror(errno));
      return 1;
    }
    r->line_no++;
    if (line_no) *line_no = r->line_no;
    if (is_blank(r->line, (size_t)n)) continue;
    return ae__jsonl_parse(r->line, (size_t)n, r->name, r->line_no, val);
  }
}

void ae_jsonl_close(ae_jsonl *r) {
  if (!r) return;
  free(r->line);
  ae__free(r->name);
  ae__free(r);
}
