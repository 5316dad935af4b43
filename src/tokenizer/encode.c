/* Encoding: raw text -> ids, exactly as Hugging Face's tokenizers pipeline does it.
 *
 *   1. Added tokens ("[CLS]", "[MASK]" ...) are cut out of the raw text first
 *      (leftmost-longest match, as HF's Aho-Corasick matcher), honouring single_word,
 *      lstrip and rstrip; each becomes its id directly.
 *   2. Each remaining segment is normalised (BertNormalizer: clean_text, CJK padding,
 *      NFD + drop Mn, lowercase - in that order) into a scratch buffer.
 *   3. The normalised text is split on whitespace, punctuation is isolated, and each
 *      word goes through greedy longest-match-first WordPiece ("##" continuations; a
 *      word longer than max_input_chars_per_word, or with an unmatchable rest, is one
 *      [UNK]).
 *   4. The post-processor's special tokens wrap the result; truncation keeps the first
 *      max_len - specials pieces.
 *
 * Why chunks: a segment is normalised and tokenized in pieces of ~8 KB that end right
 * after an ASCII whitespace byte. Whitespace is a starter (no combining sequence spans
 * it) and a word boundary under every setting, so the result is identical to doing the
 * whole text at once, the scratch buffer stays in cache, and with truncation a 1 MB
 * text stops after the chunk that filled the budget. ASCII takes a table-driven fast
 * path in both stages; only non-ASCII characters reach utf8proc and the range tables.
 * There is no allocation per character or word: the scratch buffers grow
 * geometrically and live for one call, so encodes on one tokenizer run in parallel. */
#include "tokenizer/tokenizer.h"

#include <string.h>

#define CHUNK 8192

typedef struct {
  const ae_tokenizer *t;
  uint8_t *nb;        /* normalised text of the current chunk */
  size_t nlen, ncap;
  uint32_t *pend;     /* pending run of non-starters (canonical reordering) */
  size_t npend, pcap;
  int32_t *ids;
  size_t n, cap;
  size_t limit;       /* content tokens allowed; SIZE_MAX = no truncation */
  int stop;           /* the budget is exceeded: nothing more is needed */
} enc_state;

/* ---- growth helpers ---------------------------------------------------------- */

static int grow_nb(enc_state *st, size_t extra) {
  size_t cap = st->ncap ? st->ncap : 256;
  while (cap < st->nlen + extra) cap *= 2;
  uint8_t *nb = ae__realloc(st->nb, cap);
  if (!nb) return AE_ENOMEM;
  st->nb = nb;
  st->ncap = cap;
  return AE_OK;
}

static int put_cp(enc_state *st, uint32_t c) {
  if (st->nlen + 4 > st->ncap && grow_nb(st, 4)) return AE_ENOMEM;
  st->nlen += (size_t)ae__utf8_encode(c, st->nb + st->nlen);
  return AE_OK;
}

static int emit(enc_state *st, int32_t id) {
  if (st->n == st->cap) {
    size_t cap = st->cap ? st->cap * 2 : 64;
    int32_t *ids = ae__realloc(st->ids, cap * sizeof *ids);
    if (!ids) return AE_ENOMEM;
    st->ids = ids;
    st->cap = cap;
  }
  st->ids[st->n++] = id;
  return AE_OK;
}

/* ---- stage 2: normaliser ------------------------------------------------------- */

/* The end of the normaliser: drop Mn (strip_accents), lowercase, write UTF-8. */
static int emit_final(enc_state *st, uint32_t c) {
  const ae_tokenizer *t = st->t;
  if (t->strip_accents && ae__uc_is_mn(c)) return AE_OK;
  if (!t->lowercase) return put_cp(st, c);
  uint32_t lc[2];
  int k = ae__uc_lower(c, lc);
  for (int i = 0; i < k; i++)
    if (put_cp(st, lc[i])) return AE_ENOMEM;
  return AE_OK;
}

