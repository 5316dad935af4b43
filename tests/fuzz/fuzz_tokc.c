/* libFuzzer target: the compiled-tokenizer reader (src/tokenizer/compiled.c) on
 * arbitrary bytes. The checksum only catches accidents, so the harness re-seals it
 * (and takes the key from the input) before decoding: every mutation then reaches
 * the structural checks, which alone must keep a hostile file from crashing,
 * hanging (a full probe table) or reading out of bounds. An accepted file must give
 * a tokenizer that encodes without trouble. Seeds: tests/fuzz/corpus_tokc/ (the tiny
 * test tokenizer, compiled). */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static const char *texts[] = {"Hello, world! [MASK] x", "ab c\xc3\xa9 tag [UNK] ##s",
                              "def parse_json(s): return json.loads(s)", ""};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 56) return 0;
  uint8_t *buf = malloc(size);
  if (!buf) return 0;
  memcpy(buf, data, size);
  uint64_t body = size - 56, sum = XXH3_64bits(buf + 56, body);
  memcpy(buf + 32, &body, 8);
  memcpy(buf + 40, &sum, 8);
  uint8_t key[16];
  memcpy(key, buf + 16, 16);
  ae_tokenizer *t = calloc(1, sizeof *t);
  if (t && ae__tok_compiled_decode(buf, size, key, t) == AE_OK) {
    ae__tokenizer_build_tables(t);
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
      int32_t *ids = NULL;
      size_t n = 0;
      if (ae_tokenizer_encode(t, texts[i], strlen(texts[i]), 0, &ids, &n, NULL) == AE_OK)
        for (size_t k = 0; k < n; k++) (void)ae_tokenizer_id_to_token(t, ids[k]);
      ae_free(ids);
    }
  }
  ae_tokenizer_free(t);
  free(buf);
  return 0;
}
