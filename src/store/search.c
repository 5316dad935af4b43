/* Exact cosine top-k over every current vector of a model.
 *
 * Reading 100k vectors out of SQLite row by row costs far more than scoring them, and
 * `astembed query` is a fresh process each time. So the matrix of a model (rows
 * L2-normalised, so a dot product is the cosine) is written once to a snapshot file
 * beside the database, "<db>.<fingerprint>.mat", stamped with the database's
 * generation counter (bumped by every committed change). A later process maps the
 * snapshot when its stamp matches and rebuilds it otherwise; the snapshot is replaced
 * by rename, so a reader never sees half a file. Within a process the matrix stays
 * cached in the store handle.
 *
 * Scoring is one GEMV (n x dim times dim x 1, SIMD and all CPUs) over the contiguous
 * matrix, then a size-k min-heap keeps the best rows in O(n log k).
 */
#define _GNU_SOURCE
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAP_MAGIC "AEMAT\0\0\1"
#define SNAP_HEADER 64

typedef struct {
  char magic[8];
  uint64_t generation;
  uint64_t n;
  uint32_t dim;
  uint8_t fp[16];
  uint8_t pad[SNAP_HEADER - 8 - 8 - 8 - 4 - 16];
} snap_header;
_Static_assert(sizeof(snap_header) == SNAP_HEADER, "snapshot header size");

void ae__store_matrix_drop(ae_store *s) {
  ae__matrix *m = &s->mat;
  if (m->map) munmap(m->map, m->map_len);
  ae__free(m->owned_rows);
  ae__free(m->owned_ids);
  memset(m, 0, sizeof *m);
}

static char *snapshot_path(ae_store *s, const uint8_t fp[16]) {
  size_t n = strlen(s->path) + 48;
  char *p = ae__malloc(n);
  if (!p) return NULL;
  int k = snprintf(p, n, "%s.", s->path);
  for (int i = 0; i < 8; i++) k += snprintf(p + k, n - k, "%02x", fp[i]);
  snprintf(p + k, n - k, ".mat");
  return p;
}

static int map_snapshot(const char *path, const uint8_t fp[16], uint64_t gen, ae__matrix *m) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return AE_ENOTFOUND;
  struct stat st;
  snap_header h;
  int ok = fstat(fd, &st) == 0 && st.st_size >= SNAP_HEADER &&
           pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h &&
           !memcmp(h.magic, SNAP_MAGIC, 8) && h.generation == gen && !memcmp(h.fp, fp, 16) &&
           h.dim > 0 && h.n < (1ull << 40) &&
           (uint64_t)st.st_size == SNAP_HEADER + h.n * h.dim * 4 + h.n * 8;
  if (!ok) { close(fd); return AE_EMISMATCH; }
  /* MAP_POPULATE: one pass of read-ahead into the page tables instead of a fault per
   * page during the GEMV. */
  void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return AE_EIO;
  m->map = map;
  m->map_len = (size_t)st.st_size;
  m->n = h.n;
  m->dim = (int)h.dim;
  m->rows = (const float *)((char *)map + SNAP_HEADER);
  m->ids = (const int64_t *)((char *)map + SNAP_HEADER + h.n * h.dim * 4);
  return AE_OK;
}

/* Best effort: a read-only folder just means the next process rebuilds again. */
static void write_snapshot(const char *path, const ae__matrix *m) {
  size_t n = strlen(path) + 32;
  char *tmp = ae__malloc(n);
  if (!tmp) return;
  snprintf(tmp, n, "%s.tmp.%d", path, (int)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) { ae__free(tmp); return; }
  snap_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, SNAP_MAGIC, 8);
  h.generation = m->generation;
  h.n = m->n;
  h.dim = (uint32_t)m->dim;
  memcpy(h.fp, m->fp, 16);
  int ok = fwrite(&h, sizeof h, 1, f) == 1 &&
           (m->n == 0 || (fwrite(m->rows, (size_t)m->dim * 4, m->n, f) == m->n &&
                          fwrite(m->ids, 8, m->n, f) == m->n));
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) unlink(tmp);
  ae__free(tmp);
}

static void normalise(float *v, int dim) {
  double ss = 0;
  for (int i = 0; i < dim; i++) ss += (double)v[i] * v[i];
  if (ss <= 0) return;
  float inv = (float)(1.0 / sqrt(ss));
  for (int i = 0; i < dim; i++) v[i] *= inv;
}

/* Reads every current vector of fp (the annotation's text hash equals the vector's)
 * in one read transaction, so a concurrent writer cannot split the snapshot. */
