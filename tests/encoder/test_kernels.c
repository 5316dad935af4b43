// ctest-timeout: 120
/* The per-ISA kernel tables (src/encoder/kernels_*.c) against the portable one, and
 * the portable one against float64 arithmetic written out here, on awkward sizes:
 * rows of 1 .. 385 floats (every tail of 8 and 16 lanes), attention from 1 to 130
 * keys with head sizes 1 .. 65 and odd row strides, dot products of 1 .. 1536.
 * A path this CPU lacks is reported and left out. Also: ASTEMBED_CPU picks and caps
 * the path (checked in child processes, as the choice is made once per process). */
#include "encoder/encoder.h"
#include "test.h"
#include <sys/wait.h>
#include <unistd.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float urand(void) {   /* uniform in [-1, 1) */
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (float)((double)(rng >> 11) / 4503599627370496.0 - 1.0);
}
static void fill(float *x, size_t n, float scale, float offset) {
  for (size_t i = 0; i < n; i++) x[i] = offset + scale * urand();
}
static float *aalloc(size_t n) {   /* 64-byte aligned, as the encoder's scratch */
  void *p = NULL;
  REQUIRE(posix_memalign(&p, 64, n * sizeof(float) + 64) == 0);
  return p;
}

static const int sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 100, 384, 385};
#define NSIZES (int)(sizeof sizes / sizeof sizes[0])

/* ---- float64 versions (check the portable table itself) ---- */
static void ln_f64(const float *x, int H, const float *g, const float *b, float eps, double *y) {
  double m = 0, v = 0;
  for (int c = 0; c < H; c++) m += x[c];
  m /= H;
  for (int c = 0; c < H; c++) v += (x[c] - m) * (x[c] - m);
  v /= H;
  for (int c = 0; c < H; c++) y[c] = (x[c] - m) / sqrt(v + eps) * g[c] + b[c];
}

static void attn_f64(const float *q0, const float *k0, const float *v0, size_t ldq, int L, int d,
                     double scale, double *out /* [L][d] */) {
  double *s = malloc(sizeof(double) * L);
  for (int i = 0; i < L; i++) {
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < L; j++) {
      double a = 0;
      for (int c = 0; c < d; c++) a += (double)q0[i * ldq + c] * k0[j * ldq + c];
      s[j] = a * scale;
      if (s[j] > mx) mx = s[j];
    }
    for (int j = 0; j < L; j++) sum += (s[j] = exp(s[j] - mx));
    for (int c = 0; c < d; c++) {
      double a = 0;
      for (int j = 0; j < L; j++) a += s[j] * v0[j * ldq + c];
      out[i * d + c] = a / sum;
    }
  }
  free(s);
}

/* ---- one table against the portable one (and the portable one against float64) ---- */
static void check_layernorm(const ae__kernels *k) {
  const ae__kernels *ref = &ae__kernels_generic;
  double worst = 0, worst64 = 0;
  for (int si = 0; si < NSIZES; si++) {
    int H = sizes[si];
    float *x = malloc(sizeof(float) * (H + 16)), *y = malloc(sizeof(float) * (H + 16)),
          *z = malloc(sizeof(float) * (H + 16)), *g = malloc(sizeof(float) * H), *b = malloc(sizeof(float) * H);
    double *y64 = malloc(sizeof(double) * H);
    fill(x, H, 2.0f, 3.0f);   /* mean far from 0: the variance must not cancel */
    fill(g, H, 0.5f, 1.0f);
    fill(b, H, 0.5f, 0.0f);
    for (int c = H; c < H + 16; c++) y[c] = z[c] = 12345.0f;   /* past the row: untouched */
    memcpy(y, x, sizeof(float) * H);
    memcpy(z, x, sizeof(float) * H);
    k->layernorm_row(y, H, g, b, 1e-12f);
    ref->layernorm_row(z, H, g, b, 1e-12f);
    ln_f64(x, H, g, b, 1e-12f, y64);
    for (int c = 0; c < H; c++) {
      double d = fabs((double)y[c] - z[c]), d64 = fabs((double)z[c] - y64[c]);
      if (d > worst) worst = d;
      if (d64 > worst64) worst64 = d64;
    }
    for (int c = H; c < H + 16; c++) CHECKF(y[c] == 12345.0f, "%s layernorm H=%d wrote past the row", k->name, H);
    /* add3_row: the same sums in the same order, so bit-identical */
    float *a = malloc(sizeof(float) * H), *p = malloc(sizeof(float) * H), *t = malloc(sizeof(float) * H);
    fill(a, H, 1, 0); fill(p, H, 1, 0); fill(t, H, 1, 0);
    y[H] = 12345.0f;
    k->add3_row(a, p, t, H, y);
    ref->add3_row(a, p, t, H, z);
    CHECKF(!memcmp(y, z, sizeof(float) * H) && y[H] == 12345.0f, "%s add3_row H=%d", k->name, H);
    free(a); free(p); free(t);
    free(x); free(y); free(z); free(g); free(b); free(y64);
  }
  printf("%-8s layernorm: max |diff| vs generic %.3g; generic vs float64 %.3g\n", k->name, worst, worst64);
  CHECKF(worst <= 1e-5, "%s layernorm vs generic: %.3g", k->name, worst);
  CHECKF(worst64 <= 1e-5, "generic layernorm vs float64: %.3g", worst64);
}

