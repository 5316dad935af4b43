/* Request bodies of the embedding server: JSON (jansson) into plain structs.
 *
 * Status rules, the same on every route: a body that is not JSON at all (truncated,
 * invalid, invalid UTF-8, numbers jansson cannot hold, nesting deeper than its
 * parser's limit) is 400; well-formed JSON with a member of the wrong type or an
 * out-of-range value is 422; more inputs than allowed, or one input longer than
 * allowed, is 413. Every message names the member. The parser never trusts sizes:
 * it counts what it has before it allocates, and its allocations are bounded by the
 * body, which the server has already bounded.
 */
#define _GNU_SOURCE
#include "serve/serve.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(ae__serve_error *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(ae__serve_error *e, int status, const char *param, const char *fmt, ...) {
  e->status = status;
  snprintf(e->param, sizeof e->param, "%s", param ? param : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
  return status;
}

static json_t *load_object(const char *body, size_t len, ae__serve_error *e) {
  json_error_t je;
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
  if (!root) {
    fail(e, 400, NULL, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
    return NULL;
  }
  if (!json_is_object(root)) {
    json_decref(root);
    fail(e, 422, NULL, "the request body must be a JSON object");
    return NULL;
  }
  return root;
}

/* Optional string member: 0 when absent or a string, else 422. */
static int opt_string(json_t *root, const char *key, const char **out, ae__serve_error *e) {
  json_t *v = json_object_get(root, key);
  *out = NULL;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v)) return fail(e, 422, key, "'%s' must be a string", key);
  *out = json_string_value(v);
  return 0;
}

static int opt_bool(json_t *root, const char *key, int *out, ae__serve_error *e) {
  json_t *v = json_object_get(root, key);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_boolean(v)) return fail(e, 422, key, "'%s' must be true or false", key);
  *out = json_is_true(v);
  return 0;
}

/* The inputs: one string or a non-empty array of strings. */
static int take_inputs(json_t *v, const char *key, const ae__serve_limits *lim, ae__embed_request *r,
                       ae__serve_error *e) {
  if (!v) return fail(e, 422, key, "'%s' is required", key);
  size_t n;
  if (json_is_string(v)) n = 1, r->input_is_array = 0;
  else if (json_is_array(v)) n = json_array_size(v), r->input_is_array = 1;
  else return fail(e, 422, key, "'%s' must be a string or an array of strings", key);
  if (!n) return fail(e, 422, key, "'%s' must not be an empty array", key);
  if (n > lim->max_inputs)
    return fail(e, 413, key, "'%s' has %zu inputs; at most %zu per request", key, n, lim->max_inputs);
  r->texts = ae__calloc(n, sizeof *r->texts);
  r->lens = ae__calloc(n, sizeof *r->lens);
  if (!r->texts || !r->lens) return fail(e, 500, key, "out of memory");
  for (size_t i = 0; i < n; i++) {
    json_t *s = r->input_is_array ? json_array_get(v, i) : v;
    if (!json_is_string(s)) {
      if (json_is_array(s) || json_is_integer(s))
        return fail(e, 422, key, "'%s[%zu]': token-id inputs are not supported; send text", key, i);
      return fail(e, 422, key, "'%s[%zu]' must be a string", key, i);
    }
    size_t len = json_string_length(s);
    if (len > lim->max_input_bytes)
      return fail(e, 413, key, "'%s[%zu]' is %zu bytes; at most %zu per input", key, i, len,
                  lim->max_input_bytes);
    r->texts[i] = json_string_value(s);
    r->lens[i] = len;
  }
  r->n = n;
  return 0;
}

void ae__embed_request_free(ae__embed_request *r) {
  json_decref(r->root);
  ae__free(r->texts);
  ae__free(r->lens);
  memset(r, 0, sizeof *r);
}

