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
#endif
