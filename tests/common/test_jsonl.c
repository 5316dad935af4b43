/* Tests for the JSONL reader: values, blank lines, bad lines reported and skipped,
 * long lines. */
#include "common/jsonl.h"
#include "common/common.h"
#include "test.h"

int main(void) {
  char *big = malloc(3 << 20);
  strcpy(big, "{\"text\": \"");
  size_t k = strlen(big);
  memset(big + k, 'a', (2 << 20));
  strcpy(big + k + (2 << 20), "\"}\n");
  const char *head = "{\"id\": 1, \"text\": \"x\"}\n\n   \n{bad json}\n[1,2] 3\n\"str\"\n";
  size_t total = strlen(head) + strlen(big);
  char *buf = malloc(total + 1);
  strcpy(buf, head);
  strcat(buf, big);
  FILE *f = fmemopen(buf, total, "r");
  ae_jsonl *r;
  CHECK_OK(ae_jsonl_open(f, "mem.jsonl", &r));
  json_t *v; size_t ln;
  CHECK_OK(ae_jsonl_next(r, &v, &ln));
  CHECK(ln == 1 && json_is_object(v) && json_integer_value(json_object_get(v, "id")) == 1);
  json_decref(v);
  CHECK(ae_jsonl_next(r, &v, &ln) == AE_EFORMAT && v == NULL && ln == 4);
  CHECK(strstr(ae_last_error(), "mem.jsonl:4:") != NULL);
  CHECK(ae_jsonl_next(r, &v, &ln) == AE_EFORMAT && ln == 5);
  CHECK(strstr(ae_last_error(), "extra data") != NULL);
  CHECK_OK(ae_jsonl_next(r, &v, &ln));
  CHECK(ln == 6 && json_is_string(v));
  json_decref(v);
  CHECK_OK(ae_jsonl_next(r, &v, &ln));
  CHECK(ln == 7 && strlen(json_string_value(json_object_get(v, "text"))) == (2u << 20));
  json_decref(v);
  CHECK(ae_jsonl_next(r, &v, &ln) == 1);
  ae_jsonl_close(r);
  fclose(f);
  free(buf);
  free(big);
  TEST_DONE();
}
