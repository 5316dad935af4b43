/* libFuzzer target: the server's request-body parsers (/v1/embeddings, /embed,
 * /search) on arbitrary bytes. Each either accepts the body, with every input inside
 * the limits and pointing into the parsed document, or refuses it with 400, 413 or
 * 422 and a message. */
#include "serve/serve.h"

#include <stdlib.h>
#include <string.h>

static void check_error(int rc, const ae__serve_error *e) {
  if (rc != e->status || (rc != 400 && rc != 413 && rc != 422) || !e->message[0]) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ae__serve_limits lim = {4, 64};
  ae__serve_error e;
  ae__embed_request r;
  for (int route = 0; route < 2; route++) {
    int rc = route ? ae__parse_tei((const char *)data, size, &lim, &r, &e)
                   : ae__parse_openai((const char *)data, size, &lim, &r, &e);
    if (rc) { check_error(rc, &e); continue; }
    if (!r.n || r.n > lim.max_inputs) abort();
    for (size_t i = 0; i < r.n; i++)
      if (!r.texts[i] || r.lens[i] > lim.max_input_bytes || strlen(r.texts[i]) != r.lens[i]) abort();
    ae__embed_request_free(&r);
  }
  ae__search_request q;
  int rc = ae__parse_search((const char *)data, size, &lim, &q, &e);
  if (rc) check_error(rc, &e);
  else {
    if (!q.query || !q.query_len || q.top_k < 1 || q.top_k > 1000) abort();
    ae__search_request_free(&q);
  }
  return 0;
}
