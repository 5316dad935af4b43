/* Store: schema, upsert, lookup by node and by content, prune, stats, exact search
 * against brute force (with the snapshot file and its invalidation), refusal of
 * foreign databases, and consistency after a child process is SIGKILLed mid-write,
 * several times, with the next run computing only what is missing. */
#include "astembed.h"
#include "test.h"
#include "old_schema.h"
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DIM 32
static const uint8_t FP[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static char dir[64];

static void vec_for(const char *text, float *v) {
  uint8_t h[16];
  ae_text_hash(text, strlen(text), h);
  uint64_t x;
  memcpy(&x, h, 8);
  for (int i = 0; i < DIM; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    v[i] = (float)((double)(x >> 11) / (double)(1ull << 53) - 0.5);
  }
}

static void make_item(int i, int version, ae_annotation *a, char *id, char *file, char *text) {
  sprintf(id, "f%d.py:%d:function", i % 7, i);
  sprintf(file, "f%d.py", i % 7);
  sprintf(text, "Signature: def fn_%d_v%d()", i, version);
  memset(a, 0, sizeof *a);
  a->node_id = id; a->file_path = file; a->start_line = i; a->end_line = i + 1;
  a->node_type = "function"; a->language = "python"; a->signature = text; a->summary = ""; a->snippet = "";
}

static int put_text(ae_store *s, const ae_annotation *a, const char *text) {
  uint8_t h[16];
  float v[DIM];
  ae_text_hash(text, strlen(text), h);
  vec_for(text, v);
  return ae_store_put(s, a, h, FP, v, DIM, 0);
}

static void test_basic(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/nested/deeper/index.db", dir);
  ae_store *s;
  CHECK_OK(ae_store_open(path, 0, &s));
  CHECK_OK(ae_store_register_model(s, FP, "tiny", "/tmp", DIM));
  char *mdir; uint8_t fp[16]; int dim;
  CHECK_OK(ae_store_model(s, NULL, &mdir, fp, &dim));
  CHECK(!strcmp(mdir, "/tmp") && !memcmp(fp, FP, 16) && dim == DIM);
  ae_free(mdir);
  ae_annotation a[3]; char id[3][64], file[3][64], text[3][128];
  CHECK_OK(ae_store_begin(s));
  for (int i = 0; i < 3; i++) { make_item(i, 0, &a[i], id[i], file[i], text[i]); CHECK_OK(put_text(s, &a[i], text[i])); }
  CHECK_OK(ae_store_commit(s));
  float got[DIM], want[DIM]; int same; uint8_t h[16];
  ae_text_hash(text[1], strlen(text[1]), h);
  vec_for(text[1], want);
  CHECK(ae_store_lookup(s, FP, id[1], h, got, DIM, &same, NULL) == AE_OK && same == 1 && !memcmp(got, want, sizeof got));
  /* same text under another node: content hit */
  CHECK(ae_store_lookup(s, FP, "other-node", h, got, DIM, &same, NULL) == AE_OK && same == 0 && !memcmp(got, want, sizeof got));
  /* another model: miss */
  uint8_t fp2[16] = {9};
  CHECK(ae_store_lookup(s, fp2, id[1], h, got, DIM, &same, NULL) == AE_EMISS);
  /* text edited: old hash no longer current */
  make_item(1, 1, &a[1], id[1], file[1], text[1]);
  CHECK_OK(ae_store_begin(s));
  CHECK_OK(put_text(s, &a[1], text[1]));
  CHECK_OK(ae_store_commit(s));
  CHECK(ae_store_lookup(s, FP, id[1], h, got, DIM, &same, NULL) == AE_EMISS);
  ae_store_stats st;
  CHECK_OK(ae_store_stats_get(s, FP, &st));
  CHECK(st.annotations == 3 && st.vectors == 3 && st.current_vectors == 3 && st.models == 1);
  uint64_t gen = st.generation;
  /* unchanged rewrite changes nothing: generation stays */
  CHECK_OK(ae_store_begin(s));
  CHECK_OK(ae_store_put(s, &a[0], (ae_text_hash(text[0], strlen(text[0]), h), h), FP, NULL, DIM, 0));
  CHECK_OK(ae_store_commit(s));
  CHECK_OK(ae_store_stats_get(s, FP, &st));
  CHECK(st.generation == gen);
  /* put outside a batch is refused */
  CHECK(ae_store_put(s, &a[0], h, FP, NULL, DIM, 0) == AE_ESTATE);
  /* rollback discards */
  ae_annotation extra; char eid[64], efile[64], etext[128];
  make_item(100, 0, &extra, eid, efile, etext);
  CHECK_OK(ae_store_begin(s));
  CHECK_OK(put_text(s, &extra, etext));
  ae_store_rollback(s);
  CHECK_OK(ae_store_stats_get(s, FP, &st));
  CHECK(st.annotations == 3);
  ae_store_close(s);
  /* reopen read-only sees the same */
  CHECK_OK(ae_store_open(path, 1, &s));
  CHECK_OK(ae_store_stats_get(s, FP, &st));
  CHECK(st.annotations == 3 && st.current_vectors == 3);
  ae_store_close(s);
  CHECK(ae_store_open("/nonexistent-dir/x.db", 1, &s) == AE_ENOTFOUND);
}

/* The truncated flag travels with the vector: 1 and 0 as written, by node and by
 * content, and a rewrite of the vector replaces it. */
static void test_truncated_flag(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/trunc.db", dir);
  ae_store *s;
  CHECK_OK(ae_store_open(path, 0, &s));
  ae_annotation a[2]; char id[2][64], file[2][64], text[2][128];
  uint8_t h[2][16];
  float v[DIM];
  CHECK_OK(ae_store_begin(s));
  for (int i = 0; i < 2; i++) {
    make_item(i, 0, &a[i], id[i], file[i], text[i]);
    ae_text_hash(text[i], strlen(text[i]), h[i]);
    vec_for(text[i], v);
    CHECK_OK(ae_store_put(s, &a[i], h[i], FP, v, DIM, i == 1));
  }
  CHECK_OK(ae_store_commit(s));
  int same = -5, tr = -5;
  CHECK(ae_store_lookup(s, FP, id[0], h[0], v, DIM, &same, &tr) == AE_OK && same == 1 && tr == 0);
  CHECK(ae_store_lookup(s, FP, id[1], h[1], v, DIM, &same, &tr) == AE_OK && same == 1 && tr == 1);
  CHECK(ae_store_lookup(s, FP, "elsewhere", h[1], v, DIM, &same, &tr) == AE_OK && same == 0 && tr == 1);
  CHECK(ae_store_lookup(s, FP, "elsewhere", (uint8_t[16]){7}, v, DIM, &same, &tr) == AE_EMISS && tr == -1);
  CHECK_OK(ae_store_begin(s));
  vec_for(text[1], v);
  CHECK_OK(ae_store_put(s, &a[1], h[1], FP, v, DIM, 0));
  CHECK_OK(ae_store_commit(s));
  CHECK(ae_store_lookup(s, FP, id[1], h[1], v, DIM, &same, &tr) == AE_OK && tr == 0);
  ae_store_close(s);
}

/* A schema-1 file (before the truncated column): read as is when opened read-only
 * (every flag unknown), upgraded in place when opened for writing, vectors kept. */
static void test_schema_v1(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/v1.db", dir);
  sqlite3 *db;
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  ae_annotation a; char id[64], file[64], text[128];
  make_item(3, 0, &a, id, file, text);
  uint8_t h[16];
  float want[DIM], got[DIM];
  ae_text_hash(text, strlen(text), h);
  vec_for(text, want);
  CHECK(sqlite3_exec(db,
    "PRAGMA journal_mode=WAL;"
    OLD_SCHEMA("", "1"), NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_stmt *st;
  REQUIRE(sqlite3_prepare_v2(db, "INSERT INTO annotations VALUES (?1, ?2, 3, 4, 'function', 'python', ?3, '', '', ?4, 0)",
                             -1, &st, NULL) == SQLITE_OK);
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, file, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 4, h, 16, SQLITE_STATIC);
  CHECK(sqlite3_step(st) == SQLITE_DONE);
  sqlite3_finalize(st);
  REQUIRE(sqlite3_prepare_v2(db, "INSERT INTO vectors (node_id, fingerprint, text_hash, dim, vec) VALUES (?1, ?2, ?3, ?4, ?5)",
                             -1, &st, NULL) == SQLITE_OK);
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, FP, 16, SQLITE_STATIC);
  sqlite3_bind_blob(st, 3, h, 16, SQLITE_STATIC);
  sqlite3_bind_int(st, 4, DIM);
  sqlite3_bind_blob(st, 5, want, sizeof want, SQLITE_STATIC);
  CHECK(sqlite3_step(st) == SQLITE_DONE);
  sqlite3_finalize(st);
  sqlite3_close(db);

  ae_store *s;
  int same = -5, tr = -5;
  CHECK_OK(ae_store_open(path, 1, &s));
  CHECK(ae_store_lookup(s, FP, id, h, got, DIM, &same, &tr) == AE_OK && same == 1 && tr == -1 &&
        !memcmp(got, want, sizeof got));
  ae_store_close(s);
  CHECK_OK(ae_store_open(path, 0, &s));
  CHECK(ae_store_lookup(s, FP, id, h, got, DIM, &same, &tr) == AE_OK && same == 1 && tr == -1 &&
        !memcmp(got, want, sizeof got));
  CHECK_OK(ae_store_begin(s));
  CHECK_OK(ae_store_put(s, &a, h, FP, want, DIM, 1));
  CHECK_OK(ae_store_commit(s));
  CHECK(ae_store_lookup(s, FP, id, h, got, DIM, &same, &tr) == AE_OK && tr == 1);
  ae_store_close(s);
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK);
  CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 3);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