int ae__parse_openai(const char *body, size_t len, const ae__serve_limits *lim, ae__embed_request *r,
                     ae__serve_error *e) {
  memset(r, 0, sizeof *r);
  r->normalize = 0;          /* the model's vectors as they are, like `astembed encode` */
  r->truncate = 1;
  r->dimensions = -1;
  if (!(r->root = load_object(body, len, e))) return e->status;
  const char *fmt = NULL, *user = NULL;
  int rc = take_inputs(json_object_get(r->root, "input"), "input", lim, r, e);
  if (!rc) rc = opt_string(r->root, "model", &r->model, e);
  if (!rc) rc = opt_string(r->root, "encoding_format", &fmt, e);
  if (!rc) rc = opt_string(r->root, "user", &user, e);
  if (!rc && fmt) {
    if (!strcmp(fmt, "float")) r->format = AE__FMT_FLOAT;
    else if (!strcmp(fmt, "base64")) r->format = AE__FMT_BASE64;
    else rc = fail(e, 422, "encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
  }
  json_t *dims = json_object_get(r->root, "dimensions");
  if (!rc && dims && !json_is_null(dims)) {
    if (!json_is_integer(dims) || json_integer_value(dims) < 1 || json_integer_value(dims) > 1 << 20)
      rc = fail(e, 422, "dimensions", "'dimensions' must be a positive integer");
    else r->dimensions = (int)json_integer_value(dims);
  }
  if (rc) ae__embed_request_free(r);
  return rc;
}

int ae__parse_tei(const char *body, size_t len, const ae__serve_limits *lim, ae__embed_request *r,
                  ae__serve_error *e) {
  memset(r, 0, sizeof *r);
  r->normalize = 1;
  r->truncate = 0;
  r->dimensions = -1;
  if (!(r->root = load_object(body, len, e))) return e->status;
  const char *dir = NULL;
  int rc = take_inputs(json_object_get(r->root, "inputs"), "inputs", lim, r, e);
  if (!rc) rc = opt_bool(r->root, "normalize", &r->normalize, e);
  if (!rc) rc = opt_bool(r->root, "truncate", &r->truncate, e);
  if (!rc) rc = opt_string(r->root, "truncation_direction", &dir, e);
  if (!rc && dir && strcmp(dir, "Right") && strcmp(dir, "right"))
    rc = fail(e, 422, "truncation_direction", "'truncation_direction' must be \"Right\" (the only one supported)");
  if (rc) ae__embed_request_free(r);
  return rc;
}

void ae__search_request_free(ae__search_request *r) {
  json_decref(r->root);
  memset(r, 0, sizeof *r);
}

int ae__parse_search(const char *body, size_t len, const ae__serve_limits *lim, ae__search_request *r,
                     ae__serve_error *e) {
  memset(r, 0, sizeof *r);
  r->top_k = 10;
  r->mode = -1;
  if (!(r->root = load_object(body, len, e))) return e->status;
  int rc = 0;
  json_t *q = json_object_get(r->root, "query");
  if (!q) rc = fail(e, 422, "query", "'query' is required");
  else if (!json_is_string(q)) rc = fail(e, 422, "query", "'query' must be a string");
  else if (!json_string_length(q)) rc = fail(e, 422, "query", "'query' must not be empty");
  else if (json_string_length(q) > lim->max_input_bytes)
    rc = fail(e, 413, "query", "'query' is %zu bytes; at most %zu", json_string_length(q), lim->max_input_bytes);
  else { r->query = json_string_value(q); r->query_len = json_string_length(q); }
  json_t *k = json_object_get(r->root, "top_k");
  if (!rc && k && !json_is_null(k)) {
    if (!json_is_integer(k) || json_integer_value(k) < 1 || json_integer_value(k) > 1000)
      rc = fail(e, 422, "top_k", "'top_k' must be an integer in [1, 1000]");
    else r->top_k = (size_t)json_integer_value(k);
  }
  json_t *md = json_object_get(r->root, "mode");
  if (!rc && md && !json_is_null(md)) {
    if (!json_is_string(md) || ae_search_mode_parse(json_string_value(md)) < 0)
      rc = fail(e, 422, "mode", "'mode' must be \"hybrid\", \"vector\" or \"lexical\"");
    else r->mode = ae_search_mode_parse(json_string_value(md));
  }
  json_t *f = json_object_get(r->root, "filters");
  if (!rc && f && !json_is_null(f)) {
    if (!json_is_object(f)) rc = fail(e, 422, "filters", "'filters' must be an object");
    const char *key;
    json_t *v;
    json_object_foreach(f, key, v) {
      if (rc) break;
      const char **slot = !strcmp(key, "language") ? &r->language
                          : !strcmp(key, "node_type") ? &r->node_type
                          : !strcmp(key, "path") ? &r->path : NULL;
      if (!slot) rc = fail(e, 422, "filters", "unknown filter '%.64s' (language, node_type, path)", key);
      else if (!json_is_string(v)) rc = fail(e, 422, "filters", "filter '%s' must be a string", key);
      else *slot = json_string_value(v);
    }
  }
  if (rc) ae__search_request_free(r);
  return rc;
}
