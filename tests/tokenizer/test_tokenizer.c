// ctest-labels: tokenizer
// ctest-timeout: 300
/* Tokenizer behaviour beyond the reference cases: empty and blank texts, control
 * characters, invalid UTF-8, 1 MB texts, truncation, [UNK], long words, accents, CJK,
 * the vocab.txt fallback, malformed files and allocation failures. Most checks use the
 * tiny tokenizer in tests/tokenizer/data/tiny (ids listed there); the MiniLM ones skip
 * when ../shared is missing. */
#define _GNU_SOURCE
#include "tokenizer/tokenizer.h"
#include "test.h"

#include <jansson.h>

#include <sys/stat.h>
#include <unistd.h>

/* tiny vocabulary ids */
enum { PAD, UNK, CLS, SEP, MASK, A, B, C, AB, CB_B, CB_C, HELLO, WORLD, CB_S, DOT, COMMA,
       LT, GT, E, X, CB_X, CB_A, CB_E };

static char g_src[4096];
static char g_tmp[4096];

typedef struct { int32_t *ids; size_t n; int trunc; int rc; } enc_result;

static enc_result enc(const ae_tokenizer *t, const char *s, size_t len, size_t max_len) {
  enc_result r;
  r.rc = ae_tokenizer_encode(t, s, len, max_len, &r.ids, &r.n, &r.trunc);
  return r;
}

/* Encodes a NUL-terminated text and compares with the expected ids (-1 ends). */
static int same_ids(const ae_tokenizer *t, const char *s, const int32_t *want) {
  enc_result r = enc(t, s, strlen(s), 0);
  size_t k = 0;
  while (want[k] >= 0) k++;
  int ok = r.rc == AE_OK && r.n == k && !memcmp(r.ids, want, k * sizeof *want);
  if (!ok) {
    fprintf(stderr, "text \"%s\": got", s);
    for (size_t i = 0; i < r.n; i++) fprintf(stderr, " %d", r.ids[i]);
    fprintf(stderr, "\n");
  }
  ae_free(r.ids);
  return ok;
}
#define IDS(...) ((const int32_t[]){__VA_ARGS__, -1})

static ae_tokenizer *load_tiny(void) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/tests/tokenizer/data/tiny", g_src);
  ae_tokenizer *t = NULL;
  CHECK_OK(ae_tokenizer_load(dir, &t));
  return t;
}

static void write_file(const char *dir, const char *name, const char *text) {
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  REQUIRE(f);
  fputs(text, f);
  fclose(f);
}

static void copy_file(const char *from, const char *dir, const char *name) {
  char *data;
  size_t len;
  CHECK_OK(ae__read_file(from, &data, &len));
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  REQUIRE(f);
  fwrite(data, 1, len, f);
  fclose(f);
  ae__free(data);
}

static void make_dir(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", g_tmp, name);
  mkdir(out, 0700);
}

/* ---- basic behaviour -------------------------------------------------------------- */

static void test_blank_and_control(const ae_tokenizer *t) {
  CHECK(same_ids(t, "", IDS(CLS, SEP)));
  enc_result r = enc(t, NULL, 0, 0);
  CHECK(r.rc == AE_OK && r.n == 2 && r.ids[0] == CLS && r.ids[1] == SEP && !r.trunc);
  ae_free(r.ids);
  CHECK(same_ids(t, " \t\n\r \xe3\x80\x80\xc2\xa0", IDS(CLS, SEP)));
  CHECK(same_ids(t, "\x01\x02\x7f\x1f\xe2\x80\x8b\xef\xbb\xbf", IDS(CLS, SEP)));
  CHECK(same_ids(t, "a\x01" "b", IDS(CLS, AB, SEP)));      /* removed, not a split */
  CHECK(same_ids(t, "a\x0b" "b", IDS(CLS, AB, SEP)));      /* VT is Cc: removed */
  CHECK(same_ids(t, "a\tc\nb", IDS(CLS, A, C, B, SEP)));
  r = enc(t, "a\0b", 3, 0);                                /* embedded NUL dropped */
  CHECK(r.rc == AE_OK && r.n == 3 && r.ids[1] == AB);
  ae_free(r.ids);
}

