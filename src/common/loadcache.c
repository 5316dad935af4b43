/* Load-cache file helpers (see loadcache.h): silent reads that mark a use, atomic
 * writes, and the sweep that keeps the folder bounded. */
#define _GNU_SOURCE
#include "common/loadcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void ae__lc_hex(const uint8_t *b, size_t n, char *out) {
  static const char hx[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hx[b[i] >> 4];
    out[2 * i + 1] = hx[b[i] & 15];
  }
  out[2 * n] = 0;
}

static int64_t realtime_s(void) { return (int64_t)time(NULL); }

/* A read that serves an entry is a use, and the sweep evicts by last use, so the
 * entry's mtime is moved to now. atime cannot carry this (relatime and noatime mounts
 * update it rarely or never), and the entry's bytes must not change (readers of the
 * weights entry compare them), so the file's own mtime is the marker. Only when it is
 * older than AE_LC_TOUCH_EVERY_S: a hit normally costs no syscall beyond the fstat it
 * already made, and at most one metadata write a day. A failure (a read-only folder,
 * an entry owned by another user) is ignored: the entry may then expire while still
 * in use, which costs one rebuild. */
static void note_use(int fd, const struct stat *sb) {
  if ((int64_t)sb->st_mtim.tv_sec < realtime_s() - AE_LC_TOUCH_EVERY_S) (void)futimens(fd, NULL);
}

int ae__lc_read(const char *cache_dir, const char *name, size_t max_len, uint8_t **data,
                size_t *len) {
  *data = NULL;
  *len = 0;
  char *path = ae__path_join(cache_dir, name);
  if (!path) return AE_ENOMEM;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ae__free(path);
  if (fd < 0) return errno == ENOENT ? AE_ENOTFOUND : AE_EIO;
  struct stat sb;
  int rc = AE_OK;
  uint8_t *buf = NULL;
  if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) rc = AE_EIO;
  else if ((uint64_t)sb.st_size > max_len) rc = AE_ERANGE;
  else if (!(buf = ae__malloc((size_t)sb.st_size + 1))) rc = AE_ENOMEM;
  size_t got = 0;
  while (rc == AE_OK && got < (size_t)sb.st_size) {
    ssize_t k = read(fd, buf + got, (size_t)sb.st_size - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) rc = AE_EIO; /* error, or the file shrank under us */
    else got += (size_t)k;
  }
  if (rc == AE_OK) note_use(fd, &sb);
  close(fd);
  if (rc) { ae__free(buf); return rc; }
  buf[got] = 0;
  *data = buf;
  *len = got;
  return AE_OK;
}

/* mkdir -p, leaving existing folders alone. */
static int mkdir_p(const char *dir) {
  char *p = ae__strdup(dir);
  if (!p) return AE_ENOMEM;
  int rc = AE_OK;
  for (char *s = p + 1; rc == AE_OK; s++) {
    if (*s && *s != '/') continue;
    char c = *s;
    *s = 0;
    if (mkdir(p, 0755) && errno != EEXIST) rc = AE_EIO;
    *s = c;
    if (!c) break;
  }
  ae__free(p);
  return rc;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* No fsync: a cache file lost or cut short by a crash is only a miss next time
 * (every reader checks lengths and a checksum), and syncing would cost a query more
 * than the cache saves. */
int ae__lc_write(const char *cache_dir, const char *name, const void *data, size_t len) {
  char *path = ae__path_join(cache_dir, name);
  size_t tlen = path ? strlen(path) + 32 : 0;
  char *tmp = path ? ae__malloc(tlen) : NULL;
  if (!tmp) { ae__free(path); return AE_ENOMEM; }
  /* pid + a per-process sequence: two threads writing the same entry never share a
   * temporary file */
  static _Atomic unsigned seq;
  snprintf(tmp, tlen, "%s.tmp.%ld.%u", path, (long)getpid(), seq++);
  int rc = AE_OK;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 && errno == ENOENT && mkdir_p(cache_dir) == AE_OK)
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) rc = AE_EIO;
  else {
    if (write_all(fd, data, len)) rc = AE_EIO;
    if (close(fd)) rc = AE_EIO;
    if (rc == AE_OK && rename(tmp, path)) rc = AE_EIO;
    if (rc) unlink(tmp);
  }
  ae__free(tmp);
  ae__free(path);
  /* also after a failed write: a full disk is one reason writes fail */
  ae__lc_sweep(cache_dir, name, NULL);
  return rc;
}

/* ---- Sweeping ----------------------------------------------------------------
 *
 * Entry names are content or file digests, so every edited tokenizer and every model
 * folder tried leaves a new entry (a compiled tokenizer is ~2 MB) and nothing would
 * ever remove the old ones. Every write therefore sweeps the folder once, in the
 * spirit of Redis' expiry cycle: bounded work, best effort, no bookkeeping of its own.
 * One pass over at most AE_LC_SCAN_MAX directory entries:
 *
 *   - a name of none of the cache's patterns (loadcache.h) is never looked at again:
 *     the folder may be shared with other files, and those are not ours to delete;
 *   - a match is lstat'ed (fstatat, AT_SYMLINK_NOFOLLOW): anything but a regular file
 *     (a symlink, a folder) is left alone, and nothing is ever recursed into;
 *   - a temporary file older than AE_LC_TMP_AGE_S is left over from an interrupted
 *     write (a live one is renamed away within milliseconds) and is removed;
 *   - an entry whose mtime (its last use: ae__lc_read refreshes it) is older than
 *     AE_LC_MAX_AGE_S is removed;
 *   - the rest are kept per kind, newest use first, up to the kind's cap counting the
 *     entry just written; the least recently used beyond it are removed.
 *
 * Everything is relative to the open directory (fstatat/unlinkat on its fd), so a
 * folder renamed or replaced mid-sweep cannot redirect a removal elsewhere, and
 * unlinkat never follows a symlink. Races with other processes are harmless: a name
 * removed twice fails with ENOENT, and an entry removed just as another process
 * refreshes or rewrites it is a miss for that process' next load, never a wrong
 * answer (readers validate everything, and an open file outlives its name). A folder
 * holding more than AE_LC_SCAN_MAX entries (foreign files) is only partly swept: the
 * cost per write stays bounded instead. */

