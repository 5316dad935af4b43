/* oneDNN matmul with prepacked weights and a per-M primitive cache.
 *
 * Why prepack: oneDNN's brgemm matmul wants B in a blocked layout; handing it the
 * plain layout makes it repack B on every call. We ask oneDNN once, at load, which
 * layout it wants (format_tag any) for a representative M, reorder every layer's
 * weight into it, and afterwards create primitives for other Ms with that exact
 * layout (measured: the same brgemm kernel is chosen for every M from 1 to 4096).
 *
 * Why a cache per M: a matmul primitive has M baked in. Creating one costs ~0.4 ms,
 * so the caller rounds M up to a multiple of 16 and we keep the most recently used
 * AE__GEMM_CACHE primitives per shape (LRU); a batch reuses them for every layer.
 *
 * bf16 (opt-in precision): on AVX512-BF16 CPUs oneDNN's bf16 matmul (vdpbf16ps, bf16
 * products summed in f32) runs at twice the f32 rate. Weights are reordered to bf16
 * once, at load, in the layout oneDNN picks for bf16; A is rounded to bf16 into a
 * shared buffer before every run (one pass over A, a few % of the GEMM); bias,
 * post-ops and C stay f32, so only the GEMM inputs lose precision (8 bits of
 * mantissa, relative rounding error <= 2^-9 per element). */
#include "encoder/encoder.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <math.h>
#include <omp.h>
#include <string.h>

#define DNNL_TRY(call, what)                                                           \
  do {                                                                                 \
    dnnl_status_t s_ = (call);                                                         \
    if (s_ != dnnl_success) {                                                          \
      rc = ae__error(s_ == dnnl_out_of_memory ? AE_ENOMEM : AE_EUNSUPPORTED,           \
                     "oneDNN: %s failed (status %d)", what, (int)s_);                  \
      goto done;                                                                       \
    }                                                                                  \
  } while (0)

void *ae__aligned_alloc(size_t bytes) {
  unsigned char *raw = ae__malloc(bytes + 64 + sizeof(void *));
  if (!raw) return NULL;
  uintptr_t p = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
  ((void **)p)[-1] = raw;
  return (void *)p;
}

void ae__aligned_free(void *p) {
  if (p) ae__free(((void **)p)[-1]);
}

/* Creates the primitive descriptor of this GEMM for M rows; w_md NULL = let oneDNN
 * choose the weight layout. */
static int make_pd(ae__gemm *g, int M, const dnnl_memory_desc_t *w_md,
                   dnnl_primitive_desc_t *pd) {
  int rc = AE_OK;
  dnnl_memory_desc_t a, b, bias, c;
  dnnl_dims_t da = {M, g->K}, db = {g->K, g->N}, dbias = {1, g->N}, dc = {M, g->N};
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t po = NULL;
  dnnl_data_type_t in_dt = g->bf16 ? dnnl_bf16 : dnnl_f32;
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&a, 2, da, in_dt, dnnl_ab), "src desc");
  if (w_md) b = *w_md;
  else DNNL_TRY(dnnl_memory_desc_init_by_tag(&b, 2, db, in_dt, dnnl_format_tag_any), "weights desc");
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&bias, 2, dbias, dnnl_f32, dnnl_ab), "bias desc");
  dnnl_dims_t sc = {g->ldc, 1};   /* dst rows may be strided (Q|K|V in one buffer) */
  DNNL_TRY(dnnl_memory_desc_init_by_strides(&c, 2, dc, dnnl_f32, sc), "dst desc");
  dnnl_matmul_desc_t md;
  DNNL_TRY(dnnl_matmul_desc_init(&md, &a, &b, &bias, &c), "matmul desc");
  DNNL_TRY(dnnl_primitive_attr_create(&attr), "attr");
  DNNL_TRY(dnnl_post_ops_create(&po), "post-ops");
  if (g->epilogue == AE__EPI_BIAS_ACT) {
    dnnl_alg_kind_t alg = g->act == AE__ACT_GELU_NEW ? dnnl_eltwise_gelu_tanh
                        : g->act == AE__ACT_RELU     ? dnnl_eltwise_relu
                                                     : dnnl_eltwise_gelu_erf;
    DNNL_TRY(dnnl_post_ops_append_eltwise(po, 1.0f, alg, 0.0f, 0.0f), "eltwise post-op");
  } else if (g->epilogue == AE__EPI_BIAS_RESIDUAL) {
    DNNL_TRY(dnnl_post_ops_append_sum(po, 1.0f), "sum post-op");
  }
  DNNL_TRY(dnnl_primitive_attr_set_post_ops(attr, po), "set post-ops");
  DNNL_TRY(dnnl_primitive_desc_create(pd, &md, attr, g->eng, NULL), "matmul primitive desc");
