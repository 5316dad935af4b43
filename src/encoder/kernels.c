/* Hand-written kernels of the forward pass: embeddings + LayerNorm, LayerNorm,
 * attention and pooling. The dense layers are oneDNN's (gemm.c); these are the
 * memory-bound or per-sequence parts, vectorised with AVX-512 and parallelised with
 * OpenMP so that they stay small next to the GEMMs in the profile. */
#include "encoder/encoder.h"
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

static inline __mmask16 tail_mask(int n) { return n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1); }

/* LayerNorm of one row in place: two passes (mean, then the centred sum of squares)
 * so the variance does not lose digits to cancellation. */
static void layernorm_row(float *x, int H, const float *g, const float *b, float eps) {
  __m512 s = _mm512_setzero_ps();
  for (int c = 0; c < H; c += 16) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(tail_mask(H - c), x + c));
  float mean = _mm512_reduce_add_ps(s) / (float)H;
  __m512 vm = _mm512_set1_ps(mean), q = _mm512_setzero_ps();
  for (int c = 0; c < H; c += 16) {
    __mmask16 k = tail_mask(H - c);
    __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + c), vm);
    q = _mm512_fmadd_ps(d, d, q);
  }
  float var = _mm512_reduce_add_ps(q) / (float)H;
  __m512 inv = _mm512_set1_ps(1.0f / sqrtf(var + eps));
  for (int c = 0; c < H; c += 16) {
    __mmask16 k = tail_mask(H - c);
    __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + c), vm), inv);
    __m512 y = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(k, g + c), _mm512_maskz_loadu_ps(k, b + c));
    _mm512_mask_storeu_ps(x + c, k, y);
  }
}

/* A block of a few hundred rows takes ~0.1 ms on one core; forking a parallel region
 * for it costs more than it saves (and a descheduled worker stalls the barrier), so
 * only big blocks are split across threads. */
void ae__layernorm_rows(float *x, size_t rows, int H, const float *g, const float *b,
                        float eps) {
#pragma omp parallel for schedule(static) if (rows * (size_t)H >= ((size_t)1 << 20))
  for (size_t r = 0; r < rows; r++) layernorm_row(x + r * (size_t)H, H, g, b, eps);
}

void ae__embed_tokens(const ae__bert_model *m, const int32_t *tok, const int32_t *pos,
                      size_t T, float *x) {
  const int H = m->cfg.hidden;
#pragma omp parallel for schedule(static)
  for (size_t t = 0; t < T; t++) {
    const float *w = m->word_emb + (size_t)tok[t] * H, *ps = m->pos_emb + (size_t)pos[t] * H;
    float *dst = x + t * (size_t)H;
    for (int c = 0; c < H; c += 16) {
      __mmask16 k = tail_mask(H - c);
      __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(k, w + c), _mm512_maskz_loadu_ps(k, ps + c));
      v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, m->type_emb + c));
      _mm512_mask_storeu_ps(dst + c, k, v);
    }
    layernorm_row(dst, H, m->emb_ln_g, m->emb_ln_b, m->cfg.ln_eps);
  }
}

/* exp for x <= 0 (softmax after subtracting the row max): Cephes' expf, range
 * reduction x = n ln2 + r with ln2 split in two, degree-6 polynomial, 2^n applied
 * with vscalefps; about 1 ulp, far below the 1e-5 budget. */
static inline __m512 exp512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

size_t ae__attention_scratch_floats(int max_len, int d) {
  size_t lp = ((size_t)max_len + 15) & ~(size_t)15;
  return lp * (size_t)d + 8 * lp + 64;
}

/* Attention of one head of one sequence of L tokens, 8 query rows at a time:
 *   1. K is transposed once into kt[d][Lp] so a score row is a sum over c of
 *      q[c] * kt[c][:], i.e. broadcast-FMAs over 16 keys at a time;
 *   2. the 8 score rows are soft-maxed in place (keys >= L masked out);
 *   3. the context rows are sum_j p[j] * V[j], 8 rows sharing each V load, and
 *      divided by the softmax sum at the end.
 * Rows past L in the last block reuse row L-1 and are computed but not stored,
 * which keeps the 8 accumulators in registers. */
#define QB 8