static void test_invalid_utf8(const ae_tokenizer *t) {
  CHECK(same_ids(t, "\xff\xfe", IDS(CLS, SEP)));
  CHECK(same_ids(t, "a\xff" "b", IDS(CLS, AB, SEP)));     /* U+FFFD then clean_text drops it */
  CHECK(same_ids(t, "ab\xe2\x82", IDS(CLS, AB, SEP)));    /* truncated sequence at the end */
  CHECK(same_ids(t, "\xc0\xaf" "a", IDS(CLS, A, SEP)));   /* overlong */
  CHECK(same_ids(t, "\xed\xa0\x80" "a", IDS(CLS, A, SEP))); /* surrogate */
  CHECK(same_ids(t, "\xf4\x90\x80\x80" "a", IDS(CLS, A, SEP))); /* > U+10FFFF */
  /* maximal subparts: each becomes one U+FFFD and decoding resumes at the bad byte */
  uint32_t c;
  CHECK(ae__utf8_decode((const uint8_t *)"\xe2\x82\x41", 3, &c) == 2 && c == 0xFFFD);
  CHECK(ae__utf8_decode((const uint8_t *)"\xf0\x80\x80", 3, &c) == 1 && c == 0xFFFD);
  CHECK(ae__utf8_decode((const uint8_t *)"\xed\xa0\x80", 3, &c) == 1 && c == 0xFFFD);
  CHECK(ae__utf8_decode((const uint8_t *)"\xf0\x9f\xa4\x97", 4, &c) == 4 && c == 0x1F917);
  CHECK(ae__utf8_decode((const uint8_t *)"\xf0\x9f\xa4", 3, &c) == 3 && c == 0xFFFD);
  CHECK(ae__utf8_decode((const uint8_t *)"\x80", 1, &c) == 1 && c == 0xFFFD);
  CHECK(ae__utf8_decode((const uint8_t *)"\xc3\xa9", 2, &c) == 2 && c == 0xE9);
}

static void test_words(const ae_tokenizer *t) {
  CHECK(same_ids(t, "zzz", IDS(CLS, UNK, SEP)));                 /* unknown character */
  CHECK(same_ids(t, "a\xe4\xb8\xad" "a", IDS(CLS, A, UNK, A, SEP))); /* CJK is split out */
  CHECK(same_ids(t, "abzz", IDS(CLS, UNK, SEP)));                /* unmatchable rest */
  CHECK(same_ids(t, "abc,a", IDS(CLS, AB, CB_C, COMMA, A, SEP)));
  /* max_input_chars_per_word is 5, counted after normalisation */
  CHECK(same_ids(t, "xxxxx", IDS(CLS, X, CB_X, CB_X, CB_X, CB_X, SEP)));
  CHECK(same_ids(t, "xxxxxx", IDS(CLS, UNK, SEP)));
  CHECK(same_ids(t, "xxxxe\xcc\x81", IDS(CLS, X, CB_X, CB_X, CB_X, CB_E, SEP)));
  CHECK(same_ids(t, "xxxx\xc3\xa9", IDS(CLS, X, CB_X, CB_X, CB_X, CB_E, SEP)));
  CHECK(same_ids(t, "xxxxx\xc3\xa9", IDS(CLS, UNK, SEP)));
  /* accents and case */
  CHECK(same_ids(t, "\xc3\x81" "BBBB", IDS(CLS, AB, CB_B, CB_B, CB_B, SEP)));
  CHECK(same_ids(t, "HELLO World", IDS(CLS, HELLO, WORLD, SEP)));
  /* special tokens in the text */
  CHECK(same_ids(t, "a[MASK]b", IDS(CLS, A, MASK, B, SEP)));
  CHECK(same_ids(t, "[mask]", IDS(CLS, UNK, UNK, UNK, SEP)));
  /* found by fuzzing: lstrip must not look back past the previous match (whose rstrip
   * ended inside an invalid sequence) - the stray byte is U+FFFD, not whitespace */
  CHECK(same_ids(t, "<ent>\r\x9d<ent>", IDS(CLS, 30, 30, SEP)));
  CHECK(same_ids(t, " \x85<ent>", IDS(CLS, 30, SEP)));
}