done:
  if (po) dnnl_post_ops_destroy(po);
  if (attr) dnnl_primitive_attr_destroy(attr);
  return rc;
}

static void init_fields(ae__gemm *g, dnnl_engine_t eng, int K, int N, int ldc, int epilogue,
                        int act) {
  memset(g, 0, sizeof *g);
  g->K = K; g->N = N; g->ldc = ldc; g->epilogue = epilogue; g->act = act; g->eng = eng;
}

/* Plain weights: the PyTorch Linear weight [N, K] row-major is the [K, N] matrix
 * with strides (1, K), oneDNN tag "ba"; matmuls read it in place, no reorder. */
int ae__gemm_init_plain(ae__gemm *g, dnnl_engine_t eng, int K, int N, int ldc, int epilogue,
                        int act) {
  init_fields(g, eng, K, N, ldc, epilogue, act);
  dnnl_dims_t db = {K, N};
  if (dnnl_memory_desc_init_by_tag(&g->w_md, 2, db, dnnl_f32, dnnl_ba) != dnnl_success)
    return ae__error(AE_EUNSUPPORTED, "oneDNN: plain weights desc failed");
  g->w_bytes = 0;   /* nothing is packed */
  return AE_OK;
}

/* Asks oneDNN for its weight layout at a representative M (see the top comment). */
static int choose_layout(ae__gemm *g) {
  dnnl_primitive_desc_t pd = NULL;
  int rc = make_pd(g, 1024, NULL, &pd);
  if (rc) return rc;
  g->w_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  g->w_bytes = dnnl_memory_desc_get_size(&g->w_md);
  dnnl_primitive_desc_destroy(pd);
  return AE_OK;
}

int ae__gemm_init(ae__gemm *g, dnnl_engine_t eng, int K, int N, int epilogue, int act) {
  init_fields(g, eng, K, N, N, epilogue, act);
  return choose_layout(g);
}

int ae__gemm_init_bf16(ae__gemm *g, dnnl_engine_t eng, int K, int N, int epilogue, int act,
                       ae__bf16_buf *abuf) {
  init_fields(g, eng, K, N, N, epilogue, act);
  g->bf16 = 1;
  g->abuf = abuf;
  int rc = choose_layout(g);
  if (rc == AE_EUNSUPPORTED)  /* oneDNN: no bf16 matmul implementation here */
    rc = ae__error(AE_EUNSUPPORTED, "precision bf16: oneDNN has no bf16 matmul on this CPU "
                   "path (%s; it needs AVX-512; use precision f32)", ae__kernels_active()->name);
  return rc;
}

static void entry_clear(ae__gemm *g, int i) {
  if (g->cache[i].prim) dnnl_primitive_destroy(g->cache[i].prim);
  if (g->cache[i].src) dnnl_memory_destroy(g->cache[i].src);
  if (g->cache[i].wei) dnnl_memory_destroy(g->cache[i].wei);
  if (g->cache[i].bias) dnnl_memory_destroy(g->cache[i].bias);
  if (g->cache[i].dst) dnnl_memory_destroy(g->cache[i].dst);
  memset(&g->cache[i], 0, sizeof g->cache[i]);
}

void ae__gemm_destroy(ae__gemm *g) {
  for (int i = 0; i < AE__GEMM_CACHE; i++) entry_clear(g, i);
}

