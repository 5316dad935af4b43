// ctest-labels: tsan
// ctest-timeout: 300
/* astembed serve through curl: /v1/embeddings (float and base64) equals `astembed
 * encode` within 1e-6, /embed (normalize, truncate), /search equals `astembed query
 * --format json`, /metrics carries the request, queue, batch and PerformanceMetrics
 * series, the API key (401 without, /health open), every error route (400, 404, 405,
 * 413 body/inputs/truncate:false, 422), 429 with Retry-After when the queue is full,
 * and SIGTERM during load: every request answered (200) or cleanly refused, exit 0. */
#include "serve_test_util.h"
#include <jansson.h>

static const char *TEXTS[] = {"def read_file(path): return open(path).read()", "class LRUCache: evicts the oldest",
                              "", "hello world", "numpy array reshape"};
#define NT 5

static int b64val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Max |diff| of an OpenAI response's vectors against ref; -1 on a malformed one. */
static double openai_diff(const char *resp, const float *ref, int dim, int n, int b64) {
  json_t *j = json_loads(resp ? resp : "", 0, NULL);
  json_t *data = json_object_get(j, "data");
  double worst = -1;
  if (json_array_size(data) == (size_t)n && !strcmp(json_string_value(json_object_get(j, "object")), "list") &&
      json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens")) > 0) {
    worst = 0;
    for (int i = 0; i < n; i++) {
      json_t *d = json_array_get(data, (size_t)i);
      if (json_integer_value(json_object_get(d, "index")) != i) return -1;
      json_t *e = json_object_get(d, "embedding");
      float v[4096];
      if (b64) {
        const char *s = json_string_value(e);
        size_t len = s ? strlen(s) : 0, k = 0;
        unsigned char *bytes = (unsigned char *)v;
        for (size_t p = 0; p + 3 < len && k < sizeof v; p += 4) {
          int a = b64val(s[p]), b = b64val(s[p + 1]), c = s[p + 2] == '=' ? 0 : b64val(s[p + 2]),
              dd = s[p + 3] == '=' ? 0 : b64val(s[p + 3]);
          unsigned x = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)dd;
          bytes[k++] = (unsigned char)(x >> 16);
          if (s[p + 2] != '=') bytes[k++] = (unsigned char)(x >> 8);
          if (s[p + 3] != '=') bytes[k++] = (unsigned char)x;
        }
        if (k != (size_t)dim * 4) return -1;
      } else {
        if (json_array_size(e) != (size_t)dim) return -1;
        for (int c = 0; c < dim; c++) v[c] = (float)json_number_value(json_array_get(e, (size_t)c));
      }
      for (int c = 0; c < dim; c++) {
        double d2 = fabs((double)v[c] - ref[i * dim + c]);
        if (d2 > worst) worst = d2;
      }
    }
  }
  json_decref(j);
  return worst;
}