static void test_truncation(const ae_tokenizer *t) {
  const char *text = "a a a a a a a a a"; /* 9 pieces */
  size_t len = strlen(text);
  enc_result full = enc(t, text, len, 0);
  CHECK(full.rc == AE_OK && full.n == 11 && !full.trunc);
  size_t lens[] = {11, 12, 1000, 10, 5, 3, 2};
  for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
    enc_result r = enc(t, text, len, lens[i]);
    size_t want = lens[i] < 11 ? lens[i] : 11;
    CHECKF(r.rc == AE_OK && r.n == want, "max_len %zu: n %zu", lens[i], r.n);
    CHECK(r.trunc == (lens[i] < 11));
    CHECK(r.n >= 2 && r.ids[0] == CLS && r.ids[r.n - 1] == SEP);
    CHECK(r.n >= 2 && !memcmp(r.ids, full.ids, (r.n - 1) * sizeof *r.ids));
    ae_free(r.ids);
  }
  enc_result r = enc(t, text, len, 1);
  CHECK(r.rc == AE_ERANGE && r.ids == NULL && r.n == 0);
  CHECK(strstr(ae_last_error(), "max_len") != NULL);
  r = enc(t, "", 0, 2);
  CHECK(r.rc == AE_OK && r.n == 2 && !r.trunc);
  ae_free(r.ids);
  /* truncation inside a word's pieces, and exactly at the budget */
  r = enc(t, "xxxxx", 5, 4);
  CHECK(r.rc == AE_OK && r.n == 4 && r.trunc && r.ids[1] == X && r.ids[2] == CB_X);
  ae_free(r.ids);
  r = enc(t, "xxxxx   ", 8, 7);
  CHECK(r.rc == AE_OK && r.n == 7 && !r.trunc);
  ae_free(r.ids);
  int32_t *ids;
  size_t n;
  CHECK_OK(ae_tokenizer_encode(t, text, len, 4, &ids, &n, NULL)); /* truncated may be NULL */
  CHECK(n == 4);
  ae_free(ids);
  ae_free(full.ids);
}

/* 1 MB texts: a repeated phrase must give the repeated ids (this also crosses the
 * encoder's internal chunk boundaries with multi-byte characters around them). */
static void test_one_megabyte(const ae_tokenizer *t) {
  const char *phrase = "hello, \xc3\xa9 a\xcc\x81\xe4\xb8\xad x\tworld. ";
  size_t plen = strlen(phrase), reps = (1u << 20) / plen + 1;
  char *big = malloc(plen * reps + 1);
  for (size_t i = 0; i < reps; i++) memcpy(big + i * plen, phrase, plen);
  big[plen * reps] = 0;
  enc_result one = enc(t, phrase, plen, 0);
  enc_result all = enc(t, big, plen * reps, 0);
  REQUIRE(one.rc == AE_OK && all.rc == AE_OK);
  size_t k = one.n - 2;
  CHECK(all.n == 2 + k * reps && !all.trunc);
  int same = all.n == 2 + k * reps;
  for (size_t i = 0; same && i < reps; i++)
    same = !memcmp(all.ids + 1 + i * k, one.ids + 1, k * sizeof *one.ids);
  CHECK(same);
  enc_result tr = enc(t, big, plen * reps, 128);
  CHECK(tr.rc == AE_OK && tr.n == 128 && tr.trunc && tr.ids[127] == SEP);
  CHECK(tr.rc == AE_OK && !memcmp(tr.ids, all.ids, 127 * sizeof *tr.ids));
  ae_free(one.ids);
  ae_free(all.ids);
  ae_free(tr.ids);
  /* one 1 MB word: over max_input_chars_per_word, so a single [UNK] */
  memset(big, 'x', plen * reps);
  CHECK(same_ids(t, big, IDS(CLS, UNK, SEP)));
  /* 1 MB of combining marks after one letter: a single canonical-ordering run */
  for (size_t i = 0; i + 2 <= plen * reps; i += 2) memcpy(big + i, "\xcc\x81", 2);
  big[0] = 'a';
  big[(plen * reps) & ~(size_t)1] = 0;
  enc_result m = enc(t, big, strlen(big), 0);
  CHECK(m.rc == AE_OK && m.n == 3);
  ae_free(m.ids);
  /* ... and alternating classes (230, 220), which a quadratic sort would choke on;
   * all are Mn, so "x" + marks is just "x" */
  for (size_t i = 0; i + 4 <= plen * reps; i += 4) memcpy(big + i, "\xcc\x81\xcc\x96", 4);
  big[0] = 'x';
  big[1] = ' ';
  big[2] = 'x';
  big[(plen * reps) & ~(size_t)3] = 0;
  m = enc(t, big, strlen(big), 0);
  CHECK(m.rc == AE_OK && m.n == 4 && m.ids[1] == X && m.ids[2] == X);
  ae_free(m.ids);
  free(big);
}

