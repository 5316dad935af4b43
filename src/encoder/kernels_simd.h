/* Pieces shared by the per-ISA kernel files (kernels_avx512.c, kernels_avx2.c,
 * kernels_generic.c): written once, expanded in each file with its own intrinsics or
 * compiled for its own instruction set. */
#ifndef AE_KERNELS_SIMD_H
#define AE_KERNELS_SIMD_H
#include <stddef.h>

/* K of one head transposed into kt[d][Lp] (Lp = L rounded up to 16; keys L .. Lp-1
 * zero), so a score row is a sum over c of q[c] * kt[c][:], contiguous over keys. */
static inline void ae__transpose_keys(const float *k0, size_t ldq, int L, int d, float *kt) {
  const int Lp = (L + 15) & ~15;
  for (int c = 0; c < d; c++) {
    float *dst = kt + (size_t)c * Lp;
    for (int j = 0; j < L; j++) dst[j] = k0[(size_t)j * ldq + c];
    for (int j = L; j < Lp; j++) dst[j] = 0.0f;
  }
}

/* static inline V NAME(V x): exp for x <= 0 (softmax after subtracting the row max):
 * Cephes' expf, range reduction x = n ln2 + r with ln2 split in two, degree-6
 * polynomial, then SCALE2N(p, n) = p * 2^n; about 1 ulp, far below the 1e-5 budget.
 * The clamp at -87.3 keeps n >= -126, so 2^n is a normal float. ROUND rounds to the
 * nearest integer. */
#define AE__DEFINE_EXP(NAME, V, SET1, MAX, MUL, ADD, FMADD, FNMADD, ROUND, SCALE2N)     \
  static inline V NAME(V x) {                                                          \
    x = MAX(x, SET1(-87.3f));                                                          \
    V n = ROUND(MUL(x, SET1(1.44269504088896341f)));                                   \
    V r = FNMADD(n, SET1(0.693359375f), x);                                            \
    r = FNMADD(n, SET1(-2.12194440e-4f), r);                                           \
    V p = SET1(1.9875691500E-4f);                                                      \
    p = FMADD(p, r, SET1(1.3981999507E-3f));                                           \
    p = FMADD(p, r, SET1(8.3334519073E-3f));                                           \
    p = FMADD(p, r, SET1(4.1665795894E-2f));                                           \
    p = FMADD(p, r, SET1(1.6666665459E-1f));                                           \
    p = FMADD(p, r, SET1(5.0000001201E-1f));                                           \
    p = FMADD(p, MUL(r, r), ADD(r, SET1(1.0f)));                                       \
    return SCALE2N(p, n);                                                              \
  }
#endif
