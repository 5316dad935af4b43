/* The index database: annotations, their vectors per model, the models and a little
 * metadata, in one SQLite file in WAL mode.
 *
 * Consistency rests on SQLite transactions: a batch's annotation rows and vectors are
 * written in one transaction, so a process killed at any moment leaves either the
 * whole batch or none of it. A vector is "current" when its text_hash equals its
 * annotation's: that is what a rerun uses to find what is missing (a node whose text
 * changed, or a node with no vector for the model), so nothing else needs recovery.
 */
#define _GNU_SOURCE
#include "store/store.h"
#include "store/lexical.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* Schema versions: 1 = the first; 2 adds vectors.truncated (1 when the text was cut at
 * the model's max length, 0 when not, -1 unknown: rows written by version 1); 3 adds
 * the lexical index: annotations.lex_id (a stable integer key: a table with a TEXT
 * primary key may have its rowids renumbered by VACUUM), the contentless FTS5 table
 * `lexical` keyed by it and the triggers that keep it in step with `annotations`
 * (see lexical.c). An older file is upgraded in place, in one transaction, when
 * opened for writing, and read as is when opened read-only (no truncated flags
 * before 2, no lexical search before 3). */
#define SCHEMA_VERSION 3

static const char *k_schema =
  "CREATE TABLE IF NOT EXISTS annotations ("
  "  node_id TEXT PRIMARY KEY, file_path TEXT NOT NULL DEFAULT '',"
  "  start_line INTEGER NOT NULL DEFAULT 0, end_line INTEGER NOT NULL DEFAULT 0,"
  "  node_type TEXT NOT NULL DEFAULT '', language TEXT NOT NULL DEFAULT '',"
  "  signature TEXT NOT NULL DEFAULT '', summary TEXT NOT NULL DEFAULT '',"
  "  snippet TEXT NOT NULL DEFAULT '', text_hash BLOB NOT NULL, updated_at INTEGER NOT NULL,"
  "  lex_id INTEGER);"
  "CREATE INDEX IF NOT EXISTS annotations_file ON annotations(file_path);"
  "CREATE UNIQUE INDEX IF NOT EXISTS annotations_lex ON annotations(lex_id);"
  "CREATE TABLE IF NOT EXISTS models ("
  "  fingerprint BLOB PRIMARY KEY, name TEXT NOT NULL DEFAULT '', dir TEXT NOT NULL DEFAULT '',"
  "  dim INTEGER NOT NULL, created_at INTEGER NOT NULL, last_used_at INTEGER NOT NULL);"
  "CREATE TABLE IF NOT EXISTS vectors ("
  "  id INTEGER PRIMARY KEY, node_id TEXT NOT NULL, fingerprint BLOB NOT NULL,"
  "  text_hash BLOB NOT NULL, dim INTEGER NOT NULL, vec BLOB NOT NULL,"
  "  truncated INTEGER NOT NULL DEFAULT -1, UNIQUE(node_id, fingerprint));"
  "CREATE INDEX IF NOT EXISTS vectors_content ON vectors(fingerprint, text_hash);"
  "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
  "INSERT OR IGNORE INTO meta VALUES ('generation', '0');";

/* The lexical index (schema 3). The triggers run inside the statement that changes
 * an annotation, so the index commits, rolls back and survives kills with it. A
 * contentless table deletes a row by re-tokenizing the text it was indexed with:
 * the old.* values. */
