/* The parallel drivers of the hand-written kernels of the forward pass: embeddings +
 * LayerNorm, LayerNorm, attention and pooling. The dense layers are oneDNN's
 * (gemm.c); these are the memory-bound or per-sequence parts, split over OpenMP
 * threads here and vectorised in the per-ISA tables (kernels_avx512.c,
 * kernels_avx2.c, kernels_generic.c) that cpu.c chooses from. */
#include "encoder/encoder.h"
#include <math.h>
#include <omp.h>
#include <string.h>

/* A block of a few hundred rows takes ~0.1 ms on one core; forking a parallel region
 * for it costs more than it saves (and a descheduled worker stalls the barrier), so
 * only big blocks are split across threads. */
void ae__layernorm_rows(float *x, size_t rows, int H, const float *g, const float *b,
                        float eps) {
  const ae__kernels *k = ae__kernels_active();
#pragma omp parallel for schedule(static) if (rows * (size_t)H >= ((size_t)1 << 20))
  for (size_t r = 0; r < rows; r++) k->layernorm_row(x + r * (size_t)H, H, g, b, eps);
}

void ae__embed_tokens(const ae__bert_model *m, const int32_t *tok, const int32_t *pos,
                      size_t T, float *x) {
  const int H = m->cfg.hidden;
  const ae__kernels *k = ae__kernels_active();
#pragma omp parallel for schedule(static)
  for (size_t t = 0; t < T; t++) {
    float *dst = x + t * (size_t)H;
    k->add3_row(m->word_emb + (size_t)tok[t] * H, m->pos_emb + (size_t)pos[t] * H, m->type_emb,
                H, dst);
    k->layernorm_row(dst, H, m->emb_ln_g, m->emb_ln_b, m->cfg.ln_eps);
  }
}

size_t ae__attention_scratch_floats(int max_len, int d) {
  size_t lp = ((size_t)max_len + 15) & ~(size_t)15;
  return lp * (size_t)d + 8 * lp + 64;
}

/* One (sequence, head) pair per work item, scheduled dynamically: lengths differ. */
void ae__attention(const float *qkv, float *ctx, const size_t *off, const size_t *lens,
                   size_t n, int H, int heads, float *scratch, size_t scratch_per_thread) {
  const int d = H / heads;
  const float scale = 1.0f / sqrtf((float)d);
  const size_t ld3 = 3 * (size_t)H;
  const long pairs = (long)n * heads;
  const ae__kernels *k = ae__kernels_active();
#pragma omp parallel
  {
    float *kt = scratch + (size_t)omp_get_thread_num() * scratch_per_thread;
    kt = (float *)(((uintptr_t)kt + 63) & ~(uintptr_t)63);
#pragma omp for schedule(dynamic, 1)
    for (long w = 0; w < pairs; w++) {
      size_t i = (size_t)(w / heads);
      int h = (int)(w % heads);
      int L = (int)lens[i];
      int Lp = (L + 15) & ~15;
      const float *base = qkv + off[i] * ld3 + (size_t)h * d;
      k->attend_head(base, base + H, base + 2 * (size_t)H, ctx + off[i] * (size_t)H + (size_t)h * d,
                     ld3, (size_t)H, L, d, scale, kt, kt + (size_t)Lp * d);
    }
  }
}

void ae__pool(const float *x, size_t len, int H, int pooling, int normalize, float *out) {
  if (pooling == AE_POOL_CLS) {
    memcpy(out, x, sizeof(float) * H);
  } else if (pooling == AE_POOL_MAX) {
    memcpy(out, x, sizeof(float) * H);
    for (size_t t = 1; t < len; t++)
      for (int c = 0; c < H; c++) out[c] = fmaxf(out[c], x[t * H + c]);
  } else {
    for (int c = 0; c < H; c++) out[c] = 0.0f;
    for (size_t t = 0; t < len; t++)
      for (int c = 0; c < H; c++) out[c] += x[t * H + c];
    float div = pooling == AE_POOL_MEAN_SQRT_LEN ? sqrtf((float)len) : (float)len;
    for (int c = 0; c < H; c++) out[c] /= div;
  }
  if (normalize) {
    double ss = 0;
    for (int c = 0; c < H; c++) ss += (double)out[c] * out[c];
    double nrm = sqrt(ss);
    if (nrm < 1e-12) nrm = 1e-12;
    for (int c = 0; c < H; c++) out[c] = (float)(out[c] / nrm);
  }
}
