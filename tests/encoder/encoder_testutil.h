/* Test helpers for the encoder: an in-memory random-weight BERT model (no loader
 * needed) and a writer of the same model as a Hugging Face folder (config.json,
 * model.safetensors, modules.json, 1_Pooling/config.json) for tools/reference.py. */
#ifndef AE_ENCODER_TESTUTIL_H
#define AE_ENCODER_TESTUTIL_H
#include "encoder/encoder.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <math.h>

typedef struct {
  ae__bert_model m;
  float **tensors;      /* every weight array, for freeing and writing */
  char **names;
  int (*shapes)[2];
  int n;
  char dtype[8];
} tmodel;

static uint64_t tm_rng;
static double tm_uniform(void) {
  tm_rng ^= tm_rng << 13; tm_rng ^= tm_rng >> 7; tm_rng ^= tm_rng << 17;
  return ((tm_rng >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static float tm_normal(float std) {
  return (float)(std * sqrt(-2.0 * log(tm_uniform())) * cos(6.283185307179586 * tm_uniform()));
}

static uint16_t tm_f32_to_f16(float f) {
  uint32_t x; memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, mant = x & 0x7fffff;
  int exp = (int)((x >> 23) & 0xff) - 127 + 15;
  if (exp >= 31) return (uint16_t)(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return (uint16_t)sign;
    mant |= 0x800000;
    uint32_t shift = (uint32_t)(14 - exp);
    uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13), rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return (uint16_t)h;
}
static float tm_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0) v = ldexpf((float)mant, -24);
  else if (exp == 31) v = mant ? NAN : INFINITY;
  else v = ldexpf((float)(mant | 0x400), (int)exp - 25);
  uint32_t b; memcpy(&b, &v, 4); b |= sign; memcpy(&v, &b, 4);
  return v;
}
static uint16_t tm_f32_to_bf16(float f) {
  uint32_t x; memcpy(&x, &f, 4);
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}
static float tm_bf16_to_f32(uint16_t b) { uint32_t x = (uint32_t)b << 16; float f; memcpy(&f, &x, 4); return f; }

/* Allocates one tensor [r, c] of N(mean, std) values rounded to the model dtype. */
static const float *tm_tensor(tmodel *t, const char *name, int r, int c, float mean, float std) {
  size_t count = (size_t)r * (c ? c : 1);
  float *p = malloc(sizeof(float) * count);
  for (size_t i = 0; i < count; i++) {
    float v = mean + tm_normal(std);
    if (!strcmp(t->dtype, "F16")) v = tm_f16_to_f32(tm_f32_to_f16(v));
    else if (!strcmp(t->dtype, "BF16")) v = tm_bf16_to_f32(tm_f32_to_bf16(v));
    p[i] = v;
  }
  t->tensors = realloc(t->tensors, sizeof(float *) * (t->n + 1));
  t->names = realloc(t->names, sizeof(char *) * (t->n + 1));
  t->shapes = realloc(t->shapes, sizeof(int[2]) * (t->n + 1));
  t->tensors[t->n] = p;
  t->names[t->n] = strdup(name);
  t->shapes[t->n][0] = r;
  t->shapes[t->n][1] = c;
  t->n++;
  return p;
}

/* c = 0 in shapes means a 1-D tensor of r elements. */
static inline tmodel *tm_new(int H, int layers, int heads, int I, int vocab, int max_pos, int act,
                      int pooling, int normalize, const char *dtype, uint64_t seed, float std) {
  tmodel *t = calloc(1, sizeof *t);
  snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
  tm_rng = seed * 0x9E3779B97F4A7C15ull + 1;
  ae__bert_model *m = &t->m;
  m->cfg = (ae__bert_config){H, layers, heads, I, vocab, max_pos, 2, 1e-12f, act, 0};
  m->word_emb = tm_tensor(t, "embeddings.word_embeddings.weight", vocab, H, 0, 0.5f);
  m->pos_emb = tm_tensor(t, "embeddings.position_embeddings.weight", max_pos, H, 0, 0.5f);
  m->type_emb = tm_tensor(t, "embeddings.token_type_embeddings.weight", 2, H, 0, 0.5f);
  m->emb_ln_g = tm_tensor(t, "embeddings.LayerNorm.weight", H, 0, 1, 0.1f);
  m->emb_ln_b = tm_tensor(t, "embeddings.LayerNorm.bias", H, 0, 0, 0.1f);
  m->layer = calloc(layers, sizeof *m->layer);
  for (int l = 0; l < layers; l++) {
    ae__bert_layer *L = &m->layer[l];
    char n[128];
#define W(field, suffix, r, c, mean, s) \
    snprintf(n, sizeof n, "encoder.layer.%d.%s", l, suffix); L->field = tm_tensor(t, n, r, c, mean, s);
    W(q_w, "attention.self.query.weight", H, H, 0, std)
    W(q_b, "attention.self.query.bias", H, 0, 0, 0.1f)
    W(k_w, "attention.self.key.weight", H, H, 0, std)
    W(k_b, "attention.self.key.bias", H, 0, 0, 0.1f)
    W(v_w, "attention.self.value.weight", H, H, 0, std)
    W(v_b, "attention.self.value.bias", H, 0, 0, 0.1f)
    W(o_w, "attention.output.dense.weight", H, H, 0, std)
    W(o_b, "attention.output.dense.bias", H, 0, 0, 0.1f)
    W(ln1_g, "attention.output.LayerNorm.weight", H, 0, 1, 0.1f)
    W(ln1_b, "attention.output.LayerNorm.bias", H, 0, 0, 0.1f)
    W(i_w, "intermediate.dense.weight", I, H, 0, std)
    W(i_b, "intermediate.dense.bias", I, 0, 0, 0.1f)
    W(out_w, "output.dense.weight", H, I, 0, std)
    W(out_b, "output.dense.bias", H, 0, 0, 0.1f)
    W(ln2_g, "output.LayerNorm.weight", H, 0, 1, 0.1f)
    W(ln2_b, "output.LayerNorm.bias", H, 0, 0, 0.1f)
#undef W
  }
  m->pooling = pooling;
  m->normalize = normalize;
  m->max_length = max_pos;
  snprintf(m->dtype, sizeof m->dtype, "%s", dtype);
  for (int i = 0; i < 16; i++) m->fingerprint[i] = (uint8_t)(seed + i);
  return t;
}

static inline void tm_free(tmodel *t) {
  if (!t) return;
  for (int i = 0; i < t->n; i++) { free(t->tensors[i]); free(t->names[i]); }
  free(t->tensors); free(t->names); free(t->shapes); free(t->m.layer); free(t);
}

static inline int tm_write_file(const char *dir, const char *name, const char *text) {
  char path[8800];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

/* A 40-token WordPiece vocabulary for tm_model_dir's configs. */
static const char *tm_small_vocab =
  "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ndef\nreturn\nself\nparse\npath\n(\n)\n:\n,\n.\n"
  "the\nvalue\nof\n##s\n##ed\na\nb\nc\nx\ny\n=\n+\n\"\n#\nfile\n";

/* The shape and options of tm_model_dir's folder. model_max_length > 0 also writes a
 * tokenizer_config.json with it. */
typedef struct {
  int H, heads, I, layers, max_pos, model_max_length, normalize;
  const char *act;
  uint64_t seed;
} tm_shape;

/* root/model-NAME: random weights (ae_model_init_random_opts, mean pooling) for a small
 * BERT config of shape s and tm_small_vocab, made from root/like-NAME. Returns the
 * folder (malloc'ed) or NULL, having said why on stderr. */
static inline char *tm_model_dir(const char *root, const char *name, tm_shape s) {
  char like[512], cfg[1024], *out = malloc(512);
  snprintf(like, sizeof like, "%s/like-%s", root, name);
  mkdir(like, 0755);
  snprintf(cfg, sizeof cfg,
           "{\"architectures\": [\"BertModel\"], \"model_type\": \"bert\", \"hidden_act\": \"%s\",\n"
           " \"hidden_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d,\n"
           " \"intermediate_size\": %d, \"vocab_size\": 40, \"max_position_embeddings\": %d,\n"
           " \"type_vocab_size\": 2, \"layer_norm_eps\": 1e-12, \"pad_token_id\": 0}\n",
           s.act, s.H, s.layers, s.heads, s.I, s.max_pos);
  tm_write_file(like, "config.json", cfg);
  tm_write_file(like, "vocab.txt", tm_small_vocab);
  if (s.model_max_length > 0) {
    char tc[128];
    snprintf(tc, sizeof tc, "{\"do_lower_case\": true, \"model_max_length\": %d}", s.model_max_length);
    tm_write_file(like, "tokenizer_config.json", tc);
  }
  snprintf(out, 512, "%s/model-%s", root, name);
  ae_model_random_options o;
  ae_model_random_options_default(&o);
  o.seed = s.seed;
  o.normalize = s.normalize;
  o.pooling = AE_POOL_MEAN;
  int rc = ae_model_init_random_opts(like, out, &o);
  if (rc) {
    fprintf(stderr, "init-random %s: %s\n", out, ae_last_error());
    free(out);
    return NULL;
  }
  return out;
}

/* Writes the model as a Hugging Face + sentence-transformers folder. */
static inline int tm_write_folder(const tmodel *t, const char *dir) {
  const ae__bert_model *m = &t->m;
  static const char *acts[] = {"gelu", "gelu_new", "relu"};
  char buf[2048], sub[4400];
  mkdir(dir, 0755);
  snprintf(buf, sizeof buf,
           "{\"architectures\": [\"BertModel\"], \"model_type\": \"bert\", \"hidden_size\": %d,"
           " \"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"intermediate_size\": %d,"
           " \"vocab_size\": %d, \"max_position_embeddings\": %d, \"type_vocab_size\": 2,"
           " \"layer_norm_eps\": 1e-12, \"hidden_act\": \"%s\", \"pad_token_id\": 0}\n",
           m->cfg.hidden, m->cfg.layers, m->cfg.heads, m->cfg.intermediate, m->cfg.vocab,
           m->cfg.max_positions, acts[m->cfg.act]);
  if (tm_write_file(dir, "config.json", buf)) return -1;
  snprintf(buf, sizeof buf,
           "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"},"
           " {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"}%s]\n",
           m->normalize ? ", {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", \"type\": \"sentence_transformers.models.Normalize\"}" : "");
  if (tm_write_file(dir, "modules.json", buf)) return -1;
  snprintf(sub, sizeof sub, "%s/1_Pooling", dir);
  mkdir(sub, 0755);
  snprintf(buf, sizeof buf,
           "{\"word_embedding_dimension\": %d, \"pooling_mode_cls_token\": %s,"
           " \"pooling_mode_mean_tokens\": %s, \"pooling_mode_max_tokens\": %s,"
           " \"pooling_mode_mean_sqrt_len_tokens\": %s}\n", m->cfg.hidden,
           m->pooling == AE_POOL_CLS ? "true" : "false", m->pooling == AE_POOL_MEAN ? "true" : "false",
           m->pooling == AE_POOL_MAX ? "true" : "false",
           m->pooling == AE_POOL_MEAN_SQRT_LEN ? "true" : "false");
  if (tm_write_file(sub, "config.json", buf)) return -1;
  snprintf(buf, sizeof buf, "{\"max_seq_length\": %d, \"do_lower_case\": false}\n", m->max_length);
  if (tm_write_file(dir, "sentence_bert_config.json", buf)) return -1;

  /* safetensors: u64 header length, JSON header, raw little-endian data */
  int esz = strcmp(t->dtype, "F32") ? 2 : 4;
  size_t hcap = 256 + (size_t)t->n * 200, hlen = 0, offset = 0;
  char *hdr = malloc(hcap);
  hlen += snprintf(hdr + hlen, hcap - hlen, "{\"__metadata__\": {\"format\": \"pt\"}");
  for (int i = 0; i < t->n; i++) {
    size_t count = (size_t)t->shapes[i][0] * (t->shapes[i][1] ? t->shapes[i][1] : 1);
    if (t->shapes[i][1])
      hlen += snprintf(hdr + hlen, hcap - hlen, ", \"%s\": {\"dtype\": \"%s\", \"shape\": [%d, %d], \"data_offsets\": [%zu, %zu]}",
                       t->names[i], t->dtype, t->shapes[i][0], t->shapes[i][1], offset, offset + count * esz);
    else
      hlen += snprintf(hdr + hlen, hcap - hlen, ", \"%s\": {\"dtype\": \"%s\", \"shape\": [%d], \"data_offsets\": [%zu, %zu]}",
                       t->names[i], t->dtype, t->shapes[i][0], offset, offset + count * esz);
    offset += count * esz;
  }
  hlen += snprintf(hdr + hlen, hcap - hlen, "}");
  while (hlen % 8) hdr[hlen++] = ' ';
  snprintf(sub, sizeof sub, "%s/model.safetensors", dir);
  FILE *f = fopen(sub, "wb");
  if (!f) { free(hdr); return -1; }
  uint64_t hl = hlen;
  fwrite(&hl, 8, 1, f);
  fwrite(hdr, 1, hlen, f);
  free(hdr);
  for (int i = 0; i < t->n; i++) {
    size_t count = (size_t)t->shapes[i][0] * (t->shapes[i][1] ? t->shapes[i][1] : 1);
    if (esz == 4) { fwrite(t->tensors[i], 4, count, f); continue; }
    uint16_t *h = malloc(2 * count);
    for (size_t k = 0; k < count; k++)
      h[k] = !strcmp(t->dtype, "F16") ? tm_f32_to_f16(t->tensors[i][k]) : tm_f32_to_bf16(t->tensors[i][k]);
    fwrite(h, 2, count, f);
    free(h);
  }
  return fclose(f);
}
#endif
