/* The AVX2 + FMA kernels (built with -mavx2 -mfma -mf16c, see CMakeLists.txt; cpu.c
 * calls them only on CPUs that have these): the AVX-512 kernels' algorithms at 8
 * floats per register.
 *
 * AVX2 has no mask registers: a tail is a vector mask (lane < n) for vmaskmovps,
 * whose masked lanes load as 0 and are not written; where a zero lane would still
 * change a result (the centred variance, the softmax max) the lanes are masked out
 * explicitly. With 16 vector registers, attention keeps 8 query rows x 8 keys and the
 * small GEMM 2 rows x 4 outputs in registers. */
#if defined(__x86_64__)
#include "encoder/encoder.h"
#include "encoder/kernels_simd.h"
#include <immintrin.h>
#include <math.h>

static inline __m256i tail8(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static inline float hmax8(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static void layernorm_row(float *x, int H, const float *g, const float *b, float eps) {
  __m256 s = _mm256_setzero_ps();
  for (int c = 0; c < H; c += 8) s = _mm256_add_ps(s, _mm256_maskload_ps(x + c, tail8(H - c)));
  float mean = hsum8(s) / (float)H;
  __m256 vm = _mm256_set1_ps(mean), q = _mm256_setzero_ps();
  for (int c = 0; c < H; c += 8) {
    __m256i k = tail8(H - c);
    __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + c, k), vm), _mm256_castsi256_ps(k));
    q = _mm256_fmadd_ps(d, d, q);
  }
  float var = hsum8(q) / (float)H;
  __m256 inv = _mm256_set1_ps(1.0f / sqrtf(var + eps));
  for (int c = 0; c < H; c += 8) {
    __m256i k = tail8(H - c);
    __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + c, k), vm), inv);
    __m256 y = _mm256_fmadd_ps(d, _mm256_maskload_ps(g + c, k), _mm256_maskload_ps(b + c, k));
    _mm256_maskstore_ps(x + c, k, y);
  }
}

static void add3_row(const float *a, const float *b, const float *c3, int H, float *dst) {
  for (int c = 0; c < H; c += 8) {
    __m256i k = tail8(H - c);
    __m256 v = _mm256_add_ps(_mm256_maskload_ps(a + c, k), _mm256_maskload_ps(b + c, k));
    _mm256_maskstore_ps(dst + c, k, _mm256_add_ps(v, _mm256_maskload_ps(c3 + c, k)));
  }
}

static inline __m256 round256(__m256 x) {
  return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* p * 2^n for integral n in [-126, 0]: 2^n built in the exponent field */
static inline __m256 scale2n256(__m256 p, __m256 n) {
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
/* exp for x <= 0 (kernels_simd.h) */
AE__DEFINE_EXP(exp256, __m256, _mm256_set1_ps, _mm256_max_ps, _mm256_mul_ps, _mm256_add_ps,
               _mm256_fmadd_ps, _mm256_fnmadd_ps, round256, scale2n256)

#define QB 8

/* Scores of QB query rows against the 8 keys jb .. jb+7 (8 accumulators). */
static inline __attribute__((always_inline)) void score_block(const float *const *qr,
    const float *kt, int Lp, int jb, int d, __m256 vscale, float *p) {
  __m256 acc[QB];
#pragma GCC unroll 8
  for (int r = 0; r < QB; r++) acc[r] = _mm256_setzero_ps();
  for (int c = 0; c < d; c++) {
    __m256 k0 = _mm256_load_ps(kt + (size_t)c * Lp + jb);
#pragma GCC unroll 8
    for (int r = 0; r < QB; r++) acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(qr[r][c]), k0, acc[r]);
  }
#pragma GCC unroll 8
  for (int r = 0; r < QB; r++) _mm256_store_ps(p + (size_t)r * Lp + jb, _mm256_mul_ps(acc[r], vscale));
}

/* Context columns cb .. cb+7 of QB rows: sum_j p[r][j] * V[j] (masked tail). */
static inline __attribute__((always_inline)) void context_block(const float *p, int Lp,
    const float *v0, size_t ldq, int L, int cb, int d, const float *inv, float *c0,
    size_t ldc, int R) {
  __m256i k0 = tail8(d - cb);
  __m256 acc[QB];
#pragma GCC unroll 8
  for (int r = 0; r < QB; r++) acc[r] = _mm256_setzero_ps();
  for (int j = 0; j < L; j++) {
    __m256 va = _mm256_maskload_ps(v0 + (size_t)j * ldq + cb, k0);
#pragma GCC unroll 8
    for (int r = 0; r < QB; r++) acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(p[(size_t)r * Lp + j]), va, acc[r]);
  }
  for (int r = 0; r < R; r++)
    _mm256_maskstore_ps(c0 + (size_t)r * ldc + cb, k0, _mm256_mul_ps(acc[r], _mm256_set1_ps(inv[r])));
}