static void test_accessors(const ae_tokenizer *t) {
  CHECK(ae_tokenizer_vocab_size(t) == 35);
  CHECK(ae_tokenizer_id_to_token(t, A) && !strcmp(ae_tokenizer_id_to_token(t, A), "a"));
  CHECK(ae_tokenizer_id_to_token(t, CB_B) && !strcmp(ae_tokenizer_id_to_token(t, CB_B), "##b"));
  CHECK(ae_tokenizer_id_to_token(t, 30) && !strcmp(ae_tokenizer_id_to_token(t, 30), "<ent>"));
  CHECK(ae_tokenizer_id_to_token(t, 32) && !strcmp(ae_tokenizer_id_to_token(t, 32), "Tag"));
  CHECK(ae_tokenizer_id_to_token(t, -1) == NULL);
  CHECK(ae_tokenizer_id_to_token(t, 1000) == NULL);
  CHECK(ae__tokenizer_model_max_length(t) == 0);
  char *s;
  size_t n;
  CHECK_OK(ae__tokenizer_normalize(t, "\xc4\xb0stanbul \xc3\x91\xe4\xb8\xad\x01!", 17, &s, &n));
  CHECK(n == strlen("istanbul n \xe4\xb8\xad !") && !strcmp(s, "istanbul n \xe4\xb8\xad !"));
  ae_free(s);
  ae_tokenizer_free(NULL);
}

/* ---- loading: errors and the vocab.txt fallback --------------------------------------- */

static void expect_load_error(const char *name, const char *json, int want_rc,
                              const char *want_text) {
  char dir[4200];
  make_dir(dir, sizeof dir, name);
  write_file(dir, "tokenizer.json", json);
  ae_tokenizer *t = (ae_tokenizer *)1;
  int rc = ae_tokenizer_load(dir, &t);
  CHECKF(rc == want_rc, "%s: rc %d (%s)", name, rc, ae_last_error());
  CHECK(t == NULL);
  CHECKF(strstr(ae_last_error(), "tokenizer.json") != NULL, "%s: %s", name, ae_last_error());
  CHECKF(strstr(ae_last_error(), want_text) != NULL, "%s: %s", name, ae_last_error());
}

#define WP_MODEL "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"vocab\":{\"[UNK]\":0,\"a\":1}}"
#define BERT_PIPE "\"normalizer\":{\"type\":\"BertNormalizer\"},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}"

