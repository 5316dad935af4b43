/* Internal interface of the encoder's forward pass (src/encoder).
 *
 * Layout of the work: every token of a batch is packed into one [T, H] matrix (no
 * padding anywhere); the dense layers are oneDNN matmuls over those T rows with
 * weights prepacked once at load; attention runs per sequence and head with the
 * sequence's own length. See encoder.c for the pipeline, gemm.c for the oneDNN
 * wrapper, kernels.c for the hand-written parts and cpu.c for the choice of their
 * instruction set (kernels_avx512.c, kernels_avx2.c, kernels_generic.c). */
#ifndef AE_ENCODER_INTERNAL_H
#define AE_ENCODER_INTERNAL_H
#include "common/common.h"
#include "model/model.h"
#include <oneapi/dnnl/dnnl.h>

/* ---- oneDNN matmul with prepacked weights (gemm.c) ------------------------ */

enum { AE__EPI_BIAS = 0, AE__EPI_BIAS_ACT = 1, AE__EPI_BIAS_RESIDUAL = 2 };
#define AE__GEMM_CACHE 24

/* A growable bf16 buffer shared by the GEMMs of one encoder: the current GEMM's A
 * converted to bf16 (only one GEMM runs at a time). */
typedef struct {
  uint16_t *p;
  size_t cap;                  /* elements */
} ae__bf16_buf;

/* One GEMM shape of the model: C[M,N] = A[M,K] x W[K,N] + bias (+ epilogue), with
 * W stored packed in the layout oneDNN chose for it. M varies with the batch; one
 * primitive is cached per M bucket (M rounded up to 16 by the caller).
 * bf16 GEMMs (ae__gemm_init_bf16): W is packed as bf16, A arrives in f32 and is
 * rounded to bf16 into *abuf before each run, accumulation, bias, epilogue and C
 * stay f32. */
typedef struct {
  int K, N, epilogue, act;     /* act: AE__ACT_* (for AE__EPI_BIAS_ACT) */
  int ldc;                     /* row stride of C (N, or 3H for one of Q|K|V) */
  int bf16;                    /* 1: bf16 A and W, f32 accumulation and C */
  ae__bf16_buf *abuf;          /* bf16 only: where A is converted */
  dnnl_engine_t eng;
  dnnl_memory_desc_t w_md;     /* packed weight layout */
  size_t w_bytes;
  struct {
    int m;
    uint64_t used;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, bias, dst;
  } cache[AE__GEMM_CACHE];
  uint64_t clock;
} ae__gemm;

int ae__gemm_init(ae__gemm *g, dnnl_engine_t eng, int K, int N, int epilogue, int act);
/* The same with bf16 A and W (W packed to bf16 by ae__gemm_pack, A converted into
 * *abuf by ae__gemm_run). AE_EUNSUPPORTED, saying so, when oneDNN has no bf16
 * matmul on this CPU (it needs at least AVX-512; without AVX512-BF16 it emulates). */
int ae__gemm_init_bf16(ae__gemm *g, dnnl_engine_t eng, int K, int N, int epilogue, int act,
                       ae__bf16_buf *abuf);
/* The same GEMM on weights used in place as loaded (PyTorch [N, K], no pack);
 * C rows are ldc floats apart (ldc >= N). */
int ae__gemm_init_plain(ae__gemm *g, dnnl_engine_t eng, int K, int N, int ldc, int epilogue,
                        int act);
void ae__gemm_destroy(ae__gemm *g);
/* Packs a PyTorch Linear weight [N, K] (row-major, f32) into *packed (64-byte
 * aligned, allocated with ae__aligned_alloc; f32 or bf16 elements as the GEMM). */
int ae__gemm_pack(ae__gemm *g, dnnl_stream_t st, const float *w_nk, void **packed);
/* C = A x W + bias (+ act, or + C for the residual epilogue). A is [M,K] and C is
 * [M,N] with rows ldc floats apart, both f32. */
int ae__gemm_run(ae__gemm *g, dnnl_stream_t st, int M, const float *A, const void *packed,
                 const float *bias, float *C);
/* dst[i] = src[i] rounded to the nearest bf16 (ties to even), n elements; run by
 * the calling OpenMP team's threads when n is large. */
void ae__to_bf16(const float *src, uint16_t *dst, size_t n);
/* The same in scalar integer arithmetic (what ae__to_bf16 uses without AVX512-BF16;
 * exposed for the tests). */
void ae__to_bf16_portable(const float *src, uint16_t *dst, size_t n);

void *ae__aligned_alloc(size_t bytes);   /* 64-byte aligned, through the hook */
void ae__aligned_free(void *p);

/* ---- per-ISA kernels (cpu.c, kernels_avx512.c, kernels_avx2.c, kernels_generic.c)
 *
 * The vectorised inner loops of the forward pass, one table per instruction set.
 * kernels_generic.c is portable C and the reference the others are tested against
 * (tests/encoder/test_kernels.c). The table in use is chosen once per process from
 * CPUID, capped by ASTEMBED_CPU (cpu.c). */
enum { AE__CPU_GENERIC = 0, AE__CPU_AVX2 = 1, AE__CPU_AVX512 = 2, AE__CPU_PATHS = 3 };
typedef struct {
  const char *name;                                  /* "avx512", "avx2", "generic" */
  /* LayerNorm of one row of H floats in place (two passes: mean, centred variance) */
  void (*layernorm_row)(float *x, int H, const float *g, const float *b, float eps);
  /* dst[c] = a[c] + b[c] + c3[c], c < H */
  void (*add3_row)(const float *a, const float *b, const float *c3, int H, float *dst);
  /* one head of one sequence of L tokens (q/k/v rows ldq apart, context rows ldc
   * apart); kt and p: scratch, 64-byte aligned, ae__attention_scratch_floats */
  void (*attend_head)(const float *q0, const float *k0, const float *v0, float *c0,
                      size_t ldq, size_t ldc, int L, int d, float scale, float *kt, float *p);
  /* out[4r + j] = sum_k a[r][k] * w[j][k], k < K */
  void (*dot4x4)(const float *const *a, const float *const *w, int K, float *out);
} ae__kernels;