/* The AVX-512 kernel's three steps (see kernels_avx512.c) at 8 keys / columns. */
static void attend_head(const float *q0, const float *k0, const float *v0, float *c0,
                        size_t ldq, size_t ldc, int L, int d, float scale, float *kt,
                        float *p) {
  const int Lp = (L + 15) & ~15;
  ae__transpose_keys(k0, ldq, L, d, kt);
  const __m256 vscale = _mm256_set1_ps(scale);
  for (int i0 = 0; i0 < L; i0 += QB) {
    const float *qr[QB];
    for (int r = 0; r < QB; r++) qr[r] = q0 + (size_t)(i0 + r < L ? i0 + r : L - 1) * ldq;
    for (int jb = 0; jb < L; jb += 8) score_block(qr, kt, Lp, jb, d, vscale, p);
    float inv[QB];
    for (int r = 0; r < QB; r++) {
      float *pr = p + (size_t)r * Lp;
      __m256 mx = _mm256_set1_ps(-INFINITY);
      for (int j = 0; j < L; j += 8)
        mx = _mm256_blendv_ps(mx, _mm256_max_ps(mx, _mm256_load_ps(pr + j)), _mm256_castsi256_ps(tail8(L - j)));
      __m256 vmax = _mm256_set1_ps(hmax8(mx)), sum = _mm256_setzero_ps();
      for (int j = 0; j < L; j += 8) {
        __m256 e = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_load_ps(pr + j), vmax)),
                                 _mm256_castsi256_ps(tail8(L - j)));
        _mm256_store_ps(pr + j, e);
        sum = _mm256_add_ps(sum, e);
      }
      inv[r] = 1.0f / hsum8(sum);
    }
    int R = L - i0 < QB ? L - i0 : QB;
    float *crow = c0 + (size_t)i0 * ldc;
    for (int cb = 0; cb < d; cb += 8) context_block(p, Lp, v0, ldq, L, cb, d, inv, crow, ldc, R);
  }
}

/* 2 rows of A x 4 weight rows at a time (8 accumulators), twice. */
static void dot4x4(const float *const *a, const float *const *w, int K, float *out) {
  for (int r0 = 0; r0 < 4; r0 += 2) {
    __m256 acc[2][4];
    for (int r = 0; r < 2; r++)
      for (int j = 0; j < 4; j++) acc[r][j] = _mm256_setzero_ps();
    for (int k = 0; k < K; k += 8) {
      __m256i km = tail8(K - k);
      __m256 wv[4];
      for (int j = 0; j < 4; j++) wv[j] = _mm256_maskload_ps(w[j] + k, km);
      for (int r = 0; r < 2; r++) {
        __m256 av = _mm256_maskload_ps(a[r0 + r] + k, km);
        for (int j = 0; j < 4; j++) acc[r][j] = _mm256_fmadd_ps(av, wv[j], acc[r][j]);
      }
    }
    for (int r = 0; r < 2; r++)
      for (int j = 0; j < 4; j++) out[(r0 + r) * 4 + j] = hsum8(acc[r][j]);
  }
}

const ae__kernels ae__kernels_avx2 = {"avx2", layernorm_row, add3_row, attend_head, dot4x4};
#endif
