/* Internal model representation shared by the loader (src/model) and the forward
 * pass (src/encoder). All weights are float32, row-major, laid out as PyTorch
 * stores them: a Linear's weight is [out_features, in_features]. */
#ifndef AE_MODEL_H
#define AE_MODEL_H
#include "common/common.h"

enum { AE__ACT_GELU = 0 /* erf */, AE__ACT_GELU_NEW = 1 /* tanh approx */, AE__ACT_RELU = 2 };

typedef struct {
  int hidden, layers, heads, intermediate, vocab, max_positions, type_vocab;
  float ln_eps;
  int act;     /* AE__ACT_* */
  int pad_id;
} ae__bert_config;

typedef struct {
  const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b; /* [H,H], [H] */
  const float *o_w, *o_b;                         /* attention.output.dense */
  const float *ln1_g, *ln1_b;                     /* attention.output.LayerNorm */
  const float *i_w, *i_b;                         /* intermediate.dense [I,H] */
  const float *out_w, *out_b;                     /* output.dense [H,I] */
  const float *ln2_g, *ln2_b;                     /* output.LayerNorm */
} ae__bert_layer;

typedef struct {
  ae__bert_config cfg;
  const float *word_emb;  /* [vocab, H] */
  const float *pos_emb;   /* [max_positions, H] */
  const float *type_emb;  /* [type_vocab, H] */
  const float *emb_ln_g, *emb_ln_b;
  ae__bert_layer *layer;  /* cfg.layers entries */
  int pooling;            /* AE_POOL_* from 1_Pooling/config.json (mean by default) */
  int normalize;          /* 1 when modules.json lists a Normalize module */
  int max_length;         /* sentence_bert_config max_seq_length, else tokenizer's,
                             else max_positions */
  char dtype[8];          /* "F32", "F16" or "BF16": the file's weight dtype */
  char *dir;
  uint8_t fingerprint[16];/* config, weights header, tokenizer files, max_length,
                             pooling, normalize (the encoder mixes in precision) */
  /* storage owned by the loader */
  void *map;
  size_t map_len;
  float *converted;       /* F16/BF16 weights converted to F32 */
} ae__bert_model;

/* Loads and validates a model folder. max_length_override 0 = the folder's. */
int ae__bert_load(const char *dir, int max_length_override, ae__bert_model **out);
void ae__bert_free(ae__bert_model *m);
#endif
