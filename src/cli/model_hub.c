/* Models by name on the command line: `astembed model pull | list | rm`, the progress
 * display of a pull, and cli_model_dir, which turns a --model value (a folder, or
 * ORG/NAME[@REV] of the Hugging Face Hub) into a folder for embed, encode, query and
 * model info, pulling a missing model first unless the network is off. Everything
 * here goes through the public API (ae_hub_*). */
#define _GNU_SOURCE
#include <astembed.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_offline;

/* ---- progress ---------------------------------------------------------------------- */

typedef struct {
  int tty, quiet;
  double t_file, t_all, last;
  int line_open;
} bar;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *human(uint64_t b, char *buf, size_t cap) {
  if (b >= 1u << 30) snprintf(buf, cap, "%.2f GB", b / 1073741824.0);
  else if (b >= 1u << 20) snprintf(buf, cap, "%.1f MB", b / 1048576.0);
  else if (b >= 1024) snprintf(buf, cap, "%.1f kB", b / 1024.0);
  else snprintf(buf, cap, "%llu B", (unsigned long long)b);
  return buf;
}

static void eta(double rate, uint64_t left, char *buf, size_t cap) {
  if (rate <= 0) snprintf(buf, cap, "--");
  else {
    double s = (double)left / rate;
    if (s >= 3600) snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, cap, "%ds", (int)(s + 0.5));
  }
}

/* On a terminal: one line per file, redrawn at most 10 times a second, with bytes,
 * rate and ETA of the file and of the whole pull. Otherwise: one line per file. */
static void on_progress(void *ud, const ae_hub_progress *p) {
  bar *b = ud;
  if (b->quiet) return;
  double t = now_s();
  if (p->event == AE_HUB_FILE_START) {
    b->t_file = t;
    if (!b->t_all) b->t_all = t;
    b->last = 0;
    return;
  }
  char fd[32], ft[32], td[32], tt[32], r[32], e1[16], e2[16];
  double fel = t - b->t_file, ael = t - b->t_all;
  double frate = fel > 0 ? p->file_done / fel : 0, arate = ael > 0 ? p->done / ael : 0;
  if (p->event == AE_HUB_FILE_PROGRESS) {
    if (!b->tty || t - b->last < 0.1) return;
    b->last = t;
    eta(frate, p->file_total > p->file_done ? p->file_total - p->file_done : 0, e1, sizeof e1);
    eta(arate, p->total > p->done ? p->total - p->done : 0, e2, sizeof e2);
    fprintf(stderr, "\r\033[K[%d/%d] %s  %s/%s  %s/s  ETA %s  | total %s/%s  ETA %s", p->file_index + 1,
            p->file_count, p->file, human(p->file_done, fd, sizeof fd), human(p->file_total, ft, sizeof ft),
            human((uint64_t)frate, r, sizeof r), e1, human(p->done, td, sizeof td),
            human(p->total, tt, sizeof tt), e2);
    b->line_open = 1;
    return;
  }
  if (b->tty && b->line_open) fputs("\r\033[K", stderr);
  b->line_open = 0;
  if (p->cached)
    fprintf(stderr, "astembed: [%d/%d] %s: %s, in the cache\n", p->file_index + 1, p->file_count, p->file,
            human(p->file_total, ft, sizeof ft));
  else
    fprintf(stderr, "astembed: [%d/%d] %s: %s downloaded in %.1f s (%s/s)\n", p->file_index + 1,
            p->file_count, p->file, human(p->file_total, ft, sizeof ft), fel, human((uint64_t)frate, r, sizeof r));
}

int cli_model_dir(const char *cmd, const char *spec, int progress, char **dir) {
  *dir = NULL;
  if (!ae_hub_is_model_name(spec)) {
    if (!(*dir = strdup(spec))) { fprintf(stderr, "astembed %s: out of memory\n", cmd); return CLI_FAIL; }
    return CLI_OK;
  }
  bar b = {isatty(STDERR_FILENO), !progress, 0, 0, 0, 0};
  ae_hub_options o = {.offline = cli_offline, .progress = on_progress, .progress_ud = &b};
  char *snap = NULL;
  int rc = ae_hub_model_dir(spec, &o, 1, &snap);
  if (rc) {
    char what[512];
    snprintf(what, sizeof what, "%s: model %s", cmd, spec);
    return cli_fail(what, rc);
  }
  *dir = strdup(snap);
  ae_free(snap);
  return *dir ? CLI_OK : CLI_FAIL;
}

/* ---- model pull / list / rm ----------------------------------------------------------- */

