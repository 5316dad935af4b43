/* Shared by the generator tests: a small random-weight model with MiniLM's tokenizer
 * and config keys (examples/model-config/all-MiniLM-L6-v2), shrunk to the given shape
 * so a test embeds thousands of items in seconds. */
#ifndef AE_TEST_GEN_TEST_UTIL_H
#define AE_TEST_GEN_TEST_UTIL_H
#include "model/model.h"
#include "test.h"

typedef struct { uint64_t seed; int layers, hidden, heads, intermediate, max_len; } tiny_shape;

static void make_tiny_minilm(const char *out, tiny_shape s) {
  ae_model_random_options o;
  ae_model_random_options_default(&o);
  o.seed = s.seed;
  o.layers = s.layers;
  o.hidden = s.hidden;
  o.heads = s.heads;
  o.intermediate = s.intermediate;
  o.max_seq_length = s.max_len;
  CHECK_OK(ae_model_init_random_opts("examples/model-config/all-MiniLM-L6-v2", out, &o));
}
#endif
