/* astembed query: lexical, vector or hybrid search over the index.
 *
 * Vector and hybrid: the query text is embedded with the model the index was built
 * with (recorded in the database, so no --model is needed), then scored against every
 * stored vector of that model by exact cosine (one GEMV over a contiguous matrix, see
 * src/store); hybrid fuses that ranking with the lexical one (RRF). Lexical: FTS5
 * bm25() over the code tokenizer's index; the model is never loaded. Without --mode,
 * the index decides (ae_store_default_mode): hybrid with a real model's vectors,
 * lexical when it holds none or only a random-weight model's.
 *
 * Precision: an index embedded with --precision bf16 holds its vectors under the
 * bf16 fingerprint. Unless --precision is given, the query takes the precision
 * whose fingerprint the index recorded for this model (f32, else bf16). The query
 * encoder runs with AE_PREPACK_OFF, which computes in f32 whatever the precision,
 * so the choice only selects which stored vectors are searched.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f,
    "usage: astembed query \"TEXT\" [--db PATH] [--model DIR] [--top K] [--min-score S]\n"
    "                      [--format plain|json|markdown] [--lines N] [--threads N]\n"
    "                      [--precision f32|bf16] [--mode hybrid|vector|lexical]\n"
    "                      [--lang L] [--type T] [--path GLOB]\n\n"
    "Finds the stored annotations that best match TEXT: by words and identifiers\n"
    "(lexical: FTS5 bm25 over a code-aware tokenizer), by meaning (vector: exact cosine\n"
    "similarity over every vector of the model in the index), or both fused (hybrid).\n\n"
    "  --mode M           hybrid, vector or lexical (default: hybrid when the index holds\n"
    "                     vectors of a real model; lexical when it holds none or only\n"
    "                     those of a random-weight model). Lexical never loads a model\n"
    "  --lang L           only annotations of language L (e.g. python)\n"
    "  --type T           only annotations of node type T (e.g. function, class)\n"
    "  --path GLOB        only files matching GLOB (SQLite GLOB: '*' also crosses '/')\n"
    "  --db PATH          index database (default .astembed/index.db)\n"
    "  --model DIR        model folder (default: the one the index was built with,\n"
    "                     else $ASTEMBED_MODEL), or ORG/NAME[@REV] of the Hugging Face\n"
    "                     Hub, pulled when missing\n"
    "  --offline          no network (also HF_HUB_OFFLINE=1): a model name must be cached\n"
    "  --top K            results (default 10)\n"
    "  --min-score S      drop vector candidates below this cosine similarity (default -1;\n"
    "                     vector and hybrid modes)\n"
    "  --format F         plain (default), json or markdown\n"
    "  --lines N          snippet lines shown per result (default 3)\n"
    "  --threads N        encoder threads (default 1: one short text)\n"
    "  --precision P      search the vectors embedded at precision f32 or bf16 (default:\n"
    "                     the one the index recorded for the model)\n"
    "  --timing           print the time of each step to stderr\n"
    "  --no-load-cache    parse the model folder from scratch (default: a compiled\n"
    "                     tokenizer and the weights' checksum are kept in\n"
    "                     $ASTEMBED_CACHE_DIR, else $XDG_CACHE_HOME/astembed, else\n"
    "                     ~/.cache/astembed; ASTEMBED_CACHE_DIR=off disables it)\n");
}

enum { FMT_PLAIN, FMT_JSON, FMT_MD };

typedef struct {
  const char *text, *db, *model;
  const char *precision;   /* NULL = the recorded one */
  const char *lang, *type, *path_glob;
  int mode;                /* -1 = the index's default */
  long top, lines;
  double min_score;
  int format, threads, timing, no_load_cache;
} qopts;

static int num(const char *flag, const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || !*s || !(v >= lo && v <= hi)) {
    fprintf(stderr, "astembed query: bad %s '%s' (want a number in [%g, %g])\n", flag, s, lo, hi);
    return CLI_USAGE;
  }
  *out = v;
  return 0;
}

