/* astcode: an FTS5 tokenizer for source code.
 *
 * People search code by identifiers and by the words inside them: `parse_qsl`,
 * `HTTPConnection`, "http connection", "parse query string". SQLite's unicode61
 * tokenizer keeps `parse_qsl` whole and `HTTPConnection` as one word, so the query
 * "connection" finds neither. astcode makes both work:
 *
 *   - A word is a maximal run of ASCII letters, digits, '_' and non-ASCII bytes (UTF-8
 *     letters of identifiers and prose pass through whole; only ASCII is case-folded).
 *   - Each word is split into parts at '_' (dropped), at a lower->upper change
 *     (`parseQsl`), at a letter<->digit change (`sha256` -> sha 256), and at the end
 *     of an acronym (`HTTPServerError` -> http server error: an upper-case letter
 *     followed by upper then lower starts a new part). A boundary never falls inside
 *     a UTF-8 sequence: continuation bytes count as lower-case letters.
 *   - The parts are emitted lower-cased at consecutive positions, so the phrase
 *     "server error" matches `HTTPServerError`.
 *   - When the word is more than its first part, the whole word (lower-cased, '_'
 *     kept) is emitted too, colocated with the first part (FTS5_TOKEN_COLOCATED): it
 *     adds no position and no length to the document, and a query for the rare whole
 *     token `parse_qsl` ranks the exact identifier above code that merely has the
 *     words parse and qsl.
 *   - Stemming is SQLite's own porter tokenizer wrapped around this one
 *     (tokenize='porter astcode'), applied alike to documents and queries.
 *
 * Queries do not go through the splitting again: lexical.c turns the user's text into
 * tokens with the document rules and hands FTS5 each token as a quoted term, which
 * arrives here in query mode and is passed through unchanged (then stemmed by porter
 * like the document's token was). Splitting a query twice would lose the whole
 * identifier: FTS5 treats colocated query tokens as alternatives of one phrase
 * position rather than as extra terms.
 *
 * The tokenizer keeps no state: one static object serves every table and thread.
 */
#include "store/lexical.h"
#include "common/common.h"

#include <string.h>

enum { C_OTHER, C_LOW, C_UP, C_DIG, C_SEP };

/* Byte classes: a table, so the scan is one lookup per byte. */
static const unsigned char k_class[256] = {
  ['a' ... 'z'] = C_LOW, ['A' ... 'Z'] = C_UP, ['0' ... '9'] = C_DIG, ['_'] = C_SEP,
  [0x80 ... 0xFF] = C_LOW,
};

static inline int cls(unsigned char c) { return k_class[c]; }

/* Lower-cases b[0, n) into out (at most AE__LEX_MAX_TOKEN bytes, cut back to a UTF-8
 * character start; invalid UTF-8 with no character start in reach is cut hard, so a
 * token is never empty) and returns the length written. */
static int fold(const unsigned char *b, int n, char *out) {
  if (n > AE__LEX_MAX_TOKEN) {
    n = AE__LEX_MAX_TOKEN;
    while (n > 0 && (b[n] & 0xC0) == 0x80) n--;
    if (n == 0) n = AE__LEX_MAX_TOKEN;
  }
  for (int i = 0; i < n; i++) {
    unsigned char c = b[i];
    out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  return n;
}

/* Does a part end before b[i] (i > part start, b[i] not '_')? */
static int boundary(const unsigned char *b, int i, int end) {
  int p = cls(b[i - 1]), c = cls(b[i]);
  if ((p == C_DIG) != (c == C_DIG)) return 1;
  if (p == C_LOW && c == C_UP) return 1;
  return p == C_UP && c == C_UP && i + 1 < end && cls(b[i + 1]) == C_LOW;
}

/* The parts (and the whole token) of the word b[ws, we). */
static int emit_word(const unsigned char *b, int ws, int we, ae__lex_token_fn cb, void *ctx) {
  char buf[AE__LEX_MAX_TOKEN];
  int first = 1, i = ws;
  while (i < we) {
    while (i < we && cls(b[i]) == C_SEP) i++;
    if (i >= we) break;
    int ps = i++;
    while (i < we && cls(b[i]) != C_SEP && !boundary(b, i, we)) i++;
    int n = fold(b + ps, i - ps, buf);
    int rc = cb(ctx, 0, buf, n, ps, i);
    if (rc) return rc;
    if (first) {
      first = 0;
      if (i - ps != we - ws && we - ws <= AE__LEX_MAX_TOKEN) {
        n = fold(b + ws, we - ws, buf);
        if ((rc = cb(ctx, FTS5_TOKEN_COLOCATED, buf, n, ws, we))) return rc;
      }
    }
  }
  return 0;
}

int ae__lex_tokenize(const char *text, int len, ae__lex_token_fn cb, void *ctx) {
  const unsigned char *b = (const unsigned char *)text;
  int i = 0;
  while (i < len) {
    while (i < len && cls(b[i]) == C_OTHER) i++;
    int ws = i;
    while (i < len && cls(b[i]) != C_OTHER) i++;
    if (i > ws) {
      int rc = emit_word(b, ws, i, cb, ctx);
      if (rc) return rc;
    }
  }
  return 0;
}

int ae__lex_tokenize_terms(const char *text, int len, ae__lex_token_fn cb, void *ctx) {
  int i = 0;
  while (i < len) {
    while (i < len && (text[i] == ' ' || text[i] == '\t')) i++;
    int s = i;
    while (i < len && text[i] != ' ' && text[i] != '\t') i++;
    if (i > s) {
      int rc = cb(ctx, 0, text + s, i - s > AE__LEX_MAX_TOKEN ? AE__LEX_MAX_TOKEN : i - s, s, i);
      if (rc) return rc;
    }
  }
  return 0;
}

/* ---- fts5_api glue ---------------------------------------------------------------- */

static int tok_create(void *ud, const char **argv, int argc, Fts5Tokenizer **out) {
  (void)ud; (void)argv;
  if (argc) return SQLITE_ERROR;   /* astcode takes no options */
  static char self;
  *out = (Fts5Tokenizer *)&self;
  return SQLITE_OK;
}

static void tok_delete(Fts5Tokenizer *t) { (void)t; }

static int tok_tokenize(Fts5Tokenizer *t, void *ctx, int flags, const char *text, int len,
                        int (*token)(void *, int, const char *, int, int, int)) {
  (void)t;
  if (len <= 0 || !text) return SQLITE_OK;
  return (flags & FTS5_TOKENIZE_QUERY) ? ae__lex_tokenize_terms(text, len, token, ctx)
                                       : ae__lex_tokenize(text, len, token, ctx);
}

/* fts5_api comes from the fts5() SQL function, through the pointer-passing
 * interface; a SQLite without FTS5 has no such function. */
int ae__lex_register(sqlite3 *db, const char *path) {
  fts5_api *api = NULL;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
    sqlite3_step(st);
  }
  sqlite3_finalize(st);
  if (!api || api->iVersion < 2)
    return ae__error(AE_EUNSUPPORTED, "%s: this SQLite (%s) has no FTS5, which the lexical index"
                     " needs: use a SQLite built with SQLITE_ENABLE_FTS5 (Debian's libsqlite3 has it)",
                     path, sqlite3_libversion());
  static fts5_tokenizer tok = {tok_create, tok_delete, tok_tokenize};
  if (api->xCreateTokenizer(api, AE__LEX_TOKENIZER, NULL, &tok, NULL) != SQLITE_OK)
    return ae__error(AE_EDB, "%s: registering the FTS5 tokenizer: %s", path, sqlite3_errmsg(db));
  return AE_OK;
}
