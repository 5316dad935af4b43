/* Tests for src/common: status names, error detail, allocator hook, files. */
#include "common/common.h"
#include "test.h"

static int fail_next;
static void *fail_malloc(size_t n, void *ud) { (void)ud; return fail_next ? NULL : malloc(n); }
static void *fail_realloc(void *p, size_t n, void *ud) { (void)ud; return fail_next ? NULL : realloc(p, n); }
static void fail_free(void *p, void *ud) { (void)ud; free(p); }

int main(void) {
  CHECK(strcmp(ae_strerror(AE_OK), "ok") == 0);
  for (int s = AE_EINTR; s < 0; s++) CHECK(strcmp(ae_strerror(s), "unknown error") != 0);
  CHECK(strcmp(ae_strerror(-999), "unknown error") == 0);

  CHECK(ae__error(AE_EFORMAT, "file %s: tensor %d", "x.bin", 3) == AE_EFORMAT);
  CHECK(strcmp(ae_last_error(), "file x.bin: tensor 3") == 0);
  ae__clear_error();
  CHECK(ae_last_error()[0] == 0);

  ae_allocator a = {fail_malloc, fail_realloc, fail_free, NULL};
  ae_set_allocator(&a);
  fail_next = 1;
  CHECK(ae__malloc(16) == NULL);
  CHECK(ae__strdup("abc") == NULL);
  fail_next = 0;
  char *s = ae__strdup("abc");
  CHECK(s && strcmp(s, "abc") == 0);
  ae__free(s);
  ae_set_allocator(NULL);

  char *p = ae__path_join("/a/b", "c.json");
  CHECK(strcmp(p, "/a/b/c.json") == 0);
  ae__free(p);
  p = ae__path_join("/a/b/", "c.json");
  CHECK(strcmp(p, "/a/b/c.json") == 0);
  ae__free(p);

  char *data; size_t len;
  CHECK(ae__read_file("/nonexistent/file", &data, &len) == AE_ENOTFOUND);
  CHECK(strstr(ae_last_error(), "/nonexistent/file") != NULL);
  CHECK_OK(ae__read_file("CMakeLists.txt", &data, &len));
  CHECK(len > 100 && data[len] == 0);
  ae__free(data);
  CHECK(ae__cpu_count() >= 1);
  uint64_t t0 = ae__now_ns(), t1 = ae__now_ns();
  CHECK(t1 >= t0);
  TEST_DONE();
}
