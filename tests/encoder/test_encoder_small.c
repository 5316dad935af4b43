// ctest-labels: encoder
// ctest-timeout: 120
/* The few-row kernel of plain mode (gemm.c small_gemm: AE_PREPACK_OFF and at most 16
 * rows, i.e. a query) against oneDNN's prepacked path: every activation (gelu,
 * gelu_new, relu), widths whose K and N are not multiples of 16 or 4 (the masked
 * tails and the clamped output columns), every length from 1 to 17 rows, alone and
 * two at a time: the same vectors within 1e-6. */
#include "encoder_testutil.h"
#include "test.h"
#include <unistd.h>

static void compare(const char *dir, int H) {
  ae_encoder *on = NULL, *off = NULL;
  ae_encoder_options o_on = {.threads = 1, .prepack = AE_PREPACK_ON};
  ae_encoder_options o_off = {.threads = 1, .prepack = AE_PREPACK_OFF};
  CHECK_OK(ae_encoder_load(dir, &o_on, &on));
  CHECK_OK(ae_encoder_load(dir, &o_off, &off));
  REQUIRE(on && off);
  enum { N = 17 };
  int32_t *ids[N];
  size_t lens[N];
  for (int i = 0; i < N; i++) {
    lens[i] = (size_t)i + 1;
    ids[i] = malloc(sizeof(int32_t) * lens[i]);
    for (size_t k = 0; k < lens[i]; k++) ids[i][k] = (int32_t)((i * 31 + k * 7 + 3) % 40);
  }
  float *a = malloc(sizeof(float) * N * H), *b = malloc(sizeof(float) * N * H);
  CHECK_OK(ae_encoder_embed_ids(on, (const int32_t *const *)ids, lens, N, a));
  double d = 0, scale = 0;
  for (int i = 0; i < N; i++) {
    CHECK_OK(ae_encoder_embed_ids(off, (const int32_t *const *)&ids[i], &lens[i], 1, b + i * H));
    for (int k = 0; k < H; k++) {
      d = fmax(d, fabs(a[i * H + k] - b[i * H + k]));
      scale = fmax(scale, fabs(a[i * H + k]));
    }
  }
  /* two sequences per call: 2..16 rows in the kernel, offsets inside the block */
  for (int i = 0; i + 1 < 8; i++) {
    CHECK_OK(ae_encoder_embed_ids(off, (const int32_t *const *)&ids[i], &lens[i], 2, b));
    for (int k = 0; k < 2 * H; k++) d = fmax(d, fabs(a[i * H + k] - b[k]));
  }
  printf("%s: max |diff| %.3g (values up to %.3g)\n", dir, d, scale);
  CHECK(d <= 1e-6 * (scale > 1 ? scale : 1));
  CHECK(scale > 0 && isfinite(scale));
  for (int i = 0; i < N; i++) free(ids[i]);
  free(a); free(b);
  ae_encoder_free(on); ae_encoder_free(off);
}

int main(void) {
  char *root = strdup("/tmp/ae-enc-small-XXXXXX");
  REQUIRE(mkdtemp(root));
  static const struct { const char *name, *act; int H, heads, I; } cases[] = {
    {"gelu", "gelu", 32, 2, 64},        {"gelu_new", "gelu_new", 48, 4, 96},
    {"relu", "relu", 64, 4, 128},       {"tails", "gelu", 36, 4, 70},
    {"wide", "gelu", 384, 12, 1536},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *dir = tm_model_dir(root, cases[i].name,
                             (tm_shape){.H = cases[i].H, .heads = cases[i].heads, .I = cases[i].I,
                                        .layers = 2, .max_pos = 64, .act = cases[i].act, .seed = 11});
    REQUIRE(dir);
    compare(dir, cases[i].H);
    free(dir);
  }
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", root);
  free(root);
  TEST_DONE();
}
