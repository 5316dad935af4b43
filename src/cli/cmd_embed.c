/* astembed embed: annotations in, vectors in the index database.
 *
 * Reads JSONL (or the original's SQLite annotations table), runs the generator with
 * the cache, batch optimizer and memory processor in the path, and writes each batch
 * to the store in one transaction. Items already embedded with the same text and the
 * same model are not recomputed, so an interrupted or killed run resumes where it
 * stopped. SIGINT finishes the batch in flight, commits it and exits (status 130).
 */
#define _GNU_SOURCE
#include "cli.h"

#include <jansson.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define EMBED_CHUNK 16384 /* items per generator call: bounds the result memory */

static void usage(FILE *f) {
  fprintf(f,
    "usage: astembed embed [--input FILE.jsonl | --annotations-db FILE] [--db PATH]\n"
    "                      [--model DIR] [--config FILE] [--preset production|development]\n"
    "                      [--threads N] [--precision f32|bf16] [--dry-run] [--force]\n"
    "                      [--prune] [--json] [--lexical-only]\n"
    "                      [--log-level error|warn|info|debug] [--no-progress]\n\n"
    "Embeds code annotations and stores the vectors in the index database\n"
    "(default .astembed/index.db). Input: JSONL records {nodeId, signature, summary,\n"
    "sourceSnippet, metadata{file_path, start_line, end_line, node_type, language}}\n"
    "(--input, '-' = stdin) or the SQLite 'annotations' table of the original tool\n"
    "(--annotations-db). Bad records are reported and skipped.\n\n"
    "  --model DIR        model folder (default: $ASTEMBED_MODEL, or the config's model.path),\n"
    "                     or ORG/NAME[@REV] of the Hugging Face Hub, pulled when missing\n"
    "  --offline          no network (also HF_HUB_OFFLINE=1): a model name must be cached\n"
    "  --config FILE      generator configuration (JSON; see config/production.json)\n"
    "  --preset NAME      start from the production or development preset\n"
    "  --threads N        encoder threads (default: all CPUs)\n"
    "  --precision P      f32 (default, or the config's model.precision) or bf16: bf16 GEMM\n"
    "                     inputs, about 2x faster on AVX512-BF16 CPUs, vectors within cosine\n"
    "                     0.9999 of f32; stored apart from f32 vectors (query finds them)\n"
    "  --dry-run          report what would be embedded; write nothing\n"
    "  --force            re-embed everything, ignoring cached and stored vectors\n"
    "  --prune            delete stored nodes of the input's files that the input no longer has\n"
    "  --lexical-only     index the annotations for lexical search only: no model, no vectors\n"
    "  --json             print the summary (with the metrics) as JSON on stdout\n"
    "  --log-level L      stderr log lines: error, warn, info (default), debug\n"
    "  --no-progress      no progress bar even on a terminal\n");
}

/* ---- logging and progress ---------------------------------------------------------- */

static double now_s(void) { return cli_now_ms() / 1000.0; }

typedef struct {
  int level;
  int bar;              /* a progress bar is on screen */
  int bar_enabled;
  double t0, last_draw;
  size_t base_done, grand_total; /* over all chunks */
  size_t last_done, last_hits, base_hits;
} ui;

static const char *level_name(int l) {
  static const char *n[] = {"error", "warn", "info", "debug"};
  return l >= 0 && l <= 3 ? n[l] : "?";
}

static void clear_bar(ui *u) {
  if (u->bar) { fputs("\r\033[K", stderr); u->bar = 0; }
}

static void on_log(void *ud, int level, const char *msg) {
  ui *u = ud;
  if (level > u->level) return;
  clear_bar(u);
  fprintf(stderr, "astembed: %s: %s\n", level_name(level), msg);
}

