/* Search hits as JSON: the one writer behind `astembed query --format json` and the
 * server's /search, so both give the same document for the same hits. */
#define _GNU_SOURCE
#include "common/common.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The first n non-blank lines of a snippet, each trimmed on the right. */
static json_t *snippet_lines(const char *s, int n) {
  json_t *arr = json_array();
  int shown = 0;
  while (arr && s && *s && shown < n) {
    const char *e = strchr(s, '\n');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r')) len--;
    if (len) { json_array_append_new(arr, json_stringn(s, len)); shown++; }
    if (!e) break;
    s = e + 1;
  }
  return arr;
}

static json_t *rank_or_null(int r) { return r ? json_integer(r) : json_null(); }

char *ae_search_hits_json(const char *query, int mode, const char *model, const ae_search_hit *h, size_t n,
                          int lines) {
  json_t *root = json_object(), *arr = json_array();
  json_object_set_new(root, "query", json_string(query ? query : ""));
  json_object_set_new(root, "mode", json_string(ae_search_mode_name(mode)));
  json_object_set_new(root, "model", model ? json_string(model) : json_null());
  for (size_t i = 0; i < n; i++) {
    json_t *r = json_object();
    json_object_set_new(r, "rank", json_integer((json_int_t)i + 1));
    json_object_set_new(r, "score", json_real(h[i].score));
    json_object_set_new(r, "lexicalRank", rank_or_null(h[i].lexical_rank));
    json_object_set_new(r, "vectorRank", rank_or_null(h[i].vector_rank));
    json_object_set_new(r, "nodeId", json_string(h[i].node_id));
    json_object_set_new(r, "file", json_string(h[i].file_path));
    json_object_set_new(r, "startLine", json_integer(h[i].start_line));
    json_object_set_new(r, "endLine", json_integer(h[i].end_line));
    json_object_set_new(r, "nodeType", json_string(h[i].node_type));
    json_object_set_new(r, "language", json_string(h[i].language ? h[i].language : ""));
    json_object_set_new(r, "signature", json_string(h[i].signature));
    json_object_set_new(r, "summary", json_string(h[i].summary));
    json_object_set_new(r, "snippet", snippet_lines(h[i].snippet, lines));
    json_array_append_new(arr, r);
  }
  json_object_set_new(root, "results", arr);
  char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
  json_decref(root);
  char *out = s ? ae__strdup(s) : NULL;
  free(s);
  return out;
}
