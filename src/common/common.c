/* Common helpers: the allocator hook, per-thread error detail, clocks, files. */
#define _GNU_SOURCE
#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The version is the header's AE_VERSION_* (CMake reads the same macros). */
#define AE_STR_(x) #x
#define AE_STR(x) AE_STR_(x)
const char *ae_version(void) {
  return AE_STR(AE_VERSION_MAJOR) "." AE_STR(AE_VERSION_MINOR) "." AE_STR(AE_VERSION_PATCH);
}

/* ---- allocator ---------------------------------------------------------- */

static ae_allocator g_alloc; /* all NULL = libc */

void ae_set_allocator(const ae_allocator *a) {
  if (a) g_alloc = *a;
  else memset(&g_alloc, 0, sizeof g_alloc);
}

void *ae__malloc(size_t n) {
  if (g_alloc.malloc_fn) return g_alloc.malloc_fn(n ? n : 1, g_alloc.ud);
  return malloc(n ? n : 1);
}

void *ae__calloc(size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  void *p = ae__malloc(n * size);
  if (p) memset(p, 0, n * size > 0 ? n * size : 1);
  return p;
}

void *ae__realloc(void *p, size_t n) {
  if (g_alloc.realloc_fn) return g_alloc.realloc_fn(p, n ? n : 1, g_alloc.ud);
  return realloc(p, n ? n : 1);
}

void ae__free(void *p) {
  if (!p) return;
  if (g_alloc.free_fn) g_alloc.free_fn(p, g_alloc.ud);
  else free(p);
}

void ae_free(void *p) { ae__free(p); }

char *ae__strndup(const char *s, size_t n) {
  char *d = ae__malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

char *ae__strdup(const char *s) { return ae__strndup(s, strlen(s)); }

/* ---- errors --------------------------------------------------------------- */

static _Thread_local char t_error[1024];

const char *ae_strerror(int status) {
  switch (status) {
  case AE_OK: return "ok";
  case AE_EINVAL: return "invalid argument";
  case AE_ENOMEM: return "out of memory";
  case AE_EIO: return "I/O error";
  case AE_EFORMAT: return "malformed data";
  case AE_EUNSUPPORTED: return "unsupported";
  case AE_ENOTFOUND: return "not found";
  case AE_EMISMATCH: return "mismatch";
  case AE_EDB: return "database error";
  case AE_ERANGE: return "value out of range";
  case AE_ESTATE: return "invalid state";
  case AE_EMISS: return "cache miss";
  case AE_EINTR: return "interrupted";
  default: return "unknown error";
  }
}

const char *ae_last_error(void) { return t_error; }

void ae__clear_error(void) { t_error[0] = 0; }

int ae__error(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t_error, sizeof t_error, fmt, ap);
  va_end(ap);
  return status;
}

/* ---- clocks and system ------------------------------------------------------ */

uint64_t ae__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double ae__now_ms(void) { return (double)ae__now_ns() / 1e6; }

int ae__cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* ---- files ---------------------------------------------------------------- */

int ae__read_file(const char *path, char **data, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return ae__error(errno == ENOENT ? AE_ENOTFOUND : AE_EIO, "%s: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *buf = ae__malloc(cap);
  if (!buf) { fclose(f); return ae__error(AE_ENOMEM, "%s: out of memory", path); }
  for (;;) {
    if (n + 1 >= cap) {
      char *nb = ae__realloc(buf, cap * 2);
      if (!nb) { ae__free(buf); fclose(f); return ae__error(AE_ENOMEM, "%s: out of memory", path); }
      buf = nb;
      cap *= 2;
    }
    size_t r = fread(buf + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) { ae__free(buf); return ae__error(AE_EIO, "%s: read failed", path); }
  buf[n] = 0;
  *data = buf;
  if (len) *len = n;
  return AE_OK;
}

char *ae__path_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = ae__malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  size_t k = a;
  if (a && dir[a - 1] != '/') p[k++] = '/';
  memcpy(p + k, name, b + 1);
  return p;
}

int ae__file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}
