// ctest-labels: model
// ctest-timeout: 120
/* The load cache's sweep (src/common/loadcache.c), on real files whose mtimes are set
 * with utimensat: entries unused for 30 days are removed and recent ones kept; the
 * per-kind caps remove the least recently used first; stale temporary files go,
 * fresh ones stay; foreign names, look-alike names, symlinks (and their targets) and
 * folders are never touched nor recursed into; a hit refreshes the entry's mtime (at
 * most once a day), so an entry in use survives both the age limit and the cap, for
 * the compiled tokenizer and the weights entry alike; a sweep reads a bounded number
 * of directory entries; and a folder the process cannot write (a read-only folder:
 * nothing can be removed, nothing touched) never fails a load. */
#include "model_test_util.h"
#include "common/loadcache.h"
#include "tokenizer/tokenizer.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>

#define DAY (24L * 3600)

static time_t now_s(void) { return time(NULL); }

static void tok_name(unsigned i, char *buf) {
  snprintf(buf, 64, "tokenizer-%016x%016x.aetok", 0xabcdu, i);
}
static void w_name(unsigned i, char *buf) { snprintf(buf, 64, "weights-%016x.aew", i); }

/* Sets path's mtime (and atime) to age_s seconds ago, without following a symlink. */
static void age(const char *dir, const char *name, long age_s) {
  char *p = pjoin(dir, name);
  struct timespec t[2] = {{now_s() - age_s, 0}, {now_s() - age_s, 0}};
  if (utimensat(AT_FDCWD, p, t, AT_SYMLINK_NOFOLLOW)) { perror(p); exit(1); }
  free(p);
}

/* A regular file dir/name, last used age_s seconds ago. */
static void put(const char *dir, const char *name, long age_s) {
  write_text(dir, name, "not really an entry");
  age(dir, name, age_s);
}

static int present(const char *dir, const char *name) {
  char *p = pjoin(dir, name);
  struct stat sb;
  int r = lstat(p, &sb) == 0;
  free(p);
  return r;
}

static long mtime_age(const char *dir, const char *name) {
  char *p = pjoin(dir, name);
  struct stat sb;
  long r = lstat(p, &sb) ? -1 : (long)(now_s() - sb.st_mtime);
  free(p);
  return r;
}

/* What a load would do after a miss: write an entry (and so sweep). */
static void write_entry(const char *cache, const char *name) {
  CHECK_OK(ae__lc_write(cache, name, "fresh", 5));
}

