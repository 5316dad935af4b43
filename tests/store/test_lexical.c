/* Lexical index: the astcode tokenizer's tokens, flags and offsets; the MATCH
 * expression of a query; lexical, vector and hybrid search with filters; the FTS
 * index in step with the annotations after updates, prune, rollback, VACUUM, a
 * tokenizer-version change, the schema 2 -> 3 upgrade, and SIGKILLs mid-transaction
 * (each verified row by row and by FTS5's integrity-check). */
#include "astembed.h"
#include "store/lexical.h"
#include "test.h"
#include "old_schema.h"

#include <signal.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#define DIM 8
static const uint8_t FP[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};
static char dir[64];

/* ---- tokenizer ------------------------------------------------------------------- */

typedef struct { char out[1024]; size_t len; int start[64], end[64], n; } toks;

static int collect(void *ctx, int flags, const char *t, int n, int s, int e) {
  toks *k = ctx;
  k->len += (size_t)snprintf(k->out + k->len, sizeof k->out - k->len, "%s%s%.*s",
                             k->len ? " " : "", flags & FTS5_TOKEN_COLOCATED ? "+" : "", n, t);
  if (k->n < 64) { k->start[k->n] = s; k->end[k->n] = e; k->n++; }
  return 0;
}

static const char *tokens(const char *text) {
  static toks k;
  memset(&k, 0, sizeof k);
  ae__lex_tokenize(text, (int)strlen(text), collect, &k);
  return k.out;
}