#define LEX_COLS "signature, summary, code, path, type"
#define LEX_NEW "new.lex_id, new.signature, new.summary, new.snippet, new.file_path, new.node_type"
#define LEX_OLD "'delete', old.lex_id, old.signature, old.summary, old.snippet, old.file_path, old.node_type"
static const char *k_lexical_schema =
  "CREATE VIRTUAL TABLE lexical USING fts5(" LEX_COLS ", content='',"
  "  tokenize='" AE__LEX_TOKENIZE_ARG "');"
  "CREATE TRIGGER annotations_lex_ins AFTER INSERT ON annotations BEGIN"
  "  INSERT INTO lexical(rowid, " LEX_COLS ") VALUES (" LEX_NEW "); END;"
  "CREATE TRIGGER annotations_lex_del AFTER DELETE ON annotations BEGIN"
  "  INSERT INTO lexical(lexical, rowid, " LEX_COLS ") VALUES (" LEX_OLD "); END;"
  "CREATE TRIGGER annotations_lex_upd AFTER UPDATE ON annotations BEGIN"
  "  INSERT INTO lexical(lexical, rowid, " LEX_COLS ") VALUES (" LEX_OLD ");"
  "  INSERT INTO lexical(rowid, " LEX_COLS ") VALUES (" LEX_NEW "); END;"
  "INSERT OR REPLACE INTO meta VALUES ('lexical_tokenizer', '" AE__LEX_TOKENIZER_VERSION "');";

/* Indexes every annotation (upgrade and tokenizer change). */
static const char *k_lexical_fill =
  "INSERT INTO lexical(rowid, " LEX_COLS ") SELECT lex_id, signature, summary, snippet,"
  " file_path, node_type FROM annotations;";

enum {
  Q_LOOKUP_NODE, Q_LOOKUP_CONTENT, Q_PUT_ANN, Q_PUT_VEC, Q_BUMP, Q_COUNT
};
static const char *k_sql[Q_COUNT] = {
  [Q_LOOKUP_NODE] = "SELECT text_hash, vec, truncated FROM vectors WHERE node_id = ?1 AND fingerprint = ?2",
  [Q_LOOKUP_CONTENT] = "SELECT vec, truncated FROM vectors WHERE fingerprint = ?1 AND text_hash = ?2"
                       " ORDER BY truncated DESC LIMIT 1",
  /* written only when something differs, so a rerun over unchanged input writes nothing */
  [Q_PUT_ANN] =
    "INSERT INTO annotations (node_id, file_path, start_line, end_line, node_type, language,"
    " signature, summary, snippet, text_hash, updated_at, lex_id) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,"
    " (SELECT coalesce(max(lex_id), 0) + 1 FROM annotations))"
    " ON CONFLICT(node_id) DO UPDATE SET file_path=excluded.file_path,"
    " start_line=excluded.start_line, end_line=excluded.end_line, node_type=excluded.node_type,"
    " language=excluded.language, signature=excluded.signature, summary=excluded.summary,"
    " snippet=excluded.snippet, text_hash=excluded.text_hash, updated_at=excluded.updated_at"
    " WHERE file_path IS NOT excluded.file_path OR start_line IS NOT excluded.start_line"
    " OR end_line IS NOT excluded.end_line OR node_type IS NOT excluded.node_type"
    " OR language IS NOT excluded.language OR signature IS NOT excluded.signature"
    " OR summary IS NOT excluded.summary OR snippet IS NOT excluded.snippet"
    " OR text_hash IS NOT excluded.text_hash",
  [Q_PUT_VEC] =
    "INSERT INTO vectors (node_id, fingerprint, text_hash, dim, vec, truncated) VALUES (?1,?2,?3,?4,?5,?6)"
    " ON CONFLICT(node_id, fingerprint) DO UPDATE SET text_hash=excluded.text_hash,"
    " dim=excluded.dim, vec=excluded.vec, truncated=excluded.truncated",
  [Q_BUMP] = "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'",
};
/* The lookups against a version-1 file opened read-only: no truncated column. */
static const char *k_sql_v1[Q_COUNT] = {
  [Q_LOOKUP_NODE] = "SELECT text_hash, vec, -1 FROM vectors WHERE node_id = ?1 AND fingerprint = ?2",
  [Q_LOOKUP_CONTENT] = "SELECT vec, -1 FROM vectors WHERE fingerprint = ?1 AND text_hash = ?2 LIMIT 1",
};

