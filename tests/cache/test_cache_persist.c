// ctest-timeout: 120
/* Persistent tier: write-behind batches, reopen serves every vector (single and
 * batch gets), the fingerprint separates models, bad rows (checksum, length) are
 * never returned, pending writes are readable, pruning by last access past the cap,
 * and I/O faults (directory, missing parent, garbage file, read-only file, a lock
 * held by another connection at open and at flush) leave a working memory cache
 * with a clear error. */
#define _GNU_SOURCE
#include "astembed.h"
#include "cache_test_util.h"
#include "test.h"
#include <sqlite3.h>
#include <time.h>
#include <xxhash.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIM 384

static char dir[] = "/tmp/ae_cache_persist_XXXXXX";
/* variants: prefetch on (default) / off, and a memory limit small enough that the
 * prefetch map holds only part of the file */
static int g_no_prefetch;
static size_t g_max_bytes;

static ae_cache *open_cache(const char *path, const uint8_t *fp, size_t mem_entries,
                            size_t cap_mb, uint32_t batch) {
  ae_cache_config cfg = test_cache_config(mem_entries, g_max_bytes, AE_CACHE_LRU, 0, path);
  cfg.persist_max_mb = cap_mb;
  cfg.persist_batch_count = batch;
  cfg.persist_no_prefetch = g_no_prefetch;
  ae_cache *c = NULL;
  int rc = ae_cache_new(&cfg, fp, &c);
  if (rc) fprintf(stderr, "ae_cache_new(%s): %s\n", path, ae_last_error());
  return c;
}

static int set_id(ae_cache *c, uint64_t id) {
  char key[32];
  snprintf(key, sizeof key, "file_%llu.py", (unsigned long long)id);
  return cache_set_id(c, key, id, DIM);
}

static int get_id(ae_cache *c, uint64_t id, const char *key_prefix) {
  char key[32];
  snprintf(key, sizeof key, "%s%llu.py", key_prefix, (unsigned long long)id);
  return cache_get_id(c, key, id, DIM);
}

static int64_t sql_int(const char *path, const char *sql) {
  sqlite3 *db;
  int64_t v = -1;
  if (sqlite3_open(path, &db) == SQLITE_OK) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
      v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return v;
}

static int sql_exec(const char *path, const char *sql) {
  sqlite3 *db;
  int rc = sqlite3_open(path, &db);
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  sqlite3_close(db);
  return rc;
}