static int parse(int argc, char **argv, qopts *o) {
  memset(o, 0, sizeof *o);
  o->db = AE_STORE_DEFAULT_PATH;
  o->top = 10;
  o->lines = 3;
  o->min_score = -1;
  o->threads = 1;
  o->mode = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    double v;
    long long n;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return -1; }
    if (!strcmp(a, "--timing")) { o->timing = 1; continue; }
    if (!strcmp(a, "--no-load-cache")) { o->no_load_cache = 1; continue; }
    if (!strcmp(a, "--offline")) { cli_offline = 1; continue; }
    if (a[0] != '-' || !a[1]) {
      if (o->text) { fprintf(stderr, "astembed query: more than one query text (quote it)\n"); return CLI_USAGE; }
      o->text = a;
      continue;
    }
    if (i + 1 >= argc) { fprintf(stderr, "astembed query: unknown or incomplete option '%s'\n", a); return CLI_USAGE; }
    const char *val = argv[++i];
    if (!strcmp(a, "--db")) o->db = val;
    else if (!strcmp(a, "--model")) o->model = val;
    else if (!strcmp(a, "--lang")) o->lang = val;
    else if (!strcmp(a, "--type")) o->type = val;
    else if (!strcmp(a, "--path")) o->path_glob = val;
    else if (!strcmp(a, "--mode")) {
      if ((o->mode = ae_search_mode_parse(val)) < 0) {
        fprintf(stderr, "astembed query: bad --mode '%s' (hybrid, vector, lexical)\n", val);
        return CLI_USAGE;
      }
    }
    else if (!strcmp(a, "--precision")) {
      if (cli_parse_precision("query", val) < 0) return CLI_USAGE;
      o->precision = val;
    }
    else if (!strcmp(a, "--top")) { if (cli_parse_int("query", a, val, 1, 100000, &n)) return CLI_USAGE; o->top = (long)n; }
    else if (!strcmp(a, "--lines")) { if (cli_parse_int("query", a, val, 0, 1000, &n)) return CLI_USAGE; o->lines = (long)n; }
    else if (!strcmp(a, "--threads")) { if (cli_parse_int("query", a, val, 0, 1024, &n)) return CLI_USAGE; o->threads = (int)n; }
    else if (!strcmp(a, "--min-score")) { if (num(a, val, -1, 1, &v)) return CLI_USAGE; o->min_score = v; }
    else if (!strcmp(a, "--format")) {
      if (!strcmp(val, "plain")) o->format = FMT_PLAIN;
      else if (!strcmp(val, "json")) o->format = FMT_JSON;
      else if (!strcmp(val, "markdown") || !strcmp(val, "md")) o->format = FMT_MD;
      else { fprintf(stderr, "astembed query: bad --format '%s' (plain, json, markdown)\n", val); return CLI_USAGE; }
    } else { fprintf(stderr, "astembed query: unknown option '%s'\n", a); return CLI_USAGE; }
  }
  if (!o->text || !*o->text) { fprintf(stderr, "astembed query: no query text\n"); usage(stderr); return CLI_USAGE; }
  return 0;
}

/* The first n non-blank lines of a snippet, each trimmed on the right. */
static void snippet_lines(const char *s, long n, void (*emit)(void *, const char *, size_t), void *ud) {
  long shown = 0;
  while (*s && shown < n) {
    const char *e = strchr(s, '\n');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    size_t t = len;
    while (t && (s[t - 1] == ' ' || s[t - 1] == '\t' || s[t - 1] == '\r')) t--;
    if (t) { emit(ud, s, t); shown++; }
    if (!e) break;
    s = e + 1;
  }
}

static void emit_plain(void *ud, const char *s, size_t n) { (void)ud; printf("     | %.*s\n", (int)n, s); }
static void emit_md(void *ud, const char *s, size_t n) { (void)ud; printf("%.*s\n", (int)n, s); }

