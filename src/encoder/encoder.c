/* The encoder: prepacked weights, activation buffers and the forward pass.
 *
 * Forward pass over a chunk of sequences (no padding anywhere):
 *   x[T,H]     = LayerNorm(word + position + type-0 embeddings) of all T tokens
 *   qkv[T,3H]   = x Wqkv + b                 one GEMM, Q|K|V weights fused at load
 *   per layer:
 *     ctx[T,H]  = attention per sequence and head, each with its own length
 *     per block of ffn_rows rows (row-local from here on, so the block stays in
 *     cache through all four steps):
 *       x       = LayerNorm(x + ctx Wo + bo)       residual = oneDNN sum post-op
 *       h       = act(x Wi + bi)                     act = oneDNN eltwise post-op
 *       x       = LayerNorm(x + h Wout + bout)       residual = sum post-op
 *       qkv     = x Wqkv' + b'                       the next layer's projection
 *   pooled per sequence (mean / cls / max / mean_sqrt_len), L2-normalised if asked.
 *
 * The GEMM row count is T rounded up to 16 (so a few primitives serve all batch
 * shapes; 4 in plain mode, see forward_chunk); the pad rows hold token 0 at position 0, stay finite and are never read
 * back. A call with more tokens than chunk_tokens is split into chunks of whole
 * sequences, which bounds the activation memory (about 17 floats * H per token plus
 * one [ffn_rows, I] block) whatever the batch. */
#define _GNU_SOURCE
#include "encoder/encoder.h"
#include <omp.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#define ROUND16(n) (((n) + 15) & ~(size_t)15)

double ae__encoder_flops(const ae__bert_config *cfg, const size_t *lens, size_t n) {
  double T = 0, sq = 0, H = cfg->hidden, I = cfg->intermediate;
  for (size_t i = 0; i < n; i++) { T += (double)lens[i]; sq += (double)lens[i] * lens[i]; }
  return cfg->layers * (2.0 * T * (4.0 * H * H + 2.0 * H * I) + 4.0 * sq * H);
}

void ae__encoder_tune(ae_encoder *enc, size_t chunk_tokens, size_t ffn_rows) {
  if (chunk_tokens) enc->chunk_tokens = chunk_tokens < 512 ? 512 : chunk_tokens;
  if (ffn_rows) {
    enc->ffn_rows = ROUND16(ffn_rows);
    ae__aligned_free(enc->h);   /* reallocated at the new size by the next call */
    enc->h = NULL;
    enc->cap_rows = 0;
  }
}

/* The mapped file pages of weights that now live packed are dropped from memory
 * (they are file-backed and read-only, so this only lowers the resident set). */
