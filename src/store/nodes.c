/* Reading nodes back out of the index: one node by id, the nodes of one file in line
 * order, the most recently changed nodes, and the index's statistics as JSON.
 *
 * These serve the MCP server's tools (src/mcp) and `astembed stats --json`. Each call
 * runs its statements inside one read transaction, so a concurrent `astembed embed`
 * committing in between cannot make a node's row and its vector counts disagree: a
 * reader sees one committed generation of the database or the next, never half of
 * one. A node's vector count is over every model; "current" counts the vectors whose
 * text hash equals the annotation's (see store.c).
 */
#define _GNU_SOURCE
#include "store/store.h"

#include <jansson.h>
#include <string.h>

#define NODE_COLS                                                                          \
  "a.node_id, a.file_path, a.start_line, a.end_line, a.node_type, a.language, a.signature," \
  " a.summary, a.snippet, a.updated_at,"                                                     \
  " (SELECT count(*) FROM vectors v WHERE v.node_id = a.node_id),"                           \
  " (SELECT count(*) FROM vectors v WHERE v.node_id = a.node_id AND v.text_hash = a.text_hash)"

void ae_node_clear(ae_node *n) {
  if (!n) return;
  ae__free(n->node_id); ae__free(n->file_path); ae__free(n->node_type); ae__free(n->language);
  ae__free(n->signature); ae__free(n->summary); ae__free(n->snippet);
  memset(n, 0, sizeof *n);
}

void ae_nodes_free(ae_node *nodes, size_t n) {
  if (!nodes) return;
  for (size_t i = 0; i < n; i++) ae_node_clear(&nodes[i]);
  ae__free(nodes);
}

static int read_row(sqlite3_stmt *st, ae_node *n) {
  memset(n, 0, sizeof *n);
  char **txt[] = {&n->node_id, &n->file_path, NULL, NULL, &n->node_type, &n->language,
                  &n->signature, &n->summary, &n->snippet};
  for (int i = 0; i < 9; i++) {
    if (!txt[i]) continue;
    const char *t = (const char *)sqlite3_column_text(st, i);
    if (!(*txt[i] = ae__strdup(t ? t : ""))) { ae_node_clear(n); return AE_ENOMEM; }
  }
  n->start_line = sqlite3_column_int(st, 2);
  n->end_line = sqlite3_column_int(st, 3);
  n->updated_at = sqlite3_column_int64(st, 9);
  n->vectors = sqlite3_column_int(st, 10);
  n->current_vectors = sqlite3_column_int(st, 11);
  return AE_OK;
}

/* Runs a prepared node query in one read transaction and collects up to limit rows
 * (limit 0 = all); *more is set when rows were left over. */
static int collect(ae_store *s, sqlite3_stmt *st, size_t limit, ae_node **out, size_t *n_out, int *more) {
  *out = NULL;
  *n_out = 0;
  if (more) *more = 0;
  int own_tx = sqlite3_get_autocommit(s->db);
  if (own_tx && sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
    sqlite3_finalize(st);
    return ae__store_dberr(s, "reading nodes");
  }
  size_t cap = 0, n = 0;
  ae_node *v = NULL;
  int rc = AE_OK, step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    if (limit && n == limit) { if (more) *more = 1; break; }
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      ae_node *nv = ae__realloc(v, nc * sizeof *nv);
      if (!nv) { rc = AE_ENOMEM; break; }
      v = nv;
      cap = nc;
    }
    if ((rc = read_row(st, &v[n]))) break;
    n++;
  }
  if (!rc && step != SQLITE_ROW && step != SQLITE_DONE) rc = ae__store_dberr(s, "reading nodes");
  sqlite3_finalize(st);
  if (own_tx) sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
  if (rc) {
    ae_nodes_free(v, n);
    return rc == AE_ENOMEM ? ae__error(rc, "%s: out of memory reading nodes", s->path) : rc;
  }
  *out = v;
  *n_out = n;
  return AE_OK;
}

