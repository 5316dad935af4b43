/* The load cache: small derived files that make a repeat load of the same model
 * folder cheap (a compiled tokenizer, the weights' digest and finite check). Shared
 * by src/tokenizer and src/model.
 *
 * Everything in the cache directory is untrusted and optional: a missing, short,
 * corrupt or foreign file is a miss, never an error, and a directory that cannot be
 * created or written only means nothing is cached. Files are written whole to a
 * temporary name and renamed into place, so a reader sees the old file or the new
 * one, never half of one.
 *
 * The folder is kept bounded (loadcache.c, "Sweeping"): every write also removes
 * entries unused for AE_LC_MAX_AGE_S, the oldest beyond a per-kind cap, and temporary
 * files of interrupted writes older than AE_LC_TMP_AGE_S; a read that serves an entry
 * refreshes its mtime (at most once per AE_LC_TOUCH_EVERY_S), so "unused" means "not
 * read": mtime is the last use. Only names of the cache's own patterns are ever
 * removed:
 *   tokenizer-<32 lower-case hex>.aetok   (src/tokenizer/load.c, compiled_name)
 *   weights-<16 lower-case hex>.aew       (src/model/model.c, wcache_name)
 *   <one of those>.tmp.<pid>.<seq>        (ae__lc_write's temporary files) */
#ifndef AE_LOADCACHE_H
#define AE_LOADCACHE_H
#include "common/common.h"

/* Reads cache_dir/name into a buffer (ae__malloc'd, NUL-terminated) of at most
 * max_len bytes. AE_ENOTFOUND when absent, another status when unreadable, too
 * large or out of memory; nothing is recorded for ae_last_error. */
int ae__lc_read(const char *cache_dir, const char *name, size_t max_len, uint8_t **data,
                size_t *len);
/* Reads that find the entry's mtime older than this refresh it (a use). */
#define AE_LC_TOUCH_EVERY_S (24 * 3600)
/* Entries not used for this long are removed by the next sweep. */
#define AE_LC_MAX_AGE_S (30 * 24 * 3600)
/* Temporary files of writes interrupted (a crash, a kill) this long ago. */
#define AE_LC_TMP_AGE_S 3600
/* At most this many entries of each kind; the least recently used go first. */
#define AE_LC_TOKENIZER_MAX 32
#define AE_LC_WEIGHTS_MAX 256
/* A sweep reads at most this many directory entries. */
#define AE_LC_SCAN_MAX 512

/* Writes cache_dir/name atomically (creating cache_dir and its parents), then
 * sweeps cache_dir (ae__lc_sweep, keeping name). Returns the write's AE_OK or
 * status; never records an error (callers ignore failures). */
int ae__lc_write(const char *cache_dir, const char *name, const void *data, size_t len);
typedef struct {
  unsigned scanned;  /* directory entries read */
  unsigned removed;  /* files unlinked */
} ae__lc_sweep_stats;
/* Removes expired and over-cap entries and stale temporary files from cache_dir
 * (see above), never `keep` (a name, may be NULL). Best effort: every failure only
 * leaves files in place. stats may be NULL. */
void ae__lc_sweep(const char *cache_dir, const char *keep, ae__lc_sweep_stats *stats);
/* Lower-case hex of n bytes into out (2n + 1 chars). */
void ae__lc_hex(const uint8_t *b, size_t n, char *out);
#endif