static void drop_mapped(const ae__bert_model *m, const float *p, size_t n) {
  const char *b = (const char *)p, *e = b + n * sizeof(float);
  const char *mb = m->map, *me = mb + m->map_len;
  if (!m->map || b < mb || e > me) return;
  uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t lo = ((uintptr_t)b + pg - 1) & ~(pg - 1), hi = (uintptr_t)e & ~(pg - 1);
  if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

static int pack_layers(ae_encoder *enc) {
  const ae__bert_model *m = enc->model;
  const int H = m->cfg.hidden;
  int rc = AE_OK;
  float *qkv = ae__malloc(sizeof(float) * 3 * (size_t)H * H);
  if (!qkv) return ae__error(AE_ENOMEM, "encoder: out of memory packing weights");
  for (int l = 0; l < m->cfg.layers && !rc; l++) {
    const ae__bert_layer *L = &m->layer[l];
    ae__packed_layer *P = &enc->pl[l];
    /* [3H, H]: the rows of Wq, then Wk, then Wv (PyTorch [out, in] layout). */
    size_t hh = (size_t)H * H;
    memcpy(qkv, L->q_w, sizeof(float) * hh);
    memcpy(qkv + hh, L->k_w, sizeof(float) * hh);
    memcpy(qkv + 2 * hh, L->v_w, sizeof(float) * hh);
    if (!(P->qkv_b = ae__aligned_alloc(sizeof(float) * 3 * H))) { rc = ae__error(AE_ENOMEM, "encoder: out of memory"); break; }
    memcpy(P->qkv_b, L->q_b, sizeof(float) * H);
    memcpy(P->qkv_b + H, L->k_b, sizeof(float) * H);
    memcpy(P->qkv_b + 2 * H, L->v_b, sizeof(float) * H);
    if ((rc = ae__gemm_pack(&enc->g_qkv, enc->st, qkv, &P->qkv_w))) break;
    if ((rc = ae__gemm_pack(&enc->g_o, enc->st, L->o_w, &P->o_w))) break;
    if ((rc = ae__gemm_pack(&enc->g_i, enc->st, L->i_w, &P->i_w))) break;
    if ((rc = ae__gemm_pack(&enc->g_out, enc->st, L->out_w, &P->out_w))) break;
    drop_mapped(m, L->q_w, hh); drop_mapped(m, L->k_w, hh); drop_mapped(m, L->v_w, hh);
    drop_mapped(m, L->o_w, hh);
    drop_mapped(m, L->i_w, (size_t)H * m->cfg.intermediate);
    drop_mapped(m, L->out_w, (size_t)H * m->cfg.intermediate);
  }
  ae__free(qkv);
  return rc;
}

/* AE_PREPACK_OFF: the layers' weights are used where the loader left them (F32,
 * mmap or its own copy), so loading allocates and reorders nothing. Q, K and V
 * stay three matrices; qkv_proj runs three GEMMs writing the Q|K|V thirds of each
 * qkv row (a fused [3H, H] copy would cost 1.7 MB per layer for one short text). */
static void point_layers(ae_encoder *enc) {
  const ae__bert_model *m = enc->model;
  for (int l = 0; l < m->cfg.layers; l++) {
    const ae__bert_layer *L = &m->layer[l];
    ae__packed_layer *P = &enc->pl[l];
    P->o_w = (float *)L->o_w; P->i_w = (float *)L->i_w; P->out_w = (float *)L->out_w;
  }
}

static int init_gemms(ae_encoder *enc) {
  const ae__bert_config *c = &enc->model->cfg;
  const int H = c->hidden, I = c->intermediate;
  int rc;
  if (!enc->plain && enc->precision == AE_PRECISION_BF16) {
    ae__bf16_buf *b = &enc->a16;
    if ((rc = ae__gemm_init_bf16(&enc->g_qkv, enc->eng, H, 3 * H, AE__EPI_BIAS, 0, b)) ||
        (rc = ae__gemm_init_bf16(&enc->g_o, enc->eng, H, H, AE__EPI_BIAS_RESIDUAL, 0, b)) ||
        (rc = ae__gemm_init_bf16(&enc->g_i, enc->eng, H, I, AE__EPI_BIAS_ACT, c->act, b)) ||
        (rc = ae__gemm_init_bf16(&enc->g_out, enc->eng, I, H, AE__EPI_BIAS_RESIDUAL, 0, b)))
      return rc;
    return AE_OK;
  }
  if (enc->plain) {
    if ((rc = ae__gemm_init_plain(&enc->g_qkv, enc->eng, H, H, 3 * H, AE__EPI_BIAS, 0)) ||
        (rc = ae__gemm_init_plain(&enc->g_o, enc->eng, H, H, H, AE__EPI_BIAS_RESIDUAL, 0)) ||
        (rc = ae__gemm_init_plain(&enc->g_i, enc->eng, H, I, I, AE__EPI_BIAS_ACT, c->act)) ||
        (rc = ae__gemm_init_plain(&enc->g_out, enc->eng, I, H, H, AE__EPI_BIAS_RESIDUAL, 0)))
      return rc;
    return AE_OK;
  }
  if ((rc = ae__gemm_init(&enc->g_qkv, enc->eng, H, 3 * H, AE__EPI_BIAS, 0)) ||
      (rc = ae__gemm_init(&enc->g_o, enc->eng, H, H, AE__EPI_BIAS_RESIDUAL, 0)) ||
      (rc = ae__gemm_init(&enc->g_i, enc->eng, H, I, AE__EPI_BIAS_ACT, c->act)) ||
      (rc = ae__gemm_init(&enc->g_out, enc->eng, I, H, AE__EPI_BIAS_RESIDUAL, 0)))
    return rc;
  return AE_OK;
}

static const char *const k_precision_names[] = {"f32", "bf16"};   /* AE_PRECISION_* */

const char *ae_precision_name(int precision) {
  return k_precision_names[precision == AE_PRECISION_BF16];
}

int ae_precision_parse(const char *name) {
  for (int i = 0; name && i < 2; i++)
    if (!strcmp(name, k_precision_names[i])) return i;
  return -1;
}

int ae__precision_option(const char *name, int *prec) {
  *prec = name ? ae_precision_parse(name) : AE_PRECISION_F32;
  if (*prec < 0) return ae__error(AE_EINVAL, "encoder: unknown precision '%s' (f32 or bf16)", name);
  return AE_OK;
}

/* The encoder's fingerprint = XXH3-128(model fingerprint || precision name || NUL):
 * f32 and bf16 vectors of one model never share a cache or store entry. (For f32
 * this is the same 20 bytes as before precisions existed, so f32 caches stay valid.) */
static void fingerprint_as(const ae_encoder *enc, int prec, uint8_t out[16]) {
  uint8_t buf[16 + 8];
  const char *name = k_precision_names[prec];
  size_t n = strlen(name) + 1;
  memcpy(buf, enc->model->fingerprint, 16);
  memcpy(buf + 16, name, n);
  XXH128_hash_t h = XXH3_128bits(buf, 16 + n);
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, h);
  memcpy(out, c.digest, 16);
}