int ae__gemm_pack(ae__gemm *g, dnnl_stream_t st, const float *w_nk, void **packed) {
  int rc = AE_OK;
  dnnl_memory_desc_t plain;
  dnnl_dims_t db = {g->K, g->N};
  dnnl_memory_t msrc = NULL, mdst = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_t r = NULL;
  *packed = ae__aligned_alloc(g->w_bytes);
  if (!*packed) return ae__error(AE_ENOMEM, "encoder: out of memory packing weights");
  /* [N, K] row-major is the [K, N] matrix with strides (1, K): tag "ba". The reorder
   * also converts f32 -> bf16 (round to nearest even) for a bf16 GEMM. */
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&plain, 2, db, dnnl_f32, dnnl_ba), "plain desc");
  DNNL_TRY(dnnl_memory_create(&msrc, &plain, g->eng, (void *)w_nk), "memory");
  DNNL_TRY(dnnl_memory_create(&mdst, &g->w_md, g->eng, *packed), "memory");
  DNNL_TRY(dnnl_reorder_primitive_desc_create(&pd, &plain, g->eng, &g->w_md, g->eng, NULL),
           "reorder desc");
  DNNL_TRY(dnnl_primitive_create(&r, pd), "reorder");
  dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, msrc}, {DNNL_ARG_TO, mdst}};
  DNNL_TRY(dnnl_primitive_execute(r, st, 2, args), "reorder execute");
  DNNL_TRY(dnnl_stream_wait(st), "stream wait");
done:
  if (r) dnnl_primitive_destroy(r);
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (msrc) dnnl_memory_destroy(msrc);
  if (mdst) dnnl_memory_destroy(mdst);
  if (rc) { ae__aligned_free(*packed); *packed = NULL; }
  return rc;
}

/* Finds or builds the cached primitive for M rows (LRU replacement). */
static int entry_for(ae__gemm *g, int M, int *slot) {
  int victim = 0;
  for (int i = 0; i < AE__GEMM_CACHE; i++) {
    if (g->cache[i].prim && g->cache[i].m == M) {
      g->cache[i].used = ++g->clock;
      *slot = i;
      return AE_OK;
    }
    if (!g->cache[i].prim) victim = i;
    else if (g->cache[victim].prim && g->cache[i].used < g->cache[victim].used) victim = i;
  }
  entry_clear(g, victim);
  int rc = AE_OK;
  dnnl_primitive_desc_t pd = NULL;
  if ((rc = make_pd(g, M, &g->w_md, &pd))) return rc;
  DNNL_TRY(dnnl_primitive_create(&g->cache[victim].prim, pd), "matmul primitive");
  DNNL_TRY(dnnl_memory_create(&g->cache[victim].src,
                              dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), g->eng,
                              DNNL_MEMORY_NONE), "memory");
  DNNL_TRY(dnnl_memory_create(&g->cache[victim].wei, &g->w_md, g->eng, DNNL_MEMORY_NONE),
           "memory");
  DNNL_TRY(dnnl_memory_create(&g->cache[victim].bias,
                              dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1),
                              g->eng, DNNL_MEMORY_NONE), "memory");
  DNNL_TRY(dnnl_memory_create(&g->cache[victim].dst,
                              dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), g->eng,
                              DNNL_MEMORY_NONE), "memory");
  g->cache[victim].m = M;
  g->cache[victim].used = ++g->clock;
  *slot = victim;
done:
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (rc) entry_clear(g, victim);
  return rc;
}

/* ---- few rows on plain weights: no oneDNN -------------------------------------
 *
 * A query is one short text: 5 to 15 rows. oneDNN builds (JITs) a primitive per
 * shape on first use, ~1 ms each for the four shapes of a BERT layer, which is as
 * much as the whole product costs at this size. So plain-mode GEMMs of at most
 * SMALL_M rows run here: each output is the dot product of a row of A with a row of
 * the PyTorch [N, K] weight, which is already contiguous. Blocks of 4 rows x 4
 * outputs (the kernel table's dot4x4) reuse each load several times; the weight rows
 * of a block stay in L1 across the row blocks. The result differs from oneDNN's only
 * in rounding order. */
#define SMALL_M 16

static inline float act_fn(int act, float v) {
  if (act == AE__ACT_RELU) return v > 0 ? v : 0;
  if (act == AE__ACT_GELU_NEW)
    return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
  return 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
}

static void small_gemm(const ae__gemm *g, int M, const float *A, const float *W,
                       const float *bias, float *C) {
  const int K = g->K, N = g->N;
  const ae__kernels *kern = ae__kernels_active();
  for (int n0 = 0; n0 < N; n0 += 4) {
    const float *w[4];
    for (int j = 0; j < 4; j++) w[j] = W + (size_t)(n0 + j < N ? n0 + j : N - 1) * K;
    for (int m0 = 0; m0 < M; m0 += 4) {
      const float *a[4];
      for (int r = 0; r < 4; r++) a[r] = A + (size_t)(m0 + r < M ? m0 + r : M - 1) * K;
      float sum[16];
      kern->dot4x4(a, w, K, sum);
      for (int r = 0; r < 4 && m0 + r < M; r++) {
        float *c = C + (size_t)(m0 + r) * g->ldc;
        for (int j = 0; j < 4 && n0 + j < N; j++) {
          float v = sum[r * 4 + j] + bias[n0 + j];
          if (g->epilogue == AE__EPI_BIAS_ACT) v = act_fn(g->act, v);
          else if (g->epilogue == AE__EPI_BIAS_RESIDUAL) v += c[n0 + j];
          c[n0 + j] = v;
        }
      }
    }
  }
}