static void print_plain(const qopts *o, const ae_search_hit *h, size_t n) {
  if (!n) { printf("no results\n"); return; }
  for (size_t i = 0; i < n; i++) {
    printf("%2zu. %.4f  %s:%d", i + 1, h[i].score, h[i].file_path, h[i].start_line);
    if (h[i].end_line > h[i].start_line) printf("-%d", h[i].end_line);
    printf("  %s", h[i].node_type);
    if (h[i].lexical_rank && h[i].vector_rank) printf("  (lexical #%d, vector #%d)", h[i].lexical_rank, h[i].vector_rank);
    else if (o->mode == AE_SEARCH_HYBRID) printf("  (%s #%d only)", h[i].lexical_rank ? "lexical" : "vector",
                                                  h[i].lexical_rank ? h[i].lexical_rank : h[i].vector_rank);
    printf("\n     %s\n", *h[i].signature ? h[i].signature : h[i].node_id);
    snippet_lines(h[i].snippet, o->lines, emit_plain, NULL);
  }
}

static void print_md(const qopts *o, const ae_search_hit *h, size_t n, const char *lang_hint) {
  printf("## Results for \"%s\"\n\n", o->text);
  if (!n) { printf("No results.\n"); return; }
  for (size_t i = 0; i < n; i++) {
    printf("%zu. **`%s`** — `%s:%d` (score %.4f)\n\n", i + 1,
           *h[i].signature ? h[i].signature : h[i].node_id, h[i].file_path, h[i].start_line, h[i].score);
    if (o->lines && *h[i].snippet) {
      printf("```%s\n", lang_hint);
      snippet_lines(h[i].snippet, o->lines, emit_md, NULL);
      printf("```\n\n");
    }
  }
}

static void print_json(const qopts *o, const ae_search_hit *h, size_t n, const char *model) {
  char *s = ae_search_hits_json(o->text, o->mode, model, h, n, (int)o->lines);
  if (s) { puts(s); ae_free(s); }
}

static void print_hits(const qopts *o, const ae_search_hit *hits, size_t nh, const char *model) {
  if (o->format == FMT_JSON) print_json(o, hits, nh, model);
  else if (o->format == FMT_MD) print_md(o, hits, nh, "");
  else print_plain(o, hits, nh);
}

static void search_options(const qopts *o, ae_search_options *so) {
  ae_search_options_default(so);
  so->mode = o->mode;
  so->k = (size_t)o->top;
  so->min_score = (float)o->min_score;
  so->language = o->lang;
  so->node_type = o->type;
  so->path_glob = o->path_glob;
}

/* Lexical mode: the store alone, no model. */
static int query_lexical(const qopts *o, ae_store *st, double t0) {
  ae_search_options so;
  search_options(o, &so);
  ae_search_hit *hits = NULL;
  size_t nh = 0;
  int rc = ae_store_search_ex(st, &so, o->text, NULL, NULL, 0, &hits, &nh);
  double t_search = cli_now_ms();
  if (rc) return cli_fail("searching", rc);
  print_hits(o, hits, nh, NULL);
  if (o->timing)
    fprintf(stderr, "timing: open + lexical search %.1f ms, print %.1f ms, total %.1f ms\n", t_search - t0, cli_now_ms() - t_search, cli_now_ms() - t0);
  ae_search_hits_free(hits, nh);
  return CLI_OK;
}