int ae__encoder_new(ae__bert_model *m, void (*free_model)(ae__bert_model *),
                    ae_tokenizer *tok, void (*free_tok)(ae_tokenizer *),
                    const ae_encoder_options *opts, ae_encoder **out) {
  *out = NULL;
  const ae__bert_config *c = &m->cfg;
  if (c->hidden <= 0 || c->heads <= 0 || c->hidden % c->heads || c->layers <= 0 ||
      c->intermediate <= 0 || c->max_positions <= 0)
    return ae__error(AE_EINVAL, "encoder: bad model shape (hidden %d, heads %d, layers %d)",
                     c->hidden, c->heads, c->layers);
  if (opts && (opts->threads < 0 || opts->max_length < 0))
    return ae__error(AE_EINVAL, "encoder: negative threads or max_length option");
  if (opts && opts->max_length > c->max_positions)
    return ae__error(AE_ERANGE, "encoder: max_length %d exceeds the model's %d positions",
                     opts->max_length, c->max_positions);
  int prec = AE_PRECISION_F32;
  if (opts && ae__precision_option(opts->precision, &prec)) return AE_EINVAL;
  int rc = ae__cpu_select();   /* kernel path and oneDNN's ISA cap, before oneDNN's first use */
  if (rc) return rc;
  ae_encoder *enc = ae__calloc(1, sizeof *enc);
  if (!enc) return ae__error(AE_ENOMEM, "encoder: out of memory");
  enc->model = m;
  enc->tok = tok;
  enc->threads = opts && opts->threads > 0 ? opts->threads : ae__cpu_count();
  enc->plain = opts && opts->prepack < 0;
  enc->precision = prec;
  enc->max_length = opts && opts->max_length > 0 ? opts->max_length : m->max_length;
  if (enc->max_length <= 0 || enc->max_length > c->max_positions) enc->max_length = c->max_positions;
  enc->chunk_tokens = 2048;
  enc->ffn_rows = 1024;
  omp_set_num_threads(enc->threads);
  if (dnnl_engine_create(&enc->eng, dnnl_cpu, 0) != dnnl_success ||
      dnnl_stream_create(&enc->st, enc->eng, dnnl_stream_default_flags) != dnnl_success) {
    rc = ae__error(AE_EUNSUPPORTED, "encoder: cannot create the oneDNN CPU engine");
    goto fail;
  }
  const int H = c->hidden;
  if ((rc = init_gemms(enc))) goto fail;
  if (!(enc->pl = ae__calloc((size_t)c->layers, sizeof *enc->pl))) {
    rc = ae__error(AE_ENOMEM, "encoder: out of memory");
    goto fail;
  }
  if (enc->plain) point_layers(enc);
  else if ((rc = pack_layers(enc))) goto fail;
  enc->scratch_per_thread = ae__attention_scratch_floats(c->max_positions, H / c->heads);
  if (!(enc->scratch = ae__aligned_alloc(sizeof(float) * enc->scratch_per_thread * enc->threads))) {
    rc = ae__error(AE_ENOMEM, "encoder: out of memory");
    goto fail;
  }
  fingerprint_as(enc, enc->precision, enc->fingerprint);
  enc->free_model = free_model;
  enc->free_tok = free_tok;
  *out = enc;
  return AE_OK;
fail:
  ae_encoder_free(enc);   /* free_* still NULL: the caller keeps m and tok */
  return rc;
}

