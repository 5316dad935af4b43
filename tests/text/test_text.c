/* Text building and cleaning: signature, summary, language-aware comment removal,
 * the whole "Signature: | Summary: | Code:" text, and annotation loading from JSONL
 * and from the original's SQLite table with bad records reported and skipped. */
#include "astembed.h"
#include "test.h"
#include <sqlite3.h>
#include <unistd.h>

static int eq(char *got, const char *want) {
  int ok = got && !strcmp(got, want);
  if (!ok) fprintf(stderr, "  got:  [%s]\n  want: [%s]\n", got ? got : "(null)", want);
  ae_free(got);
  return ok;
}

static void test_signature(void) {
  CHECK(eq(ae_clean_signature("def  f(a,\n   b)"), "def f(a, b)"));
  CHECK(eq(ae_clean_signature("  export function calculateSum(a: number, b: number): number"),
           "calculateSum(a, b): number"));
  CHECK(eq(ae_clean_signature("public static void main(String[] args)"),
           "static void main(String[] args)"));       /* only ONE modifier goes */
  CHECK(eq(ae_clean_signature("async function load(url: string)"), "load(url)"));
  CHECK(eq(ae_clean_signature("const add = (a: number, b: number)=>a+b"),
           "const add = (a, b) => a+b"));
  CHECK(eq(ae_clean_signature("def f(self, a: int = 3, *args: str, **kw: Dict[str, int]) -> bool"),
           "def f(self, a = 3, *args, **kw) -> bool"));
  CHECK(eq(ae_clean_signature("def g(x={'a': 1}, key=lambda v: v)"), "def g(x={'a': 1}, key=lambda v: v)"));
  CHECK(eq(ae_clean_signature("def h(cb: Callable[[int, str], None], y)"), "def h(cb, y)"));
  CHECK(eq(ae_clean_signature("def __init__(self, _private_name)"), "def __init__(self, _private_name)"));
  CHECK(eq(ae_clean_signature("class _Feature"), "class _Feature"));
  CHECK(eq(ae_clean_signature("function_table(x)"), "function_table(x)"));
  CHECK(eq(ae_clean_signature("myfunction (x)"), "myfunction (x)"));
  CHECK(eq(ae_clean_signature("f(m: Map<string, number>, n: (x: number) => void)"), "f(m, n)"));
  CHECK(eq(ae_clean_signature("def q(s: str = \"a:b\")"), "def q(s = \"a:b\")"));
  CHECK(eq(ae_clean_signature(""), ""));
  CHECK(eq(ae_clean_signature("pub fn len(&self) -> usize"), "fn len(&self) -> usize"));
}

static void test_summary(void) {
  CHECK(eq(ae_clean_summary("This function returns the **sum** of *two* numbers."),
           "returns the sum of two numbers."));
  CHECK(eq(ae_clean_summary("this method  calls `os.path.join`\n twice"), "calls os.path.join twice"));
  CHECK(eq(ae_clean_summary("This class wraps __init__ and _x_y"), "wraps __init__ and _x_y"));
  CHECK(eq(ae_clean_summary("Compute a * b and pass *args, **kwargs"), "Compute a * b and pass *args, **kwargs"));
  CHECK(eq(ae_clean_summary("***very*** important"), "very important"));
  CHECK(eq(ae_clean_summary("This functionality is odd"), "This functionality is odd"));
  CHECK(eq(ae_clean_summary("   "), ""));
}

static void test_code(void) {
  CHECK(eq(ae_clean_code("x = 1  # set x\ny = '#not a comment'\n", "python"),
           "x = 1 y = '#not a comment'"));
  CHECK(eq(ae_clean_code("def f():\n    \"\"\"Doc # inside\n    more\"\"\"\n    return 1 # c", "python"),
           "def f(): \"\"\"Doc # inside more\"\"\" return 1"));
  CHECK(eq(ae_clean_code("#include <stdio.h>\nint x; // c\n/* block\n comment */int y;", "c"),
           "#include <stdio.h> int x; int y;"));
  CHECK(eq(ae_clean_code("const u = \"http://x\"; // c\nlet s = '/* no */';", "javascript"),
           "const u = \"http://x\"; let s = '/* no */';"));
  CHECK(eq(ae_clean_code("#[derive(Debug)]\nstruct S<'a> { x: &'a str } // c", "rust"),
           "#[derive(Debug)] struct S<'a> { x: &'a str }"));
  CHECK(eq(ae_clean_code("#include <x.h>\n# a comment\nint y; // z\n#[attr]", ""),
           "#include <x.h> int y; #[attr]"));
  CHECK(eq(ae_clean_code("echo hi # c\n#!/bin/sh", "shell"), "echo hi #!/bin/sh"));
  CHECK(eq(ae_clean_code("s = \"a\\\"#b\" # c", "python"), "s = \"a\\\"#b\""));
  CHECK(eq(ae_clean_code("__dunder__ = _private  # x", "python"), "__dunder__ = _private"));
  CHECK(eq(ae_clean_code("", "python"), ""));
  CHECK(eq(ae_clean_code("a /* unterminated", "c"), "a"));
  CHECK(eq(ae_clean_code("it's # comment\nx", "python"), "it's # comment x")); /* open quote ends at newline */
}

