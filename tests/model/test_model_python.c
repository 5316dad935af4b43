/* Cross-checks with an independent implementation (tests/model/st_tool.py: numpy and
 * torch under /usr/bin/python3): init-random's files read by Python have the
 * expected layout, distribution and F16/BF16 rounding; a file written by Python
 * the way another writer might (sorted keys, reversed order, "bert." prefix,
 * unpadded header, mixed F32/F16) loads with the same values. */
#include "model_test_util.h"
#include "test.h"

static int py(const char *args) {
  char cmd[8192];
  const char *src = getenv("AE_SOURCE_DIR");
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/model/st_tool.py %s", src ? src : ".", args);
  return system(cmd);
}

int main(void) {
  if (system("/usr/bin/python3 -c 'import numpy, torch' >/dev/null 2>&1") != 0) {
    TEST_SKIP("/usr/bin/python3 with numpy and torch not available (tools/deps.sh test)");
  }
  char *d32 = make_model(NULL, "F32", 21, 0), *d16 = make_model(NULL, "F16", 21, 0),
       *dbf = make_model(NULL, "BF16", 21, 0), *dst = tmp_dir();
  char args[4096];
  snprintf(args, sizeof args, "check %s %s %s", d32, d16, dbf);
  CHECK(py(args) == 0);
  write_text(dst, "config.json", tiny_config);
  snprintf(args, sizeof args, "rewrite %s %s", d32, dst);
  CHECK(py(args) == 0);
  ae__bert_model *a = NULL, *b = NULL;
  CHECK_OK(ae__bert_load(d32, 0, &a));
  CHECK_OK(ae__bert_load(dst, 0, &b));
  REQUIRE(a && b);
  CHECK(b->bert_prefix && !strcmp(b->dtype, "mixed"));
  /* each tensor either equal (kept F32) or equal to its F16 rounding */
  struct { const float *x, *y; size_t n; } pairs[] = {
    {a->word_emb, b->word_emb, 100 * 32}, {a->pos_emb, b->pos_emb, 40 * 32},
    {a->type_emb, b->type_emb, 64}, {a->emb_ln_g, b->emb_ln_g, 32},
    {a->layer[1].i_w, b->layer[1].i_w, 64 * 32}, {a->layer[1].out_w, b->layer[1].out_w, 64 * 32},
    {a->layer[0].q_b, b->layer[0].q_b, 32}, {a->layer[1].ln2_b, b->layer[1].ln2_b, 32},
  };
  int f32_seen = 0, f16_seen = 0;
  for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
    int same = !memcmp(pairs[i].x, pairs[i].y, pairs[i].n * 4), rounded = 1;
    for (size_t j = 0; j < pairs[i].n; j++)
      rounded &= pairs[i].y[j] == ae__f16_to_f32(ae__f32_to_f16(pairs[i].x[j]));
    CHECKF(same || rounded, "tensor pair %zu differs", i);
    f32_seen += same;
    f16_seen += !same && rounded;
  }
  CHECK(f32_seen > 0 && f16_seen > 0);
  CHECK(b->converted != NULL);
  ae__bert_free(a);
  ae__bert_free(b);
  const char *dirs[] = {d32, d16, dbf, dst};
  for (int i = 0; i < 4; i++) { rm_rf(dirs[i]); free((void *)dirs[i]); }
  TEST_DONE();
}