/* ---- f32 -> bf16 ----------------------------------------------------------------
 *
 * With AVX512-BF16, vcvtne2ps2bf16 rounds 32 floats to nearest-even in one
 * instruction. Elsewhere (oneDNN still runs bf16 matmuls on plain AVX-512 by
 * emulation) the same rounding in integer arithmetic: add 0x7fff plus the lowest
 * kept bit, keep the high half; NaNs are kept quiet NaNs. The conversion is
 * memory-bound, so large arrays are split over the OpenMP threads. */
#if defined(__x86_64__) && (defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10 || defined(__clang__))
#define HAVE_BF16_TARGET 1
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void to_bf16_ne(const float *s, uint16_t *d,
                                                                    size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + i + 16), _mm512_loadu_ps(s + i));
    _mm512_storeu_si512((void *)(d + i), (__m512i)v);
  }
  for (; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, s + i));
    _mm256_mask_storeu_epi16(d + i, m, (__m256i)v);
  }
}
#endif

void ae__to_bf16_portable(const float *s, uint16_t *d, size_t n) {
  for (size_t i = 0; i < n; i++) d[i] = ae__f32_to_bf16(s[i]);   /* src/model/config.c */
}

static void to_bf16_span(const float *s, uint16_t *d, size_t n) {
#ifdef HAVE_BF16_TARGET
  /* reads libgcc's cpu model (filled once at startup): cheap, and race-free; only on
   * the avx512 path (ASTEMBED_CPU caps it) */
  if (ae__kernels_active() == &ae__kernels_avx512 &&
      __builtin_cpu_supports("avx512bf16")) { to_bf16_ne(s, d, n); return; }
#endif
  ae__to_bf16_portable(s, d, n);
}

void ae__to_bf16(const float *src, uint16_t *dst, size_t n) {
  if (n < (1u << 16)) { to_bf16_span(src, dst, n); return; }
#pragma omp parallel
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    size_t per = (n / (size_t)nt + 31) & ~(size_t)31, b = per * (size_t)t;
    if (b < n) to_bf16_span(src + b, dst + b, n - b < per ? n - b : per);
  }
}

int ae__gemm_run(ae__gemm *g, dnnl_stream_t st, int M, const float *A, const void *packed,
                 const float *bias, float *C) {
  if (g->w_bytes == 0 && M <= SMALL_M) { /* plain weights, few rows */
    small_gemm(g, M, A, packed, bias, C);
    return AE_OK;
  }
  int slot = 0, rc;
  const void *src = A;
  if (g->bf16) {
    size_t n = (size_t)M * g->K;
    if (n > g->abuf->cap) {
      uint16_t *p = ae__aligned_alloc(n * sizeof(uint16_t));
      if (!p) return ae__error(AE_ENOMEM, "encoder: out of memory for %d bf16 rows", M);
      ae__aligned_free(g->abuf->p);
      g->abuf->p = p;
      g->abuf->cap = n;
    }
    ae__to_bf16(A, g->abuf->p, n);
    src = g->abuf->p;
  }
  if ((rc = entry_for(g, M, &slot))) return rc;
  typeof(g->cache[0]) *e = &g->cache[slot];
  DNNL_TRY(dnnl_memory_set_data_handle(e->src, (void *)src), "set handle");
  DNNL_TRY(dnnl_memory_set_data_handle(e->wei, (void *)packed), "set handle");
  DNNL_TRY(dnnl_memory_set_data_handle(e->bias, (void *)bias), "set handle");
  DNNL_TRY(dnnl_memory_set_data_handle(e->dst, C), "set handle");
  dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->src}, {DNNL_ARG_WEIGHTS, e->wei},
                             {DNNL_ARG_BIAS, e->bias}, {DNNL_ARG_DST, e->dst}};
  DNNL_TRY(dnnl_primitive_execute(e->prim, st, 4, args), "matmul execute");
done:
  return rc;
}