/* The age limit, temporary files, and everything that is not ours. */
static void expiry_and_foreign(void) {
  char *cache = tmp_dir(), *outside = tmp_dir();
  char t_old[64], t_recent[64], w_old[64], w_recent[64], t_new[64];
  tok_name(1, t_old); tok_name(2, t_recent); tok_name(3, t_new);
  w_name(1, w_old); w_name(2, w_recent);
  put(cache, t_old, 31 * DAY);
  put(cache, t_recent, 29 * DAY);
  put(cache, w_old, 31 * DAY);
  put(cache, w_recent, DAY);
  /* temporary files of interrupted writes: stale ones go, a live one stays */
  char tmp_stale[3][160], tmp_live[160];
  snprintf(tmp_stale[0], 160, "%s.tmp.123.0", t_old);
  snprintf(tmp_stale[1], 160, "%s.tmp.4.56", w_recent);
  snprintf(tmp_stale[2], 160, "%s.tmp.9.9", t_new);
  snprintf(tmp_live, 160, "%s.tmp.124.1", t_recent);
  for (int i = 0; i < 3; i++) put(cache, tmp_stale[i], 2 * 3600);
  put(cache, tmp_live, 600);
  /* foreign and look-alike names, all old: never removed */
  const char *foreign[] = {"notes.txt",
                           "tokenizer-XYZ.aetok",
                           "tokenizer-0000000000000000ABCDEF0000000000.aetok", /* upper case */
                           "tokenizer-000000000000000000000000000000.aetok",   /* 30 digits */
                           "tokenizer-0000000000000000000000000000000000.aetok", /* 34 */
                           "tokenizer-00000000000000000000000000000000.aetok.bak",
                           "tokenizer-00000000000000000000000000000000.aetok.tmp.12",
                           "tokenizer-00000000000000000000000000000000.aetok.tmp.1.2x",
                           "tokenizer-00000000000000000000000000000000.aetok.tmp..",
                           "weights-0000000000000000.aew~",
                           "weights-0000000000000000.aetok",
                           "xweights-0000000000000000.aew",
                           "foo.tmp.1.2"};
  size_t nf = sizeof foreign / sizeof foreign[0];
  for (size_t i = 0; i < nf; i++) put(cache, foreign[i], 90 * DAY);
  /* a symlink named like an entry (and like a temporary file), pointing outside at a
   * file named like an entry; a folder named like an entry holding an old entry */
  char link_name[64], link_tmp[160], sub[64];
  tok_name(7, link_name);
  snprintf(link_tmp, sizeof link_tmp, "%s.tmp.1.1", link_name);
  put(outside, link_name, 90 * DAY);
  char *target = pjoin(outside, link_name), *lp = pjoin(cache, link_name), *lt = pjoin(cache, link_tmp);
  REQUIRE(symlink(target, lp) == 0 && symlink(target, lt) == 0);
  age(cache, link_name, 90 * DAY);
  age(cache, link_tmp, 90 * DAY);
  w_name(8, sub);
  char *subp = pjoin(cache, sub);
  REQUIRE(mkdir(subp, 0755) == 0);
  put(subp, w_old, 90 * DAY);
  age(cache, sub, 90 * DAY);

  write_entry(cache, t_new);
  CHECK(present(cache, t_new));
  CHECK(!present(cache, t_old) && !present(cache, w_old));
  CHECK(present(cache, t_recent) && present(cache, w_recent));
  for (int i = 0; i < 3; i++) CHECKF(!present(cache, tmp_stale[i]), "%s was kept", tmp_stale[i]);
  CHECK(present(cache, tmp_live));
  for (size_t i = 0; i < nf; i++) CHECKF(present(cache, foreign[i]), "foreign %s was removed", foreign[i]);
  CHECK(present(cache, link_name) && present(cache, link_tmp) && present(outside, link_name));
  CHECK(present(cache, sub) && present(subp, w_old));
  /* nothing is left to do: a second sweep removes nothing and sees every entry */
  ae__lc_sweep_stats st;
  ae__lc_sweep(cache, NULL, &st);
  /* ".", "..", 4 entries, the foreign names, 2 symlinks, 1 folder */
  CHECKF(st.removed == 0 && st.scanned == 2 + 4 + nf + 2 + 1, "second sweep: removed %u, scanned %u",
         st.removed, st.scanned);
  /* the live temporary file, once an hour old, goes too */
  age(cache, tmp_live, 3601 + 5);
  ae__lc_sweep(cache, NULL, &st);
  CHECK(st.removed == 1 && !present(cache, tmp_live) && present(cache, t_recent));
  free(target); free(lp); free(lt); free(subp);
  rm_rf(cache); rm_rf(outside);
  free(cache); free(outside);
}

/* At most AE_LC_TOKENIZER_MAX and AE_LC_WEIGHTS_MAX entries, the least recently
 * used removed first; the entry just written counts and is never the one removed. */
static void caps(void) {
  char *cache = tmp_dir(), name[64];
  unsigned nt = AE_LC_TOKENIZER_MAX + 8, nw = AE_LC_WEIGHTS_MAX + 44;
  for (unsigned i = 0; i < nt; i++) { tok_name(100 + i, name); put(cache, name, 60 + (long)i * 3600); }
  for (unsigned i = 0; i < nw; i++) { w_name(100 + i, name); put(cache, name, 60 + (long)i * 600); }
  tok_name(99, name);
  write_entry(cache, name);
  CHECK(present(cache, name));
  age(cache, name, 20 * DAY);
  unsigned kept_t = 0, kept_w = 0, order_ok = 1;
  for (unsigned i = 0; i < nt; i++) {
    tok_name(100 + i, name);
    int p = present(cache, name);
    kept_t += (unsigned)p;
    if (p != (i < AE_LC_TOKENIZER_MAX - 1)) order_ok = 0;
  }
  for (unsigned i = 0; i < nw; i++) {
    w_name(100 + i, name);
    int p = present(cache, name);
    kept_w += (unsigned)p;
    if (p != (i < AE_LC_WEIGHTS_MAX)) order_ok = 0;
  }
  CHECKF(kept_t == AE_LC_TOKENIZER_MAX - 1 && kept_w == AE_LC_WEIGHTS_MAX,
         "kept %u tokenizer and %u weights entries besides the new one", kept_t, kept_w);
  CHECKF(order_ok, "the entries removed were not the least recently used");
  /* the new entry, now the oldest, goes when the next one is written */
  tok_name(98, name);
  write_entry(cache, name);
  tok_name(99, name);
  CHECK(!present(cache, name));
  tok_name(100, name);
  CHECK(present(cache, name));
  rm_rf(cache);
  free(cache);
}

