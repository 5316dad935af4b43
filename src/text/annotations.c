/* Loading annotations from the original's two formats: JSONL records and the SQLite
 * `annotations` table. Each bad record is reported through the error callback with
 * where it is and what is wrong, and loading goes on: one bad item never sinks the
 * run. */
#include "text/text.h"
#include "common/jsonl.h"

#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

struct ae_annotation_set {
  ae_annotation *items;
  size_t n, cap, rejected;
};

size_t ae_annotation_set_count(const ae_annotation_set *s) { return s ? s->n : 0; }
const ae_annotation *ae_annotation_set_items(const ae_annotation_set *s) { return s ? s->items : NULL; }
size_t ae_annotation_set_rejected(const ae_annotation_set *s) { return s ? s->rejected : 0; }

static void free_item(ae_annotation *a) {
  ae__free((char *)a->node_id);
  ae__free((char *)a->file_path);
  ae__free((char *)a->node_type);
  ae__free((char *)a->language);
  ae__free((char *)a->signature);
  ae__free((char *)a->summary);
  ae__free((char *)a->snippet);
}

void ae_annotation_set_free(ae_annotation_set *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) free_item(&s->items[i]);
  ae__free(s->items);
  ae__free(s);
}

static int push(ae_annotation_set *s, ae_annotation *a) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 256;
    ae_annotation *ni = ae__realloc(s->items, cap * sizeof *ni);
    if (!ni) return AE_ENOMEM;
    s->items = ni;
    s->cap = cap;
  }
  s->items[s->n++] = *a;
  return AE_OK;
}

static int dup_or_empty(const char **dst, const char *src) {
  *dst = ae__strdup(src ? src : "");
  return *dst ? AE_OK : AE_ENOMEM;
}

/* Fills strings and checks the record: nodeId must be non-empty, lines >= 0 and
 * end >= start when both are given, and something must be left to embed. */
static int finish_item(ae_annotation *a, const char *node_id, const char *file_path,
                       long long start, long long end, const char *node_type,
                       const char *language, const char *sig, const char *sum,
                       const char *snippet, char *why, size_t why_len) {
  memset(a, 0, sizeof *a);
  if (!node_id || !*node_id) { snprintf(why, why_len, "missing or empty nodeId"); return AE_EINVAL; }
  if (start < 0 || end < 0 || start > 1 << 30 || end > 1 << 30) {
    snprintf(why, why_len, "start_line/end_line out of range (%lld, %lld)", start, end);
    return AE_ERANGE;
  }
  if (start && end && end < start) {
    snprintf(why, why_len, "end_line %lld before start_line %lld", end, start);
    return AE_ERANGE;
  }
  if ((!sig || !*sig) && (!sum || !*sum) && (!snippet || !*snippet)) {
    snprintf(why, why_len, "signature, summary and sourceSnippet are all empty");
    return AE_EINVAL;
  }
  a->start_line = (int)start;
  a->end_line = (int)end;
  if (!language || !*language) language = ae__guess_language(file_path);
  if (dup_or_empty(&a->node_id, node_id) || dup_or_empty(&a->file_path, file_path) ||
      dup_or_empty(&a->node_type, node_type) || dup_or_empty(&a->language, language) ||
      dup_or_empty(&a->signature, sig) || dup_or_empty(&a->summary, sum) ||
      dup_or_empty(&a->snippet, snippet)) {
    free_item(a);
    snprintf(why, why_len, "out of memory");
    return AE_ENOMEM;
  }
  return AE_OK;
}

/* Optional string field: absent or null is "", another type is an error. */
static int get_str(json_t *obj, const char *key, const char **out, char *why, size_t wl) {
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  *out = NULL;
  if (!v || json_is_null(v)) return AE_OK;
  if (!json_is_string(v)) { snprintf(why, wl, "field '%s' must be a string", key); return AE_EFORMAT; }
  *out = json_string_value(v);
  return AE_OK;
}

static int get_int(json_t *obj, const char *key, long long *out, char *why, size_t wl) {
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  *out = 0;
  if (!v || json_is_null(v)) return AE_OK;
  if (json_is_integer(v)) { *out = json_integer_value(v); return AE_OK; }
  if (json_is_real(v) && json_real_value(v) == (double)(long long)json_real_value(v)) {
    *out = (long long)json_real_value(v);
    return AE_OK;
  }
  snprintf(why, wl, "field '%s' must be an integer", key);
  return AE_EFORMAT;
}

static int item_from_json(json_t *v, ae_annotation *a, char *why, size_t wl) {
  if (!json_is_object(v)) { snprintf(why, wl, "record is not a JSON object"); return AE_EFORMAT; }
  const char *id, *sig, *sum, *snip, *file = NULL, *type = NULL, *lang = NULL;
  long long start = 0, end = 0;
  int rc;
  if ((rc = get_str(v, "nodeId", &id, why, wl)) || (rc = get_str(v, "signature", &sig, why, wl)) ||
      (rc = get_str(v, "summary", &sum, why, wl)) ||
      (rc = get_str(v, "sourceSnippet", &snip, why, wl)))
    return rc;
  json_t *m = json_object_get(v, "metadata");
  if (m && !json_is_null(m) && !json_is_object(m)) {
    snprintf(why, wl, "field 'metadata' must be an object");
    return AE_EFORMAT;
  }
  if (m && json_is_object(m)) {
    if ((rc = get_str(m, "file_path", &file, why, wl)) || (rc = get_str(m, "node_type", &type, why, wl)) ||
        (rc = get_str(m, "language", &lang, why, wl)) ||
        (rc = get_int(m, "start_line", &start, why, wl)) || (rc = get_int(m, "end_line", &end, why, wl)))
      return rc;
  }
  return finish_item(a, id, file, start, end, type, lang, sig, sum, snip, why, wl);
}

