/* Load-cache file helpers (see loadcache.h): silent reads, atomic writes. */
#define _GNU_SOURCE
#include "model/loadcache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void ae__lc_hex(const uint8_t *b, size_t n, char *out) {
  static const char hx[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hx[b[i] >> 4];
    out[2 * i + 1] = hx[b[i] & 15];
  }
  out[2 * n] = 0;
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
  return rc;
}
