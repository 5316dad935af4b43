/* Minimal test harness: CHECK records failures and goes on; each test program
 * ends with TEST_DONE(), which prints "N passed, M failed" and sets the exit code.
 * A test that cannot run (no ../shared, no torch, not root, no cgroup, ...) ends with
 * TEST_SKIP("reason"): it prints "SKIP: reason" and exits with TEST_SKIPPED, which ctest
 * reports as skipped (SKIP_RETURN_CODE in CMakeLists.txt); failures seen before still
 * fail it. A test that can run only part of its checks prints "SKIP: reason" for that
 * part and goes on. `make test` ends with both lists (tools/skipped.sh). */
#ifndef AE_TEST_H
#define AE_TEST_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static int t_pass, t_fail;

#define CHECK(cond) do { if (cond) t_pass++; else { t_fail++; \
  fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECKF(cond, ...) do { if (cond) t_pass++; else { t_fail++; \
  fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
  fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define CHECK_OK(expr) do { int rc_ = (expr); if (rc_ == 0) t_pass++; else { t_fail++; \
  fprintf(stderr, "%s:%d: %s returned %d (%s): %s\n", __FILE__, __LINE__, #expr, rc_, \
          ae_strerror(rc_), ae_last_error()); } } while (0)
#define REQUIRE(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", \
  __FILE__, __LINE__, #cond); t_fail++; TEST_DONE(); } } while (0)
#define TEST_DONE() do { printf("%d passed, %d failed\n", t_pass, t_fail); \
  exit(t_fail ? 1 : 0); } while (0)
#define TEST_SKIPPED 77
#define TEST_SKIP(...) do { printf("SKIP: "); printf(__VA_ARGS__); putchar('\n'); \
  if (t_fail) { TEST_DONE(); } \
  printf("%d passed, skipped\n", t_pass); exit(TEST_SKIPPED); } while (0)

/* Path of ../shared beside the checkout, or NULL when missing. */
static inline const char *test_shared_dir(void) {
  static char buf[4096];
  const char *src = getenv("AE_SOURCE_DIR");
  snprintf(buf, sizeof buf, "%s/../shared", src ? src : ".");
  FILE *f;
  char probe[4200];
  snprintf(probe, sizeof probe, "%s/README.md", buf);
  if ((f = fopen(probe, "r"))) { fclose(f); return buf; }
  return NULL;
}
#endif