int cmd_query(int argc, char **argv) {
  qopts o;
  int rc = parse(argc, argv, &o);
  if (rc) return rc < 0 ? CLI_OK : rc;
  double t0 = cli_now_ms();
  ae_store *st;
  if ((rc = ae_store_open(o.db, 1, &st))) return cli_fail("opening the index", rc);
  if (o.mode < 0) {
    const char *why;
    o.mode = ae_store_default_mode(st, &why);
    fprintf(stderr, "astembed: %s (--mode to choose)\n", why);
  }
  if (o.mode == AE_SEARCH_LEXICAL) {
    rc = query_lexical(&o, st, t0);
    ae_store_close(st);
    return rc;
  }
  char *recorded = NULL;
  uint8_t fp_rec[16];
  int dim_rec = 0;
  int have_rec = ae_store_model(st, NULL, &recorded, fp_rec, &dim_rec) == AE_OK;
  const char *model = o.model ? o.model : have_rec && *recorded ? recorded : cli_default_model();
  if (!model) {
    ae_free(recorded);
    ae_store_close(st);
    fprintf(stderr, "astembed query: %s records no model and no --model or ASTEMBED_MODEL was given"
                    " (--mode lexical needs none)\n", o.db);
    return CLI_USAGE;
  }
  char *folder;   /* ORG/NAME[@REV]: the cached snapshot, pulled when missing */
  if (cli_model_dir("query", model, 1, &folder)) {
    ae_free(recorded);
    ae_store_close(st);
    return CLI_FAIL;
  }
  model = folder;
  ae_encoder_options eo = {.threads = o.threads, .prepack = AE_PREPACK_OFF, /* one short text */
                           .cache_dir = o.no_load_cache ? NULL : cli_load_cache_dir(),
                           .precision = o.precision};
  ae_encoder *enc = NULL;
  if ((rc = ae_encoder_load(model, &eo, &enc))) {
    ae_free(recorded);
  free(folder);
    ae_store_close(st);
    return cli_fail("loading the model", rc);
  }
  double t_load = cli_now_ms();
  if (ae_model_is_random(model))
    fprintf(stderr, "astembed: note: %s has RANDOM weights: the vector ranking carries no meaning\n", model);
  uint8_t fp[16];
  ae_encoder_fingerprint(enc, fp);
  if (!o.precision && have_rec && memcmp(fp, fp_rec, 16)) {
    /* the index's model at another precision? (same query vector: see the top) */
    uint8_t as[16];
    if (ae_encoder_fingerprint_as(enc, "bf16", as) == AE_OK && !memcmp(as, fp_rec, 16))
      memcpy(fp, as, 16);
  }
  int dim = ae_encoder_dim(enc);
  float *q = malloc((size_t)dim * sizeof(float));
  size_t len = strlen(o.text);
  const char *texts[1] = {o.text};
  int status = AE_OK;
  ae_search_hit *hits = NULL;
  size_t nh = 0;
  rc = q ? ae_encoder_embed_texts(enc, texts, &len, 1, q, &status) : AE_ENOMEM;
  if (!rc) rc = status;
  double t_embed = cli_now_ms();
  size_t rows = 0;
  if (!rc && o.timing) rc = ae_store_matrix_rows(st, fp, &rows);
  double t_matrix = cli_now_ms();
  ae_search_options so;
  search_options(&o, &so);
  if (!rc) rc = ae_store_search_ex(st, &so, o.text, fp, q, dim, &hits, &nh);
  double t_search = cli_now_ms();
  if (rc) {
    int code = cli_fail("searching", rc);
    free(q);
    ae_encoder_free(enc);
    ae_free(recorded);
  free(folder);
    ae_store_close(st);
    return code;
  }
  print_hits(&o, hits, nh, model);
  if (o.timing)
    fprintf(stderr, "timing: open+model load %.1f ms, embed query %.1f ms, load %zu vectors %.1f ms,"
            " %s search top-%ld %.1f ms, print %.1f ms, total %.1f ms\n", t_load - t0, t_embed - t_load, rows,
            t_matrix - t_embed, ae_search_mode_name(o.mode), o.top, t_search - t_matrix,
            cli_now_ms() - t_search, cli_now_ms() - t0);
  ae_search_hits_free(hits, nh);
  free(q);
  ae_encoder_free(enc);
  ae_free(recorded);
  free(folder);
  ae_store_close(st);
  return CLI_OK;
}
