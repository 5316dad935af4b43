/* make install, as a user of the library meets it.
 *
 * Installs the build into a temporary prefix (cmake --install --prefix), then:
 *   - the tree holds bin/astembed, include/astembed.h, lib/libastembed.so ->
 *     .so.MAJOR -> .so.MAJOR.MINOR.PATCH, lib/libastembed.a, lib/pkgconfig/astembed.pc;
 *   - the shared library's SONAME is libastembed.so.MAJOR and it exports public ae_
 *     symbols only (no ae__ one);
 *   - one version everywhere: the header's AE_VERSION_*, ae_version(), `astembed
 *     --version` and `pkg-config --modversion astembed`;
 *   - a small program built with `pkg-config --cflags --libs astembed` (shared, run with
 *     LD_LIBRARY_PATH) and with `pkg-config --static` (linked against libastembed.a,
 *     no libastembed.so needed at run time) tokenizes and embeds a text with a tiny
 *     random model and prints what this process computes with the same calls;
 *   - the installed astembed describes that model (model info).
 * The program is compiled with this build's compiler and sanitizer flags, so the test
 * also runs in the ASan build. Skipped (TEST_SKIP) only when a tool it drives is missing. */
#define _GNU_SOURCE
#include "astembed.h"
#include "test.h"
#include "encoder/encoder_testutil.h"

#include <stdarg.h>
#include <unistd.h>

#ifndef AE_TEST_CC
#define AE_TEST_CC "cc"
#endif
#ifndef AE_TEST_CFLAGS
#define AE_TEST_CFLAGS ""
#endif
#ifndef AE_TEST_CMAKE
#define AE_TEST_CMAKE "cmake"
#endif
#ifndef AE_TEST_LIBDIR
#define AE_TEST_LIBDIR "lib"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)
#define HEADER_VERSION STR(AE_VERSION_MAJOR) "." STR(AE_VERSION_MINOR) "." STR(AE_VERSION_PATCH)

static const char *prog_source =
  "#include <astembed.h>\n"
  "#include <stdio.h>\n"
  "#include <stdlib.h>\n"
  "#include <string.h>\n"
  "int main(int argc, char **argv) {\n"
  "  if (argc != 2) return 2;\n"
  "  printf(\"version %s\\n\", ae_version());\n"
  "  ae_encoder *enc;\n"
  "  int rc = ae_encoder_load(argv[1], NULL, &enc);\n"
  "  if (rc) { fprintf(stderr, \"%s: %s\\n\", ae_strerror(rc), ae_last_error()); return 1; }\n"
  "  const char *text = \"def parse(path): return the value of x\";\n"
  "  int32_t *ids; size_t n;\n"
  "  if (ae_tokenizer_encode(ae_encoder_tokenizer(enc), text, strlen(text), 0, &ids, &n, NULL)) return 1;\n"
  "  printf(\"ids\");\n"
  "  for (size_t i = 0; i < n; i++) printf(\" %d\", ids[i]);\n"
  "  ae_free(ids);\n"
  "  int dim = ae_encoder_dim(enc), st;\n"
  "  float *v = malloc(sizeof(float) * dim);\n"
  "  if (!v || ae_encoder_embed_texts(enc, &text, NULL, 1, v, &st) || st) return 1;\n"
  "  printf(\"\\ndim %d\\nvec\", dim);\n"
  "  for (int i = 0; i < dim; i++) printf(\" %.9g\", v[i]);\n"
  "  printf(\"\\n\");\n"
  "  free(v);\n"
  "  ae_encoder_free(enc);\n"
  "  return 0;\n"
  "}\n";

/* Runs a shell command; its stdout and stderr (both) go to *out (malloc'ed). Returns
 * the exit status, or -1 when it could not run. */
