/* Persistent tier of the cache: SQLite in WAL mode.
 *
 * One row per (model fingerprint, content hash): the float32 blob, its dimension, an
 * XXH3-64 checksum of the blob, its creation time (unix seconds); the last-access
 * time lives in a small table of its own (schema version 2, see "Access times"). Rows
 * live in a rowid table on 16 KiB pages (ten 384-d rows a page, no overflow pages),
 * found through a unique index on (fp, h). New rows are appended at the end of the
 * table, so a batch of writes dirties a few table pages plus the small index pages
 * it lands on; keying the table itself by the (random) content hash would rewrite
 * most of the file at every batch.
 *
 * Cold start: a process that starts with an empty memory tier would pay one b-tree
 * lookup (several microseconds) per stored vector. Instead the first lookup that
 * reaches the database bulk-loads this model's rows with one sequential scan, up to
 * a byte budget (the memory tier's limit), into a prefetch map; later lookups are
 * served from the map (the entry handed over to the memory tier and dropped from
 * the map) and only fall through to a query when absent. The map is a positive
 * cache of immutable, content-addressed rows, so serving from it is always correct;
 * bad rows met by the scan are rejected and deleted like any other.
 *
 * Writes are queued and committed in one transaction per batch (batch_count rows, or
 * when the oldest is batch_ms old, or on flush/close), so a set costs a memcpy, not an
 * fsync. What "committed" means: with synchronous=NORMAL in WAL mode a committed
 * transaction survives the process being killed (it is in the WAL, which the OS
 * has); with persist_sync_full it also survives power loss. Rows not yet committed
 * are simply absent after a crash, never half-written: SQLite's WAL guarantees it.
 *
 * Reads check the blob's length against dim and its checksum; a bad row is never
 * returned: it is counted (rejected), deleted and reported as a miss.
 *
 * Access times (schema version 2). Last-access times live in their own table,
 * access(fp, h -> accessed), WITHOUT ROWID and indexed by time: a touch rewrites a
 * 40-byte record instead of the whole vector row (in version 1 the time was a
 * column of the vector's row and SQLite rewrites a record, blob included, to change
 * one column, so touches were limited to once a day). A read queues a touch when the
 * row's stored time is TOUCH_GRANULARITY_S (a minute) old or more; touches are
 * applied in key order in the next write transaction (with the pending rows, or
 * when MAX_TOUCHES are queued, or at the maintenance step / flush). Pruning takes
 * the oldest accessed rows through the time index. Opening a version 1 file
 * migrates it in one transaction: the times move to the new table, the column and
 * its index are dropped (a one-time rewrite of the vector table).
 *
 * Errors: an unwritable, locked or corrupt file fails open with a clear message (the
 * cache then runs in memory); failures later (disk full, lock held by another
 * process) are counted, keep the batch pending for the next try (bounded), and are
 * reported by flush and in the metrics. */
#define _GNU_SOURCE
#include "cache/cache_internal.h"
#include "common/common.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#define ROW_OVERHEAD 64          /* bytes per row besides the blob, for the size cap */
#define TOUCH_GRANULARITY_S 60
#define MAX_TOUCHES 65536        /* queued touches that force a write transaction */
#define BUSY_TIMEOUT_MS 200
#define SCHEMA_VERSION 2
#define SCHEMA_VERSION_STR "2"

typedef struct {
  uint8_t h[16];
  uint32_t dim;
  float *data;
} pending_t;

typedef struct pf_ent {
  struct pf_ent *next;
  uint8_t h[16];
  uint32_t dim;
  int64_t accessed;
  float data[];
} pf_ent;

struct ae__persist {
  pthread_mutex_t mu;
  sqlite3 *db;
  sqlite3_stmt *ins, *acc_ins, *sel, *del, *acc_del, *touch, *doom, *prune, *acc_prune,
      *undoom, *size;
  char *path;
  uint8_t fp[16];
  uint64_t max_bytes, stored_bytes;
  uint32_t batch_count, batch_ms;
  pending_t *pend;
  size_t npend, cap_pend;
  uint64_t oldest_ns;
  uint8_t (*touched)[16];
  size_t ntouch, cap_touch;
  /* prefetch map */
  int pf_state;            /* 0 = not loaded yet, 1 = loaded (or off) */
  pf_ent **pf;
  size_t pf_mask, pf_n;
  uint64_t pf_bytes, pf_budget;
  ae__persist_stats st;
};

