/* The portable kernels: plain C for any CPU (and the reference the AVX2 and AVX-512
 * kernels are tested against, tests/encoder/test_kernels.c).
 *
 * Written so that the compiler can vectorise them for whatever the build targets
 * (SSE2 on baseline x86-64, NEON on arm64) without reassociating sums: every hot
 * inner loop runs over independent outputs (keys of a score row, columns of a
 * context row), and the dot products and row sums keep 8 separate partial sums. */
#include "encoder/encoder.h"
#include "encoder/kernels_simd.h"
#include <math.h>

/* sum of x[0..n) in 8 interleaved partial sums (vectorisable, no reassociation) */
static float sum8(const float *x, int n) {
  float s[8] = {0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) s[l] += x[i + l];
  for (; i < n; i++) s[i & 7] += x[i];
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

static void layernorm_row(float *x, int H, const float *g, const float *b, float eps) {
  float mean = sum8(x, H) / (float)H;
  float q[8] = {0};
  int c = 0;
  for (; c + 8 <= H; c += 8)
    for (int l = 0; l < 8; l++) q[l] += (x[c + l] - mean) * (x[c + l] - mean);
  for (; c < H; c++) q[c & 7] += (x[c] - mean) * (x[c] - mean);
  float var = sum8(q, 8) / (float)H;
  float inv = 1.0f / sqrtf(var + eps);
  for (c = 0; c < H; c++) x[c] = (x[c] - mean) * inv * g[c] + b[c];
}

static void add3_row(const float *a, const float *b, const float *c3, int H, float *dst) {
  for (int c = 0; c < H; c++) dst[c] = a[c] + b[c] + c3[c];
}

/* One query row at a time: scores over the transposed K (a loop over keys per
 * dimension), softmax with libm's expf, then the context row as sum_j p[j] * V[j]
 * (a loop over columns per key), divided by the softmax sum. */
static void attend_head(const float *q0, const float *k0, const float *v0, float *c0,
                        size_t ldq, size_t ldc, int L, int d, float scale, float *kt,
                        float *p) {
  const int Lp = (L + 15) & ~15;
  ae__transpose_keys(k0, ldq, L, d, kt);
  for (int i = 0; i < L; i++) {
    const float *q = q0 + (size_t)i * ldq;
    for (int j = 0; j < L; j++) p[j] = 0.0f;
    for (int c = 0; c < d; c++) {
      const float qc = q[c], *k = kt + (size_t)c * Lp;
      for (int j = 0; j < L; j++) p[j] += qc * k[j];
    }
    float mx = -INFINITY;
    for (int j = 0; j < L; j++) { p[j] *= scale; mx = p[j] > mx ? p[j] : mx; }
    for (int j = 0; j < L; j++) p[j] = expf(p[j] - mx);
    float inv = 1.0f / sum8(p, L);
    float *o = c0 + (size_t)i * ldc;
    for (int c = 0; c < d; c++) o[c] = 0.0f;
    for (int j = 0; j < L; j++) {
      const float pj = p[j], *v = v0 + (size_t)j * ldq;
      for (int c = 0; c < d; c++) o[c] += pj * v[c];
    }
    for (int c = 0; c < d; c++) o[c] *= inv;
  }
}

static void dot4x4(const float *const *a, const float *const *w, int K, float *out) {
  for (int r = 0; r < 4; r++)
    for (int j = 0; j < 4; j++) {
      float s[8] = {0};
      int k = 0;
      for (; k + 8 <= K; k += 8)
        for (int l = 0; l < 8; l++) s[l] += a[r][k + l] * w[j][k + l];
      for (; k < K; k++) s[k & 7] += a[r][k] * w[j][k];
      out[r * 4 + j] = sum8(s, 8);
    }
}

const ae__kernels ae__kernels_generic = {"generic", layernorm_row, add3_row, attend_head, dot4x4};