static void check_attention(const ae__kernels *k) {
  static const int Ls[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 65, 130};
  static const int ds[] = {1, 3, 8, 13, 16, 17, 32, 33, 64, 65};
  double worst = 0, worst64 = 0;
  for (size_t li = 0; li < sizeof Ls / sizeof Ls[0]; li++)
    for (size_t di = 0; di < sizeof ds / sizeof ds[0]; di++) {
      int L = Ls[li], d = ds[di];
      size_t ldq = 3 * (size_t)d + 5, ldc = (size_t)d + 3;   /* odd strides */
      float *qkv = malloc(sizeof(float) * ldq * L);
      fill(qkv, ldq * L, 1.5f, 0.0f);
      size_t sc = ae__attention_scratch_floats(L, d);
      float *s1 = aalloc(sc), *s2 = aalloc(sc);
      float *c1 = malloc(sizeof(float) * ldc * (L + 1)), *c2 = malloc(sizeof(float) * ldc * (L + 1));
      for (size_t i = 0; i < ldc * (L + 1); i++) c1[i] = c2[i] = 12345.0f;
      int Lp = (L + 15) & ~15;
      float scale = 1.0f / sqrtf((float)d);
      k->attend_head(qkv, qkv + d, qkv + 2 * d, c1, ldq, ldc, L, d, scale, s1, s1 + (size_t)Lp * d);
      ae__kernels_generic.attend_head(qkv, qkv + d, qkv + 2 * d, c2, ldq, ldc, L, d, scale, s2,
                                      s2 + (size_t)Lp * d);
      double *r64 = malloc(sizeof(double) * L * d);
      attn_f64(qkv, qkv + d, qkv + 2 * d, ldq, L, d, scale, r64);
      int outside = 0;
      for (int i = 0; i <= L; i++)
        for (size_t c = 0; c < ldc; c++) {
          float a = c1[i * ldc + c], b = c2[i * ldc + c];
          if (i == L || c >= (size_t)d) { outside += a != 12345.0f; continue; }
          double e = fabs((double)a - b), e64 = fabs((double)b - r64[i * d + c]);
          if (e > worst) worst = e;
          if (e64 > worst64) worst64 = e64;
        }
      CHECKF(!outside, "%s attention L=%d d=%d wrote %d floats outside the context", k->name, L, d, outside);
      free(qkv); free(s1); free(s2); free(c1); free(c2); free(r64);
    }
  printf("%-8s attention: max |diff| vs generic %.3g; generic vs float64 %.3g\n", k->name, worst, worst64);
  CHECKF(worst <= 1e-5, "%s attention vs generic: %.3g", k->name, worst);
  CHECKF(worst64 <= 1e-5, "generic attention vs float64: %.3g", worst64);
}