static void fmt_secs(char *b, size_t n, double s) {
  if (s < 0 || s > 1e7) snprintf(b, n, "--");
  else if (s >= 3600) snprintf(b, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
  else if (s >= 60) snprintf(b, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
  else snprintf(b, n, "%.0fs", s);
}

static void draw(ui *u, int force) {
  double now = now_s();
  if (!force && now - u->last_draw < 0.1) return;
  u->last_draw = now;
  size_t done = u->base_done + u->last_done, total = u->grand_total, hits = u->base_hits + u->last_hits;
  double el = now - u->t0, rate = el > 0 ? (double)done / el : 0;
  char eta[16];
  fmt_secs(eta, sizeof eta, rate > 0 ? (double)(total - done) / rate : -1);
  int w = 30, fill = total ? (int)((double)done / (double)total * w) : w;
  char barbuf[64];
  for (int i = 0; i < w; i++) barbuf[i] = i < fill ? '#' : '.';
  barbuf[w] = 0;
  fprintf(stderr, "\r\033[K[%s] %zu/%zu %3.0f%%  %.1f items/s  ETA %s  cache hits %zu", barbuf, done,
          total, total ? 100.0 * (double)done / (double)total : 100.0, rate, eta, hits);
  u->bar = 1;
}

static void on_progress(void *ud, size_t done, size_t total, size_t hits) {
  ui *u = ud;
  u->last_done = done;
  u->last_hits = hits;
  if (u->bar_enabled) draw(u, done == total);
}

static void on_input_error(void *ud, const char *where, const char *msg) {
  ui *u = ud;
  if (u->level >= AE_LOG_WARN) fprintf(stderr, "astembed: warn: skipped %s: %s\n", where, msg);
}

/* ---- SIGINT ------------------------------------------------------------------------ */

static ae_generator *volatile g_gen;
static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig) {
  (void)sig;
  g_interrupted = 1;
  if (g_gen) ae_generator_cancel(g_gen);
}

/* ---- options ------------------------------------------------------------------------ */

typedef struct {
  const char *input, *annotations_db, *db, *model, *config, *preset;
  int precision;        /* -1 = the config's model.precision, else AE_PRECISION_* */
  int threads, dry_run, force, prune, json, log_level, progress, lexical_only;
} opts;

static int parse_level(const char *s) {
  for (int l = 0; l <= 3; l++) if (!strcasecmp(s, level_name(l))) return l;
  if (!strcasecmp(s, "warning")) return AE_LOG_WARN;
  return -1;
}

static int parse(int argc, char **argv, opts *o) {
  memset(o, 0, sizeof *o);
  o->db = AE_STORE_DEFAULT_PATH;
  o->log_level = AE_LOG_INFO;
  o->progress = 1;
  o->precision = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return -1; }
    else if (!strcmp(a, "--dry-run")) o->dry_run = 1;
    else if (!strcmp(a, "--force")) o->force = 1;
    else if (!strcmp(a, "--prune")) o->prune = 1;
    else if (!strcmp(a, "--lexical-only")) o->lexical_only = 1;
    else if (!strcmp(a, "--json")) o->json = 1;
    else if (!strcmp(a, "--no-progress")) o->progress = 0;
    else if (!strcmp(a, "--offline")) cli_offline = 1;
    else if (!has) { fprintf(stderr, "astembed embed: unknown or incomplete option '%s'\n", a); return CLI_USAGE; }
    else if (!strcmp(a, "--input")) o->input = argv[++i];
    else if (!strcmp(a, "--annotations-db")) o->annotations_db = argv[++i];
    else if (!strcmp(a, "--db")) o->db = argv[++i];
    else if (!strcmp(a, "--model")) o->model = argv[++i];
    else if (!strcmp(a, "--config")) o->config = argv[++i];
    else if (!strcmp(a, "--preset")) o->preset = argv[++i];
    else if (!strcmp(a, "--precision")) {
      if ((o->precision = cli_parse_precision("embed", argv[++i])) < 0) return CLI_USAGE;
    } else if (!strcmp(a, "--threads")) {
      long long t;
      if (cli_parse_int("embed", a, argv[++i], 0, 1024, &t)) return CLI_USAGE;
      o->threads = (int)t;
    } else if (!strcmp(a, "--log-level")) {
      if ((o->log_level = parse_level(argv[++i])) < 0) {
        fprintf(stderr, "astembed embed: bad --log-level '%s' (error, warn, info, debug)\n", argv[i]);
        return CLI_USAGE;
      }
    } else { fprintf(stderr, "astembed embed: unknown option '%s'\n", a); return CLI_USAGE; }
  }
  if (!!o->input == !!o->annotations_db) {
    fprintf(stderr, "astembed embed: give exactly one of --input FILE.jsonl or --annotations-db FILE\n");
    return CLI_USAGE;
  }
  if (o->lexical_only && (o->model || o->precision >= 0 || o->force)) {
    fprintf(stderr, "astembed embed: --lexical-only uses no model (drop --model, --precision, --force)\n");
    return CLI_USAGE;
  }
  if (o->preset && strcmp(o->preset, "production") && strcmp(o->preset, "development")) {
    fprintf(stderr, "astembed embed: bad --preset '%s' (production or development)\n", o->preset);
    return CLI_USAGE;
  }
  return 0;
}