static int load_from_db(ae_store *s, const uint8_t fp[16], int dim, ae__matrix *m) {
  sqlite3_stmt *st;
  const char *sql = "SELECT v.id, v.vec FROM vectors v JOIN annotations a"
                    " ON a.node_id = v.node_id AND a.text_hash = v.text_hash"
                    " WHERE v.fingerprint = ?1 AND v.dim = ?2 ORDER BY v.id";
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
    return ae__store_dberr(s, "reading vectors");
  sqlite3_bind_blob(st, 1, fp, 16, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, dim);
  size_t cap = 1024, n = 0;
  float *rows = ae__malloc(cap * dim * sizeof(float));
  int64_t *ids = ae__malloc(cap * sizeof(int64_t));
  int rc = rows && ids ? AE_OK : AE_ENOMEM, step;
  while (rc == AE_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
    if (sqlite3_column_bytes(st, 1) != dim * (int)sizeof(float)) continue; /* never served */
    if (n == cap) {
      cap *= 2;
      float *nr = ae__realloc(rows, cap * dim * sizeof(float));
      if (nr) rows = nr;
      int64_t *ni = ae__realloc(ids, cap * sizeof(int64_t));
      if (ni) ids = ni;
      if (!nr || !ni) { rc = AE_ENOMEM; break; }
    }
    ids[n] = sqlite3_column_int64(st, 0);
    memcpy(rows + n * dim, sqlite3_column_blob(st, 1), (size_t)dim * sizeof(float));
    normalise(rows + n * dim, dim);
    n++;
  }
  if (rc == AE_OK && step != SQLITE_DONE) rc = ae__store_dberr(s, "reading vectors");
  sqlite3_finalize(st);
  if (rc) {
    ae__free(rows);
    ae__free(ids);
    return rc == AE_ENOMEM ? ae__error(rc, "%s: out of memory loading %zu vectors", s->path, n) : rc;
  }
  m->owned_rows = rows;
  m->owned_ids = ids;
  m->rows = rows;
  m->ids = ids;
  m->n = n;
  m->dim = dim;
  return AE_OK;
}

static int model_dim(ae_store *s, const uint8_t fp[16], int *dim) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT dim FROM models WHERE fingerprint = ?1", -1, &st, NULL))
    return ae__store_dberr(s, "reading models");
  sqlite3_bind_blob(st, 1, fp, 16, SQLITE_STATIC);
  int rc = sqlite3_step(st) == SQLITE_ROW ? AE_OK : AE_ENOTFOUND;
  if (!rc) *dim = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (rc) return ae__error(rc, "%s: no vectors for this model (embed with it first)", s->path);
  return AE_OK;
}

int ae__store_matrix(ae_store *s, const uint8_t fp[16], const ae__matrix **out) {
  int rc;
  if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
    return ae__store_dberr(s, "reading vectors");
  uint64_t gen = ae__store_generation(s);
  if (s->mat.valid && s->mat.generation == gen && !memcmp(s->mat.fp, fp, 16)) {
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    *out = &s->mat;
    return AE_OK;
  }
  ae__store_matrix_drop(s);
  int dim = 0;
  if ((rc = model_dim(s, fp, &dim))) { sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL); return rc; }
  char *snap = snapshot_path(s, fp);
  ae__matrix *m = &s->mat;
  int mapped = snap && map_snapshot(snap, fp, gen, m) == AE_OK && m->dim == dim;
  if (!mapped) {
    ae__store_matrix_drop(s);
    rc = load_from_db(s, fp, dim, m);
    if (!rc) {
      m->generation = gen;
      memcpy(m->fp, fp, 16);
      if (snap) write_snapshot(snap, m);
    }
  }
  sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
  ae__free(snap);
  if (rc) { ae__store_matrix_drop(s); return rc; }
  m->generation = gen;
  memcpy(m->fp, fp, 16);
  m->valid = 1;
  *out = m;
  return AE_OK;
}

int ae_store_matrix_rows(ae_store *s, const uint8_t fp[16], size_t *rows) {
  const ae__matrix *m;
  int rc = ae__store_matrix(s, fp, &m);
  *rows = rc ? 0 : m->n;
  return rc;
}

/* ---- scoring ------------------------------------------------------------------- */

/* scores[n] = rows[n x dim] . q: a GEMV over the contiguous matrix. It is bound by
 * memory bandwidth (every row is read once, 1.5 KB per 384-d row), so it is spread
 * over all CPUs whatever thread count the encoder set for itself, and each dot
 * product is one SIMD reduction. */
static void score_rows(const float *rows, size_t n, int dim, const float *q, float *scores) {
  int threads = n >= 4096 ? ae__cpu_count() : 1;
  #pragma omp parallel for schedule(static) num_threads(threads)
  for (size_t i = 0; i < n; i++) {
    const float *r = rows + i * (size_t)dim;
    float acc = 0;
    #pragma omp simd reduction(+:acc)
    for (int d = 0; d < dim; d++) acc += r[d] * q[d];
    scores[i] = acc;
  }
}

