/* The Hugging Face Hub client (src/hub): private declarations shared by its files.
 * names.c parses what comes from outside (specs, listings, headers), cache.c owns the
 * cache layout, pull.c talks HTTP. */
#ifndef AE_HUB_H
#define AE_HUB_H
#include "common/common.h"

#define AE__HUB_REPO_MAX 200
#define AE__HUB_REV_MAX 256

typedef struct {
  char repo[AE__HUB_REPO_MAX];   /* ORG/NAME */
  char rev[AE__HUB_REV_MAX];     /* "main" when the spec has none */
} ae__hub_spec;

/* ORG/NAME[@REV]: AE_OK, or AE_EINVAL naming what is wrong. */
int ae__hub_parse_spec(const char *spec, ae__hub_spec *out);
/* 1 when name is a repository file path that stays inside a snapshot folder: relative,
 * no empty, "." or ".." component, no backslash or control character, at most 1024
 * bytes. */
int ae__hub_safe_path(const char *name);
/* 1 when s is exactly 40 lowercase hex digits (a commit id). */
int ae__hub_is_commit(const char *s);

/* A revision listing (GET /api/models/{repo}/revision/{rev}): its commit ("sha") and
 * the file names of "siblings". Every name must be safe (ae__hub_safe_path), else
 * AE_EFORMAT naming it; at most 100,000 files. *files and each name: ae__free. */
typedef struct {
  char sha[41];
  char **files;
  size_t n;
} ae__hub_listing;
int ae__hub_parse_listing(const char *json, size_t len, ae__hub_listing *out);
void ae__hub_listing_free(ae__hub_listing *l);

/* An ETag or X-Linked-Etag header value without W/ and quotes, into out: AE_OK when
 * it is 1..128 characters of [A-Za-z0-9._-] (so it is a safe blob file name), else
 * AE_EFORMAT. */
int ae__hub_parse_etag(const char *value, size_t len, char *out, size_t cap);

/* The environment of one call: options, else the HF_* variables. */
typedef struct {
  char *root;       /* cache root */
  char *endpoint;   /* without a trailing slash */
  char *token;      /* NULL: none. Never printed. */
  int offline;
} ae__hub_env;
int ae__hub_env_get(const ae_hub_options *o, ae__hub_env *e);
void ae__hub_env_free(ae__hub_env *e);

/* root/models--ORG--NAME (ae__free). */
char *ae__hub_repo_folder(const char *root, const char *repo);
/* The snapshot of spec in the cache when complete (config.json and model.safetensors
 * resolve to regular files): its folder (ae__free) and commit; else AE_ENOTFOUND. */
int ae__hub_cached_snapshot(const ae__hub_env *e, const ae__hub_spec *s, char **dir,
                            char commit[41]);
/* The AE_ENOTFOUND error of a model that is not cached, with the command to run. */
int ae__hub_not_cached(const ae__hub_spec *s, const char *why);
/* mkdir -p of a folder inside the cache; AE_EIO naming it. */
int ae__hub_mkdirs(const char *path);

/* Downloads spec into the cache (pull.c). */
int ae__hub_download(const ae__hub_env *e, const ae__hub_spec *s, const ae_hub_options *o,
                     char **dir);
#endif