/* NFD's canonical ordering: a run of non-starters is stably sorted by combining
 * class before it is filtered and written. Runs are short (usually 1), so insertion
 * sort; a long run (a text of nothing but combining marks) takes a stable counting
 * sort over the 256 classes instead, keeping the encoder linear on any input. */
static int sort_pending(enc_state *st) {
  uint32_t *p = st->pend;
  size_t n = st->npend;
  if (n <= 64) {
    for (size_t i = 1; i < n; i++) {
      uint32_t c = p[i];
      int cc = ae__uc_ccc(c);
      size_t j = i;
      while (j > 0 && ae__uc_ccc(p[j - 1]) > cc) { p[j] = p[j - 1]; j--; }
      p[j] = c;
    }
    return AE_OK;
  }
  uint32_t *tmp = ae__malloc(n * sizeof *tmp);
  if (!tmp) return AE_ENOMEM;
  size_t start[257] = {0};
  for (size_t i = 0; i < n; i++) start[ae__uc_ccc(p[i]) + 1]++;
  for (int c = 0; c < 256; c++) start[c + 1] += start[c];
  for (size_t i = 0; i < n; i++) tmp[start[ae__uc_ccc(p[i])]++] = p[i];
  memcpy(p, tmp, n * sizeof *p);
  ae__free(tmp);
  return AE_OK;
}

static int flush_pending(enc_state *st) {
  if (sort_pending(st)) return AE_ENOMEM;
  size_t n = st->npend;
  st->npend = 0;
  for (size_t i = 0; i < n; i++)
    if (emit_final(st, st->pend[i])) return AE_ENOMEM;
  return AE_OK;
}

static int accent_stage(enc_state *st, uint32_t c) {
  if (!st->t->strip_accents) return emit_final(st, c);
  uint32_t d[32];
  int k = ae__uc_decompose(c, d, 32);
  for (int i = 0; i < k; i++) {
    if (ae__uc_ccc(d[i]) == 0) {
      if (st->npend && flush_pending(st)) return AE_ENOMEM;
      if (emit_final(st, d[i])) return AE_ENOMEM;
    } else {
      if (st->npend == st->pcap) {
        size_t cap = st->pcap ? st->pcap * 2 : 16;
        uint32_t *np = ae__realloc(st->pend, cap * sizeof *np);
        if (!np) return AE_ENOMEM;
        st->pend = np;
        st->pcap = cap;
      }
      st->pend[st->npend++] = d[i];
    }
  }
  return AE_OK;
}

/* Normalises s[0..n) onto st->nb. */
static int normalize_into(enc_state *st, const uint8_t *s, size_t n) {
  const ae_tokenizer *t = st->t;
  size_t i = 0;
  while (i < n) {
    uint8_t b = s[i];
    if (b < 0x80) {
      if (st->npend && flush_pending(st)) return AE_ENOMEM;
      uint8_t m = t->ascii_norm[b];
      i++;
      if (m == AE_ASCII_DROP) continue;
      if (st->nlen == st->ncap && grow_nb(st, 1)) return AE_ENOMEM;
      st->nb[st->nlen++] = m;
      continue;
    }
    uint32_t c;
    i += ae__utf8_decode(s + i, n - i, &c);
    if (t->clean_text) {
      if (c == 0xFFFD || ae__uc_is_other(c)) continue;
      if (ae__uc_is_space(c)) c = ' ';
    }
    int rc;
    if (t->handle_chinese && ae__uc_is_chinese(c))
      rc = accent_stage(st, ' ') || accent_stage(st, c) || accent_stage(st, ' ');
    else
      rc = accent_stage(st, c);
    if (rc) return AE_ENOMEM;
  }
  if (st->npend && flush_pending(st)) return AE_ENOMEM;
  return AE_OK;
}