void ae_text_hash(const char *text, size_t len, uint8_t out[16]) {
  XXH128_hash_t h = XXH3_128bits(text, len);
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, h);
  memcpy(out, c.digest, 16);
}

int ae__store_dberr(ae_store *s, const char *what) {
  return ae__error(AE_EDB, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static int exec(ae_store *s, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    int rc = ae__error(AE_EDB, "%s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return rc;
  }
  return AE_OK;
}

/* mkdir -p of the database's folder. Not dirname(3): for a bare file name it returns
 * a static "." that must not be written to. */
static int make_parent(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash || slash == path) return AE_OK;   /* the current folder, or / */
  char *tmp = ae__malloc((size_t)(slash - path) + 1);
  if (!tmp) return AE_ENOMEM;
  memcpy(tmp, path, (size_t)(slash - path));
  tmp[slash - path] = 0;
  int rc = AE_OK;
  for (char *p = tmp + 1; ; p++) {
    char c = *p;
    if (c == '/' || c == 0) {
      *p = 0;
      if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
        rc = ae__error(AE_EIO, "%s: cannot create folder %s: %s", path, tmp, strerror(errno));
      *p = c;
      if (c == 0 || rc) break;
    }
  }
  ae__free(tmp);
  return rc;
}

#define AE__STR2(x) #x
#define AE__STR(x) AE__STR2(x)

/* Runs the NULL-terminated list of SQL scripts in one write transaction: all or
 * nothing. */
static int exec_tx(ae_store *s, const char *const *sql) {
  int rc = exec(s, "BEGIN IMMEDIATE");
  for (; !rc && *sql; sql++) rc = exec(s, *sql);
  if (!rc) rc = exec(s, "COMMIT");
  if (rc) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

#define SET_VERSION "PRAGMA user_version = " AE__STR(SCHEMA_VERSION)

/* Versions 1 and 2 -> 3, all in one transaction: an interrupted upgrade leaves the
 * old file as it was. */
static int upgrade(ae_store *s, int version) {
  const char *add_truncated = "ALTER TABLE vectors ADD COLUMN truncated INTEGER NOT NULL DEFAULT -1";
  const char *add_lex_id = "ALTER TABLE annotations ADD COLUMN lex_id INTEGER;"
                           "UPDATE annotations SET lex_id = rowid;"
                           "CREATE UNIQUE INDEX annotations_lex ON annotations(lex_id);";
  const char *steps[] = {add_truncated, add_lex_id, k_lexical_schema, k_lexical_fill, SET_VERSION, NULL};
  return exec_tx(s, version < 2 ? steps : steps + 1);
}

/* An index built by another tokenizer version is rebuilt (see lexical.h); read-only,
 * lexical search is refused rather than run against tokens it cannot reproduce. */
static int check_tokenizer(ae_store *s, int read_only) {
  sqlite3_stmt *st;
  int same = 0;
  if (sqlite3_prepare_v2(s->db, "SELECT value = '" AE__LEX_TOKENIZER_VERSION "' FROM meta"
                         " WHERE key = 'lexical_tokenizer'", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    same = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (same) return AE_OK;
  if (read_only) { s->no_lexical = 1; return AE_OK; }
  return exec_tx(s, (const char *[]){"INSERT INTO lexical(lexical) VALUES ('delete-all');"
                    "INSERT OR REPLACE INTO meta VALUES ('lexical_tokenizer', '" AE__LEX_TOKENIZER_VERSION "');",
                    k_lexical_fill, NULL});
}

static int check_schema(ae_store *s, int read_only) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_ROW) {
    sqlite3_finalize(st);
    return ae__error(AE_EDB, "%s: not a SQLite database or unreadable: %s", s->path,
                     sqlite3_errmsg(s->db));
  }
  int version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (version > SCHEMA_VERSION)
    return ae__error(AE_EUNSUPPORTED, "%s: schema version %d is newer than this astembed's %d",
                     s->path, version, SCHEMA_VERSION);
  if (version == SCHEMA_VERSION) return check_tokenizer(s, read_only);
  if (version == 1 || version == 2) {
    if (!read_only) return upgrade(s, version);
    s->v1 = version == 1;
    s->no_lexical = 1;
    return AE_OK;
  }
  if (read_only) return ae__error(AE_ENOTFOUND, "%s: not an astembed index (no schema)", s->path);
  /* An existing database from something else (tables but no user_version) is refused
   * rather than mixed into. */
  if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
                         -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
    sqlite3_finalize(st);
    return ae__store_dberr(s, "reading schema");
  }
  int tables = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (tables)
    return ae__error(AE_EFORMAT, "%s: database has tables but is not an astembed index", s->path);
  return exec_tx(s, (const char *[]){k_schema, k_lexical_schema, SET_VERSION, NULL});
}

int ae_store_open(const char *path, int read_only, ae_store **out) {
  *out = NULL;
  if (!path || !*path) path = AE_STORE_DEFAULT_PATH;
  if (read_only && !ae__file_exists(path))
    return ae__error(AE_ENOTFOUND, "%s: no index database (run 'astembed embed' first)", path);
  if (!read_only) {
    int rc = make_parent(path);
    if (rc) return rc;
  }
  ae_store *s = ae__calloc(1, sizeof *s);
  if (!s || !(s->path = ae__strdup(path))) {
    ae__free(s);
    return ae__error(AE_ENOMEM, "%s: out of memory", path);
  }
  /* A reader still opens read-write when it may: after a crash, the first connection
   * has to recover the WAL index, which a read-only connection cannot do. */
  int flags = !read_only ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
              : access(path, W_OK) == 0 ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
  if (sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    int rc = ae__error(AE_EDB, "%s: cannot open: %s", path, s->db ? sqlite3_errmsg(s->db) : "?");
    ae_store_close(s);
    return rc;
  }
  s->read_only = read_only;
  sqlite3_busy_timeout(s->db, 10000);
  int rc = AE_OK;
  if (!read_only) rc = exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL");
  if (!rc) rc = ae__lex_register(s->db, path);
  if (!rc) rc = check_schema(s, read_only);
  for (int i = 0; !rc && i < Q_COUNT; i++) {
    if (read_only && (i == Q_PUT_ANN || i == Q_PUT_VEC || i == Q_BUMP)) continue;
    const char *sql = s->v1 && k_sql_v1[i] ? k_sql_v1[i] : k_sql[i];
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->q[i], NULL) != SQLITE_OK)
      rc = ae__store_dberr(s, "preparing statements");
  }
  if (rc) { ae_store_close(s); return rc; }
  *out = s;
  return AE_OK;
}