static uint64_t peak_rss(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)ru.ru_maxrss * 1024;
}

/* ---- dry run --------------------------------------------------------------------------- */

/* What a run would do: texts built, tokens counted, stored vectors checked; nothing is
 * written and the encoder never runs. Exits 1, as a run would, when input records were
 * rejected (rejected) or give no text. */
static int dry_run(const opts *o, const ae_generator_config *cfg, const ae_annotation *items, size_t n,
                   size_t rejected) {
  /* a dry run only tokenizes: no need to reorder the weights */
  ae_encoder_options eo = {.threads = cfg->model.threads, .max_length = cfg->model.max_length,
                           .prepack = AE_PREPACK_OFF, .cache_dir = cli_load_cache_dir(),
                           .precision = ae_precision_name(cfg->model.precision)};
  ae_encoder *enc;
  int rc = ae_encoder_load(cfg->model.path, &eo, &enc);
  if (rc) return cli_fail("loading the model", rc);
  uint8_t fp[16];
  ae_encoder_fingerprint(enc, fp);
  int dim = ae_encoder_dim(enc);
  ae_store *st = NULL;
  if (access(o->db, F_OK) == 0 && ae_store_open(o->db, 1, &st) != AE_OK) st = NULL;
  size_t bad = 0, stored = 0, truncated = 0, tokens = 0;
  float *v = malloc((size_t)dim * sizeof(float));
  for (size_t i = 0; i < n; i++) {
    char *t; size_t len; int capped;
    if (ae_annotation_text(&items[i], &cfg->model.text, &t, &len, &capped)) { bad++; continue; }
    uint8_t h[16]; int same;
    ae_text_hash(t, len, h);
    if (!o->force && st && ae_store_lookup(st, fp, items[i].node_id, h, v, dim, &same, NULL) == AE_OK && same) {
      stored++;
    } else {
      int32_t *ids; size_t nid; int tr = 0;
      if (ae_tokenizer_encode(ae_encoder_tokenizer(enc), t, len, (size_t)ae_encoder_max_length(enc), &ids, &nid, &tr) == AE_OK) {
        tokens += nid;
        truncated += tr || capped;
        ae_free(ids);
      } else bad++;
    }
    ae_free(t);
  }
  free(v);
  size_t todo = n - bad - stored;
  if (o->json)
    printf("{\"dryRun\": true, \"items\": %zu, \"alreadyStored\": %zu, \"toEmbed\": %zu, \"tokens\": %zu,"
           " \"truncated\": %zu, \"invalid\": %zu}\n", n, stored, todo, tokens, truncated, bad);
  else
    printf("dry run: %zu items: %zu already stored for this model, %zu to embed (%zu tokens, %zu truncated at %d),"
           " %zu without text\n", n, stored, todo, tokens, truncated, ae_encoder_max_length(enc), bad);
  ae_store_close(st);
  ae_encoder_free(enc);
  return bad || rejected ? CLI_FAIL : CLI_OK;
}

/* ---- run -------------------------------------------------------------------------------- */

/* --lexical-only: annotation rows (and so the lexical index, which the store keeps in
 * step) without a model; LEXICAL_TX items per transaction. The text hash is the one
 * an embed with the default text options computes, so a later embed with a model
 * finds the rows unchanged and adds only the vectors. */
