// ctest-timeout: 600
// ctest-labels: nosan
/* The default (portable) build on a CPU without AVX-512: the release CLI runs under
 * qemu-x86_64-static -cpu Haswell (AVX2 + FMA, no AVX-512; Debian's qemu-user-static)
 * on a few texts with a small random model, picks the avx2 path (and oneDNN its
 * AVX2 kernels, from qemu's CPUID), and gives the vectors of the native run within
 * 1e-5: against the native default path (AVX-512 here) and against the native run
 * capped with ASTEMBED_CPU=avx2.
 *
 * OMP_WAIT_POLICY is set here: without it the CLI re-executes /proc/self/exe to set
 * it, and that re-exec would start the binary natively, outside qemu. Skips (77)
 * without qemu-x86_64-static, off x86-64, or without ../shared's tokenizer files.
 * nosan: it runs the release binary, which an ASan build has not. */
#include "encoder_testutil.h"
#include "test.h"
#include <sys/wait.h>
#include <unistd.h>

#define SKIP(...) do { printf("SKIP: " __VA_ARGS__); putchar('\n'); exit(77); } while (0)

static char tmp[] = "/tmp/ae-qemu-XXXXXX";

/* Runs "prefix astembed args < in > out"; returns the exit status (-1: signal). */
static int run(const char *prefix, const char *args, const char *in, const char *out) {
  const char *d = getenv("AE_BUILD_DIR");
  char cmd[9000];
  snprintf(cmd, sizeof cmd, "%s %s/astembed %s < %s > %s 2> %s.err", prefix, d ? d : "build", args,
           in, out, out);
  int st = system(cmd);
  if (!WIFEXITED(st)) return -1;
  if (WEXITSTATUS(st) > 128) fprintf(stderr, "%s: killed by signal %d\n", cmd, WEXITSTATUS(st) - 128);
  return WEXITSTATUS(st);
}

static float *slurp_f32(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  float *b = malloc(len + 4);
  *n = fread(b, 1, len, f) / sizeof(float);
  fclose(f);
  return b;
}

static double max_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
  return m;
}

int main(void) {
#if !defined(__x86_64__)
  SKIP("not an x86-64 build");
#endif
  const char *qemu = "/usr/bin/qemu-x86_64-static";
  if (access(qemu, X_OK)) SKIP("%s missing (Debian package qemu-user-static)", qemu);
  const char *sh = test_shared_dir();
  if (!sh) SKIP("../shared missing (needs the MiniLM tokenizer files)");
  setenv("ASTEMBED_CACHE_DIR", "off", 1);
  setenv("OMP_WAIT_POLICY", "passive", 1);   /* no re-exec: it would escape qemu */
  unsetenv("ASTEMBED_CPU");
  REQUIRE(mkdtemp(tmp));
  char like[4200], model[4200], in[4200], out[4200], args[9000], prefix[4400];
  snprintf(like, sizeof like, "%s/models/all-MiniLM-L6-v2", sh);
  snprintf(model, sizeof model, "%s/model", tmp);
  ae_model_random_options o;
  ae_model_random_options_default(&o);
  o.layers = 2; o.hidden = 96; o.heads = 3; o.intermediate = 200; o.seed = 9;
  CHECK_OK(ae_model_init_random_opts(like, model, &o));

  /* a few texts: 1 token to a few hundred, so every kernel tail is crossed */
  enum { N = 6 };
  static const int words[N] = {0, 1, 5, 17, 60, 250};
  snprintf(in, sizeof in, "%s/in.jsonl", tmp);
  FILE *f = fopen(in, "w");
  REQUIRE(f);
  for (int i = 0; i < N; i++) {
    fprintf(f, "{\"id\": %d, \"text\": \"def parse_%d(path):", i, i);
    for (int w = 0; w < words[i]; w++) fprintf(f, " w%d naïve", (i * 7 + w) % 40);
    fputs("\"}\n", f);
  }
  fclose(f);
  snprintf(args, sizeof args, "encode --model %s --format f32 --threads 2", model);

  /* the path each run reports */
  snprintf(prefix, sizeof prefix, "%s -cpu Haswell", qemu);
  snprintf(out, sizeof out, "%s/version-qemu.txt", tmp);
  CHECK(run(prefix, "--version", in, out) == 0);
  size_t nb = 0;
  char *ver = (char *)slurp_f32(out, &nb);
  CHECKF(ver && strstr(ver, "cpu path: avx2"), "under qemu -cpu Haswell: %s", ver ? ver : "(none)");
  free(ver);

  float *vec[3] = {0};
  size_t n[3] = {0};
  const char *names[3] = {"native default", "native ASTEMBED_CPU=avx2", "qemu -cpu Haswell"};
  const char *prefixes[3] = {"", "ASTEMBED_CPU=avx2", prefix};
  for (int r = 0; r < 3; r++) {
    snprintf(out, sizeof out, "%s/out%d.f32", tmp, r);
    double t0 = ae__now_ms();
    int rc = run(prefixes[r], args, in, out);
    CHECKF(rc == 0, "%s: exit status %d", names[r], rc);
    vec[r] = slurp_f32(out, &n[r]);
    printf("%-26s exit %d, %zu floats, %.1f s\n", names[r], rc, n[r], (ae__now_ms() - t0) / 1000);
  }
  REQUIRE(vec[0] && vec[1] && vec[2]);
  CHECK(n[0] == (size_t)N * 96 && n[1] == n[0] && n[2] == n[0]);
  if (n[0] == (size_t)N * 96 && n[1] == n[0] && n[2] == n[0]) {
    double d_def = max_diff(vec[2], vec[0], n[0]), d_avx2 = max_diff(vec[2], vec[1], n[0]);
    double norm = 0;
    for (size_t i = 0; i < n[0]; i++) norm = fmax(norm, fabs(vec[0][i]));
    printf("qemu Haswell vs native default: max |diff| %.3g; vs native avx2: %.3g (values up to %.3g)\n",
           d_def, d_avx2, norm);
    CHECK(norm > 0.01);   /* real vectors, not zero rows */
    CHECK(d_def <= 1e-5);
    CHECK(d_avx2 <= 1e-5);
  }
  for (int r = 0; r < 3; r++) free(vec[r]);
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmp);
  TEST_DONE();
}
