// ctest-timeout: 120
/* astembed encode end to end through the built binary: input order kept across the
 * length-sorted batches, ids echoed, bad lines reported with exit status 1 while the
 * others are embedded, f32 rows equal to the JSONL vectors and to the library's,
 * usage errors exit 2. --precision bf16: encode gives the library's bf16 vectors;
 * embed stores them under the bf16 fingerprint and query finds them without being
 * told (and with --precision f32 it finds no vectors). */
#include "encoder_testutil.h"
#include "test.h"
#include <jansson.h>
#include <sys/wait.h>

static const char *bin(void) {
  static char b[4200];
  const char *d = getenv("AE_BUILD_DIR");
  snprintf(b, sizeof b, "%s/astembed", d ? d : "build");
  return b;
}

static int run(const char *args, const char *in_path, const char *out_path) {
  char cmd[9000];
  snprintf(cmd, sizeof cmd, "%s %s < %s > %s 2>%s.err", bin(), args, in_path, out_path, out_path);
  if (getenv("AE_TEST_VERBOSE")) fprintf(stderr, "+ %s\n", cmd);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc(len + 1);
  *n = fread(b, 1, len, f);
  b[*n] = 0;
  fclose(f);
  return b;
}

int main(void) {
  /* the CLI's load cache would default to ~/.cache/astembed: not this test's business */
  setenv("ASTEMBED_CACHE_DIR", "off", 1);
  const char *sh = test_shared_dir();
  if (!sh) TEST_SKIP("../shared missing (needs the MiniLM tokenizer files)");
  char tmp[] = "/tmp/ae-enc-cli-XXXXXX";
  REQUIRE(mkdtemp(tmp));
  char like[4200], model[4200], in[4200], out[4200], out2[4200], outf[4200], args[9000];
  snprintf(like, sizeof like, "%s/models/all-MiniLM-L6-v2", sh);
  snprintf(model, sizeof model, "%s/model", tmp);
  ae_model_random_options o;
  ae_model_random_options_default(&o);
  o.layers = 2; o.hidden = 64; o.heads = 4; o.intermediate = 128; o.seed = 5;
  CHECK_OK(ae_model_init_random_opts(like, model, &o));

  /* 300 lines of varied lengths, with three bad ones */
  snprintf(in, sizeof in, "%s/in.jsonl", tmp);
  FILE *f = fopen(in, "w");
  enum { N = 300 };
  const char *texts[N];
  char *own[N];
  for (int i = 0; i < N; i++) {
    own[i] = NULL;
    if (i == 10) { fputs("{\"id\": 10, \"text\": \n", f); texts[i] = NULL; continue; }   /* bad JSON */
    if (i == 77) { fputs("{\"id\": \"no-text\"}\n", f); texts[i] = NULL; continue; }
    if (i == 150) { fputs("[1, 2]\n", f); texts[i] = NULL; continue; }
    int words = (i * 37) % 90;
    size_t cap = 16 + words * 8, len = 0;
    own[i] = malloc(cap);
    own[i][0] = 0;
    for (int w = 0; w < words; w++) len += snprintf(own[i] + len, cap - len, "w%d ", (i + w) % 50);
    texts[i] = own[i];
    json_t *line = json_pack("{s:i,s:s}", "id", i, "text", own[i]);
    char *s = json_dumps(line, JSON_COMPACT);
    fprintf(f, "%s\n", s);
    free(s);
    json_decref(line);
  }
  fclose(f);
  snprintf(out, sizeof out, "%s/out.jsonl", tmp);
  snprintf(args, sizeof args, "encode --model %s --threads 2 --batch-size 8", model);
  CHECK(run(args, in, out) == 1);           /* bad lines: exit status 1 */

  /* library reference */
  ae_encoder *enc = NULL;
  CHECK_OK(ae_encoder_load(model, NULL, &enc));
  REQUIRE(enc);
  const int D = ae_encoder_dim(enc);
  float *lib = calloc((size_t)N * D, sizeof(float));
  int st[N];
  const char *good[N];
  for (int i = 0; i < N; i++) good[i] = texts[i] ? texts[i] : "";
  CHECK_OK(ae_encoder_embed_texts(enc, good, NULL, N, lib, st));

  size_t n;
  char *txt = slurp(out, &n);
  REQUIRE(txt);
  char *save = NULL, *line = strtok_r(txt, "\n", &save);
  int lines = 0, errors = 0;
  double dmax = 0;
  float *cli = calloc((size_t)N * D, sizeof(float));
  for (; line; line = strtok_r(NULL, "\n", &save), lines++) {
    json_t *v = json_loads(line, 0, NULL);
    REQUIRE(v);
    json_t *err = json_object_get(v, "error"), *emb = json_object_get(v, "embedding");
    if (lines == 10 || lines == 77 || lines == 150) {
      CHECKF(err && !emb, "line %d should be an error", lines);
      errors++;
      if (lines == 77) CHECK(json_is_string(json_object_get(v, "id")));
    } else {
      CHECKF(json_integer_value(json_object_get(v, "id")) == lines, "line %d out of order", lines);
      CHECK(json_array_size(emb) == (size_t)D);
      for (int c = 0; c < D; c++) {
        cli[(size_t)lines * D + c] = (float)json_real_value(json_array_get(emb, c));
        dmax = fmax(dmax, fabs(cli[(size_t)lines * D + c] - lib[(size_t)lines * D + c]));
      }
    }
    json_decref(v);
  }
  CHECK(lines == N);
  CHECK(errors == 3);
  printf("jsonl: %d lines, %d errors, max |cli - library| = %.3g\n", lines, errors, dmax);
  CHECK(dmax < 1e-6);
  free(txt);

  /* f32: the same rows (zero rows for bad lines), bit-exact with the JSONL values */
  snprintf(outf, sizeof outf, "%s/out.f32", tmp);
  snprintf(args, sizeof args, "encode --model %s --format f32 --batch-size 64", model);
  CHECK(run(args, in, outf) == 1);
  char *raw = slurp(outf, &n);
  REQUIRE(raw);
  CHECK(n == (size_t)N * D * sizeof(float));
  if (n == (size_t)N * D * sizeof(float)) {
    const float *r = (const float *)raw;
    double df = 0;
    for (size_t i = 0; i < (size_t)N * D; i++) df = fmax(df, fabs(r[i] - cli[i]));
    printf("f32 vs jsonl (other batch size): max |diff| %.3g\n", df);
    CHECK(df < 1e-6);
  }
  free(raw);

  /* --precision bf16 needs the avx512 path (oneDNN's AVX-512 bf16 matmul); below it
   * (ASTEMBED_CPU=avx2|generic, or such a CPU) it fails with its own clear error */
  const char *cpu = ae_cpu_path();
  REQUIRE(cpu);
  char ann[300], db[300];
  snprintf(ann, sizeof ann, "%s/ann.jsonl", tmp);
  snprintf(db, sizeof db, "%s/index.db", tmp);
  if (strcmp(cpu, "avx512")) {
    ae_encoder *e16 = NULL;
    ae_encoder_options o16 = {.precision = "bf16"};
    CHECK(ae_encoder_load(model, &o16, &e16) == AE_EUNSUPPORTED && !e16);
    CHECKF(strstr(ae_last_error(), "bf16") && strstr(ae_last_error(), "AVX-512"), "%s", ae_last_error());
    snprintf(args, sizeof args, "encode --model %s --format f32 --precision bf16", model);
    CHECK(run(args, in, outf) == 1);
    char errp[4300];
    snprintf(errp, sizeof errp, "%s.err", outf);
    char *etxt = slurp(errp, &n);
    CHECKF(etxt && strstr(etxt, "precision bf16") && strstr(etxt, "AVX-512"), "stderr: %s", etxt ? etxt : "");
    printf("cpu path %s: bf16 refused: %s", cpu, etxt ? etxt : "\n");
    free(etxt);
  } else {
  /* --precision bf16: the library's bf16 vectors, close to f32 */
  snprintf(args, sizeof args, "encode --model %s --format f32 --precision bf16", model);
  CHECK(run(args, in, outf) == 1);
  raw = slurp(outf, &n);
  REQUIRE(raw);
  ae_encoder *e16 = NULL;
  ae_encoder_options o16 = {.precision = "bf16"};
  CHECK_OK(ae_encoder_load(model, &o16, &e16));
  REQUIRE(e16);
  float *lib16 = calloc((size_t)N * D, sizeof(float));
  CHECK_OK(ae_encoder_embed_texts(e16, good, NULL, N, lib16, st));
  CHECK(n == (size_t)N * D * sizeof(float));
  if (n == (size_t)N * D * sizeof(float)) {
    const float *r = (const float *)raw;
    double d16 = 0, d32 = 0;
    for (size_t i = 0; i < (size_t)N * D; i++) {
      if (!texts[i / D]) continue;   /* bad lines: zero rows */
      d16 = fmax(d16, fabs(r[i] - lib16[i]));
      d32 = fmax(d32, fabs(r[i] - cli[i]));
    }
    printf("bf16: max |cli - library bf16| %.3g, max |bf16 - f32| %.3g\n", d16, d32);
    CHECK(d16 < 1e-5);
    CHECK(d32 > 0 && d32 < 6e-3);   /* bf16 really ran, within its tolerance */
  }
  free(raw);
  free(lib16);
  ae_encoder_free(e16);
  snprintf(args, sizeof args, "encode --model %s --precision fp16", model);
  CHECK(run(args, in, out) == 2);

  /* embed --precision bf16, then query without --precision */
  f = fopen(ann, "w");
  for (int i = 0; i < 12; i++)
    fprintf(f, "{\"nodeId\": \"m.py:%d:%d:function\", \"signature\": \"def f%d(path)\", \"summary\": "
            "\"reads file %d\", \"sourceSnippet\": \"def f%d(path):\\n    return %d\", \"metadata\": "
            "{\"file_path\": \"m.py\", \"start_line\": %d, \"end_line\": %d, \"node_type\": \"function\", "
            "\"language\": \"python\"}}\n", i * 3 + 1, i * 3 + 2, i, i, i, i, i * 3 + 1, i * 3 + 2);
  fclose(f);
  snprintf(args, sizeof args, "embed --model %s --input %s --db %s --precision bf16 --no-progress", model, ann, db);
  int erc = run(args, in, out);
  char errp[4300];
  snprintf(errp, sizeof errp, "%s.err", out);
  char *etxt = slurp(errp, &n);
  CHECKF(erc == 0, "embed --precision bf16 exit %d: %s", erc, etxt ? etxt : "");
  {
    snprintf(args, sizeof args, "stats --db %s", db);   /* the index row names the precision */
    CHECK(run(args, in, out) == 0);
    char *st = slurp(out, &n);
    CHECKF(st && strstr(st, "(bf16)"), "stats output: %s", st ? st : "");
    free(st);
    snprintf(args, sizeof args, "query \"reads file\" --db %s --format json --top 3", db);
    CHECK(run(args, in, out) == 0);
    char *q = slurp(out, &n);
    CHECKF(q && strstr(q, "\"results\"") && strstr(q, "m.py"), "query output: %s", q ? q : "");
    free(q);
    snprintf(args, sizeof args, "query \"reads file\" --db %s --mode vector --precision bf16", db);
    CHECK(run(args, in, out) == 0);
    snprintf(args, sizeof args, "query \"reads file\" --db %s --mode vector --precision f32", db);
    CHECK(run(args, in, out) == 1);   /* no f32 vectors in this index */
    snprintf(args, sizeof args, "query \"reads file\" --db %s --precision f16", db);
    CHECK(run(args, in, out) == 2);
  }
  free(etxt);
  }   /* avx512 path */
  snprintf(args, sizeof args, "embed --model %s --input %s --db %s --precision half", model, ann, db);
  CHECK(run(args, in, out) == 2);

  /* a clean input exits 0; usage errors exit 2; --help exits 0 */
  snprintf(out2, sizeof out2, "%s/ok.jsonl", tmp);
  f = fopen(out2, "w");
  fputs("{\"id\": \"a\", \"text\": \"def f(): pass\"}\n\n{\"id\": null, \"text\": \"\"}\n", f);
  fclose(f);
  snprintf(args, sizeof args, "encode --model %s", model);
  CHECK(run(args, out2, out) == 0);
  CHECK(run("encode --help", out2, out) == 0);
  snprintf(args, sizeof args, "encode --model %s --batch-size 0", model);
  CHECK(run(args, out2, out) == 2);
  snprintf(args, sizeof args, "encode --model %s --format xml", model);
  CHECK(run(args, out2, out) == 2);
  CHECK(run("encode --model /nonexistent", out2, out) == 1);

  for (int i = 0; i < N; i++) free(own[i]);
  free(lib); free(cli);
  ae_encoder_free(enc);
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmp);
  TEST_DONE();
}
