/* The index database (private parts shared by store.c and search.c). */
#ifndef AE_STORE_H
#define AE_STORE_H
#include "common/common.h"
#include <sqlite3.h>

/* All current vectors of one model as a contiguous row-normalised matrix. rows/ids
 * point either into a mapped snapshot file or into owned memory. */
typedef struct {
  int valid;
  uint8_t fp[16];
  uint64_t generation;
  size_t n;
  int dim;
  const float *rows;     /* n x dim, each row L2-normalised (zero rows stay zero) */
  const int64_t *ids;    /* vectors.id of each row */
  void *map;
  size_t map_len;
  float *owned_rows;
  int64_t *owned_ids;
} ae__matrix;

struct ae_store {
  sqlite3 *db;
  char *path;
  int read_only;
  int v1;               /* a schema-1 file opened read-only (no truncated column) */
  int no_lexical;       /* a schema-1/2 file opened read-only (no lexical index) */
  int in_tx;
  long tx_changes;
  sqlite3_stmt *q[8];
  ae__matrix mat;
};

int ae__store_dberr(ae_store *s, const char *what);
uint64_t ae__store_generation(ae_store *s);
void ae__store_matrix_drop(ae_store *s);
/* Loads (or reuses) the matrix of model fp; *m points into the store. */
int ae__store_matrix(ae_store *s, const uint8_t fp[16], const ae__matrix **m);

/* A candidate of one ranking: a key (vectors.id from the vector side, annotations
 * rowid from the lexical side) and its score. */
typedef struct { int64_t key; float score; } ae__cand;

/* The filters of ae_search_options as SQL over annotations `a`, parameters ?2..?4
 * (NULL = no filter), and their binding. */
#define AE__SEARCH_FILTER_SQL " AND (?2 IS NULL OR a.language = ?2)" \
  " AND (?3 IS NULL OR a.node_type = ?3) AND (?4 IS NULL OR a.file_path GLOB ?4)"
void ae__search_bind_filters(sqlite3_stmt *st, const ae_search_options *o);
int ae__search_filtered(const ae_search_options *o);

/* The best k current vectors of model fp for query that pass o's filters, and cosine
 * >= o->min_score: keys are vectors.id, best first (allocated, ae__free). */
int ae__store_vector_top(ae_store *s, const uint8_t fp[16], const float *query, int dim,
                         size_t k, const ae_search_options *o, ae__cand **out, size_t *n);
#endif