void ae_store_close(ae_store *s) {
  if (!s) return;
  if (s->in_tx) ae_store_rollback(s);
  for (int i = 0; i < Q_COUNT; i++) sqlite3_finalize(s->q[i]);
  ae__store_matrix_drop(s);
  sqlite3_close(s->db);
  ae__free(s->path);
  ae__free(s);
}

/* ---- models --------------------------------------------------------------------- */

int ae_store_register_model(ae_store *s, const uint8_t fp[16], const char *name,
                            const char *dir, int dim) {
  char abs[PATH_MAX];
  const char *d = dir && realpath(dir, abs) ? abs : (dir ? dir : "");
  sqlite3_stmt *st;
  const char *sql = "INSERT INTO models VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT(fingerprint)"
                    " DO UPDATE SET name=excluded.name, dir=excluded.dir, last_used_at=excluded.last_used_at";
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
    return ae__store_dberr(s, "registering the model");
  sqlite3_bind_blob(st, 1, fp, 16, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, name ? name : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, d, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 4, dim);
  sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
  int rc = sqlite3_step(st) == SQLITE_DONE ? AE_OK : ae__store_dberr(s, "registering the model");
  sqlite3_finalize(st);
  return rc;
}

int ae_store_model(ae_store *s, const uint8_t *fp_in, char **dir, uint8_t fp[16], int *dim) {
  sqlite3_stmt *st;
  const char *sql = fp_in ? "SELECT dir, fingerprint, dim FROM models WHERE fingerprint = ?1"
                          : "SELECT dir, fingerprint, dim FROM models ORDER BY last_used_at DESC, rowid DESC LIMIT 1";
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
    return ae__store_dberr(s, "reading models");
  if (fp_in) sqlite3_bind_blob(st, 1, fp_in, 16, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? ae__error(AE_ENOTFOUND, "%s: no model recorded (nothing embedded yet)", s->path)
                             : ae__store_dberr(s, "reading models");
  }
  if (dir) *dir = ae__strdup((const char *)sqlite3_column_text(st, 0));
  if (fp && sqlite3_column_bytes(st, 1) == 16) memcpy(fp, sqlite3_column_blob(st, 1), 16);
  if (dim) *dim = sqlite3_column_int(st, 2);
  sqlite3_finalize(st);
  return dir && !*dir ? ae__error(AE_ENOMEM, "out of memory") : AE_OK;
}

