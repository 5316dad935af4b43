/* ae_encoder_load (model folder -> ready encoder) and ae_encoder_embed_texts
 * (tokenize, then one batched forward pass over every item that tokenized). */
#include "encoder/encoder.h"
#include <string.h>

static int load_dir(const char *model_dir, const ae_encoder_options *opts, ae_encoder **out);

/* A model name ORG/NAME[@REV] that is not an existing folder loads its cached Hugging
 * Face snapshot (src/hub); the loader itself never downloads. */
int ae_encoder_load(const char *model_dir, const ae_encoder_options *opts, ae_encoder **out) {
  if (!model_dir || !out) return ae__error(AE_EINVAL, "encoder: NULL argument");
  *out = NULL;
  int prec;   /* checked before the (costly) model load */
  if (opts && ae__precision_option(opts->precision, &prec)) return AE_EINVAL;
  if (!ae_hub_is_model_name(model_dir)) return load_dir(model_dir, opts, out);
  char *dir = NULL;
  int rc = ae_hub_resolve(model_dir, NULL, &dir);
  if (!rc) rc = load_dir(dir, opts, out);
  ae_free(dir);
  return rc;
}

static int load_dir(const char *model_dir, const ae_encoder_options *opts, ae_encoder **out) {
  ae__bert_model *m = NULL;
  ae_tokenizer *tok = NULL;
  const char *cache_dir = opts ? opts->cache_dir : NULL;
  int rc = ae__bert_load_ex(model_dir, opts ? opts->max_length : 0, cache_dir, &m);
  if (rc) return rc;
  if ((rc = ae_tokenizer_load_cached(model_dir, cache_dir, &tok))) { ae__bert_free(m); return rc; }
  if (ae_tokenizer_vocab_size(tok) > (size_t)m->cfg.vocab) {
    rc = ae__error(AE_EMISMATCH, "%s: the tokenizer has %zu tokens, the model's vocab_size "
                   "is %d", model_dir, ae_tokenizer_vocab_size(tok), m->cfg.vocab);
  } else {
    /* the loader already applied the max_length override (and range-checked it) */
    ae_encoder_options o = {.threads = opts ? opts->threads : 0, .prepack = opts ? opts->prepack : 0,
                            .precision = opts ? opts->precision : NULL};
    rc = ae__encoder_new(m, ae__bert_free, tok, ae_tokenizer_free, &o, out);
  }
  if (rc) { ae_tokenizer_free(tok); ae__bert_free(m); }
  return rc;
}

int ae_encoder_embed_texts(ae_encoder *enc, const char *const *texts, const size_t *lens,
                           size_t n, float *out, int *status) {
  if (!enc || (n && (!texts || !out))) return ae__error(AE_EINVAL, "encoder: NULL argument");
  if (!enc->tok) return ae__error(AE_ESTATE, "encoder: no tokenizer loaded");
  const int H = enc->model->cfg.hidden;
  int rc = AE_OK;
  if (n) memset(out, 0, sizeof(float) * n * H);
  int32_t **ids = ae__calloc(n ? n : 1, sizeof *ids);
  size_t *nids = ae__calloc(n ? n : 1, sizeof *nids);
  size_t *which = ae__calloc(n ? n : 1, sizeof *which);
  float *vec = NULL;
  size_t good = 0;
  if (!ids || !nids || !which) {
    rc = ae__error(AE_ENOMEM, "encoder: out of memory");
    if (status)
      for (size_t i = 0; i < n; i++) status[i] = rc;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    int st = texts[i] ? AE_OK : ae__error(AE_EINVAL, "item %zu: NULL text", i);
    if (!st) {
      size_t len = lens ? lens[i] : strlen(texts[i]);
      st = ae_tokenizer_encode(enc->tok, texts[i], len, (size_t)enc->max_length, &ids[i],
                               &nids[i], NULL);
      if (!st && nids[i] == 0)
        st = ae__error(AE_EINVAL, "item %zu: the text produced no tokens", i);
    }
    if (status) status[i] = st;
    if (!st) which[good++] = i;
  }
  if (good) {
    /* the tokenized items, compacted, in one call; vectors scattered back */
    int32_t **gids = ae__malloc(sizeof *gids * good);
    size_t *glen = ae__malloc(sizeof *glen * good);
    vec = ae__malloc(sizeof(float) * good * H);
    if (!gids || !glen || !vec) {
      rc = ae__error(AE_ENOMEM, "encoder: out of memory");
    } else {
      for (size_t k = 0; k < good; k++) { gids[k] = ids[which[k]]; glen[k] = nids[which[k]]; }
      rc = ae_encoder_embed_ids(enc, (const int32_t *const *)gids, glen, good, vec);
      if (!rc)
        for (size_t k = 0; k < good; k++) memcpy(out + which[k] * H, vec + k * H, sizeof(float) * H);
    }
    ae__free(gids);
    ae__free(glen);
    if (rc && status)
      for (size_t k = 0; k < good; k++) status[which[k]] = rc;
  }
done:
  if (ids)
    for (size_t i = 0; i < n; i++) ae_free(ids[i]);
  ae__free(ids); ae__free(nids); ae__free(which); ae__free(vec);
  return rc;
}