static void test_malformed(void) {
  expect_load_error("bad-json", "{\"model\": {", AE_EFORMAT, "invalid JSON");
  expect_load_error("not-object", "[1,2]", AE_EFORMAT, "not an object");
  expect_load_error("bpe", "{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}," BERT_PIPE "}",
                    AE_EUNSUPPORTED, "BPE");
  expect_load_error("unigram", "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}," BERT_PIPE "}",
                    AE_EUNSUPPORTED, "Unigram");
  expect_load_error("no-model", "{" BERT_PIPE "}", AE_EFORMAT, "model");
  expect_load_error("vocab-array", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":[]}," BERT_PIPE "}",
                    AE_EFORMAT, "model.vocab");
  expect_load_error("bad-id", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":\"x\"}}," BERT_PIPE "}",
                    AE_EFORMAT, "\"a\"");
  expect_load_error("no-unk", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}," BERT_PIPE "}",
                    AE_EFORMAT, "[UNK]");
  expect_load_error("seq-norm", "{" WP_MODEL ",\"normalizer\":{\"type\":\"Sequence\"},"
                    "\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}}", AE_EUNSUPPORTED, "Sequence");
  expect_load_error("ws-pre", "{" WP_MODEL ",\"normalizer\":null,"
                    "\"pre_tokenizer\":{\"type\":\"Whitespace\"}}", AE_EUNSUPPORTED, "Whitespace");
  expect_load_error("bad-flag", "{" WP_MODEL ",\"normalizer\":{\"type\":\"BertNormalizer\","
                    "\"lowercase\":\"yes\"},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}}",
                    AE_EFORMAT, "lowercase");
  expect_load_error("bad-post", "{" WP_MODEL "," BERT_PIPE ",\"post_processor\":{\"type\":"
                    "\"ByteLevel\"}}", AE_EUNSUPPORTED, "ByteLevel");
  expect_load_error("bad-template", "{" WP_MODEL "," BERT_PIPE ",\"post_processor\":{\"type\":"
                    "\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"[X]\"}},"
                    "{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{}}}", AE_EFORMAT, "[X]");
  expect_load_error("huge-id", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"[UNK]\":0,"
                    "\"a\":2000000000}}," BERT_PIPE "}", AE_EFORMAT, "\"a\"");
  expect_load_error("post-id", "{" WP_MODEL "," BERT_PIPE ",\"post_processor\":{\"type\":"
                    "\"BertProcessing\",\"cls\":[\"[CLS]\",7],\"sep\":[\"[SEP]\",1]}}",
                    AE_EFORMAT, "post-processor id 7");
  expect_load_error("bad-added", "{" WP_MODEL "," BERT_PIPE ",\"added_tokens\":[{\"id\":1}]}",
                    AE_EFORMAT, "added_tokens[0]");
  /* a minimal valid one: no post-processor means no special tokens */
  char dir[4200];
  make_dir(dir, sizeof dir, "minimal");
  write_file(dir, "tokenizer.json", "{" WP_MODEL "," BERT_PIPE ",\"post_processor\":null}");
  ae_tokenizer *t;
  CHECK_OK(ae_tokenizer_load(dir, &t));
  if (t) {
    CHECK(same_ids(t, "A b", IDS(1, 0)));
    ae_tokenizer_free(t);
  }
  /* missing folder / files */
  CHECK(ae_tokenizer_load("/nonexistent/astembed-model", &t) == AE_ENOTFOUND);
  CHECK(strstr(ae_last_error(), "/nonexistent/astembed-model") != NULL);
  CHECK(ae_tokenizer_load(NULL, &t) == AE_EINVAL);
}

static void test_fallback_tiny(const ae_tokenizer *tiny) {
  char dir[4200];
  make_dir(dir, sizeof dir, "fallback-tiny");
  char vocab[4096] = "";
  for (int32_t i = 0; i < 30; i++) {
    strcat(vocab, ae_tokenizer_id_to_token(tiny, i));
    strcat(vocab, i == 5 ? "\r\n" : "\n");   /* a CRLF line must not matter */
  }
  write_file(dir, "vocab.txt", vocab);
  write_file(dir, "tokenizer_config.json",
             "{\"do_lower_case\": true, \"model_max_length\": 64, \"tokenizer_class\": "
             "\"BertTokenizer\"}");
  ae_tokenizer *t;
  CHECK_OK(ae_tokenizer_load(dir, &t));
  REQUIRE(t);
  CHECK(ae__tokenizer_model_max_length(t) == 64);
  const char *texts[] = {"hello world", "ABC", "\xc3\x81" "BBBB", "[MASK]a", "a,b.c", "zz"};
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
    enc_result x = enc(tiny, texts[i], strlen(texts[i]), 0), y = enc(t, texts[i], strlen(texts[i]), 0);
    CHECKF(x.n == y.n && !memcmp(x.ids, y.ids, x.n * sizeof *x.ids), "fallback: %s", texts[i]);
    ae_free(x.ids);
    ae_free(y.ids);
  }
  CHECK(same_ids(t, "xxxxxx", IDS(CLS, X, CB_X, CB_X, CB_X, CB_X, CB_X, SEP))); /* limit 100 */
  ae_tokenizer_free(t);
  /* cased + huge model_max_length (transformers' "no limit") */
  write_file(dir, "tokenizer_config.json", "{\"do_lower_case\": false, \"model_max_length\": 1e30}");
  CHECK_OK(ae_tokenizer_load(dir, &t));
  if (t) {
    CHECK(ae__tokenizer_model_max_length(t) == 0);
    CHECK(same_ids(t, "A a", IDS(CLS, UNK, A, SEP)));
    ae_tokenizer_free(t);
  }
  write_file(dir, "tokenizer_config.json", "{\"tokenizer_class\": \"XLNetTokenizer\"}");
  CHECK(ae_tokenizer_load(dir, &t) == AE_EUNSUPPORTED);
  CHECK(strstr(ae_last_error(), "tokenizer_config.json") && strstr(ae_last_error(), "XLNet"));
  write_file(dir, "tokenizer_config.json", "{bad");
  CHECK(ae_tokenizer_load(dir, &t) == AE_EFORMAT);
  CHECK(strstr(ae_last_error(), "tokenizer_config.json") != NULL);
  write_file(dir, "tokenizer_config.json", "{\"unk_token\": \"<unk>\"}");
  CHECK(ae_tokenizer_load(dir, &t) == AE_EFORMAT);
  CHECK(strstr(ae_last_error(), "vocab.txt") && strstr(ae_last_error(), "<unk>"));
  char path[4400];
  snprintf(path, sizeof path, "%s/vocab.txt", dir);
  unlink(path);
  CHECK(ae_tokenizer_load(dir, &t) == AE_ENOTFOUND);
  CHECK(strstr(ae_last_error(), "vocab.txt") != NULL);
}

