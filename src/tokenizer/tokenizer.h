/* BERT WordPiece tokenizer, exact against Hugging Face `tokenizers`: private layout
 * shared by the loader (load.c), the vocabulary table (vocab.c), the Unicode helpers
 * (unicode.c) and the encoder (encode.c). Read-only after load, so any number of
 * threads may encode with one tokenizer at the same time. */
#ifndef AE_TOKENIZER_H
#define AE_TOKENIZER_H

#include "common/common.h"
#include <stdint.h>
#include <stddef.h>

/* ---- vocabulary: open-addressing hash table keyed by (continuation, bytes) ---- */

/* A WordPiece lookup asks either for a word-initial piece ("abc") or for a
 * continuation piece ("##abc"). Tokens that start with the continuing-subword prefix
 * are entered twice: under their full text (cont = 0) and under the text after the
 * prefix (cont = 1), so continuation lookups never build "##" + piece strings. */
typedef struct {
  uint32_t off;   /* into pool */
  uint32_t len;
  uint32_t tag;   /* high 32 bits of the hash: cheap rejection before memcmp */
  int32_t id;
  uint8_t cont;
} ae__vocab_entry;

typedef struct {
  char *pool;              /* every token text, NUL-terminated */
  size_t pool_len, pool_cap;
  ae__vocab_entry *entries;
  size_t n_entries, entries_cap;
  uint32_t *slots;         /* entry index + 1, 0 = empty */
  size_t mask;             /* slots - 1 (power of two) */
  uint32_t *id_off;        /* id -> pool offset of its text, UINT32_MAX = none */
  size_t n_ids;            /* largest id + 1 */
  size_t max_len[2];       /* longest key in bytes, per cont */
} ae__vocab;

void ae__vocab_init(ae__vocab *v);
void ae__vocab_free(ae__vocab *v);
/* Adds (or re-maps, last one wins as in HF's HashMap) token -> id. */
int ae__vocab_add(ae__vocab *v, const char *tok, size_t len, int32_t id);
/* Builds the continuation entries and the id -> token index. */
int ae__vocab_finish(ae__vocab *v, const char *prefix, size_t prefix_len);
/* id of the key, or -1. */
int32_t ae__vocab_find(const ae__vocab *v, int cont, const char *s, size_t len);
const char *ae__vocab_token(const ae__vocab *v, int32_t id);

/* ---- Unicode classes as HF sees them (see gen_unicode_tables.py) ---- */

int ae__uc_is_other(uint32_t c);    /* Cc, Cf, Co (Unicode 8.0): clean_text drops */
int ae__uc_is_mn(uint32_t c);       /* Mn (Unicode 8.0): strip_accents drops */
int ae__uc_is_punct(uint32_t c);    /* ASCII punctuation or P* (Unicode 8.0) */
int ae__uc_is_space(uint32_t c);    /* Rust char::is_whitespace (White_Space) */
int ae__uc_is_chinese(uint32_t c);  /* BertNormalizer's CJK ranges */
int ae__uc_is_word(uint32_t c);     /* \w for added tokens' single_word */
/* Canonical decomposition (NFD) of c into out[cap]; returns the count. */
int ae__uc_decompose(uint32_t c, uint32_t *out, int cap);
int ae__uc_ccc(uint32_t c);         /* canonical combining class */
/* Rust char::to_lowercase (full mapping, unconditional): 1 or 2 code points. */
int ae__uc_lower(uint32_t c, uint32_t out[2]);
/* Decodes one code point of s[0..n) (n >= 1). Invalid bytes are replaced by U+FFFD,
 * one per maximal subpart (WHATWG / Python "replace"); returns bytes consumed. */
size_t ae__utf8_decode(const uint8_t *s, size_t n, uint32_t *c);
/* Encodes c (valid scalar) into out[4]; returns bytes written. */
int ae__utf8_encode(uint32_t c, uint8_t *out);

/* ---- the tokenizer ---- */

typedef struct {
  char *content;   /* what is matched: normalised when normalized is set */
  char *text;      /* the token as written in the file (id_to_token) */
  size_t len;
  int32_t id;
  uint8_t single_word, lstrip, rstrip, normalized, special;
} ae__added_token;

/* Classes of ASCII bytes after normalisation, for the pre-tokenizer. */
enum { AE_CLS_WORD = 0, AE_CLS_SPACE = 1, AE_CLS_PUNCT = 2 };
#define AE_ASCII_DROP 0xFF

struct ae_tokenizer {
  char *source;            /* file the tokenizer came from, for messages */
  ae__vocab vocab;
  /* BertNormalizer */
  int normalize, clean_text, handle_chinese, strip_accents, lowercase;
  uint8_t ascii_norm[128]; /* normalised byte or AE_ASCII_DROP */
  uint8_t ascii_class[128];
  /* WordPiece */
  int32_t unk_id;
  size_t max_input_chars_per_word;
  char *prefix;
  size_t prefix_len;
  /* added tokens, matched before normalisation (normalized = 0) or after (1); the
   * content of a normalized one is stored normalised */
  ae__added_token *added;
  size_t n_added;
  uint8_t added_first[2][32]; /* bitmap of first bytes, per normalized flag */
  int added_only_first[2];    /* the first byte when all share one, else -1 */
  int any_normalized_added;
  /* post-processor: ids before and after the sequence */
  int32_t *pre_ids, *post_ids;
  size_t n_pre, n_post;
  int model_max_length;    /* tokenizer_config.json, 0 = unknown or not sane */
};

/* The tokenizer's model_max_length from tokenizer_config.json; 0 when unknown or not
 * sane (absent, <= 0 or >= 1e6, e.g. transformers' 1e30 "no limit" marker). */
int ae__tokenizer_model_max_length(const ae_tokenizer *tok);

/* Normalises text with the tokenizer's BertNormalizer (clean_text, Chinese padding,
 * strip_accents, lowercase) into a UTF-8 string allocated with ae__malloc. Exposed
 * for tests and for normalising added tokens' content at load. */
int ae__tokenizer_normalize(const ae_tokenizer *tok, const char *text, size_t len,
                            char **out, size_t *out_len);

/* Sets up the ASCII tables from the normaliser flags (load.c calls it). */
void ae__tokenizer_build_tables(ae_tokenizer *tok);

/* ---- the compiled tokenizer (compiled.c) ---- */

/* XXH3-128 over the format version and the bytes of every file ae_tokenizer_load
 * reads from model_dir (names and presence included). */
int ae__tok_cache_key(const char *model_dir, uint8_t key[16]);
/* Serialises a loaded tokenizer (allocated buffer, ae__free). */
int ae__tok_compiled_encode(const ae_tokenizer *t, const uint8_t key[16], uint8_t **out,
                            size_t *out_len);
/* Rebuilds t (zeroed, as ae__calloc gives it) from a compiled file whose key must be
 * key. Untrusted input: AE_EFORMAT / AE_EMISMATCH for anything that does not
 * validate, AE_ENOMEM; t may then be half-built and is released with
 * ae_tokenizer_free. Does not set source or the ASCII tables; records no error. */
int ae__tok_compiled_decode(const uint8_t *data, size_t len, const uint8_t key[16],
                            ae_tokenizer *t);
/* ae_tokenizer_load_cached, reporting whether the compiled file was used. */
int ae__tokenizer_load_ex(const char *model_dir, const char *cache_dir, ae_tokenizer **out,
                          int *from_cache);

#endif