int ae_store_list_models(ae_store *s, ae_model_row_fn fn, void *ud) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT fingerprint, name, dir, dim, last_used_at FROM models"
                         " ORDER BY last_used_at DESC, rowid DESC", -1, &st, NULL) != SQLITE_OK)
    return ae__store_dberr(s, "reading models");
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (sqlite3_column_bytes(st, 0) != 16) continue;
    fn(ud, sqlite3_column_blob(st, 0), (const char *)sqlite3_column_text(st, 1),
       (const char *)sqlite3_column_text(st, 2), sqlite3_column_int(st, 3), sqlite3_column_int64(st, 4));
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? AE_OK : ae__store_dberr(s, "reading models");
}

/* ---- lookup and writes ------------------------------------------------------------ */

static int copy_vec(sqlite3_stmt *st, int col, float *out, int dim) {
  if (sqlite3_column_bytes(st, col) != dim * (int)sizeof(float)) return AE_EMISMATCH;
  memcpy(out, sqlite3_column_blob(st, col), (size_t)dim * sizeof(float));
  return AE_OK;
}

int ae_store_lookup(ae_store *s, const uint8_t fp[16], const char *node_id,
                    const uint8_t h[16], float *out, int dim, int *same_node, int *truncated) {
  sqlite3_stmt *st = s->q[Q_LOOKUP_NODE];
  int trunc = -1;
  sqlite3_bind_text(st, 1, node_id, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, fp, 16, SQLITE_STATIC);
  int rc = sqlite3_step(st), found = 0;
  if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 16 &&
      !memcmp(sqlite3_column_blob(st, 0), h, 16)) {
    found = copy_vec(st, 1, out, dim) == AE_OK;
    trunc = sqlite3_column_int(st, 2);
  }
  else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    sqlite3_reset(st);
    return ae__store_dberr(s, "lookup");
  }
  sqlite3_reset(st);
  if (found) {
    *same_node = 1;
    if (truncated) *truncated = trunc;
    return AE_OK;
  }
  st = s->q[Q_LOOKUP_CONTENT];
  sqlite3_bind_blob(st, 1, fp, 16, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, h, 16, SQLITE_STATIC);
  rc = sqlite3_step(st);
  found = rc == SQLITE_ROW && copy_vec(st, 0, out, dim) == AE_OK;
  if (found) trunc = sqlite3_column_int(st, 1);
  sqlite3_reset(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return ae__store_dberr(s, "lookup");
  *same_node = 0;
  if (truncated) *truncated = found ? trunc : -1;
  return found ? AE_OK : AE_EMISS;
}