static void test_tokenizer(void) {
  /* parts at camelCase, snake_case, digits and acronyms; the whole word colocated
   * ("+") after the first part when the word is more than that part */
  static const char *cases[][2] = {
    {"HTTPServerError", "http +httpservererror server error"},
    {"parse_qsl", "parse +parse_qsl qsl"},
    {"sha256sum", "sha +sha256sum 256 sum"},
    {"getX", "get +getx x"},
    {"__init__", "init +__init__"},
    {"word", "word"},
    {"XMLHttpRequest2", "xml +xmlhttprequest2 http request 2"},
    {"a.b(c) -> d_e", "a b c d +d_e e"},
    {"na\xc3\xafveCase", "na\xc3\xafve +na\xc3\xafvecase case"},
    {"ALLCAPS", "allcaps"},
    {"___", ""},
    {"", ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *got = tokens(cases[i][0]);
    CHECKF(!strcmp(got, cases[i][1]), "'%s' -> '%s', want '%s'", cases[i][0], got, cases[i][1]);
  }
  toks k;
  memset(&k, 0, sizeof k);
  ae__lex_tokenize("x parse_qsl", 11, collect, &k);
  CHECK(k.n == 4 && k.start[1] == 2 && k.end[1] == 7 && k.start[2] == 2 && k.end[2] == 11 &&
        k.start[3] == 8 && k.end[3] == 11);
  /* a long word: parts cut at AE__LEX_MAX_TOKEN, no whole token */
  char longw[300];
  memset(longw, 'a', sizeof longw - 1);
  longw[sizeof longw - 1] = 0;
  longw[150] = '_';
  memset(&k, 0, sizeof k);
  ae__lex_tokenize(longw, (int)strlen(longw), collect, &k);
  CHECK(k.n == 2 && strlen(k.out) == 2 * AE__LEX_MAX_TOKEN + 1);
  /* a long run of UTF-8 continuation bytes (invalid): cut hard, never an empty token
   * (found by fuzz_fts_tokenizer) */
  char cont[67];
  memset(cont, 0x98, 66);
  cont[66] = 0;
  memset(&k, 0, sizeof k);
  ae__lex_tokenize(cont, 66, collect, &k);
  CHECK(k.n == 1 && strlen(k.out) == AE__LEX_MAX_TOKEN);
  /* query mode: terms pass through */
  memset(&k, 0, sizeof k);
  ae__lex_tokenize_terms("parse_qsl  httpserver", 21, collect, &k);
  CHECK(!strcmp(k.out, "parse_qsl httpserver"));
  int n;
  char *e = ae__lex_match_expr("Return the parse_qsl of the HTTPServer, parse it", &n);
  CHECKF(e && !strcmp(e, "\"return\" OR \"parse\" OR \"parse_qsl\" OR \"qsl\" OR \"http\" OR"
                         " \"httpserver\" OR \"server\""), "%s", e);
  CHECK(n == 7);
  ae__free(e);
  e = ae__lex_match_expr("?? -- !!", &n);
  CHECK(e && !*e && n == 0);
  ae__free(e);
}

/* ---- a small index ------------------------------------------------------------------ */

typedef struct { const char *id, *file, *type, *lang, *sig, *summary, *snippet; } doc;
static const doc k_docs[] = {
  {"u:1", "urllib/parse.py", "function", "python", "def parse_qsl(qs)", "Parse a query string.",
   "def parse_qsl(qs):\n    # split on ampersands and semicolons\n    return [p.split('=') for p in qs.split('&')]"},
  {"u:2", "urllib/parse.py", "function", "python", "def splitvalue(attr)", "",
   "def splitvalue(attr):\n    return attr.partition('=')"},
  {"h:1", "http/server.py", "class", "python", "class HTTPServerError(Exception)", "Server failure.",
   "class HTTPServerError(Exception):\n    pass"},
  {"h:2", "http/client.py", "function", "python", "def getConnection(host)", "Open a connection.",
   "def getConnection(host):\n    return HTTPConnection(host)"},
  {"j:1", "net/json.js", "function", "javascript", "function parseJson(text)", "Parse JSON text.",
   "function parseJson(text) { return JSON.parse(text); }"},
  {"r:1", "src/lib.rs", "function", "rust", "fn sha256_digest(data: &[u8])", "SHA-256 of bytes.",
   "fn sha256_digest(data: &[u8]) -> [u8; 32] { digest(data) }"},
};
#define ND (sizeof k_docs / sizeof *k_docs)

static void to_ann(const doc *d, ae_annotation *a) {
  memset(a, 0, sizeof *a);
  a->node_id = d->id; a->file_path = d->file; a->node_type = d->type; a->language = d->lang;
  a->signature = d->sig; a->summary = d->summary; a->snippet = d->snippet; a->start_line = 1; a->end_line = 2;
}

static void vec_of(int i, float *v) {
  for (int d = 0; d < DIM; d++) v[d] = d == i % DIM ? 1.0f : 0.01f * (float)d;
}

static int put(ae_store *s, const ae_annotation *a, int i, int with_vec) {
  uint8_t h[16];
  float v[DIM];
  char key[256];
  snprintf(key, sizeof key, "%s|%s|%s", a->signature, a->summary, a->snippet);
  ae_text_hash(key, strlen(key), h);
  vec_of(i, v);
  return ae_store_put(s, a, h, FP, with_vec ? v : NULL, DIM, 0);
}

static void fill(ae_store *s, int with_vec) {
  CHECK_OK(ae_store_begin(s));
  for (size_t i = 0; i < ND; i++) {
    ae_annotation a;
    to_ann(&k_docs[i], &a);
    CHECK_OK(put(s, &a, (int)i, with_vec));
  }
  CHECK_OK(ae_store_commit(s));
}

/* node id of the first lexical hit of text under filters (NULL/"" = none), or "" */
static const char *first(ae_store *s, const char *text, const char *lang, const char *type, const char *glob,
                         size_t *n_out) {
  static char id[64];
  ae_search_options o;
  ae_search_options_default(&o);
  o.mode = AE_SEARCH_LEXICAL;
  o.language = lang; o.node_type = type; o.path_glob = glob;
  ae_search_hit *h = NULL;
  size_t n = 0;
  id[0] = 0;
  int rc = ae_store_search_ex(s, &o, text, NULL, NULL, 0, &h, &n);
  CHECK_OK(rc);
  if (!rc && n) {
    snprintf(id, sizeof id, "%s", h[0].node_id);
    CHECK(h[0].lexical_rank == 1 && h[0].vector_rank == 0 && h[0].score > 0);
  }
  if (n_out) *n_out = n;
  ae_search_hits_free(h, n);
  return id;
}

static void check_in_step(const char *path, const char *when) {
  ae_store *s;
  CHECK_OK(ae_store_open(path, 1, &s));
  uint64_t a = 0, x = 0;
  int rc = ae_store_lexical_count(s, &a, &x);
  CHECKF(rc == AE_OK && a == x, "%s: %llu annotations, %llu indexed (%s)", when, (unsigned long long)a,
         (unsigned long long)x, rc ? ae_last_error() : "");
  ae_store_close(s);
  /* FTS5's own check of the index structure */
  sqlite3 *db;
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  REQUIRE(ae__lex_register(db, path) == AE_OK);
  char *err = NULL;
  CHECKF(sqlite3_exec(db, "INSERT INTO lexical(lexical) VALUES ('integrity-check')", NULL, NULL, &err) == SQLITE_OK,
         "%s: %s", when, err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

static void test_search(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/lex.db", dir);
  ae_store *s;
  CHECK_OK(ae_store_open(path, 0, &s));
  const char *why = NULL;
  CHECK(ae_store_default_mode(s, &why) == AE_SEARCH_LEXICAL && why && strstr(why, "no vectors"));
  CHECK_OK(ae_store_register_model(s, FP, "tiny", "/nonexistent-model-dir", DIM));
  fill(s, 1);
  CHECK(ae_store_default_mode(s, &why) == AE_SEARCH_HYBRID);
  size_t n;
  CHECK(!strcmp(first(s, "parse_qsl", NULL, NULL, NULL, NULL), "u:1"));
  CHECK(!strcmp(first(s, "server error", NULL, NULL, NULL, NULL), "h:1"));
  CHECK(!strcmp(first(s, "HTTPServerError", NULL, NULL, NULL, NULL), "h:1"));
  CHECK(!strcmp(first(s, "connections", NULL, NULL, NULL, NULL), "h:2"));   /* stemmed */
  CHECK(!strcmp(first(s, "sha256", NULL, NULL, NULL, NULL), "r:1"));
  CHECK(!strcmp(first(s, "semicolon", NULL, NULL, NULL, NULL), "u:1")); /* a comment, stemmed */
  /* filters */
  CHECK(!strcmp(first(s, "parse", "javascript", NULL, NULL, &n), "j:1") && n == 1);
  CHECK(!strcmp(first(s, "parse", NULL, NULL, "net/*", &n), "j:1") && n == 1);
  CHECK(!strcmp(first(s, "server connection", NULL, "class", NULL, &n), "h:1") && n == 1);
  first(s, "parse_qsl", "rust", NULL, NULL, &n);
  CHECK(n == 0);
  first(s, "zzzunknownword", NULL, NULL, NULL, &n);
  CHECK(n == 0);
  first(s, "?!", NULL, NULL, NULL, &n);
  CHECK(n == 0);
  /* vector and hybrid: the query vector is doc 2's */
  float q[DIM];
  vec_of(2, q);
  ae_search_options o;
  ae_search_options_default(&o);
  o.mode = AE_SEARCH_VECTOR;
  ae_search_hit *h = NULL;
  CHECK_OK(ae_store_search_ex(s, &o, NULL, FP, q, DIM, &h, &n));
  CHECK(n == ND && !strcmp(h[0].node_id, "h:1") && h[0].vector_rank == 1 && h[0].lexical_rank == 0 &&
        h[0].score > 0.99f && !strcmp(h[0].language, "python"));
  ae_search_hits_free(h, n);
  o.path_glob = "urllib/*";
  CHECK_OK(ae_store_search_ex(s, &o, NULL, FP, q, DIM, &h, &n));
  CHECK(n == 2 && !strncmp(h[0].file_path, "urllib/", 7) && !strncmp(h[1].file_path, "urllib/", 7));
  ae_search_hits_free(h, n);
  o.path_glob = NULL;
  o.mode = AE_SEARCH_HYBRID;
  CHECK_OK(ae_store_search_ex(s, &o, "parse_qsl", FP, q, DIM, &h, &n));
  /* u:1 is lexical #1, h:1 vector #1 and in no lexical list; every score is the RRF
   * sum 1/(60 + rank) over the lists the hit is in, in descending order */
  int saw_u1 = 0, saw_h1 = 0, fused_ok = 1;
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(h[i].node_id, "u:1")) saw_u1 = h[i].lexical_rank == 1 && h[i].vector_rank > 0;
    if (!strcmp(h[i].node_id, "h:1")) saw_h1 = h[i].vector_rank == 1 && h[i].lexical_rank == 0;
    double want = (h[i].lexical_rank ? 1.0 / (60 + h[i].lexical_rank) : 0) +
                  (h[i].vector_rank ? 1.0 / (60 + h[i].vector_rank) : 0);
    if (fabs(h[i].score - want) > 1e-6 || (i && h[i].score > h[i - 1].score)) fused_ok = 0;
  }
  CHECKF(n == ND && saw_u1 && saw_h1 && fused_ok, "n %zu u1 %d h1 %d fused %d", n, saw_u1, saw_h1, fused_ok);
  ae_search_hits_free(h, n);
  /* bad inputs */
  CHECK(ae_store_search_ex(s, &o, "x", NULL, NULL, 0, &h, &n) == AE_EINVAL && !h && !n);
  o.mode = AE_SEARCH_LEXICAL;
  CHECK(ae_store_search_ex(s, &o, "", NULL, NULL, 0, &h, &n) == AE_EINVAL);
  o.mode = 7;
  CHECK(ae_store_search_ex(s, &o, "x", NULL, NULL, 0, &h, &n) == AE_EINVAL);
  CHECK(ae_search_mode_parse("lexical") == AE_SEARCH_LEXICAL && ae_search_mode_parse("bm25") == -1 &&
        !strcmp(ae_search_mode_name(AE_SEARCH_HYBRID), "hybrid"));

  /* an update replaces the indexed words; a rollback leaves nothing behind */
  ae_annotation a;
  to_ann(&k_docs[1], &a);
  a.snippet = "def splitvalue(attr):\n    return attr.rpartition('=')  # quokka";
  CHECK_OK(ae_store_begin(s));
  CHECK_OK(put(s, &a, 1, 1));
  CHECK_OK(ae_store_commit(s));
  CHECK(!strcmp(first(s, "quokka", NULL, NULL, NULL, NULL), "u:2"));
  first(s, "partition", NULL, NULL, NULL, &n);
  CHECK(n == 0);
  a.snippet = "def splitvalue(attr): wombat";
  CHECK_OK(ae_store_begin(s));
  CHECK_OK(put(s, &a, 1, 1));
  ae_store_rollback(s);
  first(s, "wombat", NULL, NULL, NULL, &n);
  CHECK(n == 0);
  CHECK(!strcmp(first(s, "quokka", NULL, NULL, NULL, NULL), "u:2"));
  /* prune: urllib/parse.py keeps only u:1 */
  ae_annotation keep;
  to_ann(&k_docs[0], &keep);
  size_t deleted = 0;
  CHECK_OK(ae_store_prune(s, &keep, 1, &deleted));
  CHECK(deleted == 1);
  first(s, "quokka", NULL, NULL, NULL, &n);
  CHECK(n == 0);
  ae_store_close(s);
  check_in_step(path, "after update, rollback and prune");

  /* VACUUM may renumber rowids; lex_id keys the index, so it stays right */
  sqlite3 *db;
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  REQUIRE(ae__lex_register(db, path) == AE_OK);
  CHECK(sqlite3_exec(db, "DELETE FROM annotations WHERE node_id = 'h:2'; VACUUM", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  CHECK_OK(ae_store_open(path, 1, &s));
  CHECK(!strcmp(first(s, "sha256", NULL, NULL, NULL, NULL), "r:1"));
  CHECK(!strcmp(first(s, "parse_qsl", NULL, NULL, NULL, NULL), "u:1"));
  ae_store_close(s);
  check_in_step(path, "after VACUUM");

  /* another tokenizer version recorded: read-only refuses lexical search, a writer
   * rebuilds the index */
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "UPDATE meta SET value = 'astcode-0' WHERE key = 'lexical_tokenizer'", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  CHECK_OK(ae_store_open(path, 1, &s));
  ae_search_options_default(&o);
  o.mode = AE_SEARCH_LEXICAL;
  CHECK(ae_store_search_ex(s, &o, "parse", NULL, NULL, 0, &h, &n) == AE_EUNSUPPORTED);
  ae_store_close(s);
  CHECK_OK(ae_store_open(path, 0, &s));
  CHECK(!strcmp(first(s, "parse_qsl", NULL, NULL, NULL, NULL), "u:1"));
  ae_store_close(s);
  check_in_step(path, "after a tokenizer rebuild");
}

/* A schema-2 file (before the lexical index): read-only it searches by vector only;
 * opened for writing it is upgraded and every annotation indexed. */
static void test_upgrade_v2(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/v2.db", dir);
  sqlite3 *db;
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, OLD_SCHEMA(OLD_SCHEMA_TRUNCATED, "2"), NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_stmt *st;
  REQUIRE(sqlite3_prepare_v2(db, "INSERT INTO annotations VALUES (?1, ?2, 1, 2, ?3, ?4, ?5, ?6, ?7, x'00', 0)",
                             -1, &st, NULL) == SQLITE_OK);
  for (size_t i = 0; i < ND; i++) {
    const doc *d = &k_docs[i];
    const char *v[7] = {d->id, d->file, d->type, d->lang, d->sig, d->summary, d->snippet};
    for (int k = 0; k < 7; k++) sqlite3_bind_text(st, k + 1, v[k], -1, SQLITE_STATIC);
    CHECK(sqlite3_step(st) == SQLITE_DONE);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  ae_store *s;
  CHECK_OK(ae_store_open(path, 1, &s));
  ae_search_options o;
  ae_search_options_default(&o);
  o.mode = AE_SEARCH_LEXICAL;
  ae_search_hit *h = NULL;
  size_t n = 0;
  CHECK(ae_store_search_ex(s, &o, "parse", NULL, NULL, 0, &h, &n) == AE_EUNSUPPORTED &&
        strstr(ae_last_error(), "upgrade"));
  ae_store_close(s);
  CHECK_OK(ae_store_open(path, 0, &s));
  CHECK(!strcmp(first(s, "parse_qsl", NULL, NULL, NULL, NULL), "u:1"));
  CHECK(!strcmp(first(s, "HTTPServerError", NULL, NULL, NULL, NULL), "h:1"));
  /* rows added after the upgrade get the next lex_id */
  ae_annotation a;
  to_ann(&k_docs[0], &a);
  a.node_id = "new:1";
  a.signature = "def brand_new_function()";
  CHECK_OK(ae_store_begin(s));
  CHECK_OK(put(s, &a, 0, 0));
  CHECK_OK(ae_store_commit(s));
  CHECK(!strcmp(first(s, "brand_new_function", NULL, NULL, NULL, NULL), "new:1"));
  ae_store_close(s);
  check_in_step(path, "after the v2 upgrade");
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK);
  CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 3);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

/* ---- SIGKILL ------------------------------------------------------------------------- */

enum { KN = 600, KB = 50 };

/* Item i in round r: its own word "w<i>r<r>" (the rounds rewrite a third of the
 * texts), so the index's content per row can be checked exactly. */
static void kill_item(int i, int round, ae_annotation *a, char *id, char *sig) {
  snprintf(id, 32, "k%d", i);
  snprintf(sig, 64, "def fn_%d(): w%dr%d", i, i, i % 3 == 0 ? round : 0);
  memset(a, 0, sizeof *a);
  a->node_id = id; a->file_path = i % 2 ? "a.py" : "b.py"; a->node_type = "function"; a->language = "python";
  a->signature = sig; a->summary = ""; a->snippet = sig;
}

/* Writes every item in batches of KB; before committing batch `stop_at` it reports
 * on fd and waits (for the SIGKILL): the kill lands inside an open transaction. */
static void kill_child(const char *path, int round, int stop_at, int fd) {
  ae_store *s;
  if (ae_store_open(path, 0, &s)) _exit(3);
  for (int b = 0; b * KB < KN; b++) {
    if (ae_store_begin(s)) _exit(3);
    for (int i = b * KB; i < (b + 1) * KB && i < KN; i++) {
      ae_annotation a; char id[32], sig[64];
      kill_item(i, round, &a, id, sig);
      if (put(s, &a, i, 1)) _exit(3);
    }
    if (b == stop_at) {
      if (write(fd, "x", 1) != 1) _exit(3);
      for (;;) pause();
    }
    if (ae_store_commit(s)) _exit(3);
  }
  ae_store_close(s);
  _exit(0);
}

static void test_sigkill(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/kill.db", dir);
  for (int round = 1; round <= 4; round++) {
    int stop_at = round;      /* batches 0..round-1 commit, batch `round` is killed open */
    int p[2];
    REQUIRE(pipe(p) == 0);
    pid_t pid = fork();
    if (pid == 0) { close(p[0]); kill_child(path, round, stop_at, p[1]); }
    close(p[1]);
    char c;
    CHECK(read(p[0], &c, 1) == 1);
    kill(pid, SIGKILL);
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    check_in_step(path, "after SIGKILL");
    /* row by row: each committed item is found by its current whole word (an exact
     * token query) and by nothing else; the words of the killed batch and the
     * superseded words are found nowhere */
    sqlite3 *db;
    REQUIRE(sqlite3_open(path, &db) == SQLITE_OK && ae__lex_register(db, path) == AE_OK);
    sqlite3_stmt *st;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT group_concat(a.node_id) FROM lexical JOIN annotations a"
                               " ON a.lex_id = lexical.rowid WHERE lexical MATCH ?1", -1, &st, NULL) == SQLITE_OK);
    int bad = 0;
    for (int i = 0; i < KN; i++) {
      char id[32], word[40];
      snprintf(id, sizeof id, "k%d", i);
      int committed = i < stop_at * KB;
      for (int r = 0; r <= round; r++) {
        if (r && i % 3) break;
        snprintf(word, sizeof word, "\"w%dr%d\"", i, r);
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, word, -1, SQLITE_TRANSIENT);
        const char *got = sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        int cur = i % 3 ? 0 : round;
        if (committed && r == cur ? !got || strcmp(got, id) : got != NULL) {
          if (bad++ < 5) fprintf(stderr, "round %d: %s -> %s\n", round, word, got ? got : "(none)");
        }
      }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    CHECKF(bad == 0, "round %d: %d items with the wrong index rows", round, bad);
  }
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/ae_lexical_%d", (int)getpid());
  REQUIRE(mkdir(dir, 0700) == 0 || 1);
  test_tokenizer();
  test_search();
  test_upgrade_v2();
  test_sigkill();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) {}
  TEST_DONE();
}
