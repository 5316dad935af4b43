// ctest-timeout: 300
/* AE_PREPACK_OFF (weights used in place, no reorder) against the default prepacked
 * path: the same vectors within 1e-6 over varied lengths and batches, for a tiny
 * model and one of MiniLM's width (where oneDNN picks its blocked kernels), and a
 * load that allocates none of the packed weight memory. */
#include "encoder_testutil.h"
#include "test.h"
#include <unistd.h>

static size_t bytes;   /* bytes requested through the allocator hook */
static void *c_malloc(size_t n, void *ud) { (void)ud; bytes += n; return malloc(n); }
static void *c_realloc(void *p, size_t n, void *ud) { (void)ud; bytes += n; return realloc(p, n); }
static void c_free(void *p, void *ud) { (void)ud; free(p); }

static int load_counted(const char *dir, int prepack, ae_encoder **e, size_t *used) {
  ae_allocator al = {c_malloc, c_realloc, c_free, NULL};
  ae_encoder_options o = {.threads = 2, .prepack = prepack};
  bytes = 0;
  ae_set_allocator(&al);
  int rc = ae_encoder_load(dir, &o, e);
  ae_set_allocator(NULL);
  *used = bytes;
  return rc;
}

static void compare(const char *dir, int H, int I, int layers) {
  ae_encoder *on = NULL, *off = NULL, *dflt = NULL;
  size_t b_on = 0, b_off = 0, b_dflt = 0;
  CHECK_OK(load_counted(dir, AE_PREPACK_ON, &on, &b_on));
  CHECK_OK(load_counted(dir, AE_PREPACK_OFF, &off, &b_off));
  CHECK_OK(load_counted(dir, AE_PREPACK_AUTO, &dflt, &b_dflt));
  REQUIRE(on && off && dflt);
  size_t packed = (size_t)layers * (4 * (size_t)H * H + 2 * (size_t)H * I) * sizeof(float);
  printf("H=%d: load allocates %zu bytes prepacked, %zu without (weights %zu)\n", H, b_on,
         b_off, packed);
  CHECK(b_on >= packed);
  CHECK(b_dflt == b_on);               /* zero-initialised options = prepacked */
  CHECK(b_off + packed <= b_on);       /* no weight-sized allocation without prepack */

  /* lengths 1..96 around the 16-row rounding, alone and in mixed batches */
  enum { N = 24 };
  static const size_t L[N] = {1, 2, 3, 5, 8, 13, 15, 16, 17, 24, 31, 32, 33, 40, 47, 48, 49,
                              63, 64, 65, 80, 95, 96, 7};
  int32_t *ids[N];
  size_t lens[N];
  for (int i = 0; i < N; i++) {
    lens[i] = L[i];
    ids[i] = malloc(sizeof(int32_t) * lens[i]);
    for (size_t k = 0; k < lens[i]; k++) ids[i][k] = (int32_t)((i * 29 + k * 13 + 2) % 40);
  }
  float *a = malloc(sizeof(float) * N * H), *b = malloc(sizeof(float) * N * H);
  float *c = malloc(sizeof(float) * N * H);
  double d = 0, d1 = 0;
  CHECK_OK(ae_encoder_embed_ids(on, (const int32_t *const *)ids, lens, N, a));
  CHECK_OK(ae_encoder_embed_ids(off, (const int32_t *const *)ids, lens, N, b));
  for (int i = 0; i < N * H; i++) d = fmax(d, fabs(a[i] - b[i]));
  for (int i = 0; i < N; i++) {   /* one sequence per call: the query's case */
    CHECK_OK(ae_encoder_embed_ids(off, (const int32_t *const *)&ids[i], &lens[i], 1, c + i * H));
    for (int k = 0; k < H; k++) d1 = fmax(d1, fabs(c[i * H + k] - a[i * H + k]));
  }
  printf("H=%d: prepacked vs in place: batch max |diff| %.3g, one at a time %.3g\n", H, d, d1);
  CHECK(d <= 1e-6);
  CHECK(d1 <= 1e-6);
  CHECK(isfinite(a[0]) && fabs(a[0]) > 0);

  const char *texts[3] = {"def parse(path)", "", "return self.value of the file"};
  float ta[3 * 384], tb[3 * 384];
  int st[3];
  CHECK_OK(ae_encoder_embed_texts(on, texts, NULL, 3, ta, st));
  CHECK_OK(ae_encoder_embed_texts(off, texts, NULL, 3, tb, st));
  double dt = 0;
  for (int i = 0; i < 3 * H; i++) dt = fmax(dt, fabs(ta[i] - tb[i]));
  CHECK(dt <= 1e-6);
  uint8_t f1[16], f2[16];
  ae_encoder_fingerprint(on, f1);
  ae_encoder_fingerprint(off, f2);
  CHECK(memcmp(f1, f2, 16) == 0);      /* interchangeable vectors */
  for (int i = 0; i < N; i++) free(ids[i]);
  free(a); free(b); free(c);
  ae_encoder_free(on); ae_encoder_free(off); ae_encoder_free(dflt);
}

int main(void) {
  char *root = strdup("/tmp/ae-enc-noprepack-XXXXXX");
  REQUIRE(mkdtemp(root));
  tm_shape shape = {.H = 32, .heads = 2, .I = 64, .layers = 2, .max_pos = 96, .model_max_length = 96,
                    .normalize = 1, .act = "gelu", .seed = 7};
  char *tiny = tm_model_dir(root, "tiny", shape);
  shape.H = 384, shape.heads = 12, shape.I = 1536;
  char *wide = tm_model_dir(root, "wide", shape);
  REQUIRE(tiny && wide);
  compare(tiny, 32, 64, 2);
  compare(wide, 384, 1536, 2);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", root);
  free(tiny); free(wide); free(root);
  TEST_DONE();
}