/* Scores of QB query rows against NB*16 keys starting at jb (NB = 1 or 2: two key
 * blocks share each broadcast of q, 16 accumulators in registers). */
static inline __attribute__((always_inline)) void score_block(const float *const *qr,
    const float *kt, int Lp, int jb, int d, __m512 vscale, float *p, const int NB) {
  __m512 acc[2][QB];
#pragma GCC unroll 8
  for (int r = 0; r < QB; r++) { acc[0][r] = _mm512_setzero_ps(); acc[1][r] = _mm512_setzero_ps(); }
  for (int c = 0; c < d; c++) {
    const float *k = kt + (size_t)c * Lp + jb;
    __m512 k0 = _mm512_load_ps(k), k1 = NB > 1 ? _mm512_load_ps(k + 16) : k0;
#pragma GCC unroll 8
    for (int r = 0; r < QB; r++) {
      __m512 q = _mm512_set1_ps(qr[r][c]);
      acc[0][r] = _mm512_fmadd_ps(q, k0, acc[0][r]);
      if (NB > 1) acc[1][r] = _mm512_fmadd_ps(q, k1, acc[1][r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < QB; r++) {
    _mm512_store_ps(p + (size_t)r * Lp + jb, _mm512_mul_ps(acc[0][r], vscale));
    if (NB > 1) _mm512_store_ps(p + (size_t)r * Lp + jb + 16, _mm512_mul_ps(acc[1][r], vscale));
  }
}

/* Context columns cb .. cb + NB*16 of QB rows: sum_j p[r][j] * V[j] (masked tail). */
static inline __attribute__((always_inline)) void context_block(const float *p, int Lp,
    const float *v0, size_t ldq, int L, int cb, int d, const float *inv, float *c0,
    size_t ldc, int R, const int NB) {
  __mmask16 k0 = tail_mask(d - cb), k1 = NB > 1 ? tail_mask(d - cb - 16) : 0;
  __m512 acc[2][QB];
#pragma GCC unroll 8
  for (int r = 0; r < QB; r++) { acc[0][r] = _mm512_setzero_ps(); acc[1][r] = _mm512_setzero_ps(); }
  for (int j = 0; j < L; j++) {
    const float *vr = v0 + (size_t)j * ldq + cb;
    __m512 va = _mm512_maskz_loadu_ps(k0, vr), vb = NB > 1 ? _mm512_maskz_loadu_ps(k1, vr + 16) : va;
#pragma GCC unroll 8
    for (int r = 0; r < QB; r++) {
      __m512 pr = _mm512_set1_ps(p[(size_t)r * Lp + j]);
      acc[0][r] = _mm512_fmadd_ps(pr, va, acc[0][r]);
      if (NB > 1) acc[1][r] = _mm512_fmadd_ps(pr, vb, acc[1][r]);
    }
  }
  for (int r = 0; r < R; r++) {
    float *dst = c0 + (size_t)r * ldc + cb;
    __m512 s = _mm512_set1_ps(inv[r]);
    _mm512_mask_storeu_ps(dst, k0, _mm512_mul_ps(acc[0][r], s));
    if (NB > 1) _mm512_mask_storeu_ps(dst + 16, k1, _mm512_mul_ps(acc[1][r], s));
  }
}

/* Attention of one head of one sequence of L tokens, QB query rows at a time:
 *   1. K is transposed once into kt[d][Lp] so a score row is a sum over c of
 *      q[c] * kt[c][:], i.e. broadcast-FMAs over 16 (or 32) keys at a time;
 *   2. the QB score rows are soft-maxed in place (keys >= L masked out);
 *   3. the context rows are sum_j p[j] * V[j], QB rows sharing each V load, and
 *      divided by the softmax sum at the end.
 * Rows past L in the last block reuse row L-1 and are computed but not stored,
 * which keeps the accumulators in registers. */
static void attend_head(const float *q0, const float *k0, const float *v0, float *c0,
                        size_t ldq, size_t ldc, int L, int d, float scale, float *kt,
                        float *p) {
  const int Lp = (L + 15) & ~15;
  for (int c = 0; c < d; c++) {
    float *dst = kt + (size_t)c * Lp;
    for (int j = 0; j < L; j++) dst[j] = k0[(size_t)j * ldq + c];
    for (int j = L; j < Lp; j++) dst[j] = 0.0f;
  }
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int i0 = 0; i0 < L; i0 += QB) {
    const float *qr[QB];
    for (int r = 0; r < QB; r++) qr[r] = q0 + (size_t)(i0 + r < L ? i0 + r : L - 1) * ldq;
    /* 1. scores */
    int jb = 0;
    for (; jb + 32 <= Lp; jb += 32) score_block(qr, kt, Lp, jb, d, vscale, p, 2);
    if (jb < Lp) score_block(qr, kt, Lp, jb, d, vscale, p, 1);
    /* 2. softmax (unnormalised; the sum divides the context below) */
    float inv[QB];
    for (int r = 0; r < QB; r++) {
      float *pr = p + (size_t)r * Lp;
      __m512 mx = _mm512_set1_ps(-INFINITY);
      for (int j = 0; j < Lp; j += 16)
        mx = _mm512_mask_max_ps(mx, tail_mask(L - j), mx, _mm512_load_ps(pr + j));
      __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx)), sum = _mm512_setzero_ps();
      for (int j = 0; j < Lp; j += 16) {
        __m512 e = _mm512_maskz_mov_ps(tail_mask(L - j), exp512(_mm512_sub_ps(_mm512_load_ps(pr + j), vmax)));
        _mm512_store_ps(pr + j, e);
        sum = _mm512_add_ps(sum, e);
      }
      inv[r] = 1.0f / _mm512_reduce_add_ps(sum);
    }
    /* 3. context */
    int R = L - i0 < QB ? L - i0 : QB, cb = 0;
    float *crow = c0 + (size_t)i0 * ldc;
    for (; cb + 16 < d; cb += 32) context_block(p, Lp, v0, ldq, L, cb, d, inv, crow, ldc, R, 2);
    if (cb < d) context_block(p, Lp, v0, ldq, L, cb, d, inv, crow, ldc, R, 1);
  }
}