#define LEXICAL_TX 512
static int embed_lexical_only(const opts *o, const ae_annotation *items, size_t n, size_t rejected) {
  double t0 = now_s();
  ae_store *st;
  int rc = ae_store_open(o->db, 0, &st);
  if (rc) return cli_fail("opening the index", rc);
  ae_text_options to;
  ae_text_options_default(&to);
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, &old);
  size_t indexed = 0, failed = 0, done = 0;
  for (size_t s = 0; s < n && !rc && !g_interrupted; s += LEXICAL_TX) {
    size_t m = n - s < LEXICAL_TX ? n - s : LEXICAL_TX, ok = 0;
    if ((rc = ae_store_begin(st))) break;
    for (size_t i = s; i < s + m && !rc; i++) {
      char *text; size_t len;
      if (ae_annotation_text(&items[i], &to, &text, &len, NULL)) {
        if (failed++ < 20 && o->log_level >= AE_LOG_WARN)
          fprintf(stderr, "astembed: warn: %s: %s\n", items[i].node_id, ae_last_error());
        continue;
      }
      uint8_t h[16];
      ae_text_hash(text, len, h);
      ae_free(text);
      rc = ae_store_put(st, &items[i], h, NULL, NULL, 0, -1);
      ok++;
    }
    if (!rc) rc = ae_store_commit(st);
    else ae_store_rollback(st);
    if (!rc) { indexed += ok; done = s + m; }
  }
  size_t pruned = 0;
  if (!rc && o->prune && !g_interrupted) rc = ae_store_prune(st, items, n, &pruned);
  sigaction(SIGINT, &old, NULL);
  if (rc) {
    int code = cli_fail("indexing", rc);
    ae_store_close(st);
    return code;
  }
  uint64_t ann = 0, lex = 0;
  rc = ae_store_lexical_count(st, &ann, &lex);
  ae_store_close(st);
  if (rc) return cli_fail("checking the lexical index", rc);
  double secs = now_s() - t0;
  if (o->json)
    printf("{\"items\": %zu, \"indexed\": %zu, \"failed\": %zu, \"rejected\": %zu, \"notReached\": %zu,"
           " \"pruned\": %zu, \"lexicalRows\": %llu, \"seconds\": %.3f, \"db\": \"%s\"}\n", n + rejected, indexed,
           failed, rejected, n - done, pruned, (unsigned long long)lex, secs, o->db);
  else
    fprintf(stderr, "%s: %zu items: %zu indexed for lexical search (no model), %zu failed, %zu rejected%s"
            " in %.2f s; the index holds %llu annotations -> %s\n", g_interrupted ? "interrupted" : "done",
            n + rejected, indexed, failed, rejected, o->prune ? ", pruned" : "", secs,
            (unsigned long long)lex, o->db);
  return g_interrupted ? 130 : failed || rejected ? CLI_FAIL : CLI_OK;
}

static int cmd_embed_lexical(const opts *o) {
  ui u;
  memset(&u, 0, sizeof u);
  u.level = o->log_level;
  ae_annotation_set *set;
  int rc = o->input ? ae_annotations_load_jsonl(o->input, on_input_error, &u, &set)
                    : ae_annotations_load_db(o->annotations_db, on_input_error, &u, &set);
  if (rc) return cli_fail("reading annotations", rc);
  if (o->dry_run) {
    printf("dry run: %zu items would be indexed for lexical search (no model)\n", ae_annotation_set_count(set));
    rc = CLI_OK;
  } else
    rc = embed_lexical_only(o, ae_annotation_set_items(set), ae_annotation_set_count(set),
                            ae_annotation_set_rejected(set));
  ae_annotation_set_free(set);
  return rc;
}