/* The real MiniLM folder without tokenizer.json must tokenize like tokenizer.json. */
static void test_fallback_minilm(const char *shared) {
  char model[4200], dir[4200], path[4400];
  snprintf(model, sizeof model, "%s/models/all-MiniLM-L6-v2", shared);
  make_dir(dir, sizeof dir, "fallback-minilm");
  const char *files[] = {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/%s", model, files[i]);
    copy_file(path, dir, files[i]);
  }
  ae_tokenizer *a, *b;
  CHECK_OK(ae_tokenizer_load(model, &a));
  CHECK_OK(ae_tokenizer_load(dir, &b));
  REQUIRE(a && b);
  CHECK(ae__tokenizer_model_max_length(a) == 512 && ae__tokenizer_model_max_length(b) == 512);
  CHECK(ae_tokenizer_vocab_size(a) == 30522 && ae_tokenizer_vocab_size(b) == 30522);
  snprintf(path, sizeof path, "%s/testdata/minilm-tokenizer-cases.jsonl", shared);
  FILE *f = fopen(path, "r");
  REQUIRE(f);
  char *line = NULL;
  size_t cap = 0, cases = 0, same = 0;
  while (getline(&line, &cap, f) > 0 && cases < 3000) {
    json_error_t err;
    json_t *v = json_loads(line, JSON_ALLOW_NUL, &err);
    json_t *text = json_object_get(v, "text");
    if (!json_is_string(text)) { json_decref(v); continue; }
    enc_result x = enc(a, json_string_value(text), json_string_length(text), 0);
    enc_result y = enc(b, json_string_value(text), json_string_length(text), 0);
    cases++;
    same += x.rc == AE_OK && y.rc == AE_OK && x.n == y.n && !memcmp(x.ids, y.ids, x.n * 4);
    ae_free(x.ids);
    ae_free(y.ids);
    json_decref(v);
  }
  free(line);
  fclose(f);
  printf("vocab.txt fallback: %zu of %zu MiniLM cases identical to tokenizer.json\n", same, cases);
  CHECK(cases == 3000 && same == cases);
  /* MiniLM specifics: [UNK] for emoji, CJK split, accents, İ */
  CHECK(same_ids(a, "\xf0\x9f\xa4\x97", IDS(101, 100, 102)));
  CHECK(same_ids(a, "Cr\xc3\xa8me", IDS(101, 13675, 21382, 102)));
  ae_tokenizer_free(a);
  ae_tokenizer_free(b);
}

/* ---- allocation failures ------------------------------------------------------------ */

static long g_alloc_count, g_fail_at;

static void *fail_malloc(size_t n, void *ud) {
  if (g_alloc_count++ == g_fail_at) return NULL;
  return malloc(n);
}
static void *fail_realloc(void *p, size_t n, void *ud) {
  if (g_alloc_count++ == g_fail_at) return NULL;
  return realloc(p, n);
}
static void fail_free(void *p, void *ud) { free(p); }

static void set_failing(long at) {
  static const ae_allocator a = {fail_malloc, fail_realloc, fail_free, NULL};
  g_alloc_count = 0;
  g_fail_at = at;
  ae_set_allocator(&a);
}

/* Fails every allocation of a load in turn, then every allocation of an encode: each
 * must give AE_ENOMEM with nothing leaked (ASan checks) and nothing half-built. */