static void test_prune(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/prune.db", dir);
  ae_store *s;
  CHECK_OK(ae_store_open(path, 0, &s));
  ae_annotation a[20]; char id[20][64], file[20][64], text[20][128];
  CHECK_OK(ae_store_begin(s));
  for (int i = 0; i < 20; i++) { make_item(i, 0, &a[i], id[i], file[i], text[i]); CHECK_OK(put_text(s, &a[i], text[i])); }
  CHECK_OK(ae_store_commit(s));
  /* the new input: files f0..f6; items 0..9 only -> in the files of 0..9 (all 7 files)
   * the nodes 10..19 are gone; and an input with only file f0 items prunes only f0 */
  ae_annotation only_f0[3] = {a[0], a[7], a[14]};
  size_t del;
  CHECK_OK(ae_store_prune(s, only_f0, 1, &del));       /* input: node 0 of f0 */
  CHECK(del == 2);                                      /* 7 and 14 (f0) deleted */
  ae_store_stats st;
  CHECK_OK(ae_store_stats_get(s, FP, &st));
  CHECK(st.annotations == 18 && st.vectors == 18);
  CHECK_OK(ae_store_prune(s, a, 10, &del));
  CHECK(del == 9);                                      /* 10..19 except 14 */
  CHECK_OK(ae_store_stats_get(s, FP, &st));
  CHECK(st.annotations == 9 && st.vectors == 9 && st.files == 7);
  ae_store_close(s);
}

