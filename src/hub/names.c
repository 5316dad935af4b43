/* What the hub client reads from outside: model specs from the user, revision
 * listings (JSON) and ETag headers from the server.
 *
 * Everything here ends up in a file name inside the cache, so each parser is a
 * whitelist. A repository id is ORG/NAME, each part 1..96 characters of [A-Za-z0-9._-]
 * that starts and ends with a letter, digit or '_' and holds no "--" or ".." (the
 * Hub's own rule, which also makes "models--ORG--NAME" unambiguous). A revision and a
 * listed file name are relative paths without empty, "." or ".." components, so
 * refs/<rev> and snapshots/<commit>/<name> cannot leave their folders. An ETag names a
 * blob, so it is reduced to [A-Za-z0-9._-]. A listing that names one unsafe file is
 * refused as a whole: a server that sends "../x" is not trusted with the rest.
 * tests/fuzz/fuzz_hub_listing.c runs these parsers on arbitrary bytes. */
#include "hub/hub.h"

#include <jansson.h>
#include <string.h>

static int word_char(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int valid_part(const char *s, size_t n) {
  if (n < 1 || n > 96 || !word_char((unsigned char)s[0]) || !word_char((unsigned char)s[n - 1]))
    return 0;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)s[i];
    if (!word_char(c) && c != '.' && c != '-') return 0;
    if (i && (c == '.' || c == '-') && s[i - 1] == c) return 0;   /* ".." and "--" */
  }
  return 1;
}

int ae__hub_safe_path(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 1024 || name[0] == '/') return 0;
  const char *p = name;
  while (*p) {
    const char *e = strchr(p, '/');
    size_t k = e ? (size_t)(e - p) : strlen(p);
    if (k == 0 || (k == 1 && p[0] == '.') || (k == 2 && p[0] == '.' && p[1] == '.')) return 0;
    for (size_t i = 0; i < k; i++)
      if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\') return 0;
    if (!e) break;
    p = e + 1;
    if (!*p) return 0;   /* trailing slash */
  }
  return 1;
}

int ae__hub_is_commit(const char *s) {
  for (int i = 0; i < 40; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return s[40] == 0;
}

int ae__hub_parse_spec(const char *spec, ae__hub_spec *out) {
  memset(out, 0, sizeof *out);
  if (!spec) return ae__error(AE_EINVAL, "model name: NULL");
  const char *at = strchr(spec, '@');
  size_t rn = at ? (size_t)(at - spec) : strlen(spec);
  const char *slash = memchr(spec, '/', rn);
  if (!slash || memchr(slash + 1, '/', rn - (size_t)(slash - spec) - 1) ||
      !valid_part(spec, (size_t)(slash - spec)) || !valid_part(slash + 1, rn - (size_t)(slash - spec) - 1))
    return ae__error(AE_EINVAL, "'%s' is not a model name ORG/NAME[@REV] (ORG and NAME: letters, "
                     "digits, '_', '.', '-')", spec);
  memcpy(out->repo, spec, rn);
  const char *rev = at ? at + 1 : "main";
  if (strlen(rev) >= sizeof out->rev || !ae__hub_safe_path(rev) || strchr(rev, '@') ||
      strpbrk(rev, " %?#:*\"<>|~^"))
    return ae__error(AE_EINVAL, "'%s': bad revision '%s' (a branch, tag or commit)", spec, rev);
  strcpy(out->rev, rev);
  return AE_OK;
}

void ae__hub_listing_free(ae__hub_listing *l) {
  for (size_t i = 0; i < l->n; i++) ae__free(l->files[i]);
  ae__free(l->files);
  l->files = NULL;
  l->n = 0;
}

int ae__hub_parse_listing(const char *json, size_t len, ae__hub_listing *out) {
  memset(out, 0, sizeof *out);
  json_error_t err;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
  if (!root) return ae__error(AE_EFORMAT, "hub listing: bad JSON at line %d: %s", err.line, err.text);
  int rc = AE_OK;
  json_t *sha = json_object_get(root, "sha"), *sib = json_object_get(root, "siblings");
  if (!json_is_string(sha) || !ae__hub_is_commit(json_string_value(sha))) {
    rc = ae__error(AE_EFORMAT, "hub listing: no commit id (\"sha\": 40 hex digits)");
    goto done;
  }
  strcpy(out->sha, json_string_value(sha));
  if (!json_is_array(sib) || json_array_size(sib) > 100000) {
    rc = ae__error(AE_EFORMAT, "hub listing: \"siblings\" is not an array of at most 100000 files");
    goto done;
  }
  size_t n = json_array_size(sib);
  if (!(out->files = ae__calloc(n ? n : 1, sizeof *out->files))) { rc = ae__error(AE_ENOMEM, "out of memory"); goto done; }
  for (size_t i = 0; i < n; i++) {
    json_t *name = json_object_get(json_array_get(sib, i), "rfilename");
    const char *s = json_string_value(name);
    if (!s || strlen(s) != json_string_length(name)) {
      rc = ae__error(AE_EFORMAT, "hub listing: file %zu has no \"rfilename\" string", i);
      goto done;
    }
    if (!ae__hub_safe_path(s)) {
      rc = ae__error(AE_EFORMAT, "hub listing names a file outside the snapshot folder: '%.200s'", s);
      goto done;
    }
    if (!(out->files[out->n] = ae__strdup(s))) { rc = ae__error(AE_ENOMEM, "out of memory"); goto done; }
    out->n++;
  }
done:
  json_decref(root);
  if (rc) ae__hub_listing_free(out);
  return rc;
}

int ae__hub_parse_etag(const char *value, size_t len, char *out, size_t cap) {
  while (len && (*value == ' ' || *value == '\t')) { value++; len--; }
  while (len && (value[len - 1] == ' ' || value[len - 1] == '\t' || value[len - 1] == '\r' ||
                 value[len - 1] == '\n')) len--;
  if (len >= 2 && value[0] == 'W' && value[1] == '/') { value += 2; len -= 2; }
  if (len >= 2 && value[0] == '"' && value[len - 1] == '"') { value++; len -= 2; }
  if (len == 0 || len > 128 || len >= cap) return AE_EFORMAT;
  for (size_t i = 0; i < len; i++) {
    int c = (unsigned char)value[i];
    if (!word_char(c) && c != '.' && c != '-') return AE_EFORMAT;
  }
  if (value[0] == '.') return AE_EFORMAT;
  memcpy(out, value, len);
  out[len] = 0;
  return AE_OK;
}