extern const ae__kernels ae__kernels_generic;
#if defined(__x86_64__)
extern const ae__kernels ae__kernels_avx2, ae__kernels_avx512;
#endif
/* The table of one path, or NULL when this CPU (or this build's architecture) lacks
 * it; ignores ASTEMBED_CPU. */
const ae__kernels *ae__kernels_for(int path);
/* The process-wide choice (made once): the best path this CPU has, capped by
 * ASTEMBED_CPU, with oneDNN capped to match. AE_EINVAL naming the value when
 * ASTEMBED_CPU is not avx512, avx2 or generic; AE_EUNSUPPORTED when oneDNN refused
 * the cap. Call before the first oneDNN primitive is created. */
int ae__cpu_select(void);
/* The chosen table (the generic one when the choice failed). */
const ae__kernels *ae__kernels_active(void);

/* ---- kernels (kernels.c) -------------------------------------------------- */

/* x[t] = LayerNorm(word[tok[t]] + pos[pos[t]] + type[0]) for the T packed tokens. */
void ae__embed_tokens(const ae__bert_model *m, const int32_t *tok, const int32_t *pos,
                      size_t T, float *x);
/* In-place LayerNorm of rows [0, rows) of x[rows, H]. */
void ae__layernorm_rows(float *x, size_t rows, int H, const float *g, const float *b,
                        float eps);
/* ctx[T, H] = softmax(Q K^T / sqrt(d)) V per sequence and head, reading
 * qkv[T, 3H] (Q | K | V). off[i] = first row of sequence i. scratch holds
 * ae__attention_scratch_floats(max_len, d) floats per thread. */
size_t ae__attention_scratch_floats(int max_len, int d);
void ae__attention(const float *qkv, float *ctx, const size_t *off, const size_t *lens,
                   size_t n, int H, int heads, float *scratch, size_t scratch_per_thread);
/* Pools sequence rows x[off .. off+len) into out[H] and L2-normalises it when asked. */
void ae__pool(const float *x, size_t len, int H, int pooling, int normalize, float *out);

/* ---- the encoder ---------------------------------------------------------- */

enum { AE__PH_EMBED, AE__PH_QKV, AE__PH_ATTN, AE__PH_O, AE__PH_LN, AE__PH_FFN1, AE__PH_FFN2,
       AE__PH_POOL, AE__PH_COUNT };
extern const char *const ae__phase_names[AE__PH_COUNT];

typedef struct {
  void *qkv_w, *o_w, *i_w, *out_w;   /* packed (f32 or bf16), or the model's f32 */
  float *qkv_b;                      /* [3H] = q_b | k_b | v_b */
} ae__packed_layer;

struct ae_encoder {
  ae__bert_model *model;
  void (*free_model)(ae__bert_model *);  /* NULL = not owned */
  ae_tokenizer *tok;
  void (*free_tok)(ae_tokenizer *);      /* NULL = not owned */
  int threads;
  int max_length;
  size_t chunk_tokens;   /* token budget of one forward pass (bounds the buffers) */
  size_t ffn_rows;       /* rows of one FFN block (bounds the [rows, I] buffer) */
  uint8_t fingerprint[16];

  dnnl_engine_t eng;
  dnnl_stream_t st;
  ae__gemm g_qkv, g_o, g_i, g_out;   /* plain mode: g_qkv is one of Q|K|V (N = H) */
  int plain;                         /* AE_PREPACK_OFF: pl[] points into the model */
  int precision;                     /* AE_PRECISION_*: the GEMMs' inputs (plain: always f32) */
  ae__bf16_buf a16;                  /* bf16 GEMMs: A converted */
  ae__packed_layer *pl;

  /* activations, grown as needed, reused by every call */
  size_t cap_rows;
  float *x, *qkv, *ctx, *h;
  float *scratch;
  size_t scratch_per_thread;
  int32_t *tok_ids, *pos;   /* [cap_rows]: token id and position of each row */
  size_t *off;
  size_t cap_seqs;

  /* optional phase timings (ns), accumulated while profile is set */
  int profile;
  uint64_t prof_ns[AE__PH_COUNT];
};

/* NULL or "f32" -> AE_PRECISION_F32, "bf16" -> AE_PRECISION_BF16, else AE_EINVAL
 * naming the value. */
int ae__precision_option(const char *name, int *prec);

/* Builds an encoder around an already loaded model (and optional tokenizer). When
 * free_model / free_tok are given the encoder owns the object and frees it with
 * them; on failure nothing passed in is freed. (Function pointers keep the forward
 * pass free of link-time dependencies on the loader and the tokenizer.) */
int ae__encoder_new(ae__bert_model *m, void (*free_model)(ae__bert_model *),
                    ae_tokenizer *tok, void (*free_tok)(ae_tokenizer *),
                    const ae_encoder_options *opts, ae_encoder **out);
/* Tuning knobs (0 = keep the current value). */
void ae__encoder_tune(ae_encoder *enc, size_t chunk_tokens, size_t ffn_rows);

/* Floating-point operations of one forward pass over sequences of these lengths:
 * dense 2*T*(4H^2 + 2HI) plus attention 4*sum(L^2)*H, per layer. */
double ae__encoder_flops(const ae__bert_config *cfg, const size_t *lens, size_t n);
#endif