static void test_roundtrip(const char *path) {
  ae_cache *c = open_cache(path, FP_A, 100, 0, 64);
  REQUIRE(c);
  CHECK_OK(ae_cache_persist_status(c));
  for (uint64_t i = 0; i < 2000; i++) CHECK_OK(set_id(c, i));
  ae_cache_metrics m;
  ae_cache_metrics_get(c, &m);
  CHECK(m.persist_enabled == 1);
  CHECK(m.persist_writes >= 1920 && m.persist_writes % 64 == 0); /* batches, not rows */
  CHECK(m.entries == 100);                                      /* memory tier capped */
  /* evicted from memory, still served (read-through) and promoted */
  CHECK(get_id(c, 5, "file_") == AE_OK);
  ae_cache_metrics_get(c, &m);
  CHECK(m.persist_hits == 1 && m.hits == 1);
  CHECK(get_id(c, 5, "file_") == AE_OK);
  ae_cache_metrics_get(c, &m);
  CHECK(m.persist_hits == 1 && m.hits == 2); /* second one from memory */
  ae_cache_free(c);                          /* flushes the rest */
  CHECK(sql_int(path, "SELECT count(*) FROM vectors") == 2000);
  CHECK(sql_int(path, "PRAGMA page_size") == 16384);
  CHECK(sql_int(path, "SELECT count(*) FROM vectors WHERE length(vec) != 1536") == 0);

  /* reopen: every vector served, under any key with that content */
  c = open_cache(path, FP_A, 100, 0, 64);
  REQUIRE(c);
  int bad = 0;
  for (uint64_t i = 0; i < 2000; i++) bad += get_id(c, i, i % 2 ? "file_" : "other_") != AE_OK;
  CHECKF(bad == 0, "%d vectors not served after reopen", bad);
  ae_cache_metrics_get(c, &m);
  CHECK(m.persist_hits == 2000);
  ae_cache_free(c);

  /* batch get from a fresh cache */
  c = open_cache(path, FP_A, 3000, 0, 64);
  REQUIRE(c);
  enum { N = 500 };
  static char kb[N][32], cb[N][128];
  static const char *keys[N], *cs[N];
  static size_t lens[N];
  static float out[N * DIM];
  static int st[N];
  for (int i = 0; i < N; i++) {
    uint64_t id = (uint64_t)i * 3 + (i == 7 ? 100000 : 0); /* item 7 was never stored */
    snprintf(kb[i], sizeof kb[i], "k%d", i);
    content_for(id, cb[i], sizeof cb[i]);
    keys[i] = kb[i];
    cs[i] = cb[i];
    lens[i] = strlen(cb[i]);
  }
  size_t hits = 0;
  CHECK_OK(ae_cache_get_many(c, N, keys, cs, lens, out, DIM, st, &hits));
  CHECK(hits == N - 1 && st[7] == AE_EMISS);
  bad = 0;
  for (int i = 0; i < N; i++)
    if (i != 7) bad += st[i] != AE_OK || !vec_is((uint64_t)i * 3, out + (size_t)i * DIM, DIM);
  CHECK(bad == 0);
  ae_cache_metrics_get(c, &m);
  CHECK(m.persist_hits == N - 1 && m.entries == N - 1);
  ae_cache_free(c);

  /* another model's fingerprint sees nothing */
  c = open_cache(path, FP_B, 100, 0, 64);
  REQUIRE(c);
  CHECK(get_id(c, 1, "file_") == AE_EMISS);
  ae_cache_free(c);
}

static void test_bad_rows(const char *path) {
  /* flip a byte inside one blob (checksum), truncate another (length) */
  uint8_t h1[16], h2[16];
  ae_cache *c = open_cache(path, FP_A, 100, 0, 64);
  REQUIRE(c);
  char content[128];
  content_for(10, content, sizeof content);
  ae__cache_content_hash(c, content, strlen(content), h1);
  content_for(11, content, sizeof content);
  ae__cache_content_hash(c, content, strlen(content), h2);
  ae_cache_free(c);
  char sql[512], hex1[33], hex2[33];
  for (int i = 0; i < 16; i++) {
    sprintf(hex1 + 2 * i, "%02x", h1[i]);
    sprintf(hex2 + 2 * i, "%02x", h2[i]);
  }
  snprintf(sql, sizeof sql,
           "UPDATE vectors SET vec = CAST(substr(vec,1,100) || x'00' || substr(vec,102) AS BLOB) "
           "WHERE h = x'%s';"
           "UPDATE vectors SET vec = substr(vec,1,1532) WHERE h = x'%s';",
           hex1, hex2);
  CHECK(sql_exec(path, sql) == SQLITE_OK);
  CHECK(sql_int(path, "SELECT count(*) FROM vectors WHERE length(vec) != 1536") == 1);
  c = open_cache(path, FP_A, 100, 0, 64);
  REQUIRE(c);
  CHECK(get_id(c, 10, "file_") == AE_EMISS);
  CHECK(get_id(c, 11, "file_") == AE_EMISS);
  CHECK(get_id(c, 12, "file_") == AE_OK);
  ae_cache_metrics m;
  ae_cache_metrics_get(c, &m);
  CHECK(m.persist_rejected == 2);
  ae_cache_free(c);
  CHECK(sql_int(path, "SELECT count(*) FROM vectors") == 1998); /* deleted */
}