void ae__tokenizer_build_tables(ae_tokenizer *t) {
  for (int b = 0; b < 128; b++) {
    int m = b;
    if (t->normalize && t->clean_text) {
      if (b == '\t' || b == '\n' || b == '\r') m = ' ';
      else if (ae__uc_is_other((uint32_t)b)) m = AE_ASCII_DROP;
    }
    if (m != AE_ASCII_DROP && t->normalize && t->lowercase && m >= 'A' && m <= 'Z') m += 32;
    t->ascii_norm[b] = (uint8_t)m;
    t->ascii_class[b] = ae__uc_is_space((uint32_t)b)   ? AE_CLS_SPACE
                        : ae__uc_is_punct((uint32_t)b) ? AE_CLS_PUNCT
                                                       : AE_CLS_WORD;
  }
}

/* ---- stage 3: WordPiece --------------------------------------------------------- */

/* Greedy longest-match-first over one word. Candidate ends start at the longest
 * vocabulary key (no longer piece can match) and step back one character at a time. */
static int wordpiece(enc_state *st, const uint8_t *w, size_t wl, size_t nchars) {
  const ae_tokenizer *t = st->t;
  if (nchars > t->max_input_chars_per_word) return emit(st, t->unk_id);
  size_t mark = st->n, start = 0;
  while (start < wl) {
    int cont = start > 0;
    size_t maxl = t->vocab.max_len[cont];
    size_t end = wl - start > maxl ? start + maxl : wl;
    while (end > start && end < wl && (w[end] & 0xC0) == 0x80) end--;
    int32_t id = -1;
    while (end > start) {
      id = ae__vocab_find(&t->vocab, cont, (const char *)w + start, end - start);
      if (id >= 0) break;
      do end--; while (end > start && (w[end] & 0xC0) == 0x80);
    }
    if (id < 0) {
      st->n = mark;
      return emit(st, t->unk_id);
    }
    if (emit(st, id)) return AE_ENOMEM;
    start = end;
  }
  return AE_OK;
}

static void check_budget(enc_state *st) {
  if (st->n - st->t->n_pre > st->limit) st->stop = 1;
}

/* BertPreTokenizer: split on whitespace (removed) and punctuation (isolated). */
static int pretokenize(enc_state *st, const uint8_t *s, size_t n) {
  const ae_tokenizer *t = st->t;
  size_t i = 0, ws = SIZE_MAX, nch = 0;
  while (i < n) {
    uint8_t b = s[i];
    int cls;
    size_t len = 1;
    if (b < 0x80) {
      cls = t->ascii_class[b];
    } else {
      uint32_t c;
      len = ae__utf8_decode(s + i, n - i, &c);
      cls = ae__uc_is_space(c) ? AE_CLS_SPACE : ae__uc_is_punct(c) ? AE_CLS_PUNCT : AE_CLS_WORD;
    }
    if (cls == AE_CLS_WORD) {
      if (ws == SIZE_MAX) ws = i;
      nch++;
      i += len;
      continue;
    }
    if (ws != SIZE_MAX) {
      if (wordpiece(st, s + ws, i - ws, nch)) return AE_ENOMEM;
      ws = SIZE_MAX;
      nch = 0;
      check_budget(st);
      if (st->stop) return AE_OK;
    }
    if (cls == AE_CLS_PUNCT) {
      if (wordpiece(st, s + i, len, 1)) return AE_ENOMEM;
      check_budget(st);
      if (st->stop) return AE_OK;
    }
    i += len;
  }
  if (ws != SIZE_MAX) {
    if (wordpiece(st, s + ws, n - ws, nch)) return AE_ENOMEM;
    check_budget(st);
  }
  return AE_OK;
}

/* ---- stage 1: added tokens -------------------------------------------------------- */

/* The character that ends at s[i] (exclusive), never looking before s[lo]: its start
 * goes to *start. A stray continuation byte is U+FFFD, as the decoder makes it. */