void cli_model_hub_usage(FILE *f) {
  fprintf(f,
    "       astembed model pull ORG/NAME[@REV] [--revision REV] [--quiet] [--offline] [--readme]\n"
    "       astembed model list [--json]\n"
    "       astembed model rm ORG/NAME\n\n"
    "pull         downloads a model from the Hugging Face Hub ($HF_ENDPOINT, default\n"
    "             https://huggingface.co) into the Hugging Face cache ($HF_HUB_CACHE, else\n"
    "             $HF_HOME/hub, else ~/.cache/huggingface/hub) shared with huggingface_hub:\n"
    "             config, model.safetensors, tokenizer and sentence-transformers files\n"
    "             (--readme: README.md too). Cached files are not fetched again; an\n"
    "             interrupted download resumes. Prints the snapshot folder. Token:\n"
    "             $HF_TOKEN, else $HF_HOME/token. --offline (or HF_HUB_OFFLINE=1): no\n"
    "             network, succeed only when cached.\n"
    "list         the cached models: repo, revisions, commit, size, last used.\n"
    "rm           removes a model's blobs, snapshots, refs and locks from the cache.\n\n"
    "Everywhere a model folder is accepted (--model, ASTEMBED_MODEL, the config's\n"
    "model.path), ORG/NAME[@REV] names the cached snapshot; embed, encode and query pull\n"
    "it first when missing (not with --offline or HF_HUB_OFFLINE=1).\n");
}

int cli_model_pull(int argc, char **argv) {
  const char *spec = NULL;
  ae_hub_options o = {0};
  int quiet = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { cli_model_hub_usage(stdout); return CLI_OK; }
    else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) quiet = 1;
    else if (!strcmp(a, "--offline")) o.offline = 1;
    else if (!strcmp(a, "--readme")) o.readme = 1;
    else if (!strcmp(a, "--revision") && i + 1 < argc) o.revision = argv[++i];
    else if (a[0] != '-' && !spec) spec = a;
    else { fprintf(stderr, "astembed model pull: unknown or incomplete option '%s'\n", a); return CLI_USAGE; }
  }
  if (!spec) { fprintf(stderr, "astembed model pull: give the model as ORG/NAME[@REV]\n"); return CLI_USAGE; }
  o.offline |= cli_offline;
  bar b = {isatty(STDERR_FILENO), quiet, 0, 0, 0, 0};
  o.progress = on_progress;
  o.progress_ud = &b;
  char *dir = NULL;
  int rc = ae_hub_pull(spec, &o, &dir);
  if (rc) {
    char what[512];
    snprintf(what, sizeof what, "model pull %s", spec);
    return cli_fail(what, rc);
  }
  puts(dir);
  ae_free(dir);
  return CLI_OK;
}

typedef struct {
  json_t *arr;
  int rows;
} list_ctx;

static void on_cached(void *ud, const ae_hub_cached *m) {
  list_ctx *c = ud;
  if (c->arr) {
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:b}", "repo", m->repo, "refs", m->refs, "commit", m->commit,
                          "path", m->path, "bytes", (json_int_t)m->bytes, "lastUsed", (json_int_t)m->last_used,
                          "complete", m->complete);
    if (o) json_array_append_new(c->arr, o);
    return;
  }
  if (!c->rows++) printf("%-40s %-12s %-12s %10s  %-16s\n", "REPO", "REVISION", "COMMIT", "SIZE", "LAST USED");
  char size[32], when[32] = "-";
  time_t t = (time_t)m->last_used;
  struct tm tm;
  if (t && localtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
  printf("%-40s %-12s %.12s %10s  %-16s%s\n", m->repo, m->refs[0] ? m->refs : "-", m->commit,
         human(m->bytes, size, sizeof size), when, m->complete ? "" : "  (incomplete)");
}

int cli_model_list(int argc, char **argv) {
  list_ctx c = {NULL, 0};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { cli_model_hub_usage(stdout); return CLI_OK; }
    else if (!strcmp(argv[i], "--json")) { if (!c.arr) c.arr = json_array(); }
    else { fprintf(stderr, "astembed model list: unknown option '%s'\n", argv[i]); json_decref(c.arr); return CLI_USAGE; }
  }
  int rc = ae_hub_list(NULL, on_cached, &c);
  if (rc) { json_decref(c.arr); return cli_fail("model list", rc); }
  if (c.arr) {
    char *s = json_dumps(c.arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) { puts(s); free(s); }
    json_decref(c.arr);
  } else if (!c.rows) {
    fprintf(stderr, "astembed model list: no models in the Hugging Face cache\n");
  }
  return CLI_OK;
}

int cli_model_rm(int argc, char **argv) {
  const char *repo = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { cli_model_hub_usage(stdout); return CLI_OK; }
    else if (argv[i][0] != '-' && !repo) repo = argv[i];
    else { fprintf(stderr, "astembed model rm: unknown option '%s'\n", argv[i]); return CLI_USAGE; }
  }
  if (!repo) { fprintf(stderr, "astembed model rm: give the model as ORG/NAME\n"); return CLI_USAGE; }
  int rc = ae_hub_remove(repo, NULL);
  if (rc) {
    char what[512];
    snprintf(what, sizeof what, "model rm %s", repo);
    return cli_fail(what, rc);
  }
  fprintf(stderr, "astembed: removed %s from the Hugging Face cache\n", repo);
  return CLI_OK;
}