static int db_fail(ae__persist *p, int status, const char *what) {
  int rc = ae__error(status, "cache database %s: %s: %s", p->path, what, sqlite3_errmsg(p->db));
  p->st.status = status;
  snprintf(p->st.error, sizeof p->st.error, "%s", ae_last_error());
  return rc;
}

static int exec(ae__persist *p, const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(p->db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    ae__error(AE_EDB, "cache database %s: %s: %s", p->path, sql, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    p->st.status = AE_EDB;
    snprintf(p->st.error, sizeof p->st.error, "%s", ae_last_error());
    return AE_EDB;
  }
  return AE_OK;
}

static int64_t now_s(void) { return (int64_t)time(NULL); }

/* ---- open / close --------------------------------------------------------------- */

static int prepare(ae__persist *p, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v3(p->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
    return db_fail(p, AE_EDB, "prepare");
  return AE_OK;
}

/* Version 2 tables on a new file (inside setup's write transaction). */
static int create_schema(ae__persist *p) {
  return exec(p, "CREATE TABLE IF NOT EXISTS vectors("
                 " id INTEGER PRIMARY KEY, fp BLOB NOT NULL, h BLOB NOT NULL,"
                 " dim INTEGER NOT NULL, checksum INTEGER NOT NULL, created INTEGER NOT NULL,"
                 " vec BLOB NOT NULL)") ||
         exec(p, "CREATE UNIQUE INDEX IF NOT EXISTS vectors_key ON vectors(fp, h)") ||
         exec(p, "CREATE TABLE IF NOT EXISTS access(fp BLOB NOT NULL, h BLOB NOT NULL,"
                 " accessed INTEGER NOT NULL, PRIMARY KEY(fp, h)) WITHOUT ROWID") ||
         exec(p, "CREATE INDEX IF NOT EXISTS access_time ON access(accessed)");
}

/* Version 1 -> 2 (inside setup's write transaction, so all or nothing): every row's
 * access time moves to the access table; the column and its index go. */
static int migrate_v1(ae__persist *p) {
  return exec(p, "CREATE TABLE access(fp BLOB NOT NULL, h BLOB NOT NULL,"
                 " accessed INTEGER NOT NULL, PRIMARY KEY(fp, h)) WITHOUT ROWID") ||
         exec(p, "INSERT INTO access(fp, h, accessed) SELECT fp, h, accessed FROM vectors") ||
         exec(p, "CREATE INDEX access_time ON access(accessed)") ||
         exec(p, "DROP INDEX IF EXISTS vectors_accessed") ||
         exec(p, "ALTER TABLE vectors DROP COLUMN accessed");
}

static int setup(ae__persist *p, int sync_full) {
  sqlite3_busy_timeout(p->db, BUSY_TIMEOUT_MS);
  /* Page size only takes effect on a new database (before WAL is on). */
  if (exec(p, "PRAGMA page_size=16384")) return AE_EDB;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(p->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK)
    return db_fail(p, AE_EDB, "cannot read the file (corrupt or not a database?)");
  int rc = sqlite3_step(st);
  int wal = rc == SQLITE_ROW && sqlite3_column_text(st, 0) &&
            strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
  sqlite3_finalize(st);
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
    return db_fail(p, AE_EDB, "locked by another connection");
  if (rc != SQLITE_ROW) return db_fail(p, AE_EDB, "cannot open (corrupt or not a database?)");
  if (!wal) return db_fail(p, AE_EDB, "cannot switch to WAL mode");
  if (sqlite3_db_readonly(p->db, "main") == 1) {
    ae__error(AE_EIO, "cache database %s: file is not writable", p->path);
    p->st.status = AE_EIO;
    snprintf(p->st.error, sizeof p->st.error, "%s", ae_last_error());
    return AE_EIO;
  }
  if (exec(p, sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL") ||
      exec(p, "PRAGMA mmap_size=1073741824") || exec(p, "PRAGMA cache_size=-65536") ||
      exec(p, "PRAGMA temp_store=MEMORY") ||
      exec(p, "CREATE TEMP TABLE IF NOT EXISTS doomed(fp BLOB, h BLOB)"))
    return AE_EDB;
  /* BEGIN IMMEDIATE takes the write lock: a file locked by another writer or not
   * writable fails here, at open, rather than at the first flush. */
  if (exec(p, "BEGIN IMMEDIATE")) return AE_EDB;
  /* user_version marks the layout: 0 = a new file, 1 = access times in the vector
   * rows (migrated here), SCHEMA_VERSION = ours. */
  int64_t version = -1;
  if (sqlite3_prepare_v2(p->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    version = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if (version != 0 && version != 1 && version != SCHEMA_VERSION) {
    sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
    ae__error(AE_EFORMAT, "cache database %s: schema version %lld, this build reads 1 and %d",
              p->path, (long long)version, SCHEMA_VERSION);
    p->st.status = AE_EFORMAT;
    snprintf(p->st.error, sizeof p->st.error, "%s", ae_last_error());
    return AE_EFORMAT;
  }
  if ((version == 0 && create_schema(p)) || (version == 1 && migrate_v1(p)) ||
      (version != SCHEMA_VERSION && exec(p, "PRAGMA user_version=" SCHEMA_VERSION_STR)) ||
      exec(p, "COMMIT")) {
    sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
    return AE_EDB;
  }
  int prc;
  if ((prc = prepare(p, "INSERT INTO vectors(fp,h,dim,checksum,created,vec) "
                        "VALUES(?1,?2,?3,?5,?6,?4) ON CONFLICT(fp,h) DO UPDATE SET "
                        "dim=excluded.dim, vec=excluded.vec, checksum=excluded.checksum",
                     &p->ins)) ||
      (prc = prepare(p, "INSERT INTO access(fp,h,accessed) VALUES(?1,?2,?3) "
                        "ON CONFLICT(fp,h) DO UPDATE SET accessed=excluded.accessed", &p->acc_ins)) ||
      (prc = prepare(p, "SELECT v.dim, v.vec, v.checksum, coalesce(a.accessed, 0) FROM vectors v "
                        "LEFT JOIN access a ON a.fp=v.fp AND a.h=v.h WHERE v.fp=?1 AND v.h=?2",
                     &p->sel)) ||
      (prc = prepare(p, "DELETE FROM vectors WHERE fp=?1 AND h=?2", &p->del)) ||
      (prc = prepare(p, "DELETE FROM access WHERE fp=?1 AND h=?2", &p->acc_del)) ||
      (prc = prepare(p, "UPDATE access SET accessed=?3 WHERE fp=?1 AND h=?2", &p->touch)) ||
      (prc = prepare(p, "INSERT INTO temp.doomed SELECT fp, h FROM access ORDER BY accessed "
                        "LIMIT ?1", &p->doom)) ||
      (prc = prepare(p, "DELETE FROM vectors WHERE (fp, h) IN (SELECT fp, h FROM temp.doomed)",
                     &p->prune)) ||
      (prc = prepare(p, "DELETE FROM access WHERE (fp, h) IN (SELECT fp, h FROM temp.doomed)",
                     &p->acc_prune)) ||
      (prc = prepare(p, "DELETE FROM temp.doomed", &p->undoom)) ||
      (prc = prepare(p, "SELECT coalesce(sum(dim)*4 + count(*)*" "64" ",0) FROM vectors", &p->size)))
    return prc;
  return AE_OK;
}

static int measure_size(ae__persist *p) {
  sqlite3_reset(p->size);
  if (sqlite3_step(p->size) != SQLITE_ROW) {
    sqlite3_reset(p->size);
    return db_fail(p, AE_EDB, "size query");
  }
  p->stored_bytes = (uint64_t)sqlite3_column_int64(p->size, 0);
  sqlite3_reset(p->size);
  return AE_OK;
}

static void close_db(ae__persist *p) {
  sqlite3_stmt *sts[] = {p->ins,  p->acc_ins, p->sel,       p->del,    p->acc_del, p->touch,
                         p->doom, p->prune,   p->acc_prune, p->undoom, p->size};
  for (size_t i = 0; i < sizeof sts / sizeof *sts; i++) sqlite3_finalize(sts[i]);
  sqlite3_close(p->db);
  p->db = NULL;
}

static void pf_clear(ae__persist *p) {
  if (p->pf)
    for (size_t i = 0; i <= p->pf_mask; i++)
      for (pf_ent *e = p->pf[i], *nx; e; e = nx) {
        nx = e->next;
        ae__free(e);
      }
  ae__free(p->pf);
  p->pf = NULL;
  p->pf_n = 0;
  p->pf_bytes = 0;
}

static void free_persist(ae__persist *p) {
  pf_clear(p);
  for (size_t i = 0; i < p->npend; i++) ae__free(p->pend[i].data);
  ae__free(p->pend);
  ae__free(p->touched);
  ae__free(p->path);
  pthread_mutex_destroy(&p->mu);
  ae__free(p);
}

int ae__persist_open(const char *path, const uint8_t fp[16], size_t max_mb,
                     uint32_t batch_count, uint32_t batch_ms, int sync_full,
                     uint64_t prefetch_bytes, ae__persist **out) {
  *out = NULL;
  ae__persist *p = ae__calloc(1, sizeof *p);
  if (!p) return ae__error(AE_ENOMEM, "cache database %s: out of memory", path);
  pthread_mutex_init(&p->mu, NULL);
  p->path = ae__strdup(path);
  if (!p->path) {
    free_persist(p);
    return ae__error(AE_ENOMEM, "cache database %s: out of memory", path);
  }
  memcpy(p->fp, fp, 16);
  p->max_bytes = (uint64_t)max_mb << 20;
  p->batch_count = batch_count ? batch_count : 256;
  p->batch_ms = batch_ms;
  p->pf_budget = prefetch_bytes;
  int rc = sqlite3_open_v2(path, &p->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                             SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    rc = ae__error(AE_EIO, "cache database %s: cannot open: %s", path,
                   p->db ? sqlite3_errmsg(p->db) : sqlite3_errstr(rc));
  } else {
    rc = setup(p, sync_full);
    if (!rc && p->max_bytes) rc = measure_size(p);
  }
  if (rc) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", ae_last_error());
    close_db(p);
    free_persist(p);
    return ae__error(rc, "%s (persistent tier off, caching in memory only)", msg);
  }
  *out = p;
  return AE_OK;
}

/* ---- writing ---------------------------------------------------------------------- */

static void bind_key(sqlite3_stmt *st, const uint8_t fp[16], const uint8_t h[16]) {
  sqlite3_bind_blob(st, 1, fp, 16, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, h, 16, SQLITE_STATIC);
}

static int step_done(ae__persist *p, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return db_fail(p, AE_EDB, what);
  return AE_OK;
}

static int cmp_hash(const void *a, const void *b) { return memcmp(a, b, 16); }

/* Queues a last-access update for h (advisory: dropped when no memory). */
static void queue_touch(ae__persist *p, const uint8_t h[16]) {
  if (p->ntouch == p->cap_touch) {
    size_t nc = p->cap_touch ? p->cap_touch * 2 : 1024;
    uint8_t (*nt)[16] = ae__realloc(p->touched, nc * sizeof *nt);
    if (!nt) return;
    p->touched = nt;
    p->cap_touch = nc;
  }
  memcpy(p->touched[p->ntouch++], h, 16);
}

/* Deletes the oldest-accessed rows until the file's content is under 90% of the cap. */
static int prune_locked(ae__persist *p) {
  if (!p->max_bytes || p->stored_bytes <= p->max_bytes) return AE_OK;
  uint64_t target = p->max_bytes / 10 * 9;
  for (int round = 0; round < 8 && p->stored_bytes > target; round++) {
    int64_t n_rows = 0;
    sqlite3_stmt *cnt;
    if (sqlite3_prepare_v2(p->db, "SELECT count(*) FROM vectors", -1, &cnt, NULL) == SQLITE_OK &&
        sqlite3_step(cnt) == SQLITE_ROW)
      n_rows = sqlite3_column_int64(cnt, 0);
    sqlite3_finalize(cnt);
    if (n_rows <= 0) break;
    uint64_t per_row = p->stored_bytes / (uint64_t)n_rows + 1;
    int64_t drop = (int64_t)((p->stored_bytes - target) / per_row) + 1;
    /* the oldest access times (through their index) name the rows to drop */
    sqlite3_bind_int64(p->doom, 1, drop);
    int rc = exec(p, "BEGIN IMMEDIATE");
    if (!rc) rc = step_done(p, p->doom, "prune: pick the oldest");
    if (!rc) rc = step_done(p, p->prune, "prune");
    uint64_t gone = rc ? 0 : (uint64_t)sqlite3_changes(p->db);
    if (!rc) rc = step_done(p, p->acc_prune, "prune access times");
    if (!rc) rc = step_done(p, p->undoom, "prune: clear");
    if (!rc) rc = exec(p, "COMMIT");
    if (rc) {
      if (!sqlite3_get_autocommit(p->db)) sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
      sqlite3_exec(p->db, "DELETE FROM temp.doomed", NULL, NULL, NULL);
      return rc;
    }
    p->st.pruned += gone;
    if ((rc = measure_size(p))) return rc;
  }
  return AE_OK;
}

/* Commits the pending rows and touches in one transaction. On failure everything
 * stays pending (retried by the next flush) unless the queue grew past 16 batches,
 * when the oldest half is dropped and counted as errors. */
static int flush_locked(ae__persist *p) {
  if (!p->npend && !p->ntouch) return AE_OK;
  int64_t now = now_s();
  int rc = exec(p, "BEGIN IMMEDIATE");
  for (size_t i = 0; !rc && i < p->npend; i++) {
    pending_t *w = &p->pend[i];
    size_t nb = (size_t)w->dim * sizeof(float);
    bind_key(p->ins, p->fp, w->h);
    sqlite3_bind_int64(p->ins, 3, w->dim);
    sqlite3_bind_blob(p->ins, 4, w->data, (int)nb, SQLITE_STATIC);
    sqlite3_bind_int64(p->ins, 5, (int64_t)XXH3_64bits(w->data, nb));
    sqlite3_bind_int64(p->ins, 6, now);
    rc = step_done(p, p->ins, "write");
    if (rc) break;
    bind_key(p->acc_ins, p->fp, w->h);
    sqlite3_bind_int64(p->acc_ins, 3, now);
    rc = step_done(p, p->acc_ins, "write access time");
  }
  /* in key order: the updates walk the access table's b-tree front to back */
  if (!rc && p->ntouch > 1) qsort(p->touched, p->ntouch, sizeof *p->touched, cmp_hash);
  for (size_t i = 0; !rc && i < p->ntouch; i++) {
    bind_key(p->touch, p->fp, p->touched[i]);
    sqlite3_bind_int64(p->touch, 3, now);
    rc = step_done(p, p->touch, "update access time");
  }
  if (!rc) rc = exec(p, "COMMIT");
  if (rc) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", ae_last_error());
    if (!sqlite3_get_autocommit(p->db)) sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
    p->st.errors++;
    if (p->npend > 16 * (size_t)p->batch_count) {
      size_t drop = p->npend / 2;
      for (size_t i = 0; i < drop; i++) ae__free(p->pend[i].data);
      memmove(p->pend, p->pend + drop, (p->npend - drop) * sizeof *p->pend);
      p->npend -= drop;
      p->st.errors += drop;
    }
    p->ntouch = 0; /* access times are advisory */
    return ae__error(rc, "%s (%zu writes kept pending)", msg, p->npend);
  }
  for (size_t i = 0; i < p->npend; i++) {
    p->stored_bytes += (uint64_t)p->pend[i].dim * 4 + ROW_OVERHEAD;
    ae__free(p->pend[i].data);
  }
  p->st.writes += p->npend;
  p->npend = 0;
  p->ntouch = 0;
  p->st.status = AE_OK;
  p->st.error[0] = 0;
  return prune_locked(p);
}

int ae__persist_put(ae__persist *p, const uint8_t h[16], const float *vec, uint32_t dim) {
  float *copy = ae__malloc((size_t)dim * sizeof(float));
  if (!copy) {
    pthread_mutex_lock(&p->mu);
    p->st.errors++;
    pthread_mutex_unlock(&p->mu);
    return ae__error(AE_ENOMEM, "cache database %s: out of memory queueing a write", p->path);
  }
  memcpy(copy, vec, (size_t)dim * sizeof(float));
  pthread_mutex_lock(&p->mu);
  if (p->npend == p->cap_pend) {
    size_t nc = p->cap_pend ? p->cap_pend * 2 : 64;
    pending_t *np = ae__realloc(p->pend, nc * sizeof *np);
    if (!np) {
      p->st.errors++;
      pthread_mutex_unlock(&p->mu);
      ae__free(copy);
      return ae__error(AE_ENOMEM, "cache database %s: out of memory queueing a write", p->path);
    }
    p->pend = np;
    p->cap_pend = nc;
  }
  if (p->npend == 0) p->oldest_ns = ae__now_ns();
  pending_t *w = &p->pend[p->npend++];
  memcpy(w->h, h, 16);
  w->dim = dim;
  w->data = copy;
  int rc = AE_OK;
  if (p->npend >= p->batch_count) rc = flush_locked(p);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

int ae__persist_flush(ae__persist *p) {
  pthread_mutex_lock(&p->mu);
  int rc = flush_locked(p);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

int ae__persist_maintain(ae__persist *p) {
  pthread_mutex_lock(&p->mu);
  int rc = AE_OK;
  int due = p->npend && (ae__now_ns() - p->oldest_ns) / 1000000 >= p->batch_ms;
  if (due || p->ntouch) rc = flush_locked(p);
  else rc = prune_locked(p);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

void ae__persist_close(ae__persist *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  flush_locked(p);
  pthread_mutex_unlock(&p->mu);
  close_db(p);
  free_persist(p);
}

/* ---- reading ---------------------------------------------------------------------- */

static int from_pending(ae__persist *p, const uint8_t h[16], float *out, uint32_t dim) {
  for (size_t i = p->npend; i-- > 0;)
    if (memcmp(p->pend[i].h, h, 16) == 0) {
      if (p->pend[i].dim != dim) return AE_EMISMATCH;
      memcpy(out, p->pend[i].data, (size_t)dim * sizeof(float));
      return AE_OK;
    }
  return AE_EMISS;
}

static void reject_row(ae__persist *p, const uint8_t h[16]) {
  p->st.rejected++;
  bind_key(p->del, p->fp, h);
  if (step_done(p, p->del, "delete a bad row")) p->st.errors++;
  bind_key(p->acc_del, p->fp, h);
  if (step_done(p, p->acc_del, "delete a bad row's access time")) p->st.errors++;
}

static inline size_t pf_bucket(const ae__persist *p, const uint8_t h[16]) {
  uint64_t x;
  memcpy(&x, h, 8);
  return (size_t)(x & p->pf_mask);
}

static void pf_grow(ae__persist *p) {
  size_t nb = (p->pf_mask + 1) * 2;
  pf_ent **b = ae__calloc(nb, sizeof *b);
  if (!b) return;
  size_t old = p->pf_mask + 1;
  p->pf_mask = nb - 1;
  for (size_t i = 0; i < old; i++)
    for (pf_ent *e = p->pf[i], *nx; e; e = nx) {
      nx = e->next;
      size_t k = pf_bucket(p, e->h);
      e->next = b[k];
      b[k] = e;
    }
  ae__free(p->pf);
  p->pf = b;
}

static pf_ent *pf_find(ae__persist *p, const uint8_t h[16]) {
  pf_ent *e = p->pf[pf_bucket(p, h)];
  while (e && memcmp(e->h, h, 16) != 0) e = e->next;
  return e;
}

/* The prefetched rows' access times: one range scan of this model's part of the
 * access table (small records, key order). */
static void prefetch_access_times(ae__persist *p) {
  if (!p->pf_n) return;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(p->db, "SELECT h, accessed FROM access WHERE fp=?1", -1, &st, NULL) !=
      SQLITE_OK) {
    db_fail(p, AE_EDB, "prefetch access times");
    p->st.errors++;
    return;
  }
  sqlite3_bind_blob(st, 1, p->fp, 16, SQLITE_STATIC);
  while (sqlite3_step(st) == SQLITE_ROW) {
    const void *h = sqlite3_column_blob(st, 0);
    if (!h || sqlite3_column_bytes(st, 0) != 16) continue;
    pf_ent *e = pf_find(p, h);
    if (e) e->accessed = sqlite3_column_int64(st, 1);
  }
  sqlite3_finalize(st);
}

/* One sequential scan of this model's rows (table order) into the prefetch map, up
 * to the byte budget; rows with a wrong length or checksum are deleted afterwards. */
static void prefetch_locked(ae__persist *p) {
  p->pf_state = 1;
  if (!p->pf_budget) return;
  p->pf = ae__calloc(1024, sizeof *p->pf);
  if (!p->pf) return;
  p->pf_mask = 1023;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(p->db, "SELECT h, dim, vec, checksum FROM vectors "
                                "NOT INDEXED WHERE fp=?1", -1, &st, NULL) != SQLITE_OK) {
    db_fail(p, AE_EDB, "prefetch");
    p->st.errors++;
    return;
  }
  sqlite3_bind_blob(st, 1, p->fp, 16, SQLITE_STATIC);
  uint8_t (*bad)[16] = NULL;
  size_t nbad = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const void *h = sqlite3_column_blob(st, 0);
    int64_t dim = sqlite3_column_int64(st, 1);
    const void *blob = sqlite3_column_blob(st, 2);
    int64_t nb = sqlite3_column_bytes(st, 2);
    uint64_t sum = (uint64_t)sqlite3_column_int64(st, 3);
    if (!h || sqlite3_column_bytes(st, 0) != 16) continue;
    if (dim <= 0 || nb != dim * 4 || !blob || XXH3_64bits(blob, (size_t)nb) != sum) {
      uint8_t (*nbd)[16] = ae__realloc(bad, (nbad + 1) * sizeof *bad);
      if (nbd) {
        bad = nbd;
        memcpy(bad[nbad++], h, 16);
      }
      continue;
    }
    size_t size = sizeof(pf_ent) + (size_t)nb;
    if (p->pf_bytes + size > p->pf_budget) break;
    pf_ent *e = ae__malloc(size);
    if (!e) break;
    memcpy(e->h, h, 16);
    e->dim = (uint32_t)dim;
    e->accessed = 0; /* filled from the access table below */
    memcpy(e->data, blob, (size_t)nb);
    size_t k = pf_bucket(p, e->h);
    e->next = p->pf[k];
    p->pf[k] = e;
    p->pf_bytes += size;
    if (++p->pf_n > p->pf_mask + 1) pf_grow(p);
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    db_fail(p, AE_EDB, "prefetch scan");
    p->st.errors++;
  }
  sqlite3_finalize(st);
  for (size_t i = 0; i < nbad; i++) reject_row(p, bad[i]);
  ae__free(bad);
  prefetch_access_times(p);
}

/* Serves h from the prefetch map, handing the entry over (it leaves the map). */
static int from_prefetch(ae__persist *p, const uint8_t h[16], float *out, uint32_t dim) {
  if (!p->pf_n) return AE_EMISS;
  pf_ent **pp = &p->pf[pf_bucket(p, h)];
  while (*pp && memcmp((*pp)->h, h, 16) != 0) pp = &(*pp)->next;
  pf_ent *e = *pp;
  if (!e) return AE_EMISS;
  if (e->dim != dim) return AE_EMISMATCH;
  memcpy(out, e->data, (size_t)dim * sizeof(float));
  if (now_s() - e->accessed >= TOUCH_GRANULARITY_S) queue_touch(p, h);
  *pp = e->next;
  p->pf_n--;
  p->pf_bytes -= sizeof(pf_ent) + (size_t)dim * sizeof(float);
  ae__free(e);
  p->st.hits++;
  return AE_OK;
}

/* Pending writes, then the prefetch map (loaded on the first call): no SQL. */
static int get_in_memory(ae__persist *p, const uint8_t h[16], float *out, uint32_t dim) {
  int rc = from_pending(p, h, out, dim);
  if (rc != AE_EMISS) return rc;
  if (!p->pf_state) prefetch_locked(p);
  return from_prefetch(p, h, out, dim);
}

/* One indexed lookup in the database, under the lock. */
static int get_from_db(ae__persist *p, const uint8_t h[16], float *out, uint32_t dim) {
  bind_key(p->sel, p->fp, h);
  int s = sqlite3_step(p->sel);
  if (s == SQLITE_DONE) {
    sqlite3_reset(p->sel);
    return AE_EMISS;
  }
  if (s != SQLITE_ROW) {
    p->st.errors++;
    db_fail(p, AE_EDB, "read");
    sqlite3_reset(p->sel);
    return AE_EMISS;
  }
  int64_t sdim = sqlite3_column_int64(p->sel, 0);
  const void *blob = sqlite3_column_blob(p->sel, 1);
  int64_t nb = sqlite3_column_bytes(p->sel, 1);
  uint64_t sum = (uint64_t)sqlite3_column_int64(p->sel, 2);
  int64_t accessed = sqlite3_column_int64(p->sel, 3);
  int bad = sdim <= 0 || nb != sdim * 4 || !blob || XXH3_64bits(blob, (size_t)nb) != sum;
  if (!bad && sdim == dim) memcpy(out, blob, (size_t)nb);
  sqlite3_reset(p->sel);
  if (bad) {
    reject_row(p, h);
    return AE_EMISS;
  }
  if (sdim != dim) return AE_EMISMATCH;
  p->st.hits++;
  if (now_s() - accessed >= TOUCH_GRANULARITY_S) queue_touch(p, h);
  return AE_OK;
}

int ae__persist_get(ae__persist *p, const uint8_t h[16], float *out, uint32_t dim) {
  pthread_mutex_lock(&p->mu);
  int rc = get_in_memory(p, h, out, dim);
  if (rc == AE_EMISS) rc = get_from_db(p, h, out, dim);
  if (p->ntouch >= MAX_TOUCHES) flush_locked(p);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

static int cmp_by_hash(const void *a, const void *b, void *keys) {
  const uint8_t (*k)[16] = keys;
  return memcmp(k[*(const size_t *)a], k[*(const size_t *)b], 16);
}

/* Many lookups. Those the pending queue or the prefetch map answer are served in
 * the caller's order (no SQL, and the caller's output is written front to back);
 * only the rest go to the database, in one read transaction and in key order so the
 * b-tree is walked roughly front to back. */
int ae__persist_get_many(ae__persist *p, size_t n, const uint8_t (*h)[16], float *const *outs,
                         uint32_t dim, int *status) {
  pthread_mutex_lock(&p->mu);
  size_t left = 0;
  for (size_t i = 0; i < n; i++) left += (status[i] = get_in_memory(p, h[i], outs[i], dim)) == AE_EMISS;
  if (left) {
    size_t *order = ae__malloc(left * sizeof *order), k = 0;
    if (order) {
      for (size_t i = 0; i < n; i++)
        if (status[i] == AE_EMISS) order[k++] = i;
      qsort_r(order, left, sizeof *order, cmp_by_hash, (void *)h);
    }
    int txn = sqlite3_exec(p->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    for (size_t j = 0, i = 0; order ? j < left : i < n; j++, i++) {
      size_t at = order ? order[j] : i;
      if (status[at] == AE_EMISS) status[at] = get_from_db(p, h[at], outs[at], dim);
    }
    if (txn && sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
      p->st.errors++;
      sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
    }
    ae__free(order);
  }
  if (p->ntouch >= MAX_TOUCHES) flush_locked(p);
  pthread_mutex_unlock(&p->mu);
  return AE_OK;
}

void ae__persist_stats_get(ae__persist *p, ae__persist_stats *st) {
  pthread_mutex_lock(&p->mu);
  *st = p->st;
  st->pending = p->npend;
  pthread_mutex_unlock(&p->mu);
}