/* ---- top-k --------------------------------------------------------------------- */

typedef struct { float score; size_t row; } scored;

/* Min-heap on score (ties: the larger row index is "smaller", so equal scores keep
 * the earlier rows and the result is deterministic). */
static int worse(scored a, scored b) { return a.score < b.score || (a.score == b.score && a.row > b.row); }

static void sift_down(scored *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && worse(h[l], h[m])) m = l;
    if (r < n && worse(h[r], h[m])) m = r;
    if (m == i) return;
    scored t = h[i]; h[i] = h[m]; h[m] = t;
    i = m;
  }
}

static void sift_up(scored *h, size_t i) {
  while (i) {
    size_t p = (i - 1) / 2;
    if (!worse(h[i], h[p])) return;
    scored t = h[i]; h[i] = h[p]; h[p] = t;
    i = p;
  }
}

static size_t top_k(const float *scores, size_t n, size_t k, float min_score, scored *heap) {
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    float sc = scores[i];
    if (sc < min_score) continue;
    scored c = {sc, i};
    if (len < k) { heap[len] = c; sift_up(heap, len++); }
    else if (worse(heap[0], c)) { heap[0] = c; sift_down(heap, len, 0); }
  }
  /* heap sort into descending order */
  for (size_t end = len; end > 1; end--) {
    scored t = heap[0]; heap[0] = heap[end - 1]; heap[end - 1] = t;
    sift_down(heap, end - 1, 0);
  }
  return len;
}

/* Rows of m allowed by the filters: a byte per row, from the ids of the model's
 * current vectors whose annotation passes (m->ids is ascending: binary search). */
static int filter_rows(ae_store *s, const ae__matrix *m, const ae_search_options *o,
                       unsigned char **allow) {
  *allow = NULL;
  if (!ae__search_filtered(o)) return AE_OK;
  unsigned char *a = ae__calloc(m->n ? m->n : 1, 1);
  if (!a) return ae__error(AE_ENOMEM, "out of memory filtering %zu vectors", m->n);
  sqlite3_stmt *st;
  const char *sql = "SELECT v.id FROM vectors v JOIN annotations a"
                    " ON a.node_id = v.node_id AND a.text_hash = v.text_hash"
                    " WHERE v.fingerprint = ?1" AE__SEARCH_FILTER_SQL;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
    ae__free(a);
    return ae__store_dberr(s, "filtering vectors");
  }
  sqlite3_bind_blob(st, 1, m->fp, 16, SQLITE_STATIC);
  ae__search_bind_filters(st, o);
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(st, 0);
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (m->ids[mid] < id) lo = mid + 1; else hi = mid;
    }
    if (lo < m->n && m->ids[lo] == id) a[lo] = 1;
  }
  sqlite3_finalize(st);
  if (step != SQLITE_DONE) { ae__free(a); return ae__store_dberr(s, "filtering vectors"); }
  *allow = a;
  return AE_OK;
}

int ae__store_vector_top(ae_store *s, const uint8_t fp[16], const float *query, int dim,
                         size_t k, const ae_search_options *o, ae__cand **out, size_t *n_out) {
  *out = NULL;
  *n_out = 0;
  const ae__matrix *m;
  int rc = ae__store_matrix(s, fp, &m);
  if (rc) return rc;
  if (m->dim != dim)
    return ae__error(AE_EMISMATCH, "%s: query has %d dimensions, stored vectors %d", s->path, dim, m->dim);
  if (m->n == 0 || k == 0) return AE_OK;
  unsigned char *allow = NULL;
  if ((rc = filter_rows(s, m, o, &allow))) return rc;
  float *q = ae__malloc((size_t)dim * sizeof(float));
  float *scores = ae__malloc(m->n * sizeof(float));
  if (k > m->n) k = m->n;
  scored *heap = ae__malloc(k * sizeof(scored));
  ae__cand *c = ae__calloc(k, sizeof *c);
  if (!q || !scores || !heap || !c) {
    rc = ae__error(AE_ENOMEM, "out of memory scoring %zu vectors", m->n);
    ae__free(c);
    goto out;
  }
  memcpy(q, query, (size_t)dim * sizeof(float));
  normalise(q, dim);
  score_rows(m->rows, m->n, dim, q, scores);
  if (allow)
    for (size_t i = 0; i < m->n; i++) if (!allow[i]) scores[i] = -INFINITY;
  float floor = o->min_score > -1 ? o->min_score : -1;
  size_t got = top_k(scores, m->n, k, floor, heap);
  for (size_t i = 0; i < got; i++) { c[i].key = m->ids[heap[i].row]; c[i].score = heap[i].score; }
  *out = c;
  *n_out = got;
out:
  ae__free(allow);
  ae__free(q);
  ae__free(scores);
  ae__free(heap);
  return rc;
}