static void test_search(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/search.db", dir);
  ae_store *s;
  CHECK_OK(ae_store_open(path, 0, &s));
  CHECK_OK(ae_store_register_model(s, FP, "tiny", NULL, DIM));
  enum { N = 3000 };
  static float all[N][DIM];
  static char texts[N][128];
  CHECK_OK(ae_store_begin(s));
  for (int i = 0; i < N; i++) {
    ae_annotation a; char id[64], file[64];
    make_item(i, 0, &a, id, file, texts[i]);
    vec_for(texts[i], all[i]);
    CHECK_OK(put_text(s, &a, texts[i]));
  }
  CHECK_OK(ae_store_commit(s));
  srand(7);
  for (int qn = 0; qn < 20; qn++) {
    float q[DIM];
    for (int d = 0; d < DIM; d++) q[d] = (float)rand() / RAND_MAX - 0.5f;
    /* brute force, double precision */
    double sc[N], qn2 = 0;
    for (int d = 0; d < DIM; d++) qn2 += (double)q[d] * q[d];
    for (int i = 0; i < N; i++) {
      double dot = 0, nn = 0;
      for (int d = 0; d < DIM; d++) { dot += (double)all[i][d] * q[d]; nn += (double)all[i][d] * all[i][d]; }
      sc[i] = dot / sqrt(nn * qn2);
    }
    ae_search_hit *h; size_t nh;
    CHECK_OK(ae_store_search(s, FP, q, DIM, 10, -2.0f, &h, &nh));
    CHECK(nh == 10);
    int ok = 1;
    for (size_t j = 0; j < nh; j++) {
      int i = h[j].start_line;    /* make_item set start_line = i */
      if (fabs(sc[i] - h[j].score) > 1e-5) ok = 0;
      int better = 0;             /* rank j must have exactly j strictly better items */
      for (int r = 0; r < N; r++) if (sc[r] > sc[i] + 1e-6) better++;
      if (better > (int)j) ok = 0;
      if (j && h[j].score > h[j - 1].score) ok = 0;
    }
    CHECKF(ok, "query %d top-10 differs from brute force", qn);
    float thr = h[4].score;
    ae_search_hits_free(h, nh);
    CHECK_OK(ae_store_search(s, FP, q, DIM, 10, thr, &h, &nh));
    CHECK(nh == 5);
    ae_search_hits_free(h, nh);
  }
  /* a dimension mismatch is an error, k > n returns n */
  float q[DIM] = {1};
  ae_search_hit *h; size_t nh;
  CHECK(ae_store_search(s, FP, q, DIM - 1, 5, -2, &h, &nh) == AE_EMISMATCH);
  CHECK_OK(ae_store_search(s, FP, q, DIM, N + 50, -2, &h, &nh));
  CHECK(nh == N);
  ae_search_hits_free(h, nh);
  ae_store_close(s);
  /* the snapshot exists and a fresh handle gives identical results */
  char snap[200];
  snprintf(snap, sizeof snap, "%s.0102030405060708.mat", path);
  CHECK(access(snap, R_OK) == 0);
  CHECK_OK(ae_store_open(path, 1, &s));
  ae_search_hit *h2; size_t n2;
  memcpy(q, all[123], sizeof q);
  CHECK_OK(ae_store_search(s, FP, q, DIM, 3, -2, &h2, &n2));
  CHECK(n2 == 3 && h2[0].start_line == 123 && fabsf(h2[0].score - 1.0f) < 1e-5);
  ae_search_hits_free(h2, n2);
  ae_store_close(s);
  /* a write bumps the generation: the stale snapshot is not used */
  CHECK_OK(ae_store_open(path, 0, &s));
  ae_annotation a; char id[64], file[64], text[128];
  make_item(123, 5, &a, id, file, text);     /* node 123's text and vector change */
  CHECK_OK(ae_store_begin(s));
  CHECK_OK(put_text(s, &a, text));
  CHECK_OK(ae_store_commit(s));
  ae_store_close(s);
  CHECK_OK(ae_store_open(path, 1, &s));
  CHECK_OK(ae_store_search(s, FP, q, DIM, 1, -2, &h2, &n2));
  CHECK(n2 == 1 && !(h2[0].start_line == 123 && h2[0].score > 0.9999f));
  ae_search_hits_free(h2, n2);
  float q2[DIM];
  vec_for(text, q2);
  CHECK_OK(ae_store_search(s, FP, q2, DIM, 1, -2, &h2, &n2));
  CHECK(n2 == 1 && h2[0].start_line == 123 && !strcmp(h2[0].signature, text));
  ae_search_hits_free(h2, n2);
  ae_store_close(s);
}