static uint32_t prev_char(const uint8_t *s, size_t lo, size_t i, size_t *start) {
  size_t k = i - 1;
  while (k > lo && i - k < 4 && (s[k] & 0xC0) == 0x80) k--;
  uint32_t c;
  if (k + ae__utf8_decode(s + k, i - k, &c) != i) { k = i - 1; c = 0xFFFD; }
  *start = k;
  return c;
}

/* Leftmost-longest match of an added token of the given kind in s[from..n). */
static const ae__added_token *find_added(const ae_tokenizer *t, int normalized, const uint8_t *s,
                                         size_t n, size_t from, size_t *pos) {
  const uint8_t *first = t->added_first[normalized];
  int only = t->added_only_first[normalized];
  for (size_t p = from; p < n; p++) {
    if (only >= 0) { /* one possible first byte (BERT: '['): let memchr skip ahead */
      const uint8_t *q = memchr(s + p, only, n - p);
      if (!q) return NULL;
      p = (size_t)(q - s);
    }
    uint8_t b = s[p];
    if (!(first[b >> 3] & (1u << (b & 7)))) continue;
    const ae__added_token *best = NULL;
    for (size_t k = 0; k < t->n_added; k++) {
      const ae__added_token *a = &t->added[k];
      if (a->normalized != normalized || a->len > n - p || (best && a->len <= best->len))
        continue;
      if (!memcmp(s + p, a->content, a->len)) best = a;
    }
    if (best) { *pos = p; return best; }
  }
  return NULL;
}

/* HF's AddedVocabulary::find_matches: a single_word token must not touch word
 * characters; lstrip/rstrip swallow the whitespace beside it (lstrip never reaching
 * back past the previous match). Returns 0 when the match is rejected. */
static int accept_match(const ae__added_token *a, const uint8_t *s, size_t n, size_t seg,
                        size_t *ms, size_t *me) {
  uint32_t c;
  size_t j;
  if (a->single_word) {
    if (*ms > 0 && ae__uc_is_word(prev_char(s, 0, *ms, &j))) return 0;
    if (*me < n) {
      ae__utf8_decode(s + *me, n - *me, &c);
      if (ae__uc_is_word(c)) return 0;
    }
  }
  if (a->lstrip)
    while (*ms > seg && ae__uc_is_space(prev_char(s, seg, *ms, &j))) *ms = j;
  if (a->rstrip) {
    while (*me < n) {
      size_t len = ae__utf8_decode(s + *me, n - *me, &c);
      if (!ae__uc_is_space(c)) break;
      *me += len;
    }
  }
  return 1;
}

/* Tokenizes normalised text, cutting out normalised added tokens first. */
static int tokenize_normalized(enc_state *st, const uint8_t *s, size_t n) {
  const ae_tokenizer *t = st->t;
  if (!t->any_normalized_added) return pretokenize(st, s, n);
  size_t pos = 0, seg = 0, ms;
  const ae__added_token *a;
  while (!st->stop && (a = find_added(t, 1, s, n, pos, &ms))) {
    size_t me = ms + a->len;
    if (!accept_match(a, s, n, seg, &ms, &me)) { pos = ms + a->len; continue; }
    if (pretokenize(st, s + seg, ms - seg) || (!st->stop && emit(st, a->id))) return AE_ENOMEM;
    check_budget(st);
    seg = pos = me;
  }
  return st->stop ? AE_OK : pretokenize(st, s + seg, n - seg);
}

/* Normalises and tokenizes one raw segment (no unnormalised added token inside). */
static int tokenize_segment(enc_state *st, const uint8_t *s, size_t n) {
  size_t chunk = st->t->any_normalized_added ? n : CHUNK;
  size_t i = 0;
  while (i < n && !st->stop) {
    size_t e = n - i > chunk ? i + chunk : n;
    while (e < n && s[e - 1] != ' ' && s[e - 1] != '\n' && s[e - 1] != '\t' && s[e - 1] != '\r')
      e++;
    st->nlen = 0;
    if (normalize_into(st, s + i, e - i) || tokenize_normalized(st, st->nb, st->nlen))
      return AE_ENOMEM;
    i = e;
  }
  return AE_OK;
}

