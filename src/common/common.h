/* Internal helpers shared by every module: allocation through the hook, errors
 * with detail, clocks. Private: double-underscore prefix. */
#ifndef AE_COMMON_H
#define AE_COMMON_H

#include "astembed.h"
#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>

void *ae__malloc(size_t n);
void *ae__calloc(size_t n, size_t size);
void *ae__realloc(void *p, size_t n);
void ae__free(void *p);
char *ae__strdup(const char *s);
char *ae__strndup(const char *s, size_t n);

/* Records a detail message for ae_last_error() and returns status, so callers can
 * write: return ae__error(AE_EFORMAT, "%s: bad header", path); */
int ae__error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ae__clear_error(void);

uint64_t ae__now_ns(void);      /* CLOCK_MONOTONIC */
double ae__now_ms(void);
int ae__cpu_count(void);        /* online CPUs, at least 1 */

/* Reads a whole file into a NUL-terminated buffer (ae__malloc'd). */
int ae__read_file(const char *path, char **data, size_t *len);
/* dir + "/" + name, ae__malloc'd */
char *ae__path_join(const char *dir, const char *name);
int ae__file_exists(const char *path);

#endif
