/* The WordPiece vocabulary: an open-addressing hash table (linear probing, XXH3,
 * load factor <= 1/2) over a single string pool.
 *
 * Why this shape: WordPiece's greedy longest-match asks "is this byte range a token?"
 * several times per word, and on code the same short ranges come back constantly. A
 * probe costs one XXH3 of a few bytes, usually one slot, a 32-bit tag compare and a
 * memcmp; there are no per-lookup allocations and the table is read-only after load,
 * so concurrent encodes share it without locks. */
#include "tokenizer/tokenizer.h"

#include <string.h>
/* Inlined so the short-key path of XXH3 is specialised at the call site. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#define SEED_WORD 0x9E3779B97F4A7C15ull
#define SEED_CONT 0xC2B2AE3D27D4EB4Full

static uint64_t key_hash(int cont, const char *s, size_t len) {
  return XXH3_64bits_withSeed(s, len, cont ? SEED_CONT : SEED_WORD);
}

void ae__vocab_init(ae__vocab *v) { memset(v, 0, sizeof *v); }

void ae__vocab_free(ae__vocab *v) {
  if (!v) return;
  ae__free(v->pool);
  ae__free(v->entries);
  ae__free(v->slots);
  ae__free(v->id_off);
  memset(v, 0, sizeof *v);
}

static int grow_slots(ae__vocab *v, size_t want_entries) {
  size_t cap = 1024;
  while (cap < want_entries * 2) cap *= 2;
  if (v->slots && cap <= v->mask + 1) return AE_OK;
  uint32_t *slots = ae__calloc(cap, sizeof *slots);
  if (!slots) return AE_ENOMEM;
  size_t mask = cap - 1;
  for (size_t i = 0; i < v->n_entries; i++) {
    const ae__vocab_entry *e = &v->entries[i];
    uint64_t h = key_hash(e->cont, v->pool + e->off, e->len);
    size_t s = (size_t)h & mask;
    while (slots[s]) s = (s + 1) & mask;
    slots[s] = (uint32_t)(i + 1);
  }
  ae__free(v->slots);
  v->slots = slots;
  v->mask = mask;
  return AE_OK;
}

/* Slot holding (cont, s), or the empty slot where it would go. */
static size_t find_slot(const ae__vocab *v, int cont, const char *s, size_t len, uint64_t h) {
  uint32_t tag = (uint32_t)(h >> 32);
  size_t i = (size_t)h & v->mask;
  for (;;) {
    uint32_t k = v->slots[i];
    if (!k) return i;
    const ae__vocab_entry *e = &v->entries[k - 1];
    if (e->tag == tag && e->len == len && e->cont == cont && !memcmp(v->pool + e->off, s, len))
      return i;
    i = (i + 1) & v->mask;
  }
}

static int add_entry(ae__vocab *v, int cont, uint32_t off, size_t len, int32_t id) {
  if (v->n_entries + 1 > (v->mask + 1) / 2 || !v->slots) {
    int rc = grow_slots(v, v->n_entries + 1 > 512 ? (v->n_entries + 1) * 2 : 512);
    if (rc) return rc;
  }
  const char *s = v->pool + off;
  uint64_t h = key_hash(cont, s, len);
  size_t slot = find_slot(v, cont, s, len, h);
  if (v->slots[slot]) { /* re-mapped: last definition wins */
    v->entries[v->slots[slot] - 1].id = id;
    return AE_OK;
  }
  if (v->n_entries == v->entries_cap) {
    size_t cap = v->entries_cap ? v->entries_cap * 2 : 1024;
    ae__vocab_entry *ne = ae__realloc(v->entries, cap * sizeof *ne);
    if (!ne) return AE_ENOMEM;
    v->entries = ne;
    v->entries_cap = cap;
  }
  ae__vocab_entry *e = &v->entries[v->n_entries];
  e->off = off;
  e->len = (uint32_t)len;
  e->tag = (uint32_t)(h >> 32);
  e->id = id;
  e->cont = (uint8_t)cont;
  v->slots[slot] = (uint32_t)(++v->n_entries);
  if (len > v->max_len[cont]) v->max_len[cont] = len;
  return AE_OK;
}

int ae__vocab_add(ae__vocab *v, const char *tok, size_t len, int32_t id) {
  if (id < 0) return AE_EINVAL;
  if (len >= UINT32_MAX / 2 || v->pool_len + len + 1 >= UINT32_MAX) return AE_ERANGE;
  if (v->pool_len + len + 1 > v->pool_cap) {
    size_t cap = v->pool_cap ? v->pool_cap : 1 << 16;
    while (cap < v->pool_len + len + 1) cap *= 2;
    char *np = ae__realloc(v->pool, cap);
    if (!np) return AE_ENOMEM;
    v->pool = np;
    v->pool_cap = cap;
  }
  uint32_t off = (uint32_t)v->pool_len;
  memcpy(v->pool + off, tok, len);
  v->pool[off + len] = 0;
  v->pool_len += len + 1;
  return add_entry(v, 0, off, len, id);
}

/* Continuation entries point into the pool past the prefix; the id index maps each
 * id to the text of the (last) token that owns it. */
int ae__vocab_finish(ae__vocab *v, const char *prefix, size_t prefix_len) {
  size_t n_word = v->n_entries;
  size_t n_ids = 0;
  for (size_t i = 0; i < n_word; i++)
    if ((size_t)v->entries[i].id + 1 > n_ids) n_ids = (size_t)v->entries[i].id + 1;
  for (size_t i = 0; i < n_word; i++) {
    ae__vocab_entry e = v->entries[i];
    if (prefix_len && e.len >= prefix_len && !memcmp(v->pool + e.off, prefix, prefix_len)) {
      int rc = add_entry(v, 1, e.off + (uint32_t)prefix_len, e.len - prefix_len, e.id);
      if (rc) return rc;
    }
  }
  v->id_off = ae__malloc((n_ids ? n_ids : 1) * sizeof *v->id_off);
  if (!v->id_off) return AE_ENOMEM;
  memset(v->id_off, 0xFF, (n_ids ? n_ids : 1) * sizeof *v->id_off);
  for (size_t i = 0; i < n_word; i++) v->id_off[v->entries[i].id] = v->entries[i].off;
  v->n_ids = n_ids;
  return AE_OK;
}

int32_t ae__vocab_find(const ae__vocab *v, int cont, const char *s, size_t len) {
  if (!v->slots) return -1;
  uint64_t h = key_hash(cont, s, len);
  uint32_t k = v->slots[find_slot(v, cont, s, len, h)];
  return k ? v->entries[k - 1].id : -1;
}

const char *ae__vocab_token(const ae__vocab *v, int32_t id) {
  if (id < 0 || (size_t)id >= v->n_ids || v->id_off[id] == UINT32_MAX) return NULL;
  return v->pool + v->id_off[id];
}
