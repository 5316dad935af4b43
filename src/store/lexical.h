/* The lexical index (private parts shared by store.c, lexical.c and fts_tokenizer.c). */
#ifndef AE_STORE_LEXICAL_H
#define AE_STORE_LEXICAL_H
#include "store/store.h"
#include <stddef.h>

/* The FTS5 tokenizer's name and version. The version is stored in meta
 * ('lexical_tokenizer'): an index built by another version is rebuilt when the
 * database is opened for writing, because a contentless FTS5 table deletes a row by
 * re-tokenizing its old text, which must give the tokens it was indexed with. */
#define AE__LEX_TOKENIZER "astcode"
#define AE__LEX_TOKENIZER_VERSION "astcode-1"
/* The table's tokenize= argument: SQLite's porter stemmer wrapped around astcode. */
#define AE__LEX_TOKENIZE_ARG "porter " AE__LEX_TOKENIZER

/* Longest token emitted, in bytes; longer parts are cut, longer whole identifiers
 * are not emitted (their parts still are). */
#define AE__LEX_MAX_TOKEN 64

/* Called once per token: flags is 0 or FTS5_TOKEN_COLOCATED (1); [start, end) is
 * the byte range of the token in the text. Non-zero stops the scan and is returned. */
typedef int (*ae__lex_token_fn)(void *ctx, int flags, const char *token, int n, int start, int end);

/* Code tokenizer, document mode (the algorithm is described in fts_tokenizer.c). */
int ae__lex_tokenize(const char *text, int len, ae__lex_token_fn cb, void *ctx);
/* Query mode: the text is terms already produced by ae__lex_tokenize; each run of
 * non-blank bytes is one token, passed through as is. */
int ae__lex_tokenize_terms(const char *text, int len, ae__lex_token_fn cb, void *ctx);

/* Registers the astcode tokenizer on db through fts5_api. AE_EUNSUPPORTED (naming
 * the problem) when this SQLite has no FTS5. */
int ae__lex_register(sqlite3 *db, const char *path);

/* The FTS5 MATCH expression of a free-text query: every distinct token of text as a
 * quoted term, joined by OR (allocated, ae__free). *n_terms = 0 (and "" returned)
 * when text has no word at all. NULL when out of memory. */
char *ae__lex_match_expr(const char *text, int *n_terms);
/* The same with the English function words kept (stop_words 0) or dropped (1). */
char *ae__lex_match_expr_ex(const char *text, int stop_words, int *n_terms);

/* Columns of the lexical table, in order: signature, summary, code, path, type. */
#define AE__LEX_COLUMNS 5
extern const double ae__lex_bm25_weights[AE__LEX_COLUMNS];

/* The best k annotations for MATCH expression match under bm25() with weights w that
 * pass o's filters: keys are annotations rowids, scores -bm25() (higher is better). */
int ae__lex_top(ae_store *s, const char *match, const double w[AE__LEX_COLUMNS], size_t k,
                const ae_search_options *o, ae__cand **out, size_t *n);
#endif