static void test_foreign(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/foreign.db", dir);
  sqlite3 *db;
  sqlite3_open(path, &db);
  sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL);
  sqlite3_close(db);
  ae_store *s;
  CHECK(ae_store_open(path, 0, &s) == AE_EFORMAT);
  CHECK(strstr(ae_last_error(), "foreign.db") != NULL);
  snprintf(path, sizeof path, "%s/newer.db", dir);
  sqlite3_open(path, &db);
  sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL);
  sqlite3_close(db);
  CHECK(ae_store_open(path, 0, &s) == AE_EUNSUPPORTED);
  snprintf(path, sizeof path, "%s/garbage.db", dir);
  FILE *f = fopen(path, "w");
  fputs("this is not a database file at all, not even close.........................................", f);
  fclose(f);
  CHECK(ae_store_open(path, 0, &s) == AE_EDB);
}

/* ---- SIGKILL ------------------------------------------------------------------------ */

enum { KN = 4000, KBATCH = 40 };

/* One "embedding run": every item whose current vector is missing gets computed and
 * written, KBATCH per transaction. Returns the number computed. */
/* Items whose current vector is missing (the work run_once has to do). */
static int count_missing(ae_store *s, int version_every) {
  int missing = 0;
  for (int i = 0; i < KN; i++) {
    ae_annotation a; char id[64], file[64], text[128];
    make_item(i, i % version_every == 0, &a, id, file, text);
    uint8_t h[16]; float v[DIM]; int same;
    ae_text_hash(text, strlen(text), h);
    if (!(ae_store_lookup(s, FP, id, h, v, DIM, &same, NULL) == AE_OK && same)) missing++;
  }
  return missing;
}

