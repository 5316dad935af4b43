/* astembed stats: what the index holds (annotations, files, models and their current
 * vectors, size), as text, JSON or Prometheus exposition text. */
#define _GNU_SOURCE
#include "cli/cli.h"
#include "common/common.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f, "usage: astembed stats [--db PATH] [--json | --prometheus]\n\n"
             "Shows what the index database holds (default .astembed/index.db): annotations,\n"
             "files, and for each model its folder, dimension and current vectors.\n");
}

typedef struct {
  ae_store *st;
  json_t *models;
  int rc; /* the first error of a per-model count */
} ctx;

static void on_model(void *ud, const uint8_t fp[16], const char *name, const char *dir, int dim,
                     int64_t last_used) {
  ctx *c = ud;
  ae_store_stats s;
  int rc = ae_store_stats_get(c->st, fp, &s);
  if (rc) { if (!c->rc) c->rc = rc; return; }
  char hex[33];
  for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", fp[i]);
  json_t *m = json_object();
  json_object_set_new(m, "fingerprint", json_string(hex));
  json_object_set_new(m, "name", json_string(name ? name : ""));
  json_object_set_new(m, "dir", json_string(dir ? dir : ""));
  char repo[256], commit[64];   /* a Hugging Face snapshot: the repo id and commit */
  if (ae_hub_snapshot_info(dir, repo, sizeof repo, commit, sizeof commit)) {
    json_object_set_new(m, "repo", json_string(repo));
    json_object_set_new(m, "commit", json_string(commit));
  }
  json_object_set_new(m, "dim", json_integer(dim));
  json_object_set_new(m, "currentVectors", json_integer((json_int_t)s.current_vectors));
  json_object_set_new(m, "lastUsedAt", json_integer(last_used));
  json_array_append_new(c->models, m);
}

int cmd_stats(int argc, char **argv) {
  const char *db = AE_STORE_DEFAULT_PATH;
  int json = 0, prom = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return CLI_OK; }
    else if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--prometheus")) prom = 1;
    else if (!strcmp(argv[i], "--db") && i + 1 < argc) db = argv[++i];
    else { fprintf(stderr, "astembed stats: unknown or incomplete option '%s'\n", argv[i]); return CLI_USAGE; }
  }
  if (json && prom) { fprintf(stderr, "astembed stats: --json and --prometheus exclude each other\n"); return CLI_USAGE; }
  ae_store *st;
  int rc = ae_store_open(db, 1, &st);
  if (rc) return cli_fail("opening the index", rc);
  /* a locked, corrupt or unreadable database is an error (exit 1), never zeros */
  ae_store_stats s;
  ctx c = {st, json_array(), AE_OK};
  rc = ae_store_stats_get(st, NULL, &s);
  if (!rc) rc = ae_store_list_models(st, on_model, &c);
  if (!rc) rc = c.rc;
  if (rc) {
    int code = cli_fail("reading the index", rc);
    json_decref(c.models);
    ae_store_close(st);
    return code;
  }
  size_t i;
  json_t *m;
  if (json) {
    json_t *root = json_object();
    json_object_set_new(root, "db", json_string(db));
    json_object_set_new(root, "bytes", json_integer((json_int_t)s.db_bytes));
    json_object_set_new(root, "annotations", json_integer((json_int_t)s.annotations));
    json_object_set_new(root, "files", json_integer((json_int_t)s.files));
    json_object_set_new(root, "vectors", json_integer((json_int_t)s.vectors));
    json_object_set_new(root, "currentVectors", json_integer((json_int_t)s.current_vectors));
    json_object_set_new(root, "generation", json_integer((json_int_t)s.generation));
    json_object_set(root, "models", c.models);
    char *t = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (t) { puts(t); free(t); }
    json_decref(root);
  } else if (prom) {
    printf("# HELP astembed_index_annotations Annotations in the index.\n# TYPE astembed_index_annotations gauge\n"
           "astembed_index_annotations %llu\n", (unsigned long long)s.annotations);
    printf("# HELP astembed_index_files Distinct files in the index.\n# TYPE astembed_index_files gauge\n"
           "astembed_index_files %llu\n", (unsigned long long)s.files);
    printf("# HELP astembed_index_vectors Stored vectors (all models).\n# TYPE astembed_index_vectors gauge\n"
           "astembed_index_vectors %llu\n", (unsigned long long)s.vectors);
    printf("# HELP astembed_index_bytes Database size including its WAL.\n# TYPE astembed_index_bytes gauge\n"
           "astembed_index_bytes %llu\n", (unsigned long long)s.db_bytes);
    printf("# HELP astembed_index_generation Committed changes so far.\n# TYPE astembed_index_generation counter\n"
           "astembed_index_generation %llu\n", (unsigned long long)s.generation);
    printf("# HELP astembed_index_model_vectors Current vectors per model.\n# TYPE astembed_index_model_vectors gauge\n");
    json_array_foreach(c.models, i, m)
      printf("astembed_index_model_vectors{model=\"%s\",fingerprint=\"%s\",dim=\"%d\"} %lld\n",
             json_string_value(json_object_get(m, "name")), json_string_value(json_object_get(m, "fingerprint")),
             (int)json_integer_value(json_object_get(m, "dim")),
             (long long)json_integer_value(json_object_get(m, "currentVectors")));
  } else {
    printf("index      %s (%.1f MB, generation %llu)\n", db, (double)s.db_bytes / 1048576.0,
           (unsigned long long)s.generation);
    printf("annotations %llu in %llu files\n", (unsigned long long)s.annotations, (unsigned long long)s.files);
    printf("vectors    %llu stored, %llu current\n", (unsigned long long)s.vectors,
           (unsigned long long)s.current_vectors);
    json_array_foreach(c.models, i, m)
      printf("model      %s  dim %d  %lld current vectors  %s  [%.16s]\n",
             json_string_value(json_object_get(m, "name")), (int)json_integer_value(json_object_get(m, "dim")),
             (long long)json_integer_value(json_object_get(m, "currentVectors")),
             json_string_value(json_object_get(m, "dir")), json_string_value(json_object_get(m, "fingerprint")));
  }
  json_decref(c.models);
  ae_store_close(st);
  return CLI_OK;
}