typedef struct {
  const char *prefix;
  size_t hex;            /* lower-case hex digits after the prefix */
  const char *suffix;
  unsigned cap;
} lc_kind;

static const lc_kind kinds[] = {
    {"tokenizer-", 32, ".aetok", AE_LC_TOKENIZER_MAX},
    {"weights-", 16, ".aew", AE_LC_WEIGHTS_MAX},
};
enum { NKINDS = sizeof kinds / sizeof kinds[0], NAME_MAX_LEN = 63 };

/* Length of the kind-k entry name that s starts with, 0 when it does not. */
static size_t entry_len(const char *s, const lc_kind *k) {
  size_t p = strlen(k->prefix), x = strlen(k->suffix);
  if (strncmp(s, k->prefix, p)) return 0;
  for (size_t i = 0; i < k->hex; i++) {
    char c = s[p + i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
  }
  return strncmp(s + p + k->hex, k->suffix, x) ? 0 : p + k->hex + x;
}

/* Past a run of one or more decimal digits, NULL when there is none. */
static const char *skip_digits(const char *s) {
  if (*s < '0' || *s > '9') return NULL;
  while (*s >= '0' && *s <= '9') s++;
  return s;
}

/* The kind of a cache file name (and *tmp = whether it is a temporary file), or -1
 * for any other name. */
static int classify(const char *name, int *tmp) {
  for (int i = 0; i < NKINDS; i++) {
    size_t n = entry_len(name, &kinds[i]);
    if (!n) continue;
    *tmp = name[n] != 0;
    if (!*tmp) return i;
    const char *s = strncmp(name + n, ".tmp.", 5) ? NULL : skip_digits(name + n + 5);
    s = s && *s == '.' ? skip_digits(s + 1) : NULL;
    return s && !*s ? i : -1;
  }
  return -1;
}

typedef struct {
  int kind;
  struct timespec mtime;
  char name[NAME_MAX_LEN + 1];
} lc_seen;

/* Kind, then most recently used first; names break ties so the order is total. */
static int by_kind_newest(const void *a, const void *b) {
  const lc_seen *x = a, *y = b;
  if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
  if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec > y->mtime.tv_sec ? -1 : 1;
  if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec > y->mtime.tv_nsec ? -1 : 1;
  return strcmp(x->name, y->name);
}

static void remove_at(int dfd, const char *name, ae__lc_sweep_stats *st) {
  if (unlinkat(dfd, name, 0) == 0) st->removed++;
}

/* The expiry part of the pass; returns how many live entries it put in seen[]. */
static size_t scan(DIR *d, const char *keep, lc_seen *seen, unsigned kept[NKINDS],
                   ae__lc_sweep_stats *st) {
  int dfd = dirfd(d);
  int64_t now = realtime_s();
  size_t n = 0;
  struct dirent *de;
  while (st->scanned < AE_LC_SCAN_MAX && (de = readdir(d))) {
    st->scanned++;
    int tmp, k = classify(de->d_name, &tmp);
    if (k < 0) continue;
    if (keep && !strcmp(de->d_name, keep)) {
      kept[k]++;
      continue;
    }
    struct stat sb;
    if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) || !S_ISREG(sb.st_mode)) continue;
    int64_t age = now - (int64_t)sb.st_mtim.tv_sec;
    if (age > (tmp ? AE_LC_TMP_AGE_S : AE_LC_MAX_AGE_S)) remove_at(dfd, de->d_name, st);
    else if (!tmp && strlen(de->d_name) <= NAME_MAX_LEN) {
      seen[n].kind = k;
      seen[n].mtime = sb.st_mtim;
      strcpy(seen[n].name, de->d_name);
      n++;
    }
  }
  return n;
}

void ae__lc_sweep(const char *cache_dir, const char *keep, ae__lc_sweep_stats *stats) {
  ae__lc_sweep_stats st = {0, 0};
  DIR *d = cache_dir && *cache_dir ? opendir(cache_dir) : NULL;
  lc_seen *seen = d ? ae__malloc(AE_LC_SCAN_MAX * sizeof *seen) : NULL;
  if (seen) {
    unsigned kept[NKINDS] = {0};
    size_t n = scan(d, keep, seen, kept, &st);
    qsort(seen, n, sizeof *seen, by_kind_newest);
    for (size_t i = 0; i < n; i++)
      if (++kept[seen[i].kind] > kinds[seen[i].kind].cap) remove_at(dirfd(d), seen[i].name, &st);
  }
  ae__free(seen);
  if (d) closedir(d);
  if (stats) *stats = st;
}
