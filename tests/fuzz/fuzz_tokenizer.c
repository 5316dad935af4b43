/* libFuzzer target: the tokenizer on arbitrary bytes with a random max_len.
 * The tokenizer is loaded once from $AE_FUZZ_MODEL, else ../shared's MiniLM folder beside
 * the checkout, else the tiny test tokenizer. Besides crashes and sanitizer reports it
 * checks the encoder's contract: ids in range, [CLS] ... [SEP] kept, at most max_len ids,
 * and a truncated result is a prefix of the untruncated one. */
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ae_tokenizer *g_tok;

static ae_tokenizer *load_once(void) {
  if (g_tok) return g_tok;
  char root[4096], path[4300];
  snprintf(root, sizeof root, "%s", __FILE__);
  char *slash = strstr(root, "/tests/fuzz/");
  if (slash) *slash = 0;
  const char *env = getenv("AE_FUZZ_MODEL");
  const char *cands[3];
  char shared[4300], tiny[4300];
  snprintf(shared, sizeof shared, "%s/../shared/models/all-MiniLM-L6-v2", root);
  snprintf(tiny, sizeof tiny, "%s/tests/tokenizer/data/tiny", root);
  cands[0] = env;
  cands[1] = shared;
  cands[2] = tiny;
  for (int i = 0; i < 3; i++) {
    if (!cands[i]) continue;
    snprintf(path, sizeof path, "%s", cands[i]);
    if (ae_tokenizer_load(path, &g_tok) == AE_OK) {
      fprintf(stderr, "fuzz_tokenizer: tokenizer from %s\n", path);
      return g_tok;
    }
  }
  fprintf(stderr, "fuzz_tokenizer: no tokenizer found (set AE_FUZZ_MODEL): %s\n", ae_last_error());
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const ae_tokenizer *tok = load_once();
  if (size < 2) return 0;
  size_t max_len = ((size_t)data[0] | ((size_t)data[1] << 8)) % 400; /* 0 = no truncation */
  const char *text = (const char *)data + 2;
  size_t len = size - 2;
  int32_t *full, *ids;
  size_t n_full, n;
  int trunc;
  if (ae_tokenizer_encode(tok, text, len, 0, &full, &n_full, NULL)) abort();
  int rc = ae_tokenizer_encode(tok, text, len, max_len, &ids, &n, &trunc);
  size_t specials = tok->n_pre + tok->n_post;
  if (max_len && max_len < specials) {
    if (rc != AE_ERANGE) abort();
    ae_free(full);
    return 0;
  }
  if (rc) abort();
  size_t vocab = ae_tokenizer_vocab_size(tok);
  for (size_t i = 0; i < n; i++)
    if (ids[i] < 0 || (size_t)ids[i] >= vocab) abort();
  if (max_len && n > max_len) abort();
  if (trunc != (max_len && n_full > max_len)) abort();
  if (n < specials || memcmp(ids, tok->pre_ids, tok->n_pre * sizeof *ids) ||
      memcmp(ids + n - tok->n_post, tok->post_ids, tok->n_post * sizeof *ids))
    abort();
  if (memcmp(ids, full, (n - tok->n_post) * sizeof *ids)) abort(); /* a prefix */
  ae_free(ids);
  ae_free(full);
  return 0;
}
