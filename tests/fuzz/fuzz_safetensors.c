/* libFuzzer target for the safetensors header parser: any bytes must give either a
 * clean status with a message, or tensors that all lie inside the input, in order,
 * without overlap. Seeds: a tiny valid file is built at startup. */
#include "model/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Copy into an exact-size buffer so ASan flags any read past the end. */
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  if (size) memcpy(buf, data, size);
  ae__st_file f;
  int rc = ae__safetensors_parse(buf, size, "fuzz.safetensors", &f);
  if (rc == AE_OK) {
    const uint8_t *lo = buf + 8 + f.header_len, *hi = buf + size;
    for (size_t i = 0; i < f.n; i++) {
      const ae__st_tensor *t = &f.t[i];
      if (t->data < lo || t->data + (t->end - t->begin) > hi) abort();
      if ((size_t)ae__st_numel(t) * ae__st_dtype_size(t->dtype) != t->end - t->begin) abort();
      if (i && strcmp(f.t[i - 1].name, t->name) >= 0) abort();
      if (ae__st_find(&f, t->name) != t) abort();
      volatile uint8_t sum = 0; /* touch the bytes */
      for (size_t j = 0; j < t->end - t->begin; j++) sum ^= t->data[j];
      (void)sum;
    }
    ae__st_file_free(&f);
  } else if (!ae_last_error()[0] || rc >= 0) {
    abort();
  }
  free(buf);
  return 0;
}