int ae_annotations_load_jsonl(const char *path, ae_input_error_fn on_error, void *ud,
                              ae_annotation_set **out) {
  *out = NULL;
  int is_stdin = !strcmp(path, "-");
  FILE *f = is_stdin ? stdin : fopen(path, "rb");
  if (!f) return ae__error(errno == ENOENT ? AE_ENOTFOUND : AE_EIO, "%s: %s", path, strerror(errno));
  ae_annotation_set *s = ae__calloc(1, sizeof *s);
  ae_jsonl *r = NULL;
  int rc = s ? ae_jsonl_open(f, is_stdin ? "stdin" : path, &r) : AE_ENOMEM;
  while (rc == AE_OK) {
    json_t *v;
    size_t line;
    int st = ae_jsonl_next(r, &v, &line);
    if (st == 1) break;
    char where[512], why[256] = "";
    snprintf(where, sizeof where, "%s:%zu", is_stdin ? "stdin" : path, line);
    if (st == AE_EIO) { rc = st; break; }
    if (st != AE_OK) {
      s->rejected++;
      if (on_error) on_error(ud, where, ae_last_error());
      continue;
    }
    ae_annotation a;
    st = item_from_json(v, &a, why, sizeof why);
    json_decref(v);
    if (st == AE_ENOMEM || (st == AE_OK && push(s, &a) != AE_OK)) {
      if (st == AE_OK) free_item(&a);
      rc = ae__error(AE_ENOMEM, "%s: out of memory", where);
      break;
    }
    if (st != AE_OK) {
      s->rejected++;
      if (on_error) on_error(ud, where, why);
    }
  }
  ae_jsonl_close(r);
  if (!is_stdin) fclose(f);
  if (rc != AE_OK) { ae_annotation_set_free(s); return rc == AE_ENOMEM && !s ? ae__error(rc, "%s: out of memory", path) : rc; }
  *out = s;
  return AE_OK;
}

/* The original's table: node_id TEXT PK, file_path, start_line, end_line, node_type,
 * signature, complexity_score, dependencies JSON, metadata JSON (summary, and
 * sometimes sourceSnippet / language), created_at, updated_at. */
int ae_annotations_load_db(const char *path, ae_input_error_fn on_error, void *ud,
                           ae_annotation_set **out) {
  *out = NULL;
  if (!ae__file_exists(path)) return ae__error(AE_ENOTFOUND, "%s: no such file", path);
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    int rc = ae__error(AE_EDB, "%s: cannot open: %s", path, db ? sqlite3_errmsg(db) : "?");
    sqlite3_close(db);
    return rc;
  }
  sqlite3_stmt *st = NULL;
  const char *sql = "SELECT node_id, file_path, start_line, end_line, node_type, signature, "
                    "metadata FROM annotations ORDER BY rowid";
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    int rc = ae__error(AE_EDB, "%s: not an annotations database: %s", path, sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc;
  }
  ae_annotation_set *s = ae__calloc(1, sizeof *s);
  int rc = s ? AE_OK : ae__error(AE_ENOMEM, "%s: out of memory", path);
  int step;
  while (rc == AE_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(st, 0);
    char where[512], why[256] = "";
    snprintf(where, sizeof where, "%s:%s", path, id ? id : "(null node_id)");
    const char *meta = (const char *)sqlite3_column_text(st, 6);
    json_t *m = NULL;
    const char *sum = NULL, *snip = NULL, *lang = NULL;
    int bad = 0;
    if (meta && *meta) {
      json_error_t je;
      m = json_loads(meta, 0, &je);
      if (!m || !json_is_object(m)) {
        snprintf(why, sizeof why, "metadata is not a JSON object (%s)", m ? "wrong type" : je.text);
        bad = 1;
      } else {
        bad = get_str(m, "summary", &sum, why, sizeof why) ||
              get_str(m, "sourceSnippet", &snip, why, sizeof why) ||
              get_str(m, "language", &lang, why, sizeof why);
        if (!bad && !snip) bad = get_str(m, "source_snippet", &snip, why, sizeof why);
      }
    }
    ae_annotation a;
    int r = bad ? AE_EFORMAT
                : finish_item(&a, id, (const char *)sqlite3_column_text(st, 1),
                              sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3),
                              (const char *)sqlite3_column_text(st, 4),
                              lang, (const char *)sqlite3_column_text(st, 5), sum, snip,
                              why, sizeof why);
    json_decref(m);
    if (r == AE_ENOMEM || (r == AE_OK && push(s, &a) != AE_OK)) {
      if (r == AE_OK) free_item(&a);
      rc = ae__error(AE_ENOMEM, "%s: out of memory", where);
    } else if (r != AE_OK) {
      s->rejected++;
      if (on_error) on_error(ud, where, why);
    }
  }
  if (rc == AE_OK && step != SQLITE_DONE)
    rc = ae__error(AE_EDB, "%s: read failed: %s", path, sqlite3_errmsg(db));
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (rc != AE_OK) { ae_annotation_set_free(s); return rc; }
  *out = s;
  return AE_OK;
}
