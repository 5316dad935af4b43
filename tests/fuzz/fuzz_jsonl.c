/* libFuzzer target: the JSONL line parser on arbitrary bytes. A line either parses
 * (and is freed) or gives AE_EFORMAT with a message naming the input and line. */
#include "common/common.h"
#include "common/jsonl.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_t *v = NULL;
  int rc = ae__jsonl_parse((const char *)data, size, "fuzz", 7, &v);
  if (rc == AE_OK) {
    if (!v) abort();
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    free(s);
    json_decref(v);
  } else {
    if (rc != AE_EFORMAT || v || !strstr(ae_last_error(), "fuzz:7:")) abort();
  }
  return 0;
}