static void test_text(void) {
  ae_annotation a = {.node_id = "n1", .file_path = "m.py", .language = "python",
                     .signature = "def add(a: int, b: int) -> int",
                     .summary = "This function adds *two* ints.",
                     .snippet = "def add(a, b):\n    # sum\n    return a + b"};
  char *t; size_t n; int capped;
  CHECK_OK(ae_annotation_text(&a, NULL, &t, &n, &capped));
  CHECK(eq(t, "Signature: def add(a, b) -> int | Summary: adds two ints. | Code: def add(a, b): return a + b"));
  ae_text_options o;
  ae_text_options_default(&o);
  o.include_code = 0;
  CHECK_OK(ae_annotation_text(&a, &o, &t, &n, &capped));
  CHECK(eq(t, "Signature: def add(a, b) -> int | Summary: adds two ints."));
  ae_text_options_default(&o);
  o.strip_comments = 0;
  o.include_summary = 0;
  CHECK_OK(ae_annotation_text(&a, &o, &t, &n, &capped));
  CHECK(eq(t, "Signature: def add(a, b) -> int | Code: def add(a, b): # sum return a + b"));
  ae_annotation e = {.node_id = "empty", .signature = " ", .summary = "", .snippet = "# only"};
  e.language = "python";
  CHECK(ae_annotation_text(&e, NULL, &t, &n, &capped) == AE_EINVAL && t == NULL);
  CHECK(strstr(ae_last_error(), "empty") != NULL);
  ae_annotation s = {.node_id = "s", .summary = "Summary only"};
  CHECK_OK(ae_annotation_text(&s, NULL, &t, &n, &capped));
  CHECK(eq(t, "Summary: Summary only"));
  /* code cap: cut at a UTF-8 boundary and reported */
  char big[300];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  big[99] = (char)0xC3; big[100] = (char)0xA9; /* é straddles the cut at 100 */
  ae_annotation b = {.node_id = "b", .snippet = big, .language = "python"};
  ae_text_options_default(&o);
  o.max_code_chars = 100;
  CHECK_OK(ae_annotation_text(&b, &o, &t, &n, &capped));
  CHECK(capped == 1 && n == strlen("Code: ") + 99);
  ae_free(t);
}

typedef struct { int n; char last[600]; } errs;
static void on_err(void *ud, const char *where, const char *msg) {
  errs *e = ud;
  e->n++;
  snprintf(e->last, sizeof e->last, "%s: %s", where, msg);
}

static void test_jsonl_load(void) {
  char path[] = "/tmp/ae_text_XXXXXX";
  int fd = mkstemp(path);
  FILE *f = fdopen(fd, "w");
  fputs("{\"nodeId\": \"a.py:1:2:function\", \"signature\": \"def a()\", \"summary\": \"\", "
        "\"sourceSnippet\": \"def a(): pass\", \"metadata\": {\"file_path\": \"a.py\", "
        "\"start_line\": 1, \"end_line\": 2, \"node_type\": \"function\"}}\n", f);
  fputs("{not json}\n", f);                                           /* line 2 */
  fputs("{\"signature\": \"def b()\"}\n", f);                           /* 3: no nodeId */
  fputs("{\"nodeId\": \"c\", \"signature\": 5}\n", f);                  /* 4: wrong type */
  fputs("{\"nodeId\": \"d\", \"signature\": \"x\", \"metadata\": {\"start_line\": \"1\"}}\n", f); /* 5 */
  fputs("{\"nodeId\": \"e\", \"summary\": \"\"}\n", f);                 /* 6: empty */
  fputs("[1]\n", f);                                                   /* 7 */
  fputs("{\"nodeId\": \"g\", \"signature\": \"x\", \"metadata\": {\"start_line\": 9, \"end_line\": 3}}\n", f);
  fputs("{\"nodeId\": \"h\", \"summary\": \"ok\", \"metadata\": {\"file_path\": \"x.rs\"}}\n", f);
  fclose(f);
  errs e = {0};
  ae_annotation_set *s;
  CHECK_OK(ae_annotations_load_jsonl(path, on_err, &e, &s));
  CHECK(ae_annotation_set_count(s) == 2);
  CHECK(ae_annotation_set_rejected(s) == 7 && e.n == 7);
  CHECK(strstr(e.last, ":8: end_line 3 before start_line 9") != NULL);
  const ae_annotation *it = ae_annotation_set_items(s);
  CHECK(!strcmp(it[0].node_id, "a.py:1:2:function") && it[0].start_line == 1 &&
        it[0].end_line == 2 && !strcmp(it[0].language, "python") && !strcmp(it[0].summary, ""));
  CHECK(!strcmp(it[1].node_id, "h") && !strcmp(it[1].language, "rust") && !strcmp(it[1].snippet, ""));
  ae_annotation_set_free(s);
  unlink(path);
  CHECK(ae_annotations_load_jsonl("/nonexistent/x.jsonl", on_err, &e, &s) == AE_ENOTFOUND);
  CHECK(strstr(ae_last_error(), "/nonexistent/x.jsonl") != NULL);
}