static void check_dot(const ae__kernels *k) {
  static const int Ks[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 100, 384, 385, 1536};
  double worst = 0, worst64 = 0;   /* relative to sum |a w| */
  for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
    int K = Ks[ki];
    float *buf = malloc(sizeof(float) * 8 * K);
    fill(buf, 8 * (size_t)K, 1.0f, 0.1f);
    const float *a[4] = {buf, buf + K, buf + 2 * K, buf + 3 * K};
    const float *w[4] = {buf + 4 * K, buf + 5 * K, buf + 6 * K, buf + 7 * K};
    float o1[17], o2[17];
    o1[16] = o2[16] = 12345.0f;
    k->dot4x4(a, w, K, o1);
    ae__kernels_generic.dot4x4(a, w, K, o2);
    for (int r = 0; r < 4; r++)
      for (int j = 0; j < 4; j++) {
        double s = 0, mag = 0;
        for (int i = 0; i < K; i++) { s += (double)a[r][i] * w[j][i]; mag += fabs((double)a[r][i] * w[j][i]); }
        double e = fabs((double)o1[r * 4 + j] - o2[r * 4 + j]) / mag, e64 = fabs(o2[r * 4 + j] - s) / mag;
        if (e > worst) worst = e;
        if (e64 > worst64) worst64 = e64;
      }
    CHECKF(o1[16] == 12345.0f, "%s dot4x4 K=%d wrote past 16 outputs", k->name, K);
    free(buf);
  }
  printf("%-8s dot4x4:    max |diff| / sum|a w| vs generic %.3g; generic vs float64 %.3g\n", k->name,
         worst, worst64);
  CHECKF(worst <= 1e-6, "%s dot4x4 vs generic: %.3g", k->name, worst);
  CHECKF(worst64 <= 1e-6, "generic dot4x4 vs float64: %.3g", worst64);
}

/* ASTEMBED_CPU=value in a fresh process: what ae_cpu_path says (or "NULL: error"). */
static void path_with_env(const char *value, char *out, size_t cap) {
  int fd[2];
  REQUIRE(pipe(fd) == 0);
  fflush(stdout);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fd[0]);
    if (value) setenv("ASTEMBED_CPU", value, 1);
    else unsetenv("ASTEMBED_CPU");
    const char *p = ae_cpu_path();
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s%s", p ? p : "NULL: ", p ? "" : ae_last_error());
    if (write(fd[1], msg, (size_t)n) != n) _exit(2);
    _exit(0);
  }
  close(fd[1]);
  ssize_t n = read(fd[0], out, cap - 1);
  out[n > 0 ? n : 0] = 0;
  close(fd[0]);
  int st;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void) {
  const char *names[AE__CPU_PATHS] = {"generic", "avx2", "avx512"};
  int best = AE__CPU_GENERIC;
  for (int p = 0; p < AE__CPU_PATHS; p++) {
    const ae__kernels *k = ae__kernels_for(p);
    if (!k) { printf("%-8s not on this CPU: not tested\n", names[p]); continue; }
    best = p;
    CHECK(!strcmp(k->name, names[p]));
    check_layernorm(k);
    check_attention(k);
    check_dot(k);
  }
  CHECK(ae__kernels_for(AE__CPU_GENERIC) == &ae__kernels_generic);
  /* the choice: best path by default, capped by ASTEMBED_CPU, bad values refused */
  char got[600];
  path_with_env(NULL, got, sizeof got);
  CHECKF(!strcmp(got, names[best]), "default path '%s', expected '%s'", got, names[best]);
  for (int p = 0; p < AE__CPU_PATHS; p++) {
    path_with_env(names[p], got, sizeof got);
    const char *want = names[p < best ? p : best];
    CHECKF(!strcmp(got, want), "ASTEMBED_CPU=%s gave '%s', expected '%s'", names[p], got, want);
  }
  path_with_env("AVX2", got, sizeof got);
  CHECKF(strstr(got, "NULL: ") == got && strstr(got, "'AVX2'"), "ASTEMBED_CPU=AVX2 gave '%s'", got);
  /* this process's own choice (ctest reruns the encoder tests with ASTEMBED_CPU set) */
  const char *env = getenv("ASTEMBED_CPU");
  printf("this process: ASTEMBED_CPU=%s -> %s\n", env ? env : "(unset)", ae_cpu_path());
  TEST_DONE();
}