/* With notify_fd, first writes how many commits the run will make (an int), then
 * one byte per commit, and after each commit waits for one byte on ack_fd: the run
 * never gets more than one commit ahead of the parent. */
static int run_once(const char *path, int version_every, int notify_fd, int ack_fd) {
  ae_store *s;
  if (ae_store_open(path, 0, &s)) return -1;
  if (notify_fd >= 0) {
    int commits = (count_missing(s, version_every) + KBATCH - 1) / KBATCH;
    if (write(notify_fd, &commits, sizeof commits) != sizeof commits) return -1;
  }
  int computed = 0, in_batch = 0;
  for (int i = 0; i < KN; i++) {
    ae_annotation a; char id[64], file[64], text[128];
    make_item(i, i % version_every == 0, &a, id, file, text);
    uint8_t h[16]; float v[DIM]; int same;
    ae_text_hash(text, strlen(text), h);
    if (ae_store_lookup(s, FP, id, h, v, DIM, &same, NULL) == AE_OK && same) continue;
    if (!in_batch && ae_store_begin(s)) return -1;
    in_batch++;
    if (put_text(s, &a, text)) return -1;
    computed++;
    if (in_batch == KBATCH) {
      if (ae_store_commit(s)) return -1;
      in_batch = 0;
      char ack;
      if (notify_fd >= 0 && (write(notify_fd, "c", 1) != 1 || read(ack_fd, &ack, 1) != 1)) return -1;
    }
  }
  if (in_batch && ae_store_commit(s)) return -1;
  ae_store_close(s);
  return computed;
}

/* Every annotation has a current vector whose values are exactly those of its text;
 * the integrity check passes. Returns the number of items present. */
static int verify(const char *path) {
  sqlite3 *db;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL)) return -1;
  sqlite3_stmt *st;
  int bad = 0, n = 0;
  /* killed before the schema's transaction committed: an empty database is consistent */
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
  int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
  sqlite3_finalize(st);
  if (version == 0) { sqlite3_close(db); return 0; }
  sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
  if (sqlite3_step(st) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(st, 0), "ok")) { bad++; fprintf(stderr, "integrity: %s\n", sqlite3_errmsg(db)); }
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db, "SELECT a.signature, v.vec, v.text_hash = a.text_hash FROM annotations a"
                         " LEFT JOIN vectors v ON v.node_id = a.node_id", -1, &st, NULL);
  while (sqlite3_step(st) == SQLITE_ROW) {
    n++;
    const char *text = (const char *)sqlite3_column_text(st, 0);
    float want[DIM];
    vec_for(text, want);
    if (sqlite3_column_bytes(st, 1) != sizeof want || memcmp(sqlite3_column_blob(st, 1), want, sizeof want) ||
        !sqlite3_column_int(st, 2)) { bad++; fprintf(stderr, "bad row %s\n", text); }
  }
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db, "SELECT count(*) FROM vectors WHERE node_id NOT IN (SELECT node_id FROM annotations)", -1, &st, NULL);
  if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 0) { bad++; fprintf(stderr, "orphans: %s\n", sqlite3_errmsg(db)); }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return bad ? -1 - bad : n;
}