int ae_store_node_get(ae_store *s, const char *node_id, ae_node *out) {
  memset(out, 0, sizeof *out);
  if (!node_id) return ae__error(AE_EINVAL, "no node id");
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT " NODE_COLS " FROM annotations a WHERE a.node_id = ?1",
                         -1, &st, NULL) != SQLITE_OK)
    return ae__store_dberr(s, "reading nodes");
  sqlite3_bind_text(st, 1, node_id, -1, SQLITE_TRANSIENT);
  ae_node *v;
  size_t n;
  int rc = collect(s, st, 1, &v, &n, NULL);
  if (rc) return rc;
  if (!n) return ae__error(AE_ENOTFOUND, "%s: no node '%s' in the index", s->path, node_id);
  *out = v[0];
  ae__free(v);
  return AE_OK;
}

int ae_store_file_nodes(ae_store *s, const char *file_path, const char *node_type, size_t limit,
                        ae_node **out, size_t *n, int *more) {
  sqlite3_stmt *st;
  const char *sql = "SELECT " NODE_COLS " FROM annotations a WHERE a.file_path = ?1"
                    " AND (?2 IS NULL OR a.node_type = ?2) ORDER BY a.start_line, a.end_line, a.node_id";
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return ae__store_dberr(s, "reading nodes");
  sqlite3_bind_text(st, 1, file_path ? file_path : "", -1, SQLITE_TRANSIENT);
  if (node_type) sqlite3_bind_text(st, 2, node_type, -1, SQLITE_TRANSIENT);
  return collect(s, st, limit, out, n, more);
}

int ae_store_recent_nodes(ae_store *s, int64_t since, size_t limit, ae_node **out, size_t *n, int *more) {
  sqlite3_stmt *st;
  const char *sql = "SELECT " NODE_COLS " FROM annotations a WHERE a.updated_at >= ?1"
                    " ORDER BY a.updated_at DESC, a.rowid DESC";
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return ae__store_dberr(s, "reading nodes");
  sqlite3_bind_int64(st, 1, since);
  return collect(s, st, limit, out, n, more);
}

/* ---- statistics as JSON ------------------------------------------------------------ */

typedef struct {
  ae_store *st;
  json_t *models;
  int rc;
} models_ctx;

static void on_model(void *ud, const uint8_t fp[16], const char *name, const char *dir, int dim,
                     int64_t last_used) {
  models_ctx *c = ud;
  ae_store_stats s;
  int rc = ae_store_stats_get(c->st, fp, &s);
  if (rc) { if (!c->rc) c->rc = rc; return; }   /* an error, never zeros */
  char hex[33];
  for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", fp[i]);
  json_t *m = json_object();
  if (!m) { c->rc = AE_ENOMEM; return; }
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
  if (json_array_append_new(c->models, m)) c->rc = AE_ENOMEM;
}

int ae_store_stats_json(ae_store *s, const char *db_label, char **out) {
  *out = NULL;
  int own_tx = sqlite3_get_autocommit(s->db);
  if (own_tx && sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
    return ae__store_dberr(s, "reading the index");
  ae_store_stats st;
  models_ctx c = {s, json_array(), AE_OK};
  int rc = ae_store_stats_get(s, NULL, &st);
  if (!rc) rc = c.models ? ae_store_list_models(s, on_model, &c) : AE_ENOMEM;
  if (own_tx) sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
  if (!rc) rc = c.rc;
  json_t *root = rc ? NULL : json_object();
  if (root) {
    json_object_set_new(root, "db", json_string(db_label ? db_label : s->path));
    json_object_set_new(root, "bytes", json_integer((json_int_t)st.db_bytes));
    json_object_set_new(root, "annotations", json_integer((json_int_t)st.annotations));
    json_object_set_new(root, "files", json_integer((json_int_t)st.files));
    json_object_set_new(root, "vectors", json_integer((json_int_t)st.vectors));
    json_object_set_new(root, "currentVectors", json_integer((json_int_t)st.current_vectors));
    json_object_set_new(root, "generation", json_integer((json_int_t)st.generation));
    json_object_set(root, "models", c.models);
    char *t = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (t) {
      *out = ae__strdup(t);
      free(t);
    }
    if (!*out) rc = AE_ENOMEM;
  } else if (!rc) {
    rc = AE_ENOMEM;
  }
  json_decref(root);
  json_decref(c.models);
  /* a locked, corrupt or unreadable database is an error with its detail, never zeros */
  return rc == AE_ENOMEM ? ae__error(rc, "%s: out of memory", s->path) : rc;
}
