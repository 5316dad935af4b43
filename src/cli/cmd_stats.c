/* astembed stats: what the index holds (annotations, files, models and their current
 * vectors, size), as text, JSON or Prometheus exposition text. */
#define _GNU_SOURCE
#include "cli.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f, "usage: astembed stats [--db PATH] [--json | --prometheus]\n\n"
             "Shows what the index database holds (default .astembed/index.db): annotations,\n"
             "files, and for each model its folder, dimension and current vectors.\n");
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
  char *js = NULL;
  rc = ae_store_stats_json(st, db, &js);
  json_t *root = rc ? NULL : json_loads(js, 0, NULL);
  if (!root) {
    ae_free(js);
    ae_store_close(st);
    return cli_fail("reading the index", rc ? rc : AE_ENOMEM);
  }
  json_t *models = json_object_get(root, "models");
  struct { unsigned long long annotations, files, vectors, current_vectors, db_bytes, generation; } s = {
    (unsigned long long)json_integer_value(json_object_get(root, "annotations")),
    (unsigned long long)json_integer_value(json_object_get(root, "files")),
    (unsigned long long)json_integer_value(json_object_get(root, "vectors")),
    (unsigned long long)json_integer_value(json_object_get(root, "currentVectors")),
    (unsigned long long)json_integer_value(json_object_get(root, "bytes")),
    (unsigned long long)json_integer_value(json_object_get(root, "generation"))};
  size_t i;
  json_t *m;
  if (json) {
    puts(js);
  } else if (prom) {
    /* the index counters come from the one metrics table (ae_store_stats_prometheus) */
    ae_store_stats counters = {.annotations = s.annotations, .vectors = s.vectors, .current_vectors = s.current_vectors,
                         .files = s.files, .db_bytes = s.db_bytes, .generation = s.generation};
    char *text = ae_store_stats_prometheus(&counters);
    if (!text) { json_decref(root); ae_free(js); ae_store_close(st); return cli_fail("writing metrics", AE_ENOMEM); }
    fputs(text, stdout);
    ae_free(text);
    printf("# HELP astembed_index_model_vectors Current vectors per model.\n# TYPE astembed_index_model_vectors gauge\n");
    json_array_foreach(models, i, m)
      printf("astembed_index_model_vectors{model=\"%s\",fingerprint=\"%s\",dim=\"%d\"} %lld\n",
             json_string_value(json_object_get(m, "name")), json_string_value(json_object_get(m, "fingerprint")),
             (int)json_integer_value(json_object_get(m, "dim")),
             (long long)json_integer_value(json_object_get(m, "currentVectors")));
  } else {
    printf("index      %s (%.1f MB, generation %llu)\n", db, (double)s.db_bytes / 1048576.0,
           s.generation);
    printf("annotations %llu in %llu files\n", s.annotations, s.files);
    printf("vectors    %llu stored, %llu current\n", s.vectors,
           s.current_vectors);
    json_array_foreach(models, i, m)
      printf("model      %s  dim %d  %lld current vectors  %s  [%.16s]\n",
             json_string_value(json_object_get(m, "name")), (int)json_integer_value(json_object_get(m, "dim")),
             (long long)json_integer_value(json_object_get(m, "currentVectors")),
             json_string_value(json_object_get(m, "dir")), json_string_value(json_object_get(m, "fingerprint")));
  }
  json_decref(root);
  ae_free(js);
  ae_store_close(st);
  return CLI_OK;
}