static void free_buffers(ae_encoder *enc) {
  ae__aligned_free(enc->x); ae__aligned_free(enc->qkv); ae__aligned_free(enc->ctx);
  ae__aligned_free(enc->h);
  ae__free(enc->tok_ids); ae__free(enc->pos);
  enc->x = enc->qkv = enc->ctx = enc->h = NULL;
  enc->tok_ids = enc->pos = NULL;
  enc->cap_rows = 0;
}

void ae_encoder_free(ae_encoder *enc) {
  if (!enc) return;
  if (enc->pl) {
    for (int l = 0; l < enc->model->cfg.layers && !enc->plain; l++) {
      ae__aligned_free(enc->pl[l].qkv_w); ae__aligned_free(enc->pl[l].o_w);
      ae__aligned_free(enc->pl[l].i_w); ae__aligned_free(enc->pl[l].out_w);
      ae__aligned_free(enc->pl[l].qkv_b);
    }
    ae__free(enc->pl);
  }
  ae__gemm_destroy(&enc->g_qkv); ae__gemm_destroy(&enc->g_o);
  ae__gemm_destroy(&enc->g_i); ae__gemm_destroy(&enc->g_out);
  if (enc->st) dnnl_stream_destroy(enc->st);
  if (enc->eng) dnnl_engine_destroy(enc->eng);
  free_buffers(enc);
  ae__free(enc->off);
  ae__aligned_free(enc->scratch);
  ae__aligned_free(enc->a16.p);
  if (enc->free_model) enc->free_model(enc->model);
  if (enc->free_tok && enc->tok) enc->free_tok(enc->tok);
  ae__free(enc);
}

int ae_encoder_dim(const ae_encoder *enc) { return enc->model->cfg.hidden; }
int ae_encoder_max_length(const ae_encoder *enc) { return enc->max_length; }
const ae_tokenizer *ae_encoder_tokenizer(const ae_encoder *enc) { return enc->tok; }
void ae_encoder_fingerprint(const ae_encoder *enc, uint8_t out[16]) {
  memcpy(out, enc->fingerprint, 16);
}
const char *ae_encoder_precision(const ae_encoder *enc) {
  return k_precision_names[enc->precision];
}
int ae_encoder_fingerprint_as(const ae_encoder *enc, const char *precision, uint8_t out[16]) {
  int prec;
  if (!enc || !out) return ae__error(AE_EINVAL, "encoder: NULL argument");
  if (ae__precision_option(precision, &prec)) return AE_EINVAL;
  fingerprint_as(enc, prec, out);
  return AE_OK;
}