/* Fails each allocation of a load of dir in turn. */
static void sweep_load(const char *dir) {
  ae_tokenizer *t;
  set_failing(-1);
  CHECK_OK(ae_tokenizer_load(dir, &t));
  long n_load = g_alloc_count;
  ae_set_allocator(NULL);
  ae_tokenizer_free(t);
  CHECK(n_load > 5);
  int all_enomem = 1;
  for (long k = 0; k < n_load; k++) {
    set_failing(k);
    t = (ae_tokenizer *)1;
    int rc = ae_tokenizer_load(dir, &t);
    ae_set_allocator(NULL);
    if (rc != AE_ENOMEM || t != NULL) {
      all_enomem = 0;
      fprintf(stderr, "%s: load failing at allocation %ld: rc %d (%s)\n", dir, k, rc,
              ae_last_error());
      if (!rc) ae_tokenizer_free(t);
    }
  }
  CHECK(all_enomem);
}

static void test_alloc_failures(const ae_tokenizer *tiny) {
  char dir[4200], fb[4200];
  snprintf(dir, sizeof dir, "%s/tests/tokenizer/data/tiny", g_src);
  sweep_load(dir);
  /* the vocab.txt fallback, with every optional file present */
  make_dir(fb, sizeof fb, "fallback-sweep");
  char vocab[4096] = "";
  for (int32_t i = 0; i < 30; i++) {
    strcat(vocab, ae_tokenizer_id_to_token(tiny, i));
    strcat(vocab, "\n");
  }
  write_file(fb, "vocab.txt", vocab);
  write_file(fb, "tokenizer_config.json", "{\"model_max_length\": 64, \"added_tokens_decoder\": "
             "{\"1\": {\"content\": \"[UNK]\", \"special\": true}, \"4\": {\"content\": "
             "\"[MASK]\", \"special\": true, \"lstrip\": true}}}");
  write_file(fb, "special_tokens_map.json", "{\"cls_token\": {\"content\": \"[CLS]\"}}");
  sweep_load(fb);
  ae_tokenizer *t;
  CHECK_OK(ae_tokenizer_load(fb, &t));
  if (t) {
    CHECK(same_ids(t, "a [MASK]", IDS(CLS, A, MASK, SEP)));
    ae_tokenizer_free(t);
  }
  CHECK_OK(ae_tokenizer_load(dir, &t));
  REQUIRE(t);
  /* a text long enough to grow every scratch buffer */
  size_t len = 200000;
  char *text = malloc(len + 1);
  for (size_t i = 0; i < len; i++) text[i] = "ab c\xc3\xa9\xcc\x81\xcc\x81 x[MASK]Tag"[i % 21];
  text[len] = 0;
  while ((text[len - 1] & 0xC0) == 0x80) text[--len] = 0;
  set_failing(-1);
  enc_result ok = enc(t, text, len, 0);
  long n_enc = g_alloc_count;
  ae_set_allocator(NULL);
  CHECK(ok.rc == AE_OK && n_enc >= 3);
  int all_enomem = 1;
  for (long k = 0; k < n_enc; k++) {
    set_failing(k);
    enc_result r = enc(t, text, len, 0);
    ae_set_allocator(NULL);
    if (r.rc != AE_ENOMEM || r.ids || r.n) {
      all_enomem = 0;
      ae_free(r.ids);
    }
  }
  CHECK(all_enomem);
  ae_free(ok.ids);
  free(text);
  ae_tokenizer_free(t);
}

int main(void) {
  const char *src = getenv("AE_SOURCE_DIR");
  snprintf(g_src, sizeof g_src, "%s", src ? src : ".");
  snprintf(g_tmp, sizeof g_tmp, "/tmp/ae-test-tokenizer-XXXXXX");
  REQUIRE(mkdtemp(g_tmp));
  ae_tokenizer *tiny = load_tiny();
  REQUIRE(tiny);
  test_blank_and_control(tiny);
  test_invalid_utf8(tiny);
  test_words(tiny);
  test_truncation(tiny);
  test_one_megabyte(tiny);
  test_accessors(tiny);
  test_malformed();
  test_fallback_tiny(tiny);
  test_alloc_failures(tiny);
  ae_tokenizer_free(tiny);
  const char *shared = test_shared_dir();
  if (shared) test_fallback_minilm(shared);
  else printf("SKIP: ../shared not found: MiniLM vocab.txt fallback not checked\n");
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", g_tmp);
  TEST_DONE();
}
