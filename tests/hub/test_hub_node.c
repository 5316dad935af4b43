/* Interoperability of astembed's Hugging Face cache with a client nobody here wrote:
 * @huggingface/hub from npm (pinned in tests/hub/node/package-lock.json, installed
 * with `npm ci` into a temporary folder).
 *   1. Its snapshotDownload pulls the model from the loopback hub (hubserver.py);
 *      astembed then loads it by name, offline, and its vectors equal those of the
 *      plain model folder.
 *   2. astembed pulls the model; the package's scanCacheDir lists the repository (id,
 *      type), the revision (commit, refs) and the files with their sizes, exactly as it
 *      lists its own download.
 * Skips (77) without node, npm or the npm registry, or without /usr/bin/python3. */
// ctest-timeout: 600
#define _GNU_SOURCE
#include "test.h"
#include "hub_test_util.h"

#include <astembed.h>
#include <jansson.h>
#include <string.h>

/* scanCacheDir's view of cache, as printed by interop.mjs scan (json_decref). */
static json_t *scan(const char *cache, const char *tag) {
  char args[1400], p[800];
  snprintf(args, sizeof args, "%s/node/interop.mjs scan %s/%s", g_tmp, g_tmp, cache);
  if (run_prog(tag, "", "node", args) != 0) { show(tag); return NULL; }
  snprintf(p, sizeof p, "%s/%s.out", g_tmp, tag);
  json_error_t e;
  return json_load_file(p, 0, &e);
}

/* The repository's one revision in a scan, after checking the repo's identity. */
static json_t *only_revision(json_t *s, const char *which) {
  json_t *repos = json_object_get(s, "repos");
  CHECKF(json_array_size(repos) == 1, "%s: %zu repos", which, json_array_size(repos));
  CHECKF(json_array_size(json_object_get(s, "warnings")) == 0, "%s: warnings", which);
  json_t *r = json_array_get(repos, 0), *id = json_object_get(r, "id");
  CHECK(id && !strcmp(json_string_value(json_object_get(id, "name")) ?: "", REPO));
  CHECK(id && !strcmp(json_string_value(json_object_get(id, "type")) ?: "", "model"));
  json_t *revs = json_object_get(r, "revisions");
  CHECKF(json_array_size(revs) == 1, "%s: %zu revisions", which, json_array_size(revs));
  return json_array_get(revs, 0);
}

/* "name:size" of each file of a revision (paths made relative to the snapshot). */
static void file_list(json_t *rev, char *out, size_t cap) {
  size_t i, k = 0;
  json_t *f;
  out[0] = 0;
  json_array_foreach(json_object_get(rev, "files"), i, f) {
    const char *p = json_string_value(json_object_get(f, "path")) ?: "";
    const char *rel = strstr(p, "/snapshots/");
    rel = rel ? strchr(rel + 11, '/') : NULL;
    k += (size_t)snprintf(out + k, k < cap ? cap - k : 0, "%s:%lld;", rel ? rel + 1 : p,
                          (long long)json_integer_value(json_object_get(f, "size")));
  }
}