/* Grows the activation buffers to hold rows (a multiple of 4) and seqs sequences. */
static int ensure_buffers(ae_encoder *enc, size_t rows, size_t seqs) {
  const size_t H = enc->model->cfg.hidden, I = enc->model->cfg.intermediate;
  if (seqs > enc->cap_seqs) {
    size_t *o = ae__realloc(enc->off, sizeof(size_t) * seqs);
    if (!o) return ae__error(AE_ENOMEM, "encoder: out of memory for %zu sequences", seqs);
    enc->off = o;
    enc->cap_seqs = seqs;
  }
  if (rows <= enc->cap_rows) return AE_OK;
  free_buffers(enc);
  size_t hrows = rows < enc->ffn_rows ? rows : enc->ffn_rows;
  enc->x = ae__aligned_alloc(sizeof(float) * rows * H);
  enc->qkv = ae__aligned_alloc(sizeof(float) * rows * 3 * H);
  enc->ctx = ae__aligned_alloc(sizeof(float) * rows * H);
  enc->h = ae__aligned_alloc(sizeof(float) * hrows * I);
  enc->tok_ids = ae__malloc(sizeof(int32_t) * rows);
  enc->pos = ae__malloc(sizeof(int32_t) * rows);
  if (!enc->x || !enc->qkv || !enc->ctx || !enc->h || !enc->tok_ids || !enc->pos) {
    free_buffers(enc);
    return ae__error(AE_ENOMEM, "encoder: out of memory for a batch of %zu tokens", rows);
  }
  /* ctx pad rows are read by the output projection but never written by attention */
  memset(enc->ctx, 0, sizeof(float) * rows * H);
  enc->cap_rows = rows;
  return AE_OK;
}

const char *const ae__phase_names[AE__PH_COUNT] = {
  "embed+LN", "QKV GEMM", "attention", "out-proj GEMM", "LayerNorm", "FFN1 GEMM+act",
  "FFN2 GEMM", "pool"};

/* Phase timer: charges the time since the last mark to phase ph when profiling. */
static inline void mark(ae_encoder *enc, uint64_t *t, int ph) {
  if (!enc->profile) return;
  uint64_t now = ae__now_ns();
  enc->prof_ns[ph] += now - *t;
  *t = now;
}

/* qkv[rows, 3H] = xb Wqkv + b for layer l: one GEMM on the fused packed weight,
 * or (plain mode) three on Wq, Wk, Wv in place, each writing its third of a row. */
static int qkv_proj(ae_encoder *enc, int l, int rows, const float *xb, float *qkv) {
  if (!enc->plain)
    return ae__gemm_run(&enc->g_qkv, enc->st, rows, xb, enc->pl[l].qkv_w, enc->pl[l].qkv_b, qkv);
  const ae__bert_layer *L = &enc->model->layer[l];
  const int H = enc->model->cfg.hidden;
  int rc;
  if ((rc = ae__gemm_run(&enc->g_qkv, enc->st, rows, xb, L->q_w, L->q_b, qkv)) ||
      (rc = ae__gemm_run(&enc->g_qkv, enc->st, rows, xb, L->k_w, L->k_b, qkv + H)) ||
      (rc = ae__gemm_run(&enc->g_qkv, enc->st, rows, xb, L->v_w, L->v_b, qkv + 2 * H)))
    return rc;
  return AE_OK;
}

