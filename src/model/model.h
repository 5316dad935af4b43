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
  uint8_t fingerprint[16];/* config, weights (header and bytes), tokenizer files, max_length,
                             pooling, normalize (the encoder mixes in precision) */
  /* storage owned by the loader */
  void *map;
  size_t map_len;
  float *converted;       /* F16/BF16 weights converted to F32 */
  /* added by the loader (informational) */
  int64_t n_params;       /* parameters of the tensors above (no pooler, no position_ids) */
  int bert_prefix;        /* 1 when the file's names carry the "bert." prefix */
  int weights_cached;     /* 1 when the load cache supplied the weights' digest and
                             finite check (neither pass read the weights) */
} ae__bert_model;

/* Loads and validates a model folder. max_length_override 0 = the folder's.
 * Errors (ae_last_error names the file and the key or tensor):
 *   AE_ENOTFOUND   config.json / model.safetensors / a config key / a tensor missing
 *   AE_EFORMAT     malformed JSON, truncated or corrupt safetensors (header length,
 *                  offsets outside the data or overlapping, byte size != shape x
 *                  dtype, NaN/Inf weights), a config value of the wrong JSON type
 *   AE_EUNSUPPORTED  another architecture (gpt2, roberta ...), hidden_act, position
 *                  embedding type, pooling mode or sentence-transformers module
 *   AE_EMISMATCH   a tensor's dtype (not F32/F16/BF16) or shape vs the config;
 *                  the Pooling word_embedding_dimension vs hidden_size
 *   AE_EINVAL / AE_ERANGE  config values out of range (hidden % heads != 0, ...),
 *                  max_length_override above max_position_embeddings
 *   AE_ENOMEM, AE_EIO
 * The weights file stays mapped until ae__bert_free; it must not be truncated
 * meanwhile (SIGBUS), which is why init-random replaces files by rename. */
int ae__bert_load(const char *dir, int max_length_override, ae__bert_model **out);
/* The same with a load cache folder (NULL = none): see ae_encoder_options.cache_dir
 * and the weights entry in model.c. */
int ae__bert_load_ex(const char *dir, int max_length_override, const char *cache_dir,
                     ae__bert_model **out);
void ae__bert_free(ae__bert_model *m);

/* ---- helpers shared with the CLI and tests --------------------------------- */

/* Parses and validates config.json text; `what` names the file in errors. */
int ae__bert_config_parse(const char *json, size_t len, const char *what, ae__bert_config *cfg);
/* Parameters of the encoder tensors a config implies (embeddings + layers). */
int64_t ae__bert_param_count(const ae__bert_config *c);
const char *ae__act_name(int act);

/* sentence-transformers modules of dir: modules.json (Pooling path, Normalize
 * listed or not; other modules such as Dense refused) and the Pooling config
 * (AE_POOL_*, mean when absent). hidden checks word_embedding_dimension. */
int ae__st_modules_load(const char *dir, int hidden, int *pooling, int *normalize);
/* Max sequence length of dir: sentence_bert_config.json max_seq_length, else
 * tokenizer_config.json model_max_length when below 1e6, else max_positions;
 * clamped to max_positions. override > 0 replaces it (AE_ERANGE above positions). */
int ae__max_length_load(const char *dir, int max_positions, int override, int *max_length);

/* IEEE half and bfloat16 conversions, round to nearest even (NaN stays NaN). */
uint16_t ae__f32_to_f16(float f);
float ae__f16_to_f32(uint16_t h);
uint16_t ae__f32_to_bf16(float f);
float ae__bf16_to_f32(uint16_t h);

#endif
