/* `astembed model pull` against a loopback Hugging Face Hub (tests/hub/hubserver.py on
 * 127.0.0.1, random ports, a hub and a "CDN"), serving a random-weight model with the
 * Hub's protocol, and every fault of the issue: a connection dropped mid-file, a
 * resumed .incomplete, a server that ignores Range, corrupt bytes, 404, 401 without
 * and 200 with a token (never printed), 500/429 then success, a stalled server, no
 * safetensors, hostile names, two concurrent pulls, offline with and without the
 * model cached. Also: resolution of ORG/NAME in encode/embed (vectors equal those of
 * the plain folder), the index recording the repo and commit, model list and rm, and
 * the parsers directly. Skips (77) without /usr/bin/python3. */
// ctest-timeout: 400
#define _GNU_SOURCE
#include "test.h"
#include "hub/hub.h"
#include "hub_test_util.h"

#include <dirent.h>
#include <openssl/evp.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int exists(const char *fmt, const char *a, const char *b) {
  char p[1200];
  snprintf(p, sizeof p, fmt, a, b);
  struct stat st;
  return lstat(p, &st) == 0;
}

/* Files in dir whose name ends with suffix (or all, suffix ""). */
static int count_files(const char *dir, const char *suffix) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *de;
  while (d && (de = readdir(d))) {
    size_t l = strlen(de->d_name), s = strlen(suffix);
    if (de->d_name[0] != '.' && l >= s && !strcmp(de->d_name + l - s, suffix)) n++;
  }
  if (d) closedir(d);
  return n;
}

static const char *k_files[] = {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt",
                                "tokenizer_config.json", "special_tokens_map.json", "modules.json",
                                "1_Pooling/config.json", "sentence_bert_config.json",
                                "config_sentence_transformers.json", NULL};

/* The cache at g_tmp/cache holds a complete, correct snapshot of the model: refs/main
 * names it, every file equals the model folder's, links are relative, no partial blob. */
static int snapshot_ok(const char *cache) {
  char p[1200], commit[64] = "";
  snprintf(p, sizeof p, "%s/%s/%s/refs/main", g_tmp, cache, FOLDER);
  char *ref = slurp(p, NULL);
  if (!ref || strlen(ref) != 40) { free(ref); fprintf(stderr, "%s: no refs/main\n", cache); return 0; }
  memcpy(commit, ref, 41);
  free(ref);
  int ok = 1;
  for (int i = 0; k_files[i]; i++) {
    char a[1200], b[1200], link[1200];
    snprintf(a, sizeof a, "%s/%s/%s/snapshots/%s/%s", g_tmp, cache, FOLDER, commit, k_files[i]);
    snprintf(b, sizeof b, "%s/%s", g_model, k_files[i]);
    size_t la = 0, lb = 0;
    char *da = slurp(a, &la), *db = slurp(b, &lb);
    ssize_t k = readlink(a, link, sizeof link - 1);
    if (k > 0) link[k] = 0;
    if (!da || !db || la != lb || memcmp(da, db, la) || k <= 0 || link[0] == '/' || strncmp(link, "../", 3)) {
      fprintf(stderr, "%s: %s differs or is not a relative link\n", cache, k_files[i]);
      ok = 0;
    }
    free(da);
    free(db);
  }
  snprintf(p, sizeof p, "%s/%s/%s/blobs", g_tmp, cache, FOLDER);
  if (count_files(p, ".incomplete")) { fprintf(stderr, "%s: an .incomplete is left\n", cache); ok = 0; }
  if (count_files(p, "") != 10) { fprintf(stderr, "%s: %d blobs, not 10\n", cache, count_files(p, "")); ok = 0; }
  return ok;
}