static int forward_chunk(ae_encoder *enc, const int32_t *const *ids, const size_t *lens,
                         size_t n, float *out) {
  const ae__bert_model *m = enc->model;
  const int H = m->cfg.hidden;
  size_t T = 0;
  for (size_t i = 0; i < n; i++) T += lens[i];
  /* Plain mode is for one or a few short texts (a query): there the padding would be
   * most of the work (7 tokens -> 16 rows), and the few shapes seen by such a process
   * each need a primitive anyway, so rows are only rounded to 4. */
  const size_t Mp = enc->plain ? ((T + 3) & ~(size_t)3) : ROUND16(T);
  int rc = ensure_buffers(enc, Mp, n);
  if (rc) return rc;
  size_t t = 0;
  for (size_t i = 0; i < n; i++) {
    enc->off[i] = t;
    for (size_t p = 0; p < lens[i]; p++, t++) { enc->tok_ids[t] = ids[i][p]; enc->pos[t] = (int32_t)p; }
  }
  for (; t < Mp; t++) enc->tok_ids[t] = enc->pos[t] = 0;
  uint64_t tm = enc->profile ? ae__now_ns() : 0;
  ae__embed_tokens(m, enc->tok_ids, enc->pos, Mp, enc->x);
  mark(enc, &tm, AE__PH_EMBED);
  const size_t FB = enc->ffn_rows;
  for (size_t r0 = 0; r0 < Mp; r0 += FB) {
    size_t rows = Mp - r0 < FB ? Mp - r0 : FB;
    if ((rc = qkv_proj(enc, 0, (int)rows, enc->x + r0 * H, enc->qkv + r0 * 3 * H))) return rc;
  }
  mark(enc, &tm, AE__PH_QKV);
  for (int l = 0; l < m->cfg.layers; l++) {
    const ae__bert_layer *L = &m->layer[l];
    const ae__packed_layer *P = &enc->pl[l];
    ae__attention(enc->qkv, enc->ctx, enc->off, lens, n, H, m->cfg.heads, enc->scratch,
                  enc->scratch_per_thread);
    mark(enc, &tm, AE__PH_ATTN);
    /* everything after attention is row-local: run it block by block so each
     * block's activations stay in cache from the output projection to LN2 */
    for (size_t r0 = 0; r0 < Mp; r0 += FB) {
      size_t rows = Mp - r0 < FB ? Mp - r0 : FB;
      float *xb = enc->x + r0 * H;
      if ((rc = ae__gemm_run(&enc->g_o, enc->st, (int)rows, enc->ctx + r0 * H, P->o_w, L->o_b, xb)))
        return rc;
      mark(enc, &tm, AE__PH_O);
      ae__layernorm_rows(xb, rows, H, L->ln1_g, L->ln1_b, m->cfg.ln_eps);
      mark(enc, &tm, AE__PH_LN);
      if ((rc = ae__gemm_run(&enc->g_i, enc->st, (int)rows, xb, P->i_w, L->i_b, enc->h)))
        return rc;
      mark(enc, &tm, AE__PH_FFN1);
      if ((rc = ae__gemm_run(&enc->g_out, enc->st, (int)rows, enc->h, P->out_w, L->out_b, xb)))
        return rc;
      mark(enc, &tm, AE__PH_FFN2);
      ae__layernorm_rows(xb, rows, H, L->ln2_g, L->ln2_b, m->cfg.ln_eps);
      mark(enc, &tm, AE__PH_LN);
      if (l + 1 < m->cfg.layers) {   /* the next layer's QKV while the block is warm */
        if ((rc = qkv_proj(enc, l + 1, (int)rows, xb, enc->qkv + r0 * 3 * H))) return rc;
        mark(enc, &tm, AE__PH_QKV);
      }
    }
  }
  dnnl_stream_wait(enc->st);
  for (size_t i = 0; i < n; i++)
    ae__pool(enc->x + enc->off[i] * H, lens[i], H, m->pooling, m->normalize, out + i * H);
  mark(enc, &tm, AE__PH_POOL);
  return AE_OK;
}

int ae_encoder_embed_ids(ae_encoder *enc, const int32_t *const *ids, const size_t *lens,
                         size_t n, float *out) {
  if (!enc || (n && (!ids || !lens || !out)))
    return ae__error(AE_EINVAL, "encoder: NULL argument");
  const ae__bert_config *c = &enc->model->cfg;
  for (size_t i = 0; i < n; i++) {
    if (lens[i] == 0 || lens[i] > (size_t)c->max_positions)
      return ae__error(AE_EINVAL, "encoder: sequence %zu has %zu tokens (must be 1..%d)", i,
                       lens[i], c->max_positions);
    for (size_t p = 0; p < lens[i]; p++)
      if (ids[i][p] < 0 || ids[i][p] >= c->vocab)
        return ae__error(AE_EINVAL, "encoder: sequence %zu token %zu: id %d outside the "
                         "vocabulary (0..%d)", i, p, (int)ids[i][p], c->vocab - 1);
  }
  omp_set_num_threads(enc->threads);
  size_t first = 0;
  while (first < n) {
    size_t count = 0, tokens = 0;
    while (first + count < n && (count == 0 || tokens + lens[first + count] <= enc->chunk_tokens))
      tokens += lens[first + count++];
    int rc = forward_chunk(enc, ids + first, lens + first, count, out + first * c->hidden);
    if (rc) return rc;
    first += count;
  }
  return AE_OK;
}