/* A read that serves an entry refreshes its mtime, at most once a day. */
static void touch_on_read(void) {
  char *cache = tmp_dir(), a[64], b[64];
  tok_name(1, a); w_name(1, b);
  put(cache, a, 40 * DAY);
  put(cache, b, 2 * 3600);
  uint8_t *data;
  size_t len;
  CHECK_OK(ae__lc_read(cache, a, 1 << 20, &data, &len));
  free(data);
  CHECK_OK(ae__lc_read(cache, b, 1 << 20, &data, &len));
  free(data);
  CHECKF(mtime_age(cache, a) < 60, "a read left the 40-day-old entry %ld s old", mtime_age(cache, a));
  long ab = mtime_age(cache, b);
  CHECKF(ab >= 2 * 3600 - 60 && ab < 2 * 3600 + 60, "a read within the day touched the entry (%ld s)", ab);
  /* a read that fails (too large) is no use */
  put(cache, a, 40 * DAY);
  CHECK(ae__lc_read(cache, a, 4, &data, &len) == AE_ERANGE);
  CHECK(mtime_age(cache, a) > 39 * DAY);
  rm_rf(cache);
  free(cache);
}

static const char *tiny_tokenizer(void) {
  static char buf[4200];
  const char *src = getenv("AE_SOURCE_DIR");
  snprintf(buf, sizeof buf, "%s/tests/tokenizer/data/tiny", src ? src : ".");
  return buf;
}

/* The one name in cache starting with prefix (into buf), or 0. */
static int find_entry(const char *cache, const char *prefix, char *buf) {
  DIR *d = opendir(cache);
  if (!d) return 0;
  struct dirent *e;
  int found = 0;
  while ((e = readdir(d)))
    if (!strncmp(e->d_name, prefix, strlen(prefix)) && !strstr(e->d_name, ".tmp.") &&
        strlen(e->d_name) < 64) {
      memcpy(buf, e->d_name, strlen(e->d_name) + 1);
      found++;
    }
  closedir(d);
  return found == 1;
}

static int tok_load(const char *dir, const char *cache, int *hit) {
  ae_tokenizer *t = NULL;
  int rc = ae__tokenizer_load_ex(dir, cache, &t, hit);
  ae_tokenizer_free(t);
  return rc;
}

static int model_load(const char *dir, const char *cache, int *hit) {
  ae__bert_model *m = NULL;
  int rc = ae__bert_load_ex(dir, 0, cache, &m);
  *hit = m ? m->weights_cached : -1;
  ae__bert_free(m);
  return rc;
}

/* Weights entries are written only for files older than the coarse clock's tick. */
static void let_tick_pass(void) {
  struct timespec ts = {0, 30 * 1000 * 1000};
  nanosleep(&ts, NULL);
}

/* Real entries through real loads: an old entry that is hit survives the next sweep
 * (age and cap); the same entry not hit is removed (so the check can fail). */
static void in_use_survives(void) {
  char *cache = tmp_dir(), *model = make_model(NULL, "F32", 21, 0);
  char tok[64], w[64], name[64];
  let_tick_pass();
  int hit = -1;
  CHECK_OK(tok_load(tiny_tokenizer(), cache, &hit));
  CHECK(hit == 0);
  CHECK_OK(model_load(model, cache, &hit));
  CHECK(hit == 0);
  REQUIRE(find_entry(cache, "tokenizer-", tok) && find_entry(cache, "weights-", w));
  /* last used 40 days ago, with a full cap of younger tokenizer entries (3-5 days) */
  for (int round = 0; round < 2; round++) {
    age(cache, tok, 40 * DAY);
    age(cache, w, 40 * DAY);
    for (unsigned i = 0; i < AE_LC_TOKENIZER_MAX; i++) { tok_name(200 + i, name); put(cache, name, 3 * DAY + i); }
    if (round == 1) { /* in use */
      CHECK_OK(tok_load(tiny_tokenizer(), cache, &hit));
      CHECK(hit == 1);
      CHECK_OK(model_load(model, cache, &hit));
      CHECK(hit == 1);
      CHECK(mtime_age(cache, tok) < 60 && mtime_age(cache, w) < 60);
    }
    tok_name(199, name);
    write_entry(cache, name);
    CHECKF(present(cache, tok) == round && present(cache, w) == round, "round %d: tokenizer %d, weights %d",
           round, present(cache, tok), present(cache, w));
    if (round == 0) { /* rebuilt by the next loads */
      CHECK_OK(tok_load(tiny_tokenizer(), cache, &hit));
      CHECK(hit == 0 && present(cache, tok));
      CHECK_OK(model_load(model, cache, &hit));
      CHECK(hit == 0 && present(cache, w));
    }
  }
  CHECK_OK(tok_load(tiny_tokenizer(), cache, &hit));
  CHECK(hit == 1);
  rm_rf(cache); rm_rf(model);
  free(cache); free(model);
}

