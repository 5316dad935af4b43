// ctest-timeout: 180
/* SIGKILL in the middle of writes. A child process opens the persistent cache and
 * writes content-derived vectors in a loop, flushing every few dozen and reporting
 * each completed flush (the highest id committed) through a pipe. The parent kills
 * it at a random moment after its first flush, several rounds over the same file, each child continuing
 * where the last committed one stopped. Afterwards: PRAGMA integrity_check is "ok",
 * every id reported committed is served with exactly its vector, and every row in
 * the file (committed or not) is correct. */
#define _GNU_SOURCE
#include "astembed.h"
#include "cache_test_util.h"
#include "test.h"
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DIM 64
#define ROUNDS 6

static void child(const char *path, uint64_t start, int fd) {
  ae_cache_config cfg = test_cache_config(64, 0, AE_CACHE_LRU, 0, path);
  cfg.persist_batch_count = 1000000; /* flush only by hand */
  ae_cache *c = NULL;
  if (ae_cache_new(&cfg, FP_A, &c) || ae_cache_persist_status(c)) _exit(3);
  char key[32], content[128];
  float v[DIM];
  for (uint64_t id = start;; id++) {
    snprintf(key, sizeof key, "k%llu", (unsigned long long)id);
    content_for(id, content, sizeof content);
    vec_for(id, v, DIM);
    if (ae_cache_set(c, key, content, strlen(content), v, DIM)) _exit(4);
    if (id % 37 == 36) {
      if (ae_cache_flush(c)) _exit(5);
      uint64_t done = id + 1; /* ids < done are committed */
      if (write(fd, &done, sizeof done) != sizeof done) _exit(6);
    }
  }
}

int main(void) {
  char dir[] = "/tmp/ae_cache_crash_XXXXXX";
  REQUIRE(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/cache.db", dir);
  srand((unsigned)time(NULL));
  uint64_t committed = 0;
  for (int round = 0; round < ROUNDS; round++) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      child(path, committed, fds[1]);
    }
    close(fds[1]);
    /* the child's first flush report is the event to wait for (however slow its start
     * on a loaded machine); then it is killed 0-150 ms later, wherever its writes are.
     * The child never stops writing, so every round kills it mid-run. */
    uint64_t done;
    if (read(fds[0], &done, sizeof done) == sizeof done && done > committed) committed = done;
    usleep((useconds_t)(rand() % 150000));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child ended otherwise (%d)", status);
    while (read(fds[0], &done, sizeof done) == sizeof done)
      if (done > committed) committed = done;
    close(fds[0]);
  }
  fprintf(stderr, "  %llu ids committed over %d killed children\n", (unsigned long long)committed,
          ROUNDS);
  CHECK(committed > 0);

  sqlite3 *db;
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  sqlite3_stmt *st;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK);
  CHECK(sqlite3_step(st) == SQLITE_ROW &&
        strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0);
  sqlite3_finalize(st);
  int64_t rows = -1;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM vectors", -1, &st, NULL) == SQLITE_OK);
  if (sqlite3_step(st) == SQLITE_ROW) rows = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  CHECK(rows >= (int64_t)committed);

  /* every committed id is served exactly; ids past it may be present (written but
   * not yet reported) and must then be exact too */
  ae_cache_config cfg = test_cache_config(16, 0, AE_CACHE_LRU, 0, path);
  ae_cache *c = NULL;
  CHECK_OK(ae_cache_new(&cfg, FP_A, &c));
  REQUIRE(c);
  CHECK_OK(ae_cache_persist_status(c));
  char key[32], content[128];
  float v[DIM];
  int missing = 0, wrong = 0;
  uint64_t present = 0;
  for (uint64_t id = 0; id < committed + 2000; id++) {
    snprintf(key, sizeof key, "check%llu", (unsigned long long)id);
    content_for(id, content, sizeof content);
    int rc = ae_cache_get(c, key, content, strlen(content), v, DIM);
    if (rc == AE_OK) {
      present++;
      if (!vec_is(id, v, DIM)) wrong++;
    } else if (id < committed) {
      missing++;
    }
  }
  CHECKF(missing == 0, "%d committed vectors missing", missing);
  CHECKF(wrong == 0, "%d vectors wrong", wrong);
  CHECKF((int64_t)present == rows, "%llu served, %lld rows", (unsigned long long)present,
         (long long)rows);
  ae_cache_metrics m;
  ae_cache_metrics_get(c, &m);
  CHECK(m.persist_rejected == 0);
  ae_cache_free(c);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
  TEST_DONE();
}