static int no_snapshot(const char *cache) {
  return !exists("%s/%s/" FOLDER "/snapshots", g_tmp, cache) && !exists("%s/%s/" FOLDER "/refs", g_tmp, cache);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void env_for(char *env, size_t cap, const hub *h, const char *cache, const char *extra) {
  snprintf(env, cap, "HF_HUB_CACHE=%s/%s HF_HOME=%s/home-%s HF_ENDPOINT=http://127.0.0.1:%d %s", g_tmp, cache,
           g_tmp, cache, h ? h->port : 1, extra);
}

/* ---- the parsers, directly ------------------------------------------------------------- */

static void test_parsers(void) {
  ae__hub_spec s;
  CHECK(ae__hub_parse_spec("sentence-transformers/all-MiniLM-L6-v2", &s) == AE_OK && !strcmp(s.rev, "main"));
  CHECK(ae__hub_parse_spec("a/b@v1.0", &s) == AE_OK && !strcmp(s.repo, "a/b") && !strcmp(s.rev, "v1.0"));
  CHECK(ae__hub_parse_spec("a/b@refs/pr/1", &s) == AE_OK);
  const char *bad[] = {"a", "/abs/path", "a/b/c", "a/../b", "a--x/b", "a/b@", "a/b@../x", "a/b@x/../y",
                       "./a", "a/.b", "a/b c", "-a/b", "a/b@/x", NULL};
  for (int i = 0; bad[i]; i++) CHECKF(ae__hub_parse_spec(bad[i], &s) == AE_EINVAL, "%s", bad[i]);
  CHECK(ae__hub_safe_path("1_Pooling/config.json") && ae__hub_safe_path("a.b"));
  const char *hostile[] = {"../x", "a/../../x", "/etc/passwd", "a//b", "a/", "./a", "a\\..\\b", "a\nb", "", NULL};
  for (int i = 0; hostile[i]; i++) CHECKF(!ae__hub_safe_path(hostile[i]), "'%s'", hostile[i]);
  char tag[130];
  CHECK(ae__hub_parse_etag("W/\"abc-1\"", 9, tag, sizeof tag) == AE_OK && !strcmp(tag, "abc-1"));
  CHECK(ae__hub_parse_etag("\"../x\"", 6, tag, sizeof tag) == AE_EFORMAT);
  CHECK(ae__hub_parse_etag("\"\"", 2, tag, sizeof tag) == AE_EFORMAT);
  ae__hub_listing l;
  const char *ok = "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":[{\"rfilename\":\"a\"},{\"rfilename\":\"b/c\"}]}";
  CHECK(ae__hub_parse_listing(ok, strlen(ok), &l) == AE_OK && l.n == 2 && !strcmp(l.files[1], "b/c"));
  ae__hub_listing_free(&l);
  const char *evil = "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":[{\"rfilename\":\"../a\"}]}";
  CHECK(ae__hub_parse_listing(evil, strlen(evil), &l) == AE_EFORMAT && strstr(ae_last_error(), "../a"));
  CHECK(ae__hub_parse_listing("{\"sha\":\"xyz\"}", 13, &l) == AE_EFORMAT);
  char repo[64], commit[64];
  CHECK(ae_hub_snapshot_info("/c/models--o--n/snapshots/0123456789abcdef0123456789abcdef01234567", repo,
                             sizeof repo, commit, sizeof commit) == 1 && !strcmp(repo, "o/n"));
  CHECK(ae_hub_snapshot_info("/c/models--o/snapshots/0123456789abcdef0123456789abcdef01234567", repo,
                             sizeof repo, commit, sizeof commit) == 0);
  CHECK(ae_hub_is_model_name("tests/hub") == 0);   /* an existing folder wins */
  CHECK(ae_hub_is_model_name("no-such-org/no-such-model") == 1);
}

/* ---- the pulls ---------------------------------------------------------------------------- */

static void test_basic(void) {
  hub h;
  if (hub_start(&h, "none")) { CHECK(0); return; }
  char env[1024];
  env_for(env, sizeof env, &h, "c-basic", "");
  int rc = run("basic", env, "model pull " REPO);
  CHECKF(rc == 0, "pull exit %d", rc);
  if (rc) show("basic");
  CHECK(snapshot_ok("c-basic"));
  CHECK(count_in("basic.out", "/snapshots/") == 1);
  CHECK(count_in(h.log, "\"cdn\": true") == 1);       /* one LFS file, fetched from the CDN */
  CHECK(count_in(h.log, "\"auth\": true") == 0);
  /* again: everything is cached, no byte is fetched */
  CHECK(run("basic2", env, "model pull " REPO) == 0);
  CHECK(count_in("basic2.err", "in the cache") == 10);
  CHECK(count_in(h.log, "\"cdn\": true") == 1);
  hub_stop(&h);

  /* the cached model by name, offline: the same vectors as the plain folder */
  char args[1400];
  env_for(env, sizeof env, NULL, "c-basic", "HF_HUB_OFFLINE=1");
  CHECK(same_vectors("enc", env, REPO));

  /* the library's loader resolves the name too (offline, from the cache) */
  char cache[700];
  snprintf(cache, sizeof cache, "%s/c-basic", g_tmp);
  setenv("HF_HUB_CACHE", cache, 1);
  ae_encoder *enc = NULL;
  CHECK_OK(ae_encoder_load(REPO, NULL, &enc));
  CHECK(enc && ae_encoder_dim(enc) == 32);
  ae_encoder_free(enc);
  CHECK(ae_encoder_load("test-org/not-cached", NULL, &enc) == AE_ENOTFOUND &&
        strstr(ae_last_error(), "astembed model pull test-org/not-cached"));
  unsetenv("HF_HUB_CACHE");

  /* embed by name: the index records the repo id and commit; stats shows them */
  snprintf(args, sizeof args, "embed --input %s/examples/annotations.jsonl --db %s/idx.db --model " REPO
           " --no-progress --preset development", getenv("AE_SOURCE_DIR") ? getenv("AE_SOURCE_DIR") : ".", g_tmp);
  rc = run("embed", env, args);
  CHECKF(rc == 0, "embed exit %d", rc);
  if (rc) show("embed");
  snprintf(args, sizeof args, "stats --db %s/idx.db --json", g_tmp);
  CHECK(run("stats", env, args) == 0);
  CHECK(count_in("stats.out", "\"repo\": \"" REPO "\"") == 1);
  CHECK(count_in("stats.out", "\"name\": \"" REPO "@") == 1);
  snprintf(args, sizeof args, "stats --db %s/idx.db", g_tmp);
  CHECK(run("stats2", env, args) == 0 && count_in("stats2.out", REPO "@") == 1);
  snprintf(args, sizeof args, "query \"parse a file\" --db %s/idx.db --top 2", g_tmp);
  CHECK(run("query", env, args) == 0);

  /* list and rm */
  CHECK(run("list", env, "model list") == 0 && count_in("list.out", REPO) == 1 && count_in("list.out", "main") == 1);
  CHECK(run("listj", env, "model list --json") == 0 && count_in("listj.out", "\"complete\": true") == 1);
  CHECK(run("rm", env, "model rm " REPO) == 0);
  CHECK(!exists("%s/%s/" FOLDER, g_tmp, "c-basic") && !exists("%s/%s/.locks/" FOLDER, g_tmp, "c-basic"));
  CHECK(run("rm2", env, "model rm " REPO) == 1 && count_in("rm2.err", "not in the Hugging Face cache") == 1);
  CHECK(run("list2", env, "model list") == 0 && count_in("list2.out", REPO) == 0);
}

/* Seeds blobs/<sha256>.incomplete with `head` bytes of model.safetensors (garbage when
 * !real); returns the sha256. */
static void seed_incomplete(const char *cache, size_t head, int real, char sha[65]) {
  char p[1200];
  snprintf(p, sizeof p, "%s/model.safetensors", g_model);
  size_t n;
  char *d = slurp(p, &n);
  unsigned char md[32];
  unsigned mdn = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  EVP_DigestInit_ex(c, EVP_sha256(), NULL);
  EVP_DigestUpdate(c, d, n);
  EVP_DigestFinal_ex(c, md, &mdn);
  EVP_MD_CTX_free(c);
  for (int i = 0; i < 32; i++) sprintf(sha + 2 * i, "%02x", md[i]);
  snprintf(p, sizeof p, "%s/%s/%s/blobs", g_tmp, cache, FOLDER);
  ae__hub_mkdirs(p);
  snprintf(p, sizeof p, "%s/%s/%s/blobs/%s.incomplete", g_tmp, cache, FOLDER, sha);
  if (!real) memset(d, 'x', head);
  FILE *f = fopen(p, "wb");
  fwrite(d, 1, head, f);
  fclose(f);
  free(d);
}

static void test_resume(void) {
  hub h;
  char env[1024], sha[65], needle[64];
  /* dropped mid-file: the same pull continues with Range */
  if (hub_start(&h, "drop")) { CHECK(0); return; }
  env_for(env, sizeof env, &h, "c-drop", "");
  int rc = run("drop", env, "model pull " REPO);
  CHECKF(rc == 0, "exit %d", rc);
  if (rc) show("drop");
  CHECK(snapshot_ok("c-drop"));
  CHECK(count_in(h.log, "\"cdn\": true, \"range\": \"bytes=") == 1);
  hub_stop(&h);

  /* an .incomplete from an interrupted pull: continued from its end */
  if (hub_start(&h, "none")) { CHECK(0); return; }
  seed_incomplete("c-seed", 100000, 1, sha);
  env_for(env, sizeof env, &h, "c-seed", "");
  CHECK(run("seed", env, "model pull " REPO) == 0);
  CHECK(snapshot_ok("c-seed"));
  CHECK(count_in(h.log, "\"range\": \"bytes=100000-\"") == 1);
  hub_stop(&h);

  /* a server that ignores Range: the 200 restarts the file from zero */
  if (hub_start(&h, "norange")) { CHECK(0); return; }
  seed_incomplete("c-norange", 100000, 0, sha);
  env_for(env, sizeof env, &h, "c-norange", "");
  rc = run("norange", env, "model pull " REPO);
  CHECKF(rc == 0, "exit %d", rc);
  if (rc) show("norange");
  CHECK(snapshot_ok("c-norange"));
  snprintf(needle, sizeof needle, "bytes=100000-");
  CHECK(count_in(h.log, needle) == 1);
  hub_stop(&h);
}

static void test_faults(void) {
  hub h;
  char env[1024];
  /* corrupt bytes: exit 1, no snapshot, no blob, no partial file */
  if (hub_start(&h, "corrupt")) { CHECK(0); return; }
  env_for(env, sizeof env, &h, "c-corrupt", "");
  CHECK(run("corrupt", env, "model pull " REPO) == 1);
  CHECK(count_in("corrupt.err", "sha256 mismatch") == 1);
  CHECK(no_snapshot("c-corrupt"));
  char p[800];
  snprintf(p, sizeof p, "%s/c-corrupt/" FOLDER "/blobs", g_tmp);
  CHECK(count_files(p, ".incomplete") == 0 && count_files(p, "") == 3);   /* the 3 small files before it */
  CHECK(count_in("corrupt.err", "SECRETSIGNATURE") == 0);

  /* 404 for the repo */
  CHECK(run("404", env, "model pull test-org/no-such-model") == 1);
  CHECK(count_in("404.err", "HTTP 404") == 1);
  hub_stop(&h);

  /* 401 without a token, 200 with one; the token never printed, never sent to the CDN */
  if (hub_start(&h, "auth")) { CHECK(0); return; }
  env_for(env, sizeof env, &h, "c-auth", "");
  CHECK(run("auth1", env, "model pull " REPO) == 1);
  CHECK(count_in("auth1.err", "HTTP 401") == 1 && count_in("auth1.err", "HF_TOKEN") == 1);
  env_for(env, sizeof env, &h, "c-auth", "HF_TOKEN=hf_WRONG");
  CHECK(run("auth2", env, "model pull " REPO) == 1 && count_in("auth2.err", "hf_WRONG") == 0);
  env_for(env, sizeof env, &h, "c-auth", "HF_TOKEN=" TOKEN);
  int rc = run("auth3", env, "model pull " REPO);
  CHECKF(rc == 0, "exit %d", rc);
  if (rc) show("auth3");
  CHECK(snapshot_ok("c-auth"));
  /* the token file $HF_HOME/token */
  snprintf(p, sizeof p, "%s/home-c-auth2", g_tmp);
  mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/home-c-auth2/token", g_tmp);
  FILE *f = fopen(p, "w");
  fputs(TOKEN "\n", f);
  fclose(f);
  env_for(env, sizeof env, &h, "c-auth2", "");
  CHECK(run("auth4", env, "model pull " REPO) == 0);
  CHECK(snapshot_ok("c-auth2"));
  const char *outs[] = {"auth1.err", "auth2.err", "auth3.err", "auth4.err", "auth1.out", "auth3.out", "auth4.out", NULL};
  for (int i = 0; outs[i]; i++) CHECKF(count_in(outs[i], TOKEN) == 0, "%s", outs[i]);
  CHECK(count_in(h.log, "\"leak\"") == 0);
  CHECK(count_in(h.log, "\"cdn\": true, \"range\": null, \"auth\": false") == 2);
  hub_stop(&h);

  /* 500 (and 429) then success */
  if (hub_start(&h, "flaky")) { CHECK(0); return; }
  env_for(env, sizeof env, &h, "c-flaky", "");
  double t0 = now();
  rc = run("flaky", env, "model pull " REPO);
  CHECKF(now() - t0 >= 1.0, "Retry-After: 1 not honoured (%.2f s)", now() - t0);   /* the backoff is 10 ms */
  CHECKF(rc == 0, "exit %d", rc);
  if (rc) show("flaky");
  CHECK(snapshot_ok("c-flaky"));
  CHECK(count_in(h.log, "/revision/main") == 3);   /* 500, 429, 200 */
  hub_stop(&h);

  /* a stalled server: a timeout with a clear error, quickly */
  if (hub_start(&h, "stall")) { CHECK(0); return; }
  env_for(env, sizeof env, &h, "c-stall", "HF_HUB_DOWNLOAD_TIMEOUT=1 ASTEMBED_HUB_RETRIES=1");
  t0 = now();
  CHECK(run("stall", env, "model pull " REPO) == 1);
  double dt = now() - t0;
  CHECKF(dt < 30, "%.1f s", dt);
  /* (on a loaded machine a small file may be the one that times out: any file will do) */
  CHECK(count_in("stall.err", "timed out: the server sent nothing for 1 s (HF_HUB_DOWNLOAD_TIMEOUT)") == 1);
  CHECK(no_snapshot("c-stall"));
  hub_stop(&h);

  /* no safetensors: a clear error naming what the repository has */
  if (hub_start(&h, "nosafetensors")) { CHECK(0); return; }
  env_for(env, sizeof env, &h, "c-nost", "");
  CHECK(run("nost", env, "model pull " REPO) == 1);
  CHECK(count_in("nost.err", "no model.safetensors") == 1 && count_in("nost.err", "pytorch_model.bin") == 1);
  CHECK(!exists("%s/%s/" FOLDER, g_tmp, "c-nost"));
  hub_stop(&h);

  /* hostile names in the listing: refused, nothing written outside (or at all) */
  const char *hostile[] = {"hostile", "hostile-abs"};
  for (int i = 0; i < 2; i++) {
    if (hub_start(&h, hostile[i])) { CHECK(0); return; }
    env_for(env, sizeof env, &h, "c-hostile", "");
    CHECK(run("hostile", env, "model pull " REPO) == 1);
    CHECK(count_in("hostile.err", "outside the snapshot") == 1);
    CHECK(!exists("%s/%s/" FOLDER, g_tmp, "c-hostile") && !exists("%s/%s", g_tmp, "escape.json"));
    hub_stop(&h);
  }
}

/* the public API in-process, options instead of the environment */
typedef struct {
  int starts, dones, cached, monotonic;
  uint64_t last_done, total;
} progress_seen;

static void on_progress(void *ud, const ae_hub_progress *p) {
  progress_seen *s = ud;
  if (p->done < s->last_done || p->file_done > p->file_total || p->file_count != 10) s->monotonic = 0;
  s->last_done = p->done;
  s->total = p->total;
  s->starts += p->event == AE_HUB_FILE_START;
  s->dones += p->event == AE_HUB_FILE_DONE;
  s->cached += p->event == AE_HUB_FILE_DONE && p->cached;
}

typedef struct {
  int rows, complete;
  uint64_t bytes;
  char refs[64];
} list_seen;

static void on_cached(void *ud, const ae_hub_cached *m) {
  list_seen *l = ud;
  l->rows++;
  l->complete = m->complete;
  l->bytes = m->bytes;
  snprintf(l->refs, sizeof l->refs, "%s", m->refs);
}

static void test_api(void) {
  hub h;
  if (hub_start(&h, "none")) { CHECK(0); return; }
  char endpoint[64], cache[700];
  snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d/", h.port);
  snprintf(cache, sizeof cache, "%s/c-api", g_tmp);
  progress_seen ps = {0, 0, 0, 1, 0, 0};
  ae_hub_options o = {.endpoint = endpoint, .cache_dir = cache, .progress = on_progress, .progress_ud = &ps};
  char *dir = NULL;
  CHECK_OK(ae_hub_pull(REPO, &o, &dir));
  CHECK(dir && strstr(dir, cache) == dir && snapshot_ok("c-api"));
  uint64_t sum = 0;
  for (int i = 0; k_files[i]; i++) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s", g_model, k_files[i]);
    struct stat st;
    if (stat(p, &st) == 0) sum += (uint64_t)st.st_size;
  }
  CHECK(ps.starts == 10 && ps.dones == 10 && ps.cached == 0 && ps.monotonic);
  CHECK(ps.total == sum && ps.last_done == sum);
  char *again = NULL;
  CHECK_OK(ae_hub_resolve(REPO, &o, &again));
  CHECK(dir && again && !strcmp(dir, again));
  ae_free(again);
  char *by_commit = NULL, spec[300], repo[64], commit[64];
  CHECK(ae_hub_snapshot_info(dir, repo, sizeof repo, commit, sizeof commit) == 1 && !strcmp(repo, REPO));
  snprintf(spec, sizeof spec, REPO "@%s", commit);
  CHECK_OK(ae_hub_resolve(spec, &o, &by_commit));   /* a commit needs no ref */
  ae_free(by_commit);
  list_seen ls = {0, 0, 0, ""};
  CHECK_OK(ae_hub_list(&o, on_cached, &ls));
  CHECK(ls.rows == 1 && ls.complete && ls.bytes == sum && !strcmp(ls.refs, "main"));
  char *model_dir = NULL;
  CHECK_OK(ae_hub_model_dir("tests/hub", &o, 1, &model_dir));   /* a folder stays a folder */
  CHECK(model_dir && !strcmp(model_dir, "tests/hub"));
  ae_free(model_dir);
  CHECK_OK(ae_hub_remove(REPO, &o));
  CHECK(ae_hub_resolve(REPO, &o, &again) == AE_ENOTFOUND);
  CHECK(ae_hub_remove(REPO "@main", &o) == AE_EINVAL);
  ae_free(dir);
  hub_stop(&h);
}

/* a renamed repository: relative redirects are followed (the old name's cache folder) */
static void test_renamed(void) {
  hub h;
  if (hub_start(&h, "renamed")) { CHECK(0); return; }
  char env[1024];
  env_for(env, sizeof env, &h, "c-renamed", "");
  int rc = run("renamed", env, "model pull test-org/old-name");
  CHECKF(rc == 0, "exit %d", rc);
  if (rc) show("renamed");
  CHECK(count_in("renamed.out", "models--test-org--old-name/snapshots/") == 1);
  CHECK(count_in(h.log, "\"HEAD\", \"path\": \"/test-org/old-name/resolve/") == 10);
  CHECK(count_in(h.log, "\"HEAD\", \"path\": \"/test-org/tiny-model/resolve/") == 10);
  hub_stop(&h);
}

static void test_concurrent(void) {
  hub h;
  if (hub_start(&h, "slow")) { CHECK(0); return; }
  char env[1024], cmd[16384];
  env_for(env, sizeof env, &h, "c-conc", "");
  snprintf(cmd, sizeof cmd,
           "cd %s && export %s ASTEMBED_CACHE_DIR=%s/lc; "
           "%s model pull " REPO " >c1.out 2>c1.err & p1=$!; %s model pull " REPO " >c2.out 2>c2.err & p2=$!; "
           "wait $p1; r1=$?; wait $p2; r2=$?; echo $r1 $r2 > conc.rc",
           g_tmp, env, g_tmp, g_bin, g_bin);
  CHECK(system(cmd) == 0);
  CHECK(count_in("conc.rc", "0 0") == 1);
  CHECK(snapshot_ok("c-conc"));
  CHECK(count_in(h.log, "\"cdn\": true") == 1);   /* the second waited on the lock, fetched nothing */
  CHECK(count_in("c1.out", "/snapshots/") == 1 && count_in("c2.out", "/snapshots/") == 1);
  hub_stop(&h);
}

static void test_offline(void) {
  hub h;
  if (hub_start(&h, "none")) { CHECK(0); return; }
  char env[1024];
  /* without the model cached: exit 1 with the exact command, no request */
  env_for(env, sizeof env, &h, "c-off", "HF_HUB_OFFLINE=1");
  CHECK(run("off1", env, "model pull " REPO) == 1);
  CHECK(count_in("off1.err", "run `astembed model pull " REPO "`") == 1);
  env_for(env, sizeof env, &h, "c-off", "");
  CHECK(run("off2", env, "encode --offline --model " REPO " </dev/null") == 1);
  CHECK(count_in("off2.err", "astembed model pull " REPO) == 1);
  CHECK(run("off3", env, "model pull --offline " REPO "@v2") == 1 && count_in("off3.err", "astembed model pull " REPO "@v2`") == 1);
  CHECK(count_in(h.log, "\"method\"") == 0);
  /* cached: offline works and makes no request */
  CHECK(run("off4", env, "model pull --quiet " REPO) == 0);
  CHECK(count_in("off4.err", "downloaded") == 0);
  int before = count_in(h.log, "\"method\"");
  env_for(env, sizeof env, &h, "c-off", "HF_HUB_OFFLINE=1");
  CHECK(run("off5", env, "model pull " REPO) == 0 && count_in("off5.out", "/snapshots/") == 1);
  CHECK(run("off6", env, "encode --model " REPO " </dev/null") == 0);
  CHECK(count_in(h.log, "\"method\"") == before);
  /* encode pulls a missing model by itself when online */
  env_for(env, sizeof env, &h, "c-auto", "");
  CHECK(run("auto", env, "encode --model " REPO " </dev/null") == 0);
  CHECK(snapshot_ok("c-auto") && count_in("auto.err", "model.safetensors") >= 1);
  hub_stop(&h);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (access("/usr/bin/python3", X_OK)) { printf("SKIP: /usr/bin/python3 missing (the loopback hub)\n"); return 77; }
  REQUIRE(hub_test_setup() == 0);
  test_parsers();
  test_basic();
  test_resume();
  test_faults();
  test_api();
  test_renamed();
  test_concurrent();
  test_offline();
  CHECK(no_sanitizer_reports());
  hub_test_cleanup(t_fail);
  TEST_DONE();
}
