/* The load cache: small derived files that make a repeat load of the same model
 * folder cheap (a compiled tokenizer, the weights' digest and finite check). Shared
 * by src/tokenizer and src/model.
 *
 * Everything in the cache directory is untrusted and optional: a missing, short,
 * corrupt or foreign file is a miss, never an error, and a directory that cannot be
 * created or written only means nothing is cached. Files are written whole to a
 * temporary name and renamed into place, so a reader sees the old file or the new
 * one, never half of one. */
#ifndef AE_LOADCACHE_H
#define AE_LOADCACHE_H
#include "common/common.h"

/* Reads cache_dir/name into a buffer (ae__malloc'd, NUL-terminated) of at most
 * max_len bytes. AE_ENOTFOUND when absent, another status when unreadable, too
 * large or out of memory; nothing is recorded for ae_last_error. */
int ae__lc_read(const char *cache_dir, const char *name, size_t max_len, uint8_t **data,
                size_t *len);
/* Writes cache_dir/name atomically (creating cache_dir and its parents). Returns
 * AE_OK or a status; never records an error (callers ignore failures). */
int ae__lc_write(const char *cache_dir, const char *name, const void *data, size_t len);
/* Lower-case hex of n bytes into out (2n + 1 chars). */
void ae__lc_hex(const uint8_t *b, size_t n, char *out);
#endif