int ae_store_begin(ae_store *s) {
  if (s->in_tx) return ae__error(AE_ESTATE, "%s: a batch is already open", s->path);
  int rc = exec(s, "BEGIN IMMEDIATE");
  if (!rc) { s->in_tx = 1; s->tx_changes = 0; }
  return rc;
}

int ae_store_put(ae_store *s, const ae_annotation *a, const uint8_t h[16],
                 const uint8_t fp[16], const float *vec, int dim, int truncated) {
  if (!s->in_tx) return ae__error(AE_ESTATE, "%s: ae_store_put outside a batch", s->path);
  sqlite3_stmt *st = s->q[Q_PUT_ANN];
  sqlite3_bind_text(st, 1, a->node_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, a->file_path ? a->file_path : "", -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, a->start_line);
  sqlite3_bind_int(st, 4, a->end_line);
  sqlite3_bind_text(st, 5, a->node_type ? a->node_type : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, a->language ? a->language : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 7, a->signature ? a->signature : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 8, a->summary ? a->summary : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 9, a->snippet ? a->snippet : "", -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 10, h, 16, SQLITE_STATIC);
  sqlite3_bind_int64(st, 11, (sqlite3_int64)time(NULL));
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) return ae__error(AE_EDB, "%s: writing annotation %s: %s", s->path,
                                          a->node_id, sqlite3_errmsg(s->db));
  s->tx_changes += sqlite3_changes(s->db);
  if (!vec) return AE_OK;
  st = s->q[Q_PUT_VEC];
  sqlite3_bind_text(st, 1, a->node_id, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, fp, 16, SQLITE_STATIC);
  sqlite3_bind_blob(st, 3, h, 16, SQLITE_STATIC);
  sqlite3_bind_int(st, 4, dim);
  sqlite3_bind_blob(st, 5, vec, dim * (int)sizeof(float), SQLITE_STATIC);
  sqlite3_bind_int(st, 6, truncated < 0 ? -1 : truncated > 0);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) return ae__error(AE_EDB, "%s: writing the vector of %s: %s", s->path,
                                          a->node_id, sqlite3_errmsg(s->db));
  s->tx_changes++;
  return AE_OK;
}

int ae_store_commit(ae_store *s) {
  if (!s->in_tx) return ae__error(AE_ESTATE, "%s: no batch open", s->path);
  if (s->tx_changes) {
    int rc = sqlite3_step(s->q[Q_BUMP]);
    sqlite3_reset(s->q[Q_BUMP]);
    if (rc != SQLITE_DONE) { int e = ae__store_dberr(s, "commit"); ae_store_rollback(s); return e; }
  }
  int rc = exec(s, "COMMIT");
  if (rc) { ae_store_rollback(s); return rc; }
  s->in_tx = 0;
  return AE_OK;
}

void ae_store_rollback(ae_store *s) {
  if (!s->in_tx) return;
  sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  s->in_tx = 0;
}

/* ---- prune ------------------------------------------------------------------------ */

/* The input's node ids and files go into temporary tables; then one DELETE removes the
 * nodes of those files that the input no longer has, and another the vectors whose
 * annotation is gone. Both run in one transaction. */