static void test_db_load(void) {
  char path[] = "/tmp/ae_text_db_XXXXXX";
  close(mkstemp(path));
  sqlite3 *db;
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  const char *sql =
    "CREATE TABLE annotations (node_id TEXT PRIMARY KEY, file_path TEXT NOT NULL, start_line INTEGER,"
    " end_line INTEGER, node_type TEXT, signature TEXT, complexity_score INTEGER, dependencies TEXT,"
    " metadata TEXT, created_at TEXT, updated_at TEXT);"
    "INSERT INTO annotations VALUES ('n1','src/a.ts',3,9,'function','export function f(x: number)',2,"
    " '[]','{\"summary\":\"This function doubles x\",\"sourceSnippet\":\"return x*2 // c\"}','t','t');"
    "INSERT INTO annotations VALUES ('n2','b.py',1,1,'function','def g()',1,'[]','not json','t','t');"
    "INSERT INTO annotations VALUES ('n3','b.py',2,2,'function','def h()',1,'[]',NULL,'t','t');";
  REQUIRE(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  errs e = {0};
  ae_annotation_set *s;
  CHECK_OK(ae_annotations_load_db(path, on_err, &e, &s));
  CHECK(ae_annotation_set_count(s) == 2 && e.n == 1);
  CHECK(strstr(e.last, ":n2: metadata is not a JSON object") != NULL);
  const ae_annotation *it = ae_annotation_set_items(s);
  CHECK(!strcmp(it[0].summary, "This function doubles x") && !strcmp(it[0].language, "typescript"));
  char *t; size_t n;
  CHECK_OK(ae_annotation_text(&it[0], NULL, &t, &n, NULL));
  CHECK(eq(t, "Signature: f(x) | Summary: doubles x | Code: return x*2"));
  ae_annotation_set_free(s);
  unlink(path);
  /* a database without the table */
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
  sqlite3_exec(db, "CREATE TABLE other(x)", NULL, NULL, NULL);
  sqlite3_close(db);
  CHECK(ae_annotations_load_db(path, on_err, &e, &s) == AE_EDB);
  CHECK(strstr(ae_last_error(), "not an annotations database") != NULL);
  unlink(path);
}

/* Every CPython annotation builds a text, and no text keeps a Python comment that
 * the snippet had outside strings (spot check: '# ' never follows code at line end). */
static void test_cpython(void) {
  const char *sh = test_shared_dir();
  if (!sh) { printf("SKIP: ../shared not found: CPython annotation check skipped\n"); return; }
  char path[4200];
  snprintf(path, sizeof path, "%s/testdata/cpython-stdlib-annotations.jsonl", sh);
  errs e = {0};
  ae_annotation_set *s;
  CHECK_OK(ae_annotations_load_jsonl(path, on_err, &e, &s));
  CHECK(ae_annotation_set_count(s) == 17358 && e.n == 0);
  size_t ok = 0, bad = 0;
  const ae_annotation *it = ae_annotation_set_items(s);
  for (size_t i = 0; i < ae_annotation_set_count(s); i++) {
    char *t; size_t n;
    if (ae_annotation_text(&it[i], NULL, &t, &n, NULL) == AE_OK) {
      ok++;
      if (strncmp(t, "Signature: ", 11) || strchr(t, '\n')) bad++;
      ae_free(t);
    }
  }
  CHECKF(ok == ae_annotation_set_count(s) && bad == 0, "ok=%zu bad=%zu", ok, bad);
  ae_annotation_set_free(s);
}

int main(void) {
  test_signature();
  test_summary();
  test_code();
  test_text();
  test_jsonl_load();
  test_db_load();
  test_cpython();
  TEST_DONE();
}