static int sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(char **out, const char *fmt, ...) {
  char cmd[16384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  char full[16500];
  snprintf(full, sizeof full, "( %s ) 2>&1", cmd);
  FILE *p = popen(full, "r");
  if (!p) return -1;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  for (size_t r; buf && (r = fread(buf + n, 1, cap - n - 1, p)) > 0;) {
    n += r;
    if (cap - n < 2) buf = realloc(buf, cap *= 2);
  }
  if (buf) buf[n] = 0;
  int st = pclose(p);
  if (out) *out = buf; else free(buf);
  if (st == -1 || !WIFEXITED(st)) return -1;
  if (WEXITSTATUS(st)) fprintf(stderr, "command failed (%d): %s\n%s", WEXITSTATUS(st), cmd,
                               buf ? buf : "");
  return WEXITSTATUS(st);
}

static int have_tool(const char *name) {
  char *o = NULL;
  int rc = sh(&o, "command -v %s", name);
  free(o);
  return rc == 0;
}

static int is_link_to(const char *path, const char *target) {
  char buf[4096];
  ssize_t n = readlink(path, buf, sizeof buf - 1);
  if (n < 0) return 0;
  buf[n] = 0;
  return !strcmp(buf, target);
}

/* What the program prints, computed here with the same calls (static library). */
static char *expected_output(const char *model) {
  ae_encoder *enc;
  if (ae_encoder_load(model, NULL, &enc)) return NULL;
  const char *text = "def parse(path): return the value of x";
  int32_t *ids;
  size_t n;
  if (ae_tokenizer_encode(ae_encoder_tokenizer(enc), text, strlen(text), 0, &ids, &n, NULL))
    return NULL;
  int dim = ae_encoder_dim(enc), st;
  char *out = malloc(64 + n * 12 + (size_t)dim * 24);
  size_t len = (size_t)sprintf(out, "version %s\nids", ae_version());
  for (size_t i = 0; i < n; i++) len += (size_t)sprintf(out + len, " %d", ids[i]);
  ae_free(ids);
  float *v = malloc(sizeof(float) * dim);
  if (ae_encoder_embed_texts(enc, &text, NULL, 1, v, &st) || st) return NULL;
  len += (size_t)sprintf(out + len, "\ndim %d\nvec", dim);
  for (int i = 0; i < dim; i++) len += (size_t)sprintf(out + len, " %.9g", v[i]);
  sprintf(out + len, "\n");
  free(v);
  ae_encoder_free(enc);
  return out;
}

/* Same version line, ids and dim; vector components within 1e-5 (the two libraries
 * are the same objects, but thread scheduling may reorder float sums). */
static int outputs_match(const char *want, const char *got) {
  const char *wv = strstr(want, "\nvec"), *gv = got ? strstr(got, "\nvec") : NULL;
  if (!wv || !gv || wv - want != gv - got || memcmp(want, got, (size_t)(wv - want))) return 0;
  char *we, *ge;
  const char *w = wv + 4, *g = gv + 4;
  for (;;) {
    double a = strtod(w, &we), b = strtod(g, &ge);
    if (we == w || ge == g) return we == w && ge == g;
    if (fabs(a - b) > 1e-5) return 0;
    w = we;
    g = ge;
  }
}

int main(void) {
  const char *build = getenv("AE_BUILD_DIR");
  if (!build) TEST_SKIP("AE_BUILD_DIR is not set (run through ctest)");
  const char *tools[] = {AE_TEST_CMAKE, "pkg-config", AE_TEST_CC, "readelf", "nm"};
  for (size_t i = 0; i < sizeof tools / sizeof *tools; i++)
    if (!have_tool(tools[i])) TEST_SKIP("%s is not installed", tools[i]);

  char root[] = "/tmp/ae-install-XXXXXX";
  REQUIRE(mkdtemp(root));
  char prefix[256], lib[512], pcdir[600];
  snprintf(prefix, sizeof prefix, "%s/prefix", root);
  snprintf(lib, sizeof lib, "%s/%s", prefix, AE_TEST_LIBDIR);
  snprintf(pcdir, sizeof pcdir, "%s/pkgconfig", lib);
  REQUIRE(sh(NULL, "'%s' --install '%s' --prefix '%s'", AE_TEST_CMAKE, build, prefix) == 0);

  /* the tree */
  char path[1024], so_major[64], so_full[64];
  snprintf(so_major, sizeof so_major, "libastembed.so.%d", AE_VERSION_MAJOR);
  snprintf(so_full, sizeof so_full, "libastembed.so.%s", HEADER_VERSION);
  const char *files[] = {"bin/astembed", "include/astembed.h"};
  for (size_t i = 0; i < 2; i++) {
    snprintf(path, sizeof path, "%s/%s", prefix, files[i]);
    CHECKF(access(path, F_OK) == 0, "%s missing", path);
  }
  const char *libfiles[] = {"libastembed.a", "pkgconfig/astembed.pc", so_full};
  for (size_t i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/%s", lib, libfiles[i]);
    CHECKF(access(path, F_OK) == 0, "%s missing", path);
  }
  snprintf(path, sizeof path, "%s/libastembed.so", lib);
  CHECKF(is_link_to(path, so_major), "%s is not a link to %s", path, so_major);
  snprintf(path, sizeof path, "%s/%s", lib, so_major);
  CHECKF(is_link_to(path, so_full), "%s is not a link to %s", path, so_full);

  /* SONAME and exports */
  char *o = NULL;
  CHECK(sh(&o, "readelf -d '%s/%s'", lib, so_full) == 0);
  char want_soname[128];
  snprintf(want_soname, sizeof want_soname, "Library soname: [%s]", so_major);
  CHECKF(o && strstr(o, want_soname), "no '%s' in readelf -d:\n%s", want_soname, o ? o : "");
  free(o);
  CHECK(sh(&o, "nm -D --defined-only '%s/%s' | awk '{print $3}'", lib, so_full) == 0);
  size_t n_public = 0, n_private = 0;
  for (char *line = o ? strtok(o, "\n") : NULL; line; line = strtok(NULL, "\n")) {
    if (!strncmp(line, "ae__", 4)) {
      if (n_private++ < 5) fprintf(stderr, "exported private symbol: %s\n", line);
    } else if (!strncmp(line, "ae_", 3)) n_public++;
  }
  free(o);
  CHECKF(n_private == 0, "%zu ae__ symbols exported", n_private);
  CHECKF(n_public > 50, "only %zu ae_ symbols exported", n_public);
  printf("exported: %zu public ae_ symbols, %zu private ae__\n", n_public, n_private);

  /* one version */
  CHECK(!strcmp(ae_version(), HEADER_VERSION));
  CHECK(sh(&o, "'%s/bin/astembed' --version", prefix) == 0);
  char want_v[64];
  snprintf(want_v, sizeof want_v, "astembed %s", HEADER_VERSION);
  CHECKF(o && !strncmp(o, want_v, strlen(want_v)), "--version printed '%s'", o ? o : "");
  free(o);
  CHECK(sh(&o, "PKG_CONFIG_PATH='%s' pkg-config --modversion astembed", pcdir) == 0);
  CHECKF(o && !strncmp(o, HEADER_VERSION "\n", strlen(HEADER_VERSION) + 1), "modversion '%s'",
         o ? o : "");
  free(o);

  /* the program, shared and static */
  char *model = tm_model_dir(root, "tiny", (tm_shape){.H = 32, .heads = 2, .I = 64, .layers = 2,
                                                     .max_pos = 64, .act = "gelu", .seed = 11});
  REQUIRE(model);
  char *want = expected_output(model);
  REQUIRE(want);
  snprintf(path, sizeof path, "%s/prog.c", root);
  FILE *f = fopen(path, "w");
  REQUIRE(f && fputs(prog_source, f) >= 0 && fclose(f) == 0);
  CHECK(sh(NULL, "cd '%s' && %s %s prog.c -o prog-shared $(PKG_CONFIG_PATH='%s' pkg-config --cflags "
           "--libs astembed)", root, AE_TEST_CC, AE_TEST_CFLAGS, pcdir) == 0);
  /* -l:libastembed.a: the archive even though libastembed.so sits beside it */
  CHECK(sh(NULL, "cd '%s' && flags=$(PKG_CONFIG_PATH='%s' pkg-config --static --cflags --libs "
           "astembed) && %s %s prog.c -o prog-static $(echo \"$flags\" | sed "
           "'s/-lastembed\\b/-l:libastembed.a/')", root, pcdir, AE_TEST_CC, AE_TEST_CFLAGS) == 0);
  CHECK(sh(&o, "readelf -d '%s/prog-shared'", root) == 0);
  CHECKF(o && strstr(o, so_major), "prog-shared does not need %s", so_major);
  free(o);
  CHECK(sh(&o, "readelf -d '%s/prog-static'", root) == 0);
  CHECKF(o && !strstr(o, "libastembed"), "prog-static needs libastembed:\n%s", o ? o : "");
  free(o);

  CHECK(sh(&o, "LD_LIBRARY_PATH='%s' '%s/prog-shared' '%s'", lib, root, model) == 0);
  CHECKF(outputs_match(want, o), "shared program printed:\n%s\nwanted:\n%s", o ? o : "", want);
  free(o);
  CHECK(sh(&o, "'%s/prog-static' '%s'", root, model) == 0);
  CHECKF(outputs_match(want, o), "static program printed:\n%s\nwanted:\n%s", o ? o : "", want);
  free(o);
  /* the installed command works on the same folder */
  CHECK(sh(&o, "'%s/bin/astembed' model info --json --model '%s'", prefix, model) == 0);
  CHECKF(o && strstr(o, "\"hidden_size\":32") && strstr(o, "\"num_hidden_layers\":2"),
         "model info printed '%s'", o ? o : "");
  free(o);

  free(want);
  free(model);
  if (!t_fail) sh(NULL, "rm -rf '%s'", root);
  else fprintf(stderr, "kept %s\n", root);
  TEST_DONE();
}