int ae_store_prune(ae_store *s, const ae_annotation *items, size_t n, size_t *deleted) {
  *deleted = 0;
  int rc = exec(s, "CREATE TEMP TABLE IF NOT EXISTS prune_nodes(node_id TEXT PRIMARY KEY);"
                   "CREATE TEMP TABLE IF NOT EXISTS prune_files(file_path TEXT PRIMARY KEY);"
                   "DELETE FROM prune_nodes; DELETE FROM prune_files;");
  if (rc) return rc;
  if ((rc = ae_store_begin(s))) return rc;
  sqlite3_stmt *in_node = NULL, *in_file = NULL;
  if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO prune_nodes VALUES (?1)", -1, &in_node, NULL) ||
      sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO prune_files VALUES (?1)", -1, &in_file, NULL))
    rc = ae__store_dberr(s, "prune");
  for (size_t i = 0; !rc && i < n; i++) {
    sqlite3_bind_text(in_node, 1, items[i].node_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(in_file, 1, items[i].file_path ? items[i].file_path : "", -1, SQLITE_STATIC);
    if (sqlite3_step(in_node) != SQLITE_DONE || sqlite3_step(in_file) != SQLITE_DONE)
      rc = ae__store_dberr(s, "prune");
    sqlite3_reset(in_node);
    sqlite3_reset(in_file);
  }
  sqlite3_finalize(in_node);
  sqlite3_finalize(in_file);
  if (!rc) rc = exec(s, "DELETE FROM annotations WHERE file_path IN (SELECT file_path FROM prune_files)"
                        " AND node_id NOT IN (SELECT node_id FROM prune_nodes)");
  if (!rc) {
    *deleted = (size_t)sqlite3_changes(s->db);
    s->tx_changes += *deleted;
    rc = exec(s, "DELETE FROM vectors WHERE node_id NOT IN (SELECT node_id FROM annotations)");
    s->tx_changes += sqlite3_changes(s->db);
  }
  if (rc) { ae_store_rollback(s); *deleted = 0; return rc; }
  return ae_store_commit(s);
}

/* ---- stats ------------------------------------------------------------------------- */

/* One integer from a one-row query into *v (0 when the query yields no row); a SQLite
 * error (locked, corrupt, I/O) is returned, never read as a zero. */
static int count(ae_store *s, const char *sql, const uint8_t *fp, uint64_t *v) {
  sqlite3_stmt *st;
  *v = 0;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return ae__store_dberr(s, "reading counts");
  if (fp) sqlite3_bind_blob(st, 1, fp, 16, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *v = (uint64_t)sqlite3_column_int64(st, 0);
  int ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
  rc = ok ? AE_OK : ae__store_dberr(s, "reading counts");
  sqlite3_finalize(st);
  return rc;
}

uint64_t ae__store_generation(ae_store *s) {
  uint64_t v;
  count(s, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation'", NULL, &v);
  return v;
}

int ae_store_stats_get(ae_store *s, const uint8_t *fp, ae_store_stats *st) {
  memset(st, 0, sizeof *st);
  int rc = count(s, "SELECT count(*) FROM annotations", NULL, &st->annotations);
  if (!rc) rc = count(s, "SELECT count(*) FROM vectors", NULL, &st->vectors);
  if (!rc) rc = count(s, "SELECT count(*) FROM models", NULL, &st->models);
  if (!rc) rc = count(s, "SELECT count(DISTINCT file_path) FROM annotations", NULL, &st->files);
  if (!rc) rc = count(s, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation'", NULL, &st->generation);
  if (!rc) rc = fp ? count(s, "SELECT count(*) FROM vectors v JOIN annotations a"
                              " ON a.node_id = v.node_id AND a.text_hash = v.text_hash"
                              " WHERE v.fingerprint = ?1", fp, &st->current_vectors)
                   : count(s, "SELECT count(*) FROM vectors v JOIN annotations a"
                              " ON a.node_id = v.node_id AND a.text_hash = v.text_hash", NULL, &st->current_vectors);
  if (rc) return rc;
  struct stat sb;
  if (stat(s->path, &sb) == 0) st->db_bytes = (uint64_t)sb.st_size;
  char *wal = ae__malloc(strlen(s->path) + 5);
  if (wal) {
    strcpy(wal, s->path);
    strcat(wal, "-wal");
    if (stat(wal, &sb) == 0) st->db_bytes += (uint64_t)sb.st_size;
    ae__free(wal);
  }
  return AE_OK;
}
