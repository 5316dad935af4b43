/* astembed stats reports SQLite errors and exits 1: a missing index, a database locked
 * by another connection, and one whose pages are corrupt are errors that name the file,
 * never a report of zeros. A sound index gives its counts and exit 0. */
#define _GNU_SOURCE
#include "astembed.h"
#include "test.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char bin[4096], errf[4200];

/* Runs "astembed stats --db DB" with stderr into errf; returns the exit status. */
static int stats(const char *db) {
  char cmd[12000];
  snprintf(cmd, sizeof cmd, "%s stats --db '%s' >/dev/null 2>'%s'", bin, db, errf);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *err_text(void) {
  static char buf[8192];
  FILE *f = fopen(errf, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  buf[n] = 0;
  if (f) fclose(f);
  return buf;
}

/* An index of n annotations with 8-dimensional vectors, closed (WAL checkpointed). */
static void make_index(const char *db, int n) {
  static const uint8_t fp[16] = {1, 2, 3};
  ae_store *st;
  REQUIRE(ae_store_open(db, 0, &st) == AE_OK);
  REQUIRE(ae_store_register_model(st, fp, "m", "/nowhere", 8) == AE_OK);
  REQUIRE(ae_store_begin(st) == AE_OK);
  for (int i = 0; i < n; i++) {
    char id[64], file[64], sig[200];
    snprintf(id, sizeof id, "pkg/m%d.py:%d:%d:function", i % 50, i, i + 3);
    snprintf(file, sizeof file, "pkg/m%d.py", i % 50);
    snprintf(sig, sizeof sig, "def function_number_%d(argument_one, argument_two, argument_three)", i);
    ae_annotation a = {.node_id = id, .file_path = file, .start_line = i, .end_line = i + 3,
                       .node_type = "function", .language = "python", .signature = sig,
                       .summary = "a summary long enough to fill the pages", .snippet = "return 1\n"};
    uint8_t h[16] = {(uint8_t)i, (uint8_t)(i >> 8)};
    float v[8] = {(float)i, 1, 2, 3, 4, 5, 6, 7};
    REQUIRE(ae_store_put(st, &a, h, fp, v, 8, 0) == AE_OK);
  }
  REQUIRE(ae_store_commit(st) == AE_OK);
  ae_store_close(st);
}

int main(void) {
  const char *bdir = getenv("AE_BUILD_DIR");
  snprintf(bin, sizeof bin, "%s/astembed", bdir ? bdir : "build");
  if (access(bin, X_OK)) TEST_SKIP("%s not built", bin);
  char dir[] = "/tmp/ae_stats_XXXXXX", db[200], path[300];
  REQUIRE(mkdtemp(dir));
  snprintf(errf, sizeof errf, "%s/stderr.txt", dir);
  snprintf(db, sizeof db, "%s/index.db", dir);
  make_index(db, 2000);

  /* sound */
  CHECKF(stats(db) == 0, "stats on a sound index: %s", err_text());

  /* missing */
  snprintf(path, sizeof path, "%s/none.db", dir);
  CHECK(stats(path) == 1 && strstr(err_text(), "none.db"));
  CHECK(access(path, F_OK) != 0); /* and not created */

  /* locked: another connection holds the exclusive lock (the CLI waits its busy timeout;
   * in WAL mode only an exclusive-mode connection locks readers out) */
  sqlite3 *h;
  REQUIRE(sqlite3_open(db, &h) == SQLITE_OK);
  REQUIRE(sqlite3_exec(h, "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE;"
                          " UPDATE meta SET value = value WHERE key = 'generation';", NULL, NULL, NULL) == SQLITE_OK);
  int code = stats(db);
  CHECKF(code == 1 && strstr(err_text(), "index.db") && strstr(err_text(), "locked"),
         "locked: exit %d, stderr %s", code, err_text());
  printf("locked: %s", err_text());
  sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
  sqlite3_close(h);
  CHECKF(stats(db) == 0, "after the lock: %s", err_text());

  /* corrupt: every page of the annotation and vector tables overwritten; the header, the
   * schema and the small models and meta tables stay readable, so the index opens and
   * lists its model, and only the counts fail */
  int skip[64], nskip = 0, page = 0;
  sqlite3_stmt *q;
  REQUIRE(sqlite3_open(db, &h) == SQLITE_OK);
  REQUIRE(sqlite3_prepare_v2(h, "SELECT rootpage FROM sqlite_master WHERE tbl_name IN ('models', 'meta')"
                                " AND rootpage > 0", -1, &q, NULL) == SQLITE_OK);
  while (sqlite3_step(q) == SQLITE_ROW && nskip < 64) skip[nskip++] = sqlite3_column_int(q, 0);
  sqlite3_finalize(q);
  REQUIRE(sqlite3_prepare_v2(h, "PRAGMA page_size", -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW);
  page = sqlite3_column_int(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(h);
  struct stat sb;
  REQUIRE(page > 0 && stat(db, &sb) == 0 && sb.st_size > 16 * page);
  int fd = open(db, O_WRONLY);
  REQUIRE(fd >= 0);
  char *junk = malloc((size_t)page);
  memset(junk, 0x5a, (size_t)page);
  for (int pg = 2; (off_t)pg * page <= sb.st_size; pg++) {
    int keep = 0;
    for (int k = 0; k < nskip; k++) keep |= skip[k] == pg;
    if (!keep) CHECK(pwrite(fd, junk, (size_t)page, (off_t)(pg - 1) * page) == page);
  }
  free(junk);
  close(fd);
  code = stats(db);
  CHECKF(code == 1 && strstr(err_text(), "index.db") && strstr(err_text(), "malformed"),
         "corrupt: exit %d, stderr %s", code, err_text());
  printf("corrupt: %s", err_text());

  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) {}
  TEST_DONE();
}