static void test_pending_and_prune(const char *path) {
  /* a vector not yet committed (big batch) but evicted from memory is still served */
  ae_cache *c = open_cache(path, FP_A, 10, 2, 100000);
  REQUIRE(c);
  for (uint64_t i = 0; i < 1000; i++) CHECK_OK(set_id(c, i));
  CHECK(get_id(c, 3, "x") == AE_OK);
  ae_cache_metrics m;
  ae_cache_metrics_get(c, &m);
  CHECK(m.persist_pending == 1000 && m.persist_writes == 0);
  CHECK_OK(ae_cache_flush(c));
  ae_cache_metrics_get(c, &m);
  CHECK(m.persist_pending == 0 && m.persist_writes == 1000);
  /* age the first 500 rows, then go past the 2 MiB cap (1,600 bytes a row) */
  ae_cache_free(c);
  uint8_t h[16];
  c = open_cache(path, FP_A, 10, 2, 100000);
  REQUIRE(c);
  sqlite3 *db;
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  sqlite3_stmt *st;
  REQUIRE(sqlite3_prepare_v2(db, "UPDATE access SET accessed = 1000 WHERE h = ?1", -1, &st, NULL) ==
          SQLITE_OK);
  for (uint64_t i = 0; i < 500; i++) {
    char content[128];
    content_for(i, content, sizeof content);
    ae__cache_content_hash(c, content, strlen(content), h);
    sqlite3_bind_blob(st, 1, h, 16, SQLITE_TRANSIENT);
    sqlite3_step(st);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  for (uint64_t i = 1000; i < 1400; i++) CHECK_OK(set_id(c, i));
  CHECK_OK(ae_cache_flush(c));
  ae_cache_metrics_get(c, &m);
  CHECK(m.persist_pruned > 100);
  ae_cache_free(c);
  int64_t rows = sql_int(path, "SELECT count(*) FROM vectors");
  int64_t bytes = sql_int(path, "SELECT sum(length(vec)) + count(*) * 64 FROM vectors");
  CHECKF(bytes <= 2 << 20, "%lld bytes stored past the 2 MiB cap", (long long)bytes);
  CHECK(rows > 1000 && rows < 1400);
  /* the pruned rows are the least recently accessed: all younger ones survive */
  c = open_cache(path, FP_A, 2000, 0, 100000);
  REQUIRE(c);
  int young_missing = 0, old_present = 0;
  for (uint64_t i = 500; i < 1400; i++) young_missing += get_id(c, i, "y") != AE_OK;
  for (uint64_t i = 0; i < 500; i++) old_present += get_id(c, i, "y") == AE_OK;
  CHECKF(young_missing == 0, "%d recently used rows were pruned", young_missing);
  CHECK(old_present == rows - 900);
  ae_cache_free(c);
}

/* The cache must come up in memory with a clear error naming the file. */
static void expect_memory_only(const char *path, const char *what, int want_status) {
  ae_cache *c = open_cache(path, FP_A, 100, 0, 64);
  CHECKF(c != NULL, "%s: no cache", what);
  if (!c) return;
  int st = ae_cache_persist_status(c);
  CHECKF(st != AE_OK && (!want_status || st == want_status), "%s: status %d", what, st);
  ae_cache_metrics m;
  ae_cache_metrics_get(c, &m);
  CHECKF(m.persist_enabled == 0 && strstr(m.persist_error, path) != NULL, "%s: error '%s'", what,
         m.persist_error);
  fprintf(stderr, "  (%s -> \"%s\")\n", what, m.persist_error);
  char *js = ae_cache_metrics_json(c);
  CHECK(js && strstr(js, "\"persistEnabled\":false") != NULL);
  ae_free(js);
  CHECK_OK(set_id(c, 1));
  CHECK(get_id(c, 1, "file_") == AE_OK);
  CHECK_OK(ae_cache_flush(c));
  ae_cache_free(c);
}

static void test_io_faults(void) {
  char path[512];
  /* a directory where the file should be */
  snprintf(path, sizeof path, "%s/adir", dir);
  mkdir(path, 0755);
  expect_memory_only(path, "directory", 0);
  /* missing parent directory */
  snprintf(path, sizeof path, "%s/no/such/dir/cache.db", dir);
  expect_memory_only(path, "missing parent", AE_EIO);
  /* garbage bytes */
  snprintf(path, sizeof path, "%s/garbage.db", dir);
  FILE *f = fopen(path, "wb");
  REQUIRE(f);
  uint64_t x = 42;
  for (int i = 0; i < 8192; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    fputc((int)(x & 0xff), f);
  }
  fclose(f);
  expect_memory_only(path, "garbage file", AE_EDB);
  /* a read-only file (root can write anything: only checked for other users) */
  snprintf(path, sizeof path, "%s/ro.db", dir);
  ae_cache *c = open_cache(path, FP_A, 10, 0, 64);
  REQUIRE(c);
  ae_cache_free(c);
  if (geteuid() != 0) {
    chmod(path, 0444);
    expect_memory_only(path, "read-only file", AE_EIO);
  } else {
    /* root writes through permission bits; the immutable attribute stops it */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chattr +i %s 2>/dev/null", path);
    if (system(cmd) == 0) {
      expect_memory_only(path, "immutable file (root)", AE_EIO);
      snprintf(cmd, sizeof cmd, "chattr -i %s", path);
      CHECK(system(cmd) == 0);
    } else {
      fprintf(stderr, "  (read-only file check skipped: root and no chattr here)\n");
    }
  }
  /* a file from another schema version */
  snprintf(path, sizeof path, "%s/future.db", dir);
  c = open_cache(path, FP_A, 10, 0, 64);
  REQUIRE(c);
  ae_cache_free(c);
  CHECK(sql_int(path, "PRAGMA user_version") == 2);
  CHECK(sql_exec(path, "PRAGMA user_version=7") == SQLITE_OK);
  expect_memory_only(path, "schema version 7", AE_EFORMAT);
  /* locked: another connection holds the write lock while we open */
  snprintf(path, sizeof path, "%s/locked.db", dir);
  c = open_cache(path, FP_A, 10, 0, 64);
  REQUIRE(c);
  ae_cache_free(c);
  sqlite3 *other;
  REQUIRE(sqlite3_open(path, &other) == SQLITE_OK);
  CHECK(sqlite3_exec(other, "BEGIN EXCLUSIVE; DELETE FROM vectors;", NULL, NULL, NULL) == SQLITE_OK);
  expect_memory_only(path, "locked at open", AE_EDB);
  CHECK(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
  /* locked later: the flush fails clearly, keeps the batch, succeeds once released */
  c = open_cache(path, FP_A, 10, 0, 100000);
  REQUIRE(c);
  CHECK_OK(ae_cache_persist_status(c));
  CHECK(sqlite3_exec(other, "BEGIN IMMEDIATE; DELETE FROM vectors;", NULL, NULL, NULL) == SQLITE_OK);
  CHECK_OK(set_id(c, 77));
  int rc = ae_cache_flush(c);
  CHECKF(rc == AE_EDB && strstr(ae_last_error(), "locked") != NULL, "flush under lock: %d %s", rc,
         ae_last_error());
  ae_cache_metrics m;
  ae_cache_metrics_get(c, &m);
  CHECK(m.persist_errors == 1 && m.persist_pending == 1 && m.persist_status == AE_EDB);
  CHECK(get_id(c, 77, "file_") == AE_OK); /* memory goes on */
  CHECK(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
  CHECK_OK(ae_cache_flush(c));
  ae_cache_metrics_get(c, &m);
  CHECK(m.persist_pending == 0 && m.persist_writes == 1 && m.persist_status == AE_OK);
  ae_cache_free(c);
  sqlite3_close(other);
  CHECK(sql_int(path, "SELECT count(*) FROM vectors") == 1);
}

/* Garbage written over pages in the middle of a valid file (header intact): SQLite
 * may report corruption or return damaged bytes; either way no wrong vector comes
 * out, the damage is counted, the rest is served and the cache keeps working. */
static void test_corrupt_pages(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/pages.db", dir);
  ae_cache *c = open_cache(path, FP_A, 100, 0, 256);
  REQUIRE(c);
  for (uint64_t i = 0; i < 2000; i++) set_id(c, i);
  ae_cache_free(c); /* last connection: the WAL is checkpointed into the file */
  FILE *f = fopen(path, "r+b");
  REQUIRE(f);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  uint64_t x = 7;
  for (long page = 40; page < 48 && page * 16384 < size; page++) {
    fseek(f, page * 16384 + 100, SEEK_SET);
    for (int i = 0; i < 8000; i++) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      fputc((int)(x & 0xff), f);
    }
  }
  fclose(f);
  for (int prefetch = 0; prefetch < 2; prefetch++) {
    g_no_prefetch = !prefetch;
    c = open_cache(path, FP_A, 3000, 0, 256);
    REQUIRE(c);
    int hits = 0, wrong = 0;
    for (uint64_t i = 0; i < 2000; i++) {
      int rc = get_id(c, i, "file_");
      hits += rc == AE_OK;
      wrong += rc == -100 || (rc != AE_OK && rc != AE_EMISS);
    }
    ae_cache_metrics m;
    ae_cache_metrics_get(c, &m);
    fprintf(stderr, "  (corrupt pages, prefetch %d: %d/2000 served, %llu errors, %llu rejected)\n",
            prefetch, hits, (unsigned long long)m.persist_errors,
            (unsigned long long)m.persist_rejected);
    CHECK(wrong == 0);
    CHECK(hits >= 1000 && hits < 2000);
    CHECK(m.persist_errors + m.persist_rejected > 0);
    CHECKF(m.persist_errors == 0 || (m.persist_status == AE_EDB && strstr(m.persist_error, path)),
           "status %d '%s'", m.persist_status, m.persist_error);
    CHECK_OK(set_id(c, 5000));
    CHECK(get_id(c, 5000, "file_") == AE_OK);
    ae_cache_free(c);
  }
  g_no_prefetch = 0;
}

/* Time-based commits from the maintenance thread, and last-access updates that
 * wait for the next commit instead of writing on every hit. */
static void test_batching(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/batching.db", dir);
  ae_cache_config cfg;
  ae_cache_config_default(&cfg);
  cfg.maintenance_interval_ms = 5;
  cfg.persist_path = path;
  cfg.persist_batch_count = 100000; /* never by count here */
  cfg.persist_batch_ms = 20;
  ae_cache *c = NULL;
  CHECK_OK(ae_cache_new(&cfg, FP_A, &c));
  REQUIRE(c);
  for (uint64_t i = 0; i < 10; i++) CHECK_OK(set_id(c, i));
  ae_cache_metrics m;
  int waited = 0;
  do {
    usleep(5000);
    waited += 5;
    ae_cache_metrics_get(c, &m);
  } while (m.persist_writes < 10 && waited < 5000);
  CHECKF(m.persist_writes == 10 && m.persist_pending == 0, "%llu written after %d ms",
         (unsigned long long)m.persist_writes, waited);
  CHECK(sql_int(path, "SELECT count(*) FROM vectors") == 10); /* committed, visible */
  ae_cache_free(c);

  /* rows last used long ago: reading them queues touches, committed by the flush */
  CHECK(sql_exec(path, "UPDATE access SET accessed = 1000") == SQLITE_OK);
  for (int prefetch = 0; prefetch < 2; prefetch++) {
    CHECK(sql_exec(path, "UPDATE access SET accessed = 1000") == SQLITE_OK);
    g_no_prefetch = !prefetch;
    c = open_cache(path, FP_A, 100, 0, 100000);
    REQUIRE(c);
    for (uint64_t i = 0; i < 10; i++) CHECK(get_id(c, i, "t") == AE_OK);
    CHECK(sql_int(path, "SELECT count(*) FROM access WHERE accessed = 1000") == 10);
    CHECK_OK(ae_cache_flush(c));
    CHECK(sql_int(path, "SELECT count(*) FROM access WHERE accessed > 1000") == 10);
    ae_cache_free(c);
  }
  g_no_prefetch = 0;
  /* a minute's granularity: rows read two minutes ago are touched again, rows read
   * ten seconds ago are not rewritten */
  for (int recent = 0; recent < 2; recent++) {
    CHECK(sql_exec(path, recent ? "UPDATE access SET accessed = unixepoch() - 10"
                                : "UPDATE access SET accessed = unixepoch() - 120") == SQLITE_OK);
    c = open_cache(path, FP_A, 100, 0, 100000);
    REQUIRE(c);
    for (uint64_t i = 0; i < 10; i++) CHECK(get_id(c, i, "g") == AE_OK);
    CHECK_OK(ae_cache_flush(c));
    ae_cache_free(c);
    CHECK(sql_int(path, recent ? "SELECT count(*) FROM access WHERE accessed < unixepoch() - 5"
                               : "SELECT count(*) FROM access WHERE accessed >= unixepoch() - 5") == 10);
  }
}

/* A version 1 file (the access time a column of the vector rows), written here with
 * version 1's SQL. Opening it migrates to version 2 keeping every row and its access
 * time; every vector is then served, a bad row is still rejected, another model's
 * rows stay apart, and pruning still drops the least recently used rows first. */
static void v1_row(sqlite3_stmt *ins, ae_cache *hasher, const uint8_t *fp, uint64_t id,
                   int64_t accessed, int bad) {
  char content[128];
  uint8_t h[16];
  float v[DIM];
  content_for(id, content, sizeof content);
  ae__cache_content_hash(hasher, content, strlen(content), h);
  vec_for(id, v, DIM);
  sqlite3_bind_blob(ins, 1, fp, 16, SQLITE_TRANSIENT);
  sqlite3_bind_blob(ins, 2, h, 16, SQLITE_TRANSIENT);
  sqlite3_bind_int64(ins, 3, DIM);
  sqlite3_bind_int64(ins, 4, (int64_t)XXH3_64bits(v, sizeof v) + bad);
  sqlite3_bind_int64(ins, 5, accessed);
  sqlite3_bind_int64(ins, 6, accessed);
  sqlite3_bind_blob(ins, 7, v, sizeof v, SQLITE_TRANSIENT);
  CHECK(sqlite3_step(ins) == SQLITE_DONE);
  sqlite3_reset(ins);
}

static void test_migrate_v1(void) {
  enum { N = 400, OLD = 200 };
  char path[512];
  snprintf(path, sizeof path, "%s/v1.db", dir);
  ae_cache *ha = NULL, *hb = NULL;
  CHECK_OK(ae_cache_new(NULL, FP_A, &ha));
  CHECK_OK(ae_cache_new(NULL, FP_B, &hb));
  REQUIRE(ha && hb);
  sqlite3 *db;
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db,
      "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; BEGIN;"
      "CREATE TABLE vectors( id INTEGER PRIMARY KEY, fp BLOB NOT NULL, h BLOB NOT NULL,"
      " dim INTEGER NOT NULL, checksum INTEGER NOT NULL, created INTEGER NOT NULL,"
      " accessed INTEGER NOT NULL, vec BLOB NOT NULL);"
      "CREATE UNIQUE INDEX vectors_key ON vectors(fp, h);"
      "CREATE INDEX vectors_accessed ON vectors(accessed);"
      "PRAGMA user_version=1;", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_stmt *ins;
  REQUIRE(sqlite3_prepare_v2(db, "INSERT INTO vectors(fp,h,dim,checksum,created,accessed,vec) "
                                 "VALUES(?1,?2,?3,?4,?5,?6,?7)", -1, &ins, NULL) == SQLITE_OK);
  int64_t now = (int64_t)time(NULL), old_sum = 0;
  for (uint64_t id = 0; id < N; id++) {
    int64_t acc = id < OLD ? 1000 + (int64_t)id : now;
    if (id < OLD) old_sum += acc;
    v1_row(ins, ha, FP_A, id, acc, 0);
  }
  v1_row(ins, ha, FP_A, N, now, 1);   /* a bad checksum */
  v1_row(ins, hb, FP_B, 500, now, 0); /* another model's row */
  sqlite3_finalize(ins);
  REQUIRE(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  ae_cache_free(ha);
  ae_cache_free(hb);

  /* open = migrate: times kept, column gone */
  ae_cache *c = open_cache(path, FP_A, 1000, 0, 100000);
  REQUIRE(c);
  CHECK(ae_cache_persist_status(c) == AE_OK);
  ae_cache_free(c);
  CHECK(sql_int(path, "PRAGMA user_version") == 2);
  CHECK(sql_int(path, "SELECT count(*) FROM pragma_table_info('vectors') WHERE name='accessed'") == 0);
  CHECK(sql_int(path, "SELECT count(*) FROM access") == N + 2);
  CHECK(sql_int(path, "SELECT count(*) FROM vectors") == N + 2);
  CHECK(sql_int(path, "SELECT count(*) FROM access WHERE accessed < 2000") == OLD);
  CHECK(sql_int(path, "SELECT sum(accessed) FROM access WHERE accessed < 2000") == old_sum);

  /* 300 new rows take the file past a 1 MiB cap: the oldest accessed go first */
  c = open_cache(path, FP_A, 1000, 1, 100000);
  REQUIRE(c);
  for (uint64_t id = 1000; id < 1300; id++) CHECK_OK(set_id(c, id));
  CHECK_OK(ae_cache_flush(c));
  ae_cache_metrics m;
  ae_cache_metrics_get(c, &m);
  CHECK(m.persist_pruned > 50);
  ae_cache_free(c);
  CHECK(sql_int(path, "SELECT count(*) FROM access") == sql_int(path, "SELECT count(*) FROM vectors"));

  for (int pass = 0; pass < 2; pass++) {
    g_no_prefetch = pass;
    c = open_cache(path, FP_A, 2000, 0, 100000);
    REQUIRE(c);
    int young_missing = 0, order_broken = 0, old_present = 0, seen_present = 0;
    for (uint64_t id = OLD; id < N; id++) young_missing += get_id(c, id, "v") != AE_OK;
    for (uint64_t id = 1000; id < 1300; id++) young_missing += get_id(c, id, "v") != AE_OK;
    for (uint64_t id = 0; id < OLD; id++) {
      int present = get_id(c, id, "v") == AE_OK;
      order_broken += seen_present && !present; /* pruned strictly oldest first */
      seen_present |= present;
      old_present += present;
    }
    CHECKF(young_missing == 0, "%d recently used rows missing after migration", young_missing);
    CHECK(order_broken == 0 && old_present < OLD - 50);
    CHECK(get_id(c, N, "v") == AE_EMISS); /* the bad row */
    ae_cache_metrics_get(c, &m);
    CHECK(pass == 1 || m.persist_rejected == 1);
    ae_cache_free(c);
  }
  g_no_prefetch = 0;
  c = open_cache(path, FP_B, 10, 0, 100000);
  REQUIRE(c);
  CHECK(get_id(c, 500, "b") == AE_OK);
  CHECK(get_id(c, 1, "b") == AE_EMISS);
  ae_cache_free(c);
}

int main(void) {
  REQUIRE(mkdtemp(dir));
  char path[512];
  snprintf(path, sizeof path, "%s/cache.db", dir);
  test_roundtrip(path);
  test_bad_rows(path);
  fprintf(stderr, "  again with one query per lookup (no prefetch)\n");
  g_no_prefetch = 1;
  snprintf(path, sizeof path, "%s/cache_noprefetch.db", dir);
  test_roundtrip(path);
  test_bad_rows(path);
  fprintf(stderr, "  again with a prefetch budget of about a third of the file\n");
  g_no_prefetch = 0;
  g_max_bytes = 1200000;
  snprintf(path, sizeof path, "%s/cache_partial.db", dir);
  test_roundtrip(path);
  test_bad_rows(path);
  g_max_bytes = 0;
  snprintf(path, sizeof path, "%s/prune.db", dir);
  test_pending_and_prune(path);
  test_io_faults();
  test_corrupt_pages();
  test_batching();
  test_migrate_v1();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
  TEST_DONE();
}