static void test_sigkill(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/kill.db", dir);
  srand((unsigned)time(NULL));
  int kills = 0, last = 0, version_every = 1 << 30;
  for (int round = 0; round < 8; round++) {
    if (round == 4) version_every = 3;   /* from now on, every third item's text changed */
    /* the child reports how many commits its run needs, then each commit on a pipe;
     * it is killed after a random number of them, at most half its work, i.e. in the
     * middle of its run, wherever its next write happens to be. Half keeps every
     * round's run long enough to be killed: rounds 0-3 leave >= 13 of 100 commits,
     * round 4 adds a third of the texts, rounds 5-7 leave >= 5. The child waits for an
     * acknowledgement after each commit, so however the two are scheduled on a loaded
     * machine it is at most one commit past the chosen one when the kill lands: always
     * mid-run, in its next write or just before it. */
    int p[2], ack[2];
    REQUIRE(pipe(p) == 0 && pipe(ack) == 0);
    pid_t pid = fork();
    if (pid == 0) {
      close(p[0]);
      close(ack[1]);
      _exit(run_once(path, version_every, p[1], ack[0]) < 0 ? 3 : 0);
    }
    close(p[1]);
    close(ack[0]);
    int commits = 0;
    REQUIRE(read(p[0], &commits, sizeof commits) == sizeof commits);
    int half = commits / 2 < 25 ? commits / 2 : 25;
    int want = half > 0 ? 1 + rand() % half : 0;
    char c;
    for (int k = 0; k < want && read(p[0], &c, 1) == 1; k++)
      if (write(ack[1], "a", 1) != 1) break;
    usleep((unsigned)(rand() % 3000));
    kill(pid, SIGKILL);
    close(p[0]);
    close(ack[1]);
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) kills++;
    int present = verify(path);
    CHECKF(present >= 0, "round %d: database inconsistent after SIGKILL (%d)", round, present);
    if (round < 4) CHECK(present >= last);
    last = present;
  }
  CHECKF(kills == 8, "only %d of 8 children were killed mid-run", kills);
  /* a complete run afterwards computes exactly what is missing */
  ae_store *s;
  REQUIRE(ae_store_open(path, 1, &s) == AE_OK);
  int missing = 0;
  for (int i = 0; i < KN; i++) {
    ae_annotation a; char id[64], file[64], text[128];
    make_item(i, i % version_every == 0, &a, id, file, text);
    uint8_t h[16]; float v[DIM]; int same;
    ae_text_hash(text, strlen(text), h);
    if (!(ae_store_lookup(s, FP, id, h, v, DIM, &same, NULL) == AE_OK && same)) missing++;
  }
  ae_store_close(s);
  double t0 = (double)clock() / CLOCKS_PER_SEC;
  int computed = run_once(path, version_every, -1, -1);
  printf("final run: %d computed in %.3f s cpu\n", computed, (double)clock() / CLOCKS_PER_SEC - t0);
  CHECKF(computed == missing, "computed %d, missing was %d", computed, missing);
  CHECK(verify(path) == KN);
  CHECK(run_once(path, version_every, -1, -1) == 0);
}

/* Paths as a user types them: a bare file name in the current folder (dirname(3)
 * returns a static "." for it, which once crashed the folder creation), a relative
 * path whose folders do not exist yet, and a trailing file in the root's child. */
static void test_relative_paths(void) {
  char cwd[4096];
  REQUIRE(getcwd(cwd, sizeof cwd));
  REQUIRE(chdir(dir) == 0);
  const char *paths[] = {"bare.db", "sub/deeper/x.db", "./dot.db"};
  for (int i = 0; i < 3; i++) {
    ae_store *st = NULL;
    CHECKF(ae_store_open(paths[i], 0, &st) == AE_OK, "%s: %s", paths[i], ae_last_error());
    ae_store_close(st);
    CHECKF(access(paths[i], F_OK) == 0, "%s was not created", paths[i]);
  }
  CHECK(chdir(cwd) == 0);
}

int main(void) {
  strcpy(dir, "/tmp/ae_store_XXXXXX");
  REQUIRE(mkdtemp(dir));
  test_relative_paths();
  test_basic();
  test_truncated_flag();
  test_schema_v1();
  test_prune();
  test_search();
  test_foreign();
  test_sigkill();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) {}
  TEST_DONE();
}
