/* astembed tokenize: JSONL {"text": ...} on stdin -> JSONL {"ids": [...]} on stdout, in
 * input order. A bad line gets {"error": "..."} in its place and the run goes on; the
 * exit status is 1 when any line failed. */
#include "cli.h"

#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f,
    "usage: astembed tokenize [--model DIR] [--max-length N]\n\n"
    "Reads JSONL {\"text\": ...} on stdin and writes JSONL {\"ids\": [...]} (with [CLS] and\n"
    "[SEP]) in the same order, using the model folder's tokenizer (tokenizer.json, else\n"
    "vocab.txt + tokenizer_config.json). A line that is not valid JSON or has no string\n"
    "\"text\" gets {\"error\": \"...\"} instead, and the exit status is then 1.\n\n"
    "  --model DIR       model folder (default $ASTEMBED_MODEL)\n"
    "  --max-length N    truncate to N ids keeping [CLS] ... [SEP]; 0 = no truncation.\n"
    "                    Default: the model's max length (sentence_bert_config.json\n"
    "                    max_seq_length, else tokenizer_config.json model_max_length,\n"
    "                    else config.json max_position_embeddings).\n");
}

/* Growable output line. */
typedef struct { char *s; size_t n, cap; } line_buf;

static int lb_reserve(line_buf *b, size_t extra) {
  if (b->n + extra <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->n + extra) cap *= 2;
  char *s = realloc(b->s, cap);
  if (!s) return -1;
  b->s = s;
  b->cap = cap;
  return 0;
}

static int write_ids(line_buf *b, const int32_t *ids, size_t n) {
  if (lb_reserve(b, 16 + n * 12)) return -1;
  b->n = 0;
  memcpy(b->s, "{\"ids\":[", 8);
  b->n = 8;
  for (size_t i = 0; i < n; i++)
    b->n += (size_t)sprintf(b->s + b->n, i ? ",%d" : "%d", ids[i]);
  memcpy(b->s + b->n, "]}\n", 3);
  b->n += 3;
  return fwrite(b->s, 1, b->n, stdout) == b->n ? 0 : -1;
}

static void write_error(const char *msg) {
  json_t *o = json_pack("{s:s}", "error", msg);
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  puts(s ? s : "{\"error\":\"out of memory\"}");
  free(s);
  json_decref(o);
}

/* Tokenizes one parsed line; returns 0 when it produced ids, 1 when it failed. */
static int tokenize_line(const ae_tokenizer *tok, json_t *v, size_t line_no, size_t max_len,
                         line_buf *out) {
  json_t *text = json_is_object(v) ? json_object_get(v, "text") : NULL;
  char msg[256];
  if (!json_is_string(text)) {
    snprintf(msg, sizeof msg, "stdin:%zu: %s", line_no,
             json_is_object(v) ? "missing string member \"text\"" : "line is not a JSON object");
    write_error(msg);
    return 1;
  }
  int32_t *ids;
  size_t n;
  int rc = ae_tokenizer_encode(tok, json_string_value(text), json_string_length(text), max_len,
                               &ids, &n, NULL);
  if (rc) {
    snprintf(msg, sizeof msg, "stdin:%zu: %s", line_no, ae_last_error());
    write_error(msg);
    return 1;
  }
  rc = write_ids(out, ids, n);
  ae_free(ids);
  if (rc) { write_error("out of memory or write failed"); return 1; }
  return 0;
}

int cmd_tokenize(int argc, char **argv) {
  const char *dir = cli_default_model();
  long long max_len = -1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return CLI_OK; }
    if (!strcmp(argv[i], "--model") && i + 1 < argc) { dir = argv[++i]; continue; }
    if (!strcmp(argv[i], "--max-length") && i + 1 < argc) {
      if (cli_parse_int("tokenize", argv[i], argv[i + 1], 0, INT_MAX, &max_len)) return CLI_USAGE;
      i++;
      continue;
    }
    fprintf(stderr, "astembed tokenize: unknown or incomplete option '%s'\n\n", argv[i]);
    usage(stderr);
    return CLI_USAGE;
  }
  if (!dir) {
    fprintf(stderr, "astembed tokenize: no model folder (--model DIR or $ASTEMBED_MODEL)\n");
    return CLI_USAGE;
  }
  ae_tokenizer *tok;
  int rc = ae_tokenizer_load(dir, &tok);
  if (rc) return cli_fail("loading the tokenizer", rc);
  int model_len;
  if (max_len < 0) {
    if ((rc = ae_model_max_length(dir, &model_len))) {
      ae_tokenizer_free(tok);
      return cli_fail("reading the model's max length", rc);
    }
    max_len = model_len;
  }
  ae_jsonl *r;
  if ((rc = ae_jsonl_open(stdin, "stdin", &r))) {
    ae_tokenizer_free(tok);
    return cli_fail("reading stdin", rc);
  }
  static char obuf[1 << 16];
  setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
  line_buf out = {0};
  size_t failed = 0, line_no;
  json_t *v;
  while ((rc = ae_jsonl_next(r, &v, &line_no)) != 1) {
    if (rc == AE_EIO) { rc = cli_fail("reading stdin", rc); goto done; }
    if (rc) { write_error(ae_last_error()); failed++; continue; }
    failed += (size_t)tokenize_line(tok, v, line_no, (size_t)max_len, &out);
    json_decref(v);
  }
  rc = failed ? CLI_FAIL : CLI_OK;
  if (failed) fprintf(stderr, "astembed tokenize: %zu line(s) failed\n", failed);
done:
  if (fflush(stdout)) rc = CLI_FAIL;
  free(out.s);
  ae_jsonl_close(r);
  ae_tokenizer_free(tok);
  return rc;
}