static int tokenize_raw(enc_state *st, const uint8_t *s, size_t n) {
  const ae_tokenizer *t = st->t;
  size_t pos = 0, seg = 0, ms;
  const ae__added_token *a;
  while (!st->stop && (a = find_added(t, 0, s, n, pos, &ms))) {
    size_t me = ms + a->len;
    if (!accept_match(a, s, n, seg, &ms, &me)) { pos = ms + a->len; continue; }
    if (tokenize_segment(st, s + seg, ms - seg) || (!st->stop && emit(st, a->id)))
      return AE_ENOMEM;
    check_budget(st);
    seg = pos = me;
  }
  return st->stop ? AE_OK : tokenize_segment(st, s + seg, n - seg);
}

/* ---- public entry points ------------------------------------------------------------ */

static void state_free(enc_state *st) {
  ae__free(st->nb);
  ae__free(st->pend);
  ae__free(st->ids);
}

int ae_tokenizer_encode(const ae_tokenizer *tok, const char *text, size_t len, size_t max_len,
                        int32_t **ids, size_t *n_ids, int *truncated) {
  if (ids) *ids = NULL;
  if (n_ids) *n_ids = 0;
  if (truncated) *truncated = 0;
  if (!tok || !ids || !n_ids || (!text && len))
    return ae__error(AE_EINVAL, "ae_tokenizer_encode: NULL argument");
  size_t specials = tok->n_pre + tok->n_post;
  if (max_len && max_len < specials)
    return ae__error(AE_ERANGE,
                     "ae_tokenizer_encode: max_len %zu cannot hold the %zu special tokens",
                     max_len, specials);
  enc_state st;
  memset(&st, 0, sizeof st);
  st.t = tok;
  st.limit = max_len ? max_len - specials : SIZE_MAX;
  size_t guess = len / 3 + 8; /* about one id per 3-4 bytes of code; grows if not */
  if (guess > st.limit) guess = st.limit + 1;
  if (guess > (1u << 16)) guess = 1u << 16;
  st.cap = specials + guess + 1;
  st.ids = ae__malloc(st.cap * sizeof *st.ids);
  int rc = st.ids ? AE_OK : AE_ENOMEM;
  for (size_t i = 0; !rc && i < tok->n_pre; i++) rc = emit(&st, tok->pre_ids[i]);
  if (!rc && len) rc = tokenize_raw(&st, (const uint8_t *)text, len);
  if (!rc && st.n - tok->n_pre > st.limit) {
    st.n = tok->n_pre + st.limit;
    if (truncated) *truncated = 1;
  }
  for (size_t i = 0; !rc && i < tok->n_post; i++) rc = emit(&st, tok->post_ids[i]);
  if (rc) {
    state_free(&st);
    return ae__error(AE_ENOMEM, "ae_tokenizer_encode: out of memory (text of %zu bytes)", len);
  }
  ae__free(st.nb);
  ae__free(st.pend);
  *ids = st.ids;
  *n_ids = st.n;
  return AE_OK;
}

int ae__tokenizer_normalize(const ae_tokenizer *tok, const char *text, size_t len, char **out,
                            size_t *out_len) {
  enc_state st;
  memset(&st, 0, sizeof st);
  st.t = tok;
  int rc = grow_nb(&st, len + 1);
  if (!rc) rc = normalize_into(&st, (const uint8_t *)text, len);
  if (!rc && st.nlen == st.ncap) rc = grow_nb(&st, 1);
  if (rc) {
    state_free(&st);
    return ae__error(AE_ENOMEM, "tokenizer: out of memory normalising %zu bytes", len);
  }
  st.nb[st.nlen] = 0;
  ae__free(st.pend);
  *out = (char *)st.nb;
  *out_len = st.nlen;
  return AE_OK;
}