int main(void) {
  st_setup("routes");
  int dim = 0;
  float *ref = st_encode(TEXTS, NT, &dim);
  REQUIRE(ref && dim == 64);

  char cmd[4000], db[400];
  snprintf(db, sizeof db, "%s/index.db", st_tmp);
  snprintf(cmd, sizeof cmd, "%s embed --input examples/annotations.jsonl --db %s --model %s/model" ST_THREADS
           " >/dev/null 2>&1",
           st_bin(), db, st_tmp);
  REQUIRE(system(cmd) == 0);

  /* the command line: --help 0, usage errors 2, a bad address 1 (before the model loads) */
  snprintf(cmd, sizeof cmd, "%s serve --help >/dev/null", st_bin());
  CHECK(system(cmd) == 0);
  snprintf(cmd, sizeof cmd, "%s serve --model %s/model --port x 2>/dev/null", st_bin(), st_tmp);
  CHECK(WEXITSTATUS(system(cmd)) == 2);
  snprintf(cmd, sizeof cmd, "%s serve --model %s/model --max-inputs 10 --max-queue 5 2>/dev/null", st_bin(), st_tmp);
  CHECK(WEXITSTATUS(system(cmd)) == 2);
  snprintf(cmd, sizeof cmd, "%s serve --model %s/model --host not-an-address 2>%s/host.err", st_bin(), st_tmp, st_tmp);
  CHECK(WEXITSTATUS(system(cmd)) == 1);
  snprintf(cmd, sizeof cmd, "grep -q 'not-an-address' %s/host.err", st_tmp);
  CHECK(system(cmd) == 0);

  st_server s;
  char extra[1000];
  snprintf(extra, sizeof extra, "--db %s --api-key s3cret --max-queue 64 --max-inputs 64 --max-body-bytes 300000 "
           "--timeout 5", db);
  REQUIRE(st_start(&s, extra) == 0);
  const char *auth = "-H 'Authorization: Bearer s3cret'";
  char *out = NULL, *hdr = NULL;

  /* auth */
  CHECK(st_curl(&s, "GET", "/health", NULL, NULL, NULL, NULL) == 200);
  CHECK(st_curl(&s, "GET", "/info", NULL, NULL, NULL, NULL) == 401);
  CHECK(st_curl(&s, "GET", "/info", NULL, "-H 'Authorization: Bearer s3creT'", NULL, NULL) == 401);
  CHECK(st_curl(&s, "GET", "/info", NULL, "-H 'Authorization: Bearer s3cret0'", NULL, NULL) == 401);
  CHECK(st_curl(&s, "POST", "/v1/embeddings", "{\"input\":\"x\"}", NULL, &out, NULL) == 401);
  CHECK(out && strstr(out, "\"authentication_error\""));
  free(out);
  CHECK(st_curl(&s, "GET", "/info", NULL, auth, &out, NULL) == 200);
  CHECK(out && strstr(out, "\"dim\":64") && strstr(out, "\"max_input_length\":"));
  free(out);

  /* /v1/embeddings: array and single string, float and base64, against encode */
  json_t *arr = json_array();
  for (int i = 0; i < NT; i++) json_array_append_new(arr, json_string(TEXTS[i]));
  for (int b64 = 0; b64 < 2; b64++) {
    json_t *req = json_pack("{s:O,s:s,s:s}", "input", arr, "model", "m1", "encoding_format", b64 ? "base64" : "float");
    char *body = json_dumps(req, JSON_COMPACT);
    CHECK(st_curl(&s, "POST", "/v1/embeddings", body, auth, &out, NULL) == 200);
    double d = openai_diff(out, ref, dim, NT, b64);
    CHECKF(d >= 0 && d <= 1e-6, "format %s: max diff %g", b64 ? "base64" : "float", d);
    CHECK(out && strstr(out, "\"model\":\"m1\""));
    free(out);
    free(body);
    json_decref(req);
  }
  json_decref(arr);
  CHECK(st_curl(&s, "POST", "/v1/embeddings", "{\"input\":\"hello world\",\"model\":\"x\"}", auth, &out, NULL) == 200);
  CHECK(openai_diff(out, ref + 3 * dim, dim, 1, 0) >= 0 && openai_diff(out, ref + 3 * dim, dim, 1, 0) <= 1e-6);
  free(out);

  /* /embed: normalized vectors, truncate */
  CHECK(st_curl(&s, "POST", "/embed", "{\"inputs\":[\"hello world\",\"numpy array reshape\"]}", auth, &out, NULL) == 200);
  json_t *ev = json_loads(out ? out : "", 0, NULL);
  CHECK(json_array_size(ev) == 2 && json_array_size(json_array_get(ev, 0)) == (size_t)dim);
  double norm = 0;
  for (int c = 0; c < dim; c++) {
    double x = json_number_value(json_array_get(json_array_get(ev, 1), (size_t)c));
    norm += x * x;
  }
  CHECKF(fabs(norm - 1) < 1e-5, "norm %g", norm);
  json_decref(ev);
  free(out);
  char longtext[20000] = "{\"inputs\":\"";
  for (int i = 0; i < 600; i++) strcat(longtext, "word ");
  strcat(longtext, "\"}");
  CHECK(st_curl(&s, "POST", "/embed", longtext, auth, &out, NULL) == 413);
  CHECK(out && strstr(out, "truncate"));
  free(out);
  longtext[strlen(longtext) - 1] = 0;
  strcat(longtext, ",\"truncate\":true}");
  CHECK(st_curl(&s, "POST", "/embed", longtext, auth, NULL, NULL) == 200);

  /* /search equals query --format json */
  CHECK(st_curl(&s, "POST", "/search", "{\"query\":\"read a file\",\"top_k\":4}", auth, &out, NULL) == 200);
  char qout[400];
  snprintf(qout, sizeof qout, "%s/q.json", st_tmp);
  snprintf(cmd, sizeof cmd, "%s query 'read a file' --db %s --top 4 --format json > %s 2>/dev/null", st_bin(), db, qout);
  CHECK(system(cmd) == 0);
  char *qtext = st_slurp(qout, NULL);
  json_t *a = json_loads(out ? out : "", 0, NULL), *b = json_loads(qtext ? qtext : "", 0, NULL);
  json_t *ra = json_object_get(a, "results"), *rb = json_object_get(b, "results");
  CHECK(json_array_size(ra) == 4 && json_array_size(rb) == 4);
  for (size_t i = 0; i < json_array_size(rb); i++) {
    json_t *x = json_array_get(ra, i), *y = json_array_get(rb, i);
    CHECK(json_equal(json_object_get(x, "nodeId"), json_object_get(y, "nodeId")));
    CHECK(fabs(json_number_value(json_object_get(x, "score")) - json_number_value(json_object_get(y, "score"))) < 1e-5);
    CHECK(json_equal(json_object_get(x, "snippet"), json_object_get(y, "snippet")));
  }
  json_decref(a);
  json_decref(b);
  free(qtext);
  free(out);
  CHECK(st_curl(&s, "POST", "/search", "{\"query\":\"read a file\",\"top_k\":50,\"filters\":{\"node_type\":\"class\"}}",
                auth, &out, NULL) == 200);
  a = json_loads(out ? out : "", 0, NULL);
  ra = json_object_get(a, "results");
  CHECK(json_array_size(ra) > 0);
  for (size_t i = 0; i < json_array_size(ra); i++)
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(ra, i), "nodeType")), "class"));
  json_decref(a);
  free(out);
  CHECK(st_curl(&s, "POST", "/search", "{\"query\":\"x\",\"filters\":{\"color\":\"red\"}}", auth, NULL, NULL) == 422);

  /* errors */
  CHECK(st_curl(&s, "POST", "/v1/embeddings", "{\"input\": [\"a\",", auth, &out, NULL) == 400);
  CHECK(out && strstr(out, "\"invalid_request_error\"") && strstr(out, "malformed JSON"));
  free(out);
  CHECK(st_curl(&s, "POST", "/v1/embeddings", "{\"input\": 5}", auth, &out, NULL) == 422);
  CHECK(out && strstr(out, "\"param\":\"input\""));
  free(out);
  CHECK(st_curl(&s, "POST", "/v1/embeddings", "{\"input\": [[1,2,3]]}", auth, NULL, NULL) == 422);
  CHECK(st_curl(&s, "POST", "/v1/embeddings", "{\"input\": []}", auth, NULL, NULL) == 422);
  CHECK(st_curl(&s, "POST", "/v1/embeddings", "{\"input\": \"a\", \"encoding_format\": \"hex\"}", auth, NULL, NULL) == 422);
  CHECK(st_curl(&s, "POST", "/v1/embeddings", "{\"input\": \"a\", \"dimensions\": 12}", auth, NULL, NULL) == 422);
  CHECK(st_curl(&s, "POST", "/v1/embeddings", "[1,2]", auth, NULL, NULL) == 422);
  CHECK(st_curl(&s, "POST", "/embed", "{\"inputs\": \"a\", \"normalize\": \"yes\"}", auth, NULL, NULL) == 422);
  CHECK(st_curl(&s, "GET", "/v1/embeddings", NULL, auth, NULL, &hdr) == 405);
  CHECK(hdr && strcasestr(hdr, "Allow: POST"));
  free(hdr);
  CHECK(st_curl(&s, "GET", "/v2/nothing", NULL, auth, NULL, NULL) == 404);
  json_t *many = json_array();
  for (int i = 0; i < 65; i++) json_array_append_new(many, json_string("x"));
  json_t *mreq = json_pack("{s:o}", "input", many);
  char *mbody = json_dumps(mreq, JSON_COMPACT);
  CHECK(st_curl(&s, "POST", "/v1/embeddings", mbody, auth, NULL, NULL) == 413);
  free(mbody);
  json_decref(mreq);
  char big[400];
  snprintf(big, sizeof big, "%s/big.json", st_tmp);
  FILE *f = fopen(big, "w");
  fputs("{\"input\":\"", f);
  for (int i = 0; i < 40000; i++) fputs("abcdefgh", f);
  fputs("\"}", f);
  fclose(f);
  char bigarg[500];
  snprintf(bigarg, sizeof bigarg, "@%s", big);
  CHECK(st_curl(&s, "POST", "/v1/embeddings", bigarg, auth, NULL, NULL) == 413);

  /* 429: 16 concurrent requests of 64 long inputs against a queue of 64 */
  char par[400], codes[400];
  snprintf(par, sizeof par, "%s/par.json", st_tmp);
  snprintf(codes, sizeof codes, "%s/codes", st_tmp);
  f = fopen(par, "w");
  fputs("{\"input\":[", f);
  for (int i = 0; i < 64; i++) {
    fprintf(f, "%s\"item %d", i ? "," : "", i);
    for (int w = 0; w < 200; w++) fprintf(f, " w%d", (i * 7 + w) % 97);
    fputc('"', f);
  }
  fputs("]}", f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "for i in $(seq 16); do /usr/bin/curl -s -m 120 -o /dev/null -D %s/h$i -w '%%{http_code}\\n' "
           "-H 'Authorization: Bearer s3cret' --data-binary @%s http://127.0.0.1:%d/v1/embeddings >> %s & done; wait",
           st_tmp, par, s.port, codes);
  CHECK(system(cmd) == 0);
  char *ctext = st_slurp(codes, NULL);
  int n200 = 0, n429 = 0, nother = 0;
  for (char *p = ctext; p && *p;) {
    int c = atoi(p);
    if (c == 200) n200++; else if (c == 429) n429++; else nother++;
    p = strchr(p, '\n');
    if (p) p++;
  }
  free(ctext);
  CHECKF(n200 >= 1 && n429 >= 1 && nother == 0 && n200 + n429 == 16, "200: %d, 429: %d, other: %d", n200, n429, nother);
  snprintf(cmd, sizeof cmd, "grep -l -i '^Retry-After: 1' %s/h* | wc -l | grep -qx %d", st_tmp, n429);
  CHECK(system(cmd) == 0);

  /* metrics */
  CHECK(st_curl(&s, "GET", "/metrics", NULL, auth, &out, NULL) == 200);
  const char *series[] = {"astembed_http_requests_total{route=\"/v1/embeddings\",code=\"200\"}",
                          "astembed_http_requests_total{route=\"/v1/embeddings\",code=\"429\"}",
                          "astembed_http_requests_total{route=\"/embed\",code=\"413\"}",
                          "astembed_http_request_duration_seconds_bucket{route=\"/v1/embeddings\",le=\"+Inf\"}",
                          "astembed_queue_depth ", "astembed_queue_rejected_total ", "astembed_batch_items_bucket{le=\"1\"}",
                          "astembed_batch_tokens_count ", "astembed_cache_hit_ratio ", "astembed_memory_strategy{strategy=",
                          "astembed_items_embedded_total ", "astembed_batch_recommended_size ", "astembed_index_annotations "};
  for (size_t i = 0; i < sizeof series / sizeof *series; i++) CHECKF(out && strstr(out, series[i]), "%s", series[i]);
  /* repeated texts came from the cache: hits counted */
  const char *hits = out ? strstr(out, "\nastembed_cache_memory_hits_total ") : NULL;
  CHECK(hits && atof(hits + 34) >= 1);

  const char *bc = out ? strstr(out, "\nastembed_batch_items_count ") : NULL;
  double batches_before = bc ? atof(bc + 29) : 0;
  /* SIGTERM during load: every request answered 200 or refused cleanly (503, or no
   * connection once the listener is closed); exit 0; nothing hangs */
  snprintf(codes, sizeof codes, "%s/codes2", st_tmp);
  char load8[400];
  snprintf(load8, sizeof load8, "%s/load8.json", st_tmp);
  f = fopen(load8, "w");
  fputs("{\"input\":[", f);
  for (int i = 0; i < 8; i++) {
    fprintf(f, "%s\"load %d", i ? "," : "", i);
    for (int w = 0; w < 250; w++) fprintf(f, " v%d", (i * 11 + w) % 89);
    fputc('"', f);
  }
  fputs("]}", f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "for i in $(seq 24); do (c=$(/usr/bin/curl -s -m 60 -o /dev/null -w '%%{http_code}' "
           "-H 'Authorization: Bearer s3cret' --data-binary @%s "
           "http://127.0.0.1:%d/v1/embeddings); echo \"$c $?\" > %s.$i) & sleep 0.02; done; wait; cat %s.* > %s",
           load8, s.port, codes, codes, codes);
  free(out);
  pid_t load = fork();
  if (load == 0) { execl("/bin/sh", "sh", "-c", cmd, (char *)NULL); _exit(127); }
  /* SIGTERM once the load has reached the batcher (bounded: 20 s) */
  for (int i = 0; i < 1000; i++) {
    char *m = NULL;
    st_curl(&s, "GET", "/metrics", NULL, auth, &m, NULL);
    const char *q = m ? strstr(m, "\nastembed_queue_depth ") : NULL;
    const char *c = m ? strstr(m, "\nastembed_batch_items_count ") : NULL;
    int busy = (q && atoi(q + 22) > 0) || (c && atof(c + 29) > batches_before);
    free(m);
    if (busy) break;
    usleep(20000);
  }
  int rc = st_stop(&s, 30);
  CHECKF(rc == 0, "exit status %d after SIGTERM", rc);
  int lst;
  waitpid(load, &lst, 0);
  ctext = st_slurp(codes, NULL);
  int ok = 0, refused = 0, bad = 0;
  for (char *p = ctext; p && *p;) {
    int code = 0, cexit = 0;
    if (sscanf(p, "%d %d", &code, &cexit) == 2) {
      if (code == 200 || code == 429 || code == 503) ok++;
      else if (code == 0 && cexit == 7) refused++;   /* connection refused: never accepted */
      else bad++;
    }
    p = strchr(p, '\n');
    if (p) p++;
  }
  CHECKF(ok + refused == 24 && bad == 0 && ok >= 1 && refused >= 1, "answered %d, refused %d, bad %d", ok, refused, bad);
  free(ctext);
  free(ref);
  st_cleanup();
  TEST_DONE();
}