static long long file_size(const char *name) {
  char p[800];
  snprintf(p, sizeof p, "%s/%s", g_model, name);
  size_t n = 0;
  char *d = slurp(p, &n);
  free(d);
  return d ? (long long)n : -1;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (access("/usr/bin/python3", X_OK)) { printf("SKIP: /usr/bin/python3 missing (the loopback hub)\n"); return 77; }
  if (system("node --version >/dev/null 2>&1 && npm --version >/dev/null 2>&1")) {
    printf("SKIP: node or npm missing (the @huggingface/hub peer)\n");
    return 77;
  }
  REQUIRE(hub_test_setup() == 0);
  const char *sd = getenv("AE_SOURCE_DIR");
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "mkdir -p %s/node && cp %s/tests/hub/node/package.json %s/tests/hub/node/package-lock.json "
           "%s/tests/hub/node/interop.mjs %s/node/ && cd %s/node && timeout 300 npm ci --no-audit --no-fund "
           "--prefer-offline >npm.log 2>&1", g_tmp, sd ? sd : ".", sd ? sd : ".", sd ? sd : ".", g_tmp, g_tmp);
  if (system(cmd)) {
    printf("SKIP: `npm ci` of @huggingface/hub failed (no npm registry?): see %s/node/npm.log\n", g_tmp);
    return 77;
  }
  hub h;
  REQUIRE(hub_start(&h, "none") == 0);

  /* 1. snapshotDownload, then astembed offline by name: the plain folder's vectors */
  char args[2000], env[1024];
  snprintf(args, sizeof args, "%s/node/interop.mjs download http://127.0.0.1:%d %s/c-js " REPO, g_tmp, h.port, g_tmp);
  int rc = run_prog("js-download", "", "node", args);
  CHECKF(rc == 0, "snapshotDownload exit %d", rc);
  if (rc) show("js-download");
  snprintf(env, sizeof env, "HF_HUB_CACHE=%s/c-js HF_HUB_OFFLINE=1", g_tmp);
  CHECK(same_vectors("enc-js", env, REPO));

  /* 2. astembed pull, then scanCacheDir: repo, revision and files as for its own */
  snprintf(env, sizeof env, "HF_HUB_CACHE=%s/c-ae HF_ENDPOINT=http://127.0.0.1:%d", g_tmp, h.port);
  rc = run("ae-pull", env, "model pull --quiet " REPO);
  CHECKF(rc == 0, "pull exit %d", rc);
  hub_stop(&h);
  char ref_path[800];
  snprintf(ref_path, sizeof ref_path, "%s/c-ae/" FOLDER "/refs/main", g_tmp);
  char *commit = slurp(ref_path, NULL);
  REQUIRE(commit && strlen(commit) == 40);
  json_t *sa = scan("c-ae", "scan-ae"), *sj = scan("c-js", "scan-js");
  REQUIRE(sa && sj);
  json_t *ra = only_revision(sa, "astembed's cache"), *rj = only_revision(sj, "the JS cache");
  REQUIRE(ra && rj);
  CHECK(!strcmp(json_string_value(json_object_get(ra, "commitOid")) ?: "", commit));
  json_t *refs = json_object_get(ra, "refs");
  CHECK(json_array_size(refs) == 1 && !strcmp(json_string_value(json_array_get(refs, 0)) ?: "", "main"));
  char la[8192], lj[8192], want[256];
  file_list(ra, la, sizeof la);
  file_list(rj, lj, sizeof lj);
  /* every file astembed fetched is listed as in the JS download (which also holds the
   * files astembed does not need, such as init-random's RANDOM-WEIGHTS.txt) */
  int entries = 0;
  for (char *tok = la, *end; *tok; tok = end + 1, entries++) {
    end = strchr(tok, ';');
    if (!end) break;
    char one[300];
    snprintf(one, sizeof one, ";%.*s", (int)(end - tok + 1), tok);
    CHECKF(strstr(lj, one) || !strncmp(lj, one + 1, strlen(one + 1)), "%s not in the JS scan: %s", one + 1, lj);
  }
  CHECKF(entries == 9, "%d files in astembed's scan: %s", entries, la);
  snprintf(want, sizeof want, "model.safetensors:%lld;", file_size("model.safetensors"));
  CHECKF(strstr(la, want) != NULL, "%s not in %s", want, la);
  snprintf(want, sizeof want, "config.json:%lld;", file_size("config.json"));
  CHECKF(strstr(la, want) != NULL, "%s not in %s", want, la);
  snprintf(want, sizeof want, "tokenizer.json:%lld;", file_size("tokenizer.json"));
  CHECKF(strstr(la, want) != NULL, "%s not in %s", want, la);
  json_decref(sa);
  json_decref(sj);
  free(commit);
  CHECK(no_sanitizer_reports());
  hub_test_cleanup(t_fail);
  TEST_DONE();
}
