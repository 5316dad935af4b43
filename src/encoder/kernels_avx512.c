/* The AVX-512 kernels (built with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma,
 * see CMakeLists.txt; cpu.c calls them only on CPUs that have all of these).
 *
 * 16 floats per register and a mask register for every tail: a row of any length is
 * one loop with a masked last step, no scalar remainder. Attention keeps 8 query rows
 * x 32 keys (16 accumulators) in registers; the small GEMM's 4 x 4 dot products are
 * 16 accumulators summed lane-wise at the end by one transpose-and-add (reduce16). */
#if defined(__x86_64__)
#include "encoder/encoder.h"
#include "encoder/kernels_simd.h"
#include <immintrin.h>
#include <math.h>

static inline __mmask16 tail_mask(int n) {
  return n >= 16 ? 0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

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

static void add3_row(const float *a, const float *b, const float *c3, int H, float *dst) {
  for (int c = 0; c < H; c += 16) {
    __mmask16 k = tail_mask(H - c);
    __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(k, a + c), _mm512_maskz_loadu_ps(k, b + c));
    _mm512_mask_storeu_ps(dst + c, k, _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, c3 + c)));
  }
}

static inline __m512 round512(__m512 x) {
  return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* exp for x <= 0 (kernels_simd.h), 2^n applied with vscalefps */
AE__DEFINE_EXP(exp512, __m512, _mm512_set1_ps, _mm512_max_ps, _mm512_mul_ps, _mm512_add_ps,
               _mm512_fmadd_ps, _mm512_fnmadd_ps, round512, _mm512_scalef_ps)

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
  ae__transpose_keys(k0, ldq, L, d, kt);
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

/* The lane sums of 16 accumulators v[i] (i = 4r + j) as one vector, element i =
 * sum of v[i]: pairwise adds of interleaved halves, then of 128-bit lanes, ~30
 * instructions instead of 16 separate reductions. */
static inline __m512 reduce16(__m512 acc[4][4]) {
  const __m512 *v = &acc[0][0];
  __m512 u[8], w[4];
  for (int i = 0; i < 8; i++)   /* per lane: [a0+a2, b0+b2, a1+a3, b1+b3] */
    u[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                         _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; i++) { /* per lane: partial sums of v[4i .. 4i+3] */
    __m512d a = _mm512_castps_pd(u[2 * i]), b = _mm512_castps_pd(u[2 * i + 1]);
    w[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  __m512 x0 = _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], 0x88), _mm512_shuffle_f32x4(w[0], w[1], 0xDD));
  __m512 x1 = _mm512_add_ps(_mm512_shuffle_f32x4(w[2], w[3], 0x88), _mm512_shuffle_f32x4(w[2], w[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(x0, x1, 0x88), _mm512_shuffle_f32x4(x0, x1, 0xDD));
}

/* 4 rows of A x 4 weight rows: 16 accumulators, each load reused four times. */
static void dot4x4(const float *const *a, const float *const *w, int K, float *out) {
  __m512 acc[4][4];
  for (int r = 0; r < 4; r++)
    for (int j = 0; j < 4; j++) acc[r][j] = _mm512_setzero_ps();
  for (int k = 0; k < K; k += 16) {
    __mmask16 km = tail_mask(K - k);
    __m512 wv[4];
    for (int j = 0; j < 4; j++) wv[j] = _mm512_maskz_loadu_ps(km, w[j] + k);
    for (int r = 0; r < 4; r++) {
      __m512 av = _mm512_maskz_loadu_ps(km, a[r] + k);
      for (int j = 0; j < 4; j++) acc[r][j] = _mm512_fmadd_ps(av, wv[j], acc[r][j]);
    }
  }
  _mm512_storeu_ps(out, reduce16(acc));
}

const ae__kernels ae__kernels_avx512 = {"avx512", layernorm_row, add3_row, attend_head, dot4x4};
#endif