/* A sweep reads at most AE_LC_SCAN_MAX directory entries, however many there are. */
static void bounded_scan(void) {
  char *cache = tmp_dir(), name[64];
  for (int i = 0; i < AE_LC_SCAN_MAX + 300; i++) {
    snprintf(name, sizeof name, "foreign-%04d", i);
    write_text(cache, name, "x");
  }
  ae__lc_sweep_stats st;
  ae__lc_sweep(cache, NULL, &st);
  CHECKF(st.scanned == AE_LC_SCAN_MAX && st.removed == 0, "scanned %u, removed %u", st.scanned, st.removed);
  ae__lc_sweep(NULL, NULL, &st);
  CHECK(st.scanned == 0);
  ae__lc_sweep("/proc/astembed-no-such-cache", NULL, &st);
  CHECK(st.scanned == 0);
  rm_rf(cache);
  free(cache);
}

/* Loads with a cache folder the process cannot write: a hit (whose mtime cannot be
 * refreshed) and misses (whose write and sweep fail) all succeed. Returns failures. */
static int readonly_loads(const char *cache, const char *model, const char *other_tok) {
  int fails = 0, hit = -1;
  if (tok_load(tiny_tokenizer(), cache, &hit) || hit != 1) fails++, fprintf(stderr, "read-only: tokenizer hit\n");
  if (tok_load(other_tok, cache, &hit) || hit != 0) fails++, fprintf(stderr, "read-only: tokenizer miss\n");
  if (model_load(model, cache, &hit) || hit != 0) fails++, fprintf(stderr, "read-only: weights miss\n");
  return fails;
}

/* The folder is made read-only for the loads: by its mode when not root; as root
 * (whom modes do not stop) by loading in a child process that drops to nobody. */
static void readonly_folder(void) {
  char *cache = tmp_dir(), *model = make_model(NULL, "F32", 22, 0), *other = tmp_dir(), tok[64], old[64];
  size_t len;
  uint8_t *tj = read_bytes(tiny_tokenizer(), "tokenizer.json", &len);
  /* the same tokenizer with other bytes (trailing blanks): another key, so a miss */
  tj = realloc(tj, len + 2);
  memcpy(tj + len, " \n", 2);
  write_bytes(other, "tokenizer.json", tj, len + 2);
  free(tj);
  int hit;
  CHECK_OK(tok_load(tiny_tokenizer(), cache, &hit));
  REQUIRE(find_entry(cache, "tokenizer-", tok));
  age(cache, tok, 40 * DAY);
  tok_name(1, old);
  put(cache, old, 90 * DAY);
  let_tick_pass();
  REQUIRE(chmod(cache, 0555) == 0 && chmod(model, 0755) == 0 && chmod(other, 0755) == 0);
  int fails;
  if (geteuid() != 0) {
    fails = readonly_loads(cache, model, other);
  } else {
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      if (setgid(65534) || setuid(65534)) _exit(77);
      _exit(readonly_loads(cache, model, other) ? 1 : 0);
    }
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    fails = WIFEXITED(status) ? WEXITSTATUS(status) : 100;
  }
  if (fails == 77) {
    printf("SKIP: root could not drop to nobody (setuid): the read-only folder case was not run\n");
  } else {
    CHECKF(fails == 0, "loads with a read-only cache folder failed (%d)", fails);
    /* nothing could be removed or touched */
    CHECK(present(cache, old) && mtime_age(cache, tok) > 39 * DAY);
  }
  REQUIRE(chmod(cache, 0755) == 0);
  rm_rf(cache); rm_rf(model); rm_rf(other);
  free(cache); free(model); free(other);
}

int main(void) {
  expiry_and_foreign();
  caps();
  touch_on_read();
  in_use_survives();
  bounded_scan();
  readonly_folder();
  TEST_DONE();
}