int cmd_embed(int argc, char **argv) {
  opts o;
  int rc = parse(argc, argv, &o);
  if (rc) return rc < 0 ? CLI_OK : rc;
  ae_generator_config cfg;
  ae_generator_config_default(&cfg);
  if (o.preset && (rc = ae_generator_config_preset(&cfg, o.preset))) return cli_fail("--preset", rc);
  if (o.config && (rc = ae_generator_config_load_file(&cfg, o.config))) return cli_fail("--config", rc);
  if (o.lexical_only) return cmd_embed_lexical(&o);
  const char *model = o.model ? o.model : cfg.model.path[0] ? cfg.model.path : cli_default_model();
  if (!model) {
    fprintf(stderr, "astembed embed: no model folder: give --model DIR or set ASTEMBED_MODEL\n");
    return CLI_USAGE;
  }
  char *folder;   /* ORG/NAME[@REV]: the cached snapshot, pulled when missing */
  if (cli_model_dir("embed", model, o.progress && !o.json, &folder)) return CLI_FAIL;
  snprintf(cfg.model.path, sizeof cfg.model.path, "%s", folder);
  free(folder);
  if (o.threads) cfg.model.threads = o.threads;
  if (o.precision >= 0) cfg.model.precision = o.precision;

  if (o.log_level >= AE_LOG_DEBUG) {
    const char *wp = getenv("OMP_WAIT_POLICY");
    fprintf(stderr, "astembed: debug: OpenMP wait policy %s\n", wp ? wp : "default (spin, then sleep)");
  }
  ui u;
  memset(&u, 0, sizeof u);
  u.level = o.log_level;
  u.bar_enabled = o.progress && isatty(STDERR_FILENO) && o.log_level < AE_LOG_DEBUG;
  u.t0 = now_s();
  ae_annotation_set *set;
  rc = o.input ? ae_annotations_load_jsonl(o.input, on_input_error, &u, &set)
               : ae_annotations_load_db(o.annotations_db, on_input_error, &u, &set);
  if (rc) return cli_fail("reading annotations", rc);
  size_t n = ae_annotation_set_count(set), rejected = ae_annotation_set_rejected(set);
  const ae_annotation *items = ae_annotation_set_items(set);
  if (ae_model_is_random(cfg.model.path))
    fprintf(stderr, "astembed: note: %s has RANDOM weights (made by 'astembed model init-random'):"
                    " the vectors carry no meaning\n", cfg.model.path);
  if (o.dry_run) {
    rc = dry_run(&o, &cfg, items, n, rejected);
    ae_annotation_set_free(set);
    return rc;
  }

  /* Nothing is written before the work can start: the model loads (generator init)
   * before the index is opened, which creates it and its folder. Only a store-only
   * generator (model disabled) needs the index to start, and opens it first. */
  ae_store *store = NULL;
  ae_generator *g = NULL;
  const char *stage = "opening the index";
  int store_first = !cfg.model.enabled;
  if (store_first && (rc = ae_store_open(o.db, 0, &store))) goto fail;
  stage = "starting the generator";
  if ((rc = ae_generator_new(&cfg, &g)) || (store && (rc = ae_generator_set_store(g, store)))) goto fail;
  ae_generator_set_force(g, o.force);
  if ((rc = ae_generator_set_load_cache_dir(g, cli_load_cache_dir()))) goto fail;
  ae_generator_set_log(g, on_log, &u, o.log_level);
  ae_generator_set_progress(g, on_progress, &u);
  if ((rc = ae_generator_init(g))) goto fail;
  if (!store_first) {
    stage = "opening the index";
    if ((rc = ae_store_open(o.db, 0, &store)) || (rc = ae_generator_set_store(g, store))) goto fail;
  }

  g_gen = g;
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, &old);

  ae_embed_result *res = calloc(EMBED_CHUNK, sizeof *res);
  size_t embedded = 0, cached = 0, failed = 0, truncated = 0, interrupted = 0, shown_fail = 0;
  u.grand_total = n;
  int run_rc = AE_OK;
  for (size_t s = 0; s < n && res; s += EMBED_CHUNK) {
    size_t m = n - s < EMBED_CHUNK ? n - s : EMBED_CHUNK;
    u.last_done = u.last_hits = 0;
    run_rc = ae_generator_embed(g, items + s, m, res);
    for (size_t i = 0; i < m; i++) {
      ae_embed_result *r = &res[i];
      if (r->status == AE_EINTR) { interrupted++; continue; }
      if (r->status) {
        failed++;
        if (shown_fail++ < 20 && o.log_level >= AE_LOG_WARN) {
          clear_bar(&u);
          fprintf(stderr, "astembed: warn: %s: %s\n", r->node_id, r->error);
        }
        continue;
      }
      if (r->from_cache) cached++;
      else embedded++;
      truncated += r->truncated != 0;
    }
    ae_embed_results_free(res, m);
    u.base_done += m;
    u.base_hits += u.last_hits;
    u.last_done = u.last_hits = 0;
    if (run_rc == AE_EINTR || g_interrupted) break;
    if (run_rc) break;
  }
  if (!res) {
    fprintf(stderr, "astembed embed: out of memory for the results\n");
    run_rc = AE_ENOMEM;
  }
  free(res);
  if (shown_fail > 20) fprintf(stderr, "astembed: warn: ... and %zu more failed items\n", shown_fail - 20);
  if (u.bar_enabled) { draw(&u, 1); clear_bar(&u); }
  interrupted += n > u.base_done ? n - u.base_done : 0;

  size_t pruned = 0;
  if (o.prune && !g_interrupted && run_rc == AE_OK) {
    int prc = ae_store_prune(store, items, n, &pruned);
    if (prc) { cli_fail("pruning", prc); run_rc = prc; }
  }
  /* write the search snapshot now, so the first query does not pay for it */
  if (!g_interrupted && run_rc == AE_OK) {
    uint8_t fp[16];
    size_t rows;
    ae_generator_fingerprint(g, fp);
    if (ae_store_matrix_rows(store, fp, &rows) != AE_OK && o.log_level >= AE_LOG_WARN)
      fprintf(stderr, "astembed: warn: search snapshot not written: %s\n", ae_last_error());
  }
  double secs = now_s() - u.t0;
  uint64_t rss = peak_rss();
  if (o.json) {
    char *mj = ae_generator_metrics_json(g);
    json_t *out = json_object(), *metrics = mj ? json_loads(mj, 0, NULL) : NULL;
    ae_free(mj);
    json_object_set_new(out, "items", json_integer((json_int_t)(n + rejected)));
    json_object_set_new(out, "embedded", json_integer((json_int_t)embedded));
    json_object_set_new(out, "cached", json_integer((json_int_t)cached));
    json_object_set_new(out, "failed", json_integer((json_int_t)failed));
    json_object_set_new(out, "rejected", json_integer((json_int_t)rejected));
    json_object_set_new(out, "truncated", json_integer((json_int_t)truncated));
    json_object_set_new(out, "interrupted", json_integer((json_int_t)interrupted));
    json_object_set_new(out, "pruned", json_integer((json_int_t)pruned));
    json_object_set_new(out, "seconds", json_real(secs));
    json_object_set_new(out, "peakRssBytes", json_integer((json_int_t)rss));
    json_object_set_new(out, "db", json_string(o.db));
    json_object_set_new(out, "metrics", metrics ? metrics : json_null());
    char *txt = json_dumps(out, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (txt) { puts(txt); free(txt); }
    json_decref(out);
  } else {
    fprintf(stderr, "%s: %zu items: %zu embedded, %zu cached, %zu failed, %zu rejected, %zu truncated",
            g_interrupted ? "interrupted" : "done", n + rejected, embedded, cached, failed, rejected, truncated);
    if (interrupted) fprintf(stderr, ", %zu not reached", interrupted);
    if (o.prune) fprintf(stderr, ", %zu pruned", pruned);
    fprintf(stderr, " in %.2f s (%.1f items/s), peak RSS %.0f MB -> %s\n", secs,
            secs > 0 ? (double)(embedded + cached) / secs : 0, (double)rss / 1048576.0, o.db);
  }
  sigaction(SIGINT, &old, NULL);
  g_gen = NULL;
  ae_generator_free(g);
  ae_store_close(store);
  ae_annotation_set_free(set);
  if (g_interrupted) return 130;
  if (run_rc && run_rc != AE_EINTR) return cli_fail("embedding", run_rc);
  /* one bad record never sinks the batch, but the run says it was not clean */
  return failed || rejected ? CLI_FAIL : CLI_OK;
fail:
  {
    int code = cli_fail(stage, rc);
    ae_generator_free(g);
    ae_store_close(store);
    ae_annotation_set_free(set);
    return code;
  }
}