void ae__attention(const float *qkv, float *ctx, const size_t *off, const size_t *lens,
                   size_t n, int H, int heads, float *scratch, size_t scratch_per_thread) {
  const int d = H / heads;
  const float scale = 1.0f / sqrtf((float)d);
  const size_t ld3 = 3 * (size_t)H;
  const long pairs = (long)n * heads;
#pragma omp parallel
  {
    float *kt = scratch + (size_t)omp_get_thread_num() * scratch_per_thread;
    kt = (float *)(((uintptr_t)kt + 63) & ~(uintptr_t)63);
#pragma omp for schedule(dynamic, 1)
    for (long w = 0; w < pairs; w++) {
      size_t i = (size_t)(w / heads);
      int h = (int)(w % heads);
      int L = (int)lens[i];
      int Lp = (L + 15) & ~15;
      const float *base = qkv + off[i] * ld3 + (size_t)h * d;
      attend_head(base, base + H, base + 2 * (size_t)H, ctx + off[i] * (size_t)H + (size_t)h * d,
                  ld3, (size_t)H, L, d, scale, kt, kt + (size_t)Lp * d);
    }
  }
}

void ae__pool(const float *x, size_t len, int H, int pooling, int normalize, float *out) {
  if (pooling == AE_POOL_CLS) {
    memcpy(out, x, sizeof(float) * H);
  } else if (pooling == AE_POOL_MAX) {
    memcpy(out, x, sizeof(float) * H);
    for (size_t t = 1; t < len; t++)
      for (int c = 0; c < H; c++) out[c] = fmaxf(out[c], x[t * H + c]);
  } else {
    for (int c = 0; c < H; c++) out[c] = 0.0f;
    for (size_t t = 0; t < len; t++)
      for (int c = 0; c < H; c++) out[c] += x[t * H + c];
    float div = pooling == AE_POOL_MEAN_SQRT_LEN ? sqrtf((float)len) : (float)len;
    for (int c = 0; c < H; c++) out[c] /= div;
  }
  if (normalize) {
    double ss = 0;
    for (int c = 0; c < H; c++) ss += (double)out[c] * out[c];
    double nrm = sqrt(ss);
    if (nrm < 1e-12) nrm = 1e-12;
    for (int c = 0; c < H; c++) out[c] = (float)(out[c] / nrm);
  }
}
