/* The batch optimizer: learns the batch size, and the token budget per batch, that
 * give the best throughput the machine can sustain within its CPU and memory targets.
 *
 * Score. Each batch size seen in the retained history (the last history_retention
 * samples) gets a score in (0, 1], the weighted geometric mean of three factors:
 *
 *   score = P^0.6 · R^0.25 · S^0.15
 *   P  performance: throughput at that size / the best throughput of any size, where
 *                   throughput is Σ tokens / Σ time of its batches when samples carry
 *                   token counts (items differ in length, so per-batch items/s mostly
 *                   says which items a batch happened to get), else Σ items / Σ time
 *   R  resource:    1 - ½(cpu excess + memory excess), where an excess is how far the
 *                   mean usage at that size lies above its target, as a share of the
 *                   room between target and 100% (under target costs nothing)
 *   S  stability:   1 / (1 + coefficient of variation of per-batch throughput at
 *                   that size)
 *
 * A geometric mean means no factor can buy off a collapse of another (a fast size
 * that blows the memory target still scores low), and log(score) is a weighted sum,
 * which is what the search below fits.
 *
 * Search. Throughput against batch size rises while fixed per-batch costs are being
 * amortised and falls once padding, cache misses or memory stalls grow faster; the
 * optimum is a smooth peak, so locally log(score) is a parabola in log2(size).
 *   1. Explore (until min_samples healthy batches): start at min_batch_size and grow
 *      geometrically (×2 at the default aggressiveness 0.3, ×(1 + aggr/0.3) in
 *      general), stopping early at max, at a learned ceiling, or once two sizes in a
 *      row fall clearly (below 80%) under the best throughput seen, the best being
 *      at least 4 items: the peak is behind. Two sizes, and a best of 4 items or more,
 *      because one batch is one noisy measurement, and a batch of one or two items
 *      measures mostly which items it got (one long item amortises a per-batch cost
 *      far better than two short ones) and, on a busy machine, whether its threads
 *      were preempted: stopping on such a sample left the search at 1 or 2 items on
 *      the real encoder, 3 to 4 times slower than its plateau from 32 items.
 *   2. Exploit: fit a weighted parabola to log(score) over the sizes within 1.6
 *      octaves of the best size (weights = samples per size, capped at 20; the best
 *      size judged pessimistically, score × (1 - cv/√n), so that a single lucky
 *      batch does not become the centre) and take its vertex as the best estimate,
 *      within one octave of the best size (a trust region: the fit is not believed
 *      far from its data). With fewer than three sizes or a convex fit, the best
 *      size itself is the estimate.
 *      Batches then alternate between the estimate and probes at estimate × f and
 *      estimate / f with f = 1 + aggressiveness × min(1, 0.5 + 2·cv), cv the pooled
 *      variation of throughput within sizes: under noise, wide probes measure the
 *      curvature better; when measurements are clean, narrow probes cost less;
 *      probes are every other batch for the first 2·min_samples exploit batches,
 *      then one in four, so that the fit keeps learning while most batches run at the
 *      estimate. Samples age out of the history, so the optimizer follows drift.
 *   3. Back off: a failed batch halves the size; memory above target, or CPU above
 *      target when smaller sizes are known to keep CPU within it (means over 3 or more
 *      samples, see cpu_over_evidence), multiplies the size
 *      by 1 - aggressiveness. A back-off also sets a ceiling at the new size (and a
 *      token ceiling from the batch's tokens), so the search cannot walk straight back
 *      into trouble; every min_samples/2 healthy batches in a row raise the ceiling
 *      by a factor 1 + aggressiveness until it is gone. A size that failed outright
 *      stays out of reach while its sample is retained in the history: the ceiling
 *      approaches it by bisection between it and the largest size that ran healthy
 *      below it, so a hard limit is found with few failures.
 * The result is always clamped to [min_batch_size, max_batch_size].
 *
 * Token budget. Cost grows with tokens, not items, so batches are bounded by both
 * (the max-batch-tokens idea of text-embeddings-inference). The optimizer learns the
 * tokens per item (an EWMA) and gives budget = 2 × size × tokens per item: typical
 * batches are bounded by the item count, while a batch of unusually long items is
 * cut by tokens. The budget is further capped by the learned token ceiling and by
 * max_tokens.
 *
 * Confidence (0..1) = sample factor × (0.4 + 0.3·S + 0.3·support), where the sample
 * factor is healthy samples / min_samples (≤ 1) and support is the share of retained
 * healthy samples within ±25% of the estimate. It is capped at 0.5 while exploring
 * and at 0.3 right after a back-off.
 */
#include "common/common.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define W_PERF 0.60
#define W_RES 0.25
#define W_STAB 0.15
#define FIT_WINDOW_OCT 1.6
#define FIT_WEIGHT_CAP 20
#define PEAK_PASSED 0.80
#define DROPS_TO_PASS 2
#define MIN_JUDGED_SIZE 4
#define TOKEN_HEADROOM 2.0
#define TPI_ALPHA 0.1
#define CPU_EVIDENCE 3

enum { PH_EXPLORE = 0, PH_EXPLOIT = 1 };

typedef struct {
  int size, n;
  double items, tokens, seconds; /* sums: throughput = work / seconds */
  int untokened;                /* samples without a token count */
  double mean, m2;              /* per-batch throughput, Welford (for the variation) */
  double cpu_sum, mem_sum;
  int cpu_n, mem_n;
  double thr, score;
} bucket;

struct ae_batchopt {
  ae_batchopt_config c;
  ae_batch_sample *hist;        /* ring of the retained samples */
  int hlen, hhead;
  long total;
  int phase;
  int cur, best, ceiling, tok_ceiling;
  int healthy_total, healthy_run;
  int exploit_k;
  int drops;                    /* exploration: sizes in a row measured below the best */
  int just_backed_off;
  double tpi;                   /* tokens per item, EWMA; 0 = unknown */
  double confidence;
  char reason[256];
  bucket *b;                    /* scratch for bucket_stats */
  int nb, by_tokens;            /* throughput in tokens/s (1) or items/s (0) */
  double pooled_cv;             /* mean within-size variation of throughput */
};

/* ---- configuration ----------------------------------------------------------- */

void ae_batchopt_config_default(ae_batchopt_config *c) {
  memset(c, 0, sizeof *c);
  c->min_batch_size = 1;
  c->max_batch_size = 128;
  c->target_cpu_usage = 70;
  c->target_memory_usage = 75;
  c->min_samples = 10;
  c->history_retention = 100;
  c->aggressiveness = 0.3;
  c->max_tokens = 0;
}

static int check_config(const ae_batchopt_config *c) {
  if (c->min_batch_size < 1 || c->max_batch_size < c->min_batch_size ||
      c->max_batch_size > (1 << 20))
    return ae__error(AE_EINVAL, "batchopt config: batch sizes [%d, %d] must satisfy "
                     "1 <= min <= max <= 1048576", c->min_batch_size, c->max_batch_size);
  if (!(c->target_cpu_usage > 0 && c->target_cpu_usage <= 100) ||
      !(c->target_memory_usage > 0 && c->target_memory_usage <= 100))
    return ae__error(AE_EINVAL, "batchopt config: targets cpu %g / memory %g must be in (0, 100]",
                     c->target_cpu_usage, c->target_memory_usage);
  if (c->min_samples < 1 || c->history_retention < c->min_samples ||
      c->history_retention > 4096)
    return ae__error(AE_EINVAL, "batchopt config: min_samples %d must be >= 1 and <= "
                     "history_retention %d, which must be <= 4096", c->min_samples,
                     c->history_retention);
  if (!(c->aggressiveness > 0 && c->aggressiveness <= 1))
    return ae__error(AE_EINVAL, "batchopt config: aggressiveness %g must be in (0, 1]",
                     c->aggressiveness);
  if (c->max_tokens < 0)
    return ae__error(AE_EINVAL, "batchopt config: max_tokens %d is negative", c->max_tokens);
  return AE_OK;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static int upper(const ae_batchopt *o) { return o->ceiling ? o->ceiling : o->c.max_batch_size; }
static int clamp_size(const ae_batchopt *o, double v) {
  if (!(v == v)) v = o->c.min_batch_size;
  if (v > (double)INT_MAX / 2) v = (double)INT_MAX / 2;
  return clampi((int)lround(v), o->c.min_batch_size, clampi(upper(o), o->c.min_batch_size,
                                                               o->c.max_batch_size));
}

int ae_batchopt_new(const ae_batchopt_config *cfg, ae_batchopt **out) {
  if (!out) return ae__error(AE_EINVAL, "ae_batchopt_new: out is NULL");
  *out = NULL;
  ae_batchopt_config c;
  if (cfg) c = *cfg;
  else ae_batchopt_config_default(&c);
  int rc = check_config(&c);
  if (rc) return rc;
  ae_batchopt *o = ae__calloc(1, sizeof *o);
  if (!o) return ae__error(AE_ENOMEM, "ae_batchopt_new: out of memory");
  o->c = c;
  o->hist = ae__calloc((size_t)c.history_retention, sizeof *o->hist);
  o->b = ae__calloc((size_t)c.history_retention, sizeof *o->b);
  if (!o->hist || !o->b) {
    ae_batchopt_free(o);
    return ae__error(AE_ENOMEM, "ae_batchopt_new: out of memory");
  }
  o->cur = o->best = c.min_batch_size;
  snprintf(o->reason, sizeof o->reason, "exploring: starting at the minimum size %d",
           c.min_batch_size);
  *out = o;
  return AE_OK;
}

void ae_batchopt_free(ae_batchopt *o) {
  if (!o) return;
  ae__free(o->hist);
  ae__free(o->b);
  ae__free(o);
}

/* ---- statistics over the retained history ------------------------------------ */

static const ae_batch_sample *hist_at(const ae_batchopt *o, int i) {
  /* i = 0 is the oldest retained sample */
  int cap = o->c.history_retention;
  int start = (o->hhead - o->hlen + cap) % cap;
  return &o->hist[(start + i) % cap];
}

/* Work per second of one sample: tokens of the items that succeeded when the sample
 * has a token count, else items. */
static double sample_rate(const ae_batch_sample *s) {
  double work = s->tokens > 0 ? s->tokens * (double)s->items_processed / s->batch_size
                              : (double)s->items_processed;
  return work / (s->processing_time_ms / 1000.0);
}

static double excess(double usage, double target) {
  if (usage < 0 || usage <= target) return 0;
  double e = (usage - target) / (100.0 - target + 1e-9);
  return e > 1 ? 1 : e;
}

/* Groups healthy samples by size and scores each size (see the header comment). */
static void bucket_stats(ae_batchopt *o) {
  o->nb = 0;
  for (int i = 0; i < o->hlen; i++) {
    const ae_batch_sample *s = hist_at(o, i);
    if (!s->success) continue;
    int k;
    for (k = 0; k < o->nb; k++)
      if (o->b[k].size == s->batch_size) break;
    if (k == o->nb) {
      memset(&o->b[k], 0, sizeof o->b[k]);
      o->b[k].size = s->batch_size;
      o->nb++;
    }
    bucket *b = &o->b[k];
    double x = sample_rate(s);
    b->items += s->items_processed;
    b->tokens += s->items_processed > 0 ? s->tokens * (double)s->items_processed / s->batch_size : 0;
    if (s->tokens <= 0) b->untokened++;
    b->seconds += s->processing_time_ms / 1000.0;
    b->n++;
    double d = x - b->mean;
    b->mean += d / b->n;
    b->m2 += d * (x - b->mean);
    if (s->cpu_usage >= 0) { b->cpu_sum += s->cpu_usage; b->cpu_n++; }
    if (s->memory_usage >= 0) { b->mem_sum += s->memory_usage; b->mem_n++; }
  }
  double best = 0, cv_sum = 0;
  int cv_n = 0;
  o->by_tokens = o->nb > 0;
  for (int k = 0; k < o->nb; k++)
    if (o->b[k].untokened) o->by_tokens = 0;
  for (int k = 0; k < o->nb; k++) {
    o->b[k].thr = (o->by_tokens ? o->b[k].tokens : o->b[k].items) / o->b[k].seconds;
    if (o->b[k].thr > best) best = o->b[k].thr;
    if (o->b[k].n >= 2 && o->b[k].mean > 0) {
      cv_sum += sqrt(o->b[k].m2 / (o->b[k].n - 1)) / o->b[k].mean;
      cv_n++;
    }
  }
  double pooled_cv = cv_n ? cv_sum / cv_n : 0;
  o->pooled_cv = pooled_cv > 0.9 ? 0.9 : pooled_cv;
  for (int k = 0; k < o->nb; k++) {
    bucket *b = &o->b[k];
    double p = best > 0 ? b->thr / best : 0;
    double cpu = b->cpu_n ? b->cpu_sum / b->cpu_n : -1;
    double mem = b->mem_n ? b->mem_sum / b->mem_n : -1;
    double r = 1 - 0.5 * (excess(cpu, o->c.target_cpu_usage) + excess(mem, o->c.target_memory_usage));
    double cv = b->n >= 2 && b->mean > 0 ? sqrt(b->m2 / (b->n - 1)) / b->mean : pooled_cv;
    double s = 1 / (1 + cv);
    if (p < 1e-9) p = 1e-9;
    if (r < 1e-3) r = 1e-3;
    b->score = pow(p, W_PERF) * pow(r, W_RES) * pow(s, W_STAB);
  }
}

/* The best size measured, judged pessimistically: score × (1 - cv/√n) with the pooled
 * variation, so that one lucky batch at a rarely tried size does not become the
 * centre of the search. */
static const bucket *best_bucket(const ae_batchopt *o) {
  const bucket *bb = NULL;
  double bv = 0;
  for (int k = 0; k < o->nb; k++) {
    if (o->b[k].size > upper(o)) continue;
    double v = o->b[k].score * (1 - o->pooled_cv / sqrt((double)o->b[k].n));
    if (!bb || v > bv) { bb = &o->b[k]; bv = v; }
  }
  return bb;
}

/* Weighted least squares y = a x^2 + b x + c; returns 0 when singular. */
static int fit_parabola(const double *x, const double *y, const double *w, int n,
                        double *a, double *b) {
  double S[5] = {0}, T[3] = {0};
  for (int i = 0; i < n; i++) {
    double p = w[i];
    for (int k = 0; k < 5; k++) { S[k] += p; p *= x[i]; }
    T[0] += w[i] * y[i];
    T[1] += w[i] * y[i] * x[i];
    T[2] += w[i] * y[i] * x[i] * x[i];
  }
  /* normal equations: [S4 S3 S2; S3 S2 S1; S2 S1 S0] [a b c] = [T2 T1 T0] */
  double m[3][4] = {{S[4], S[3], S[2], T[2]}, {S[3], S[2], S[1], T[1]}, {S[2], S[1], S[0], T[0]}};
  for (int col = 0; col < 3; col++) {
    int piv = col;
    for (int r = col + 1; r < 3; r++)
      if (fabs(m[r][col]) > fabs(m[piv][col])) piv = r;
    if (fabs(m[piv][col]) < 1e-12) return 0;
    for (int k = 0; k < 4; k++) { double t = m[col][k]; m[col][k] = m[piv][k]; m[piv][k] = t; }
    for (int r = 0; r < 3; r++) {
      if (r == col) continue;
      double f = m[r][col] / m[col][col];
      for (int k = col; k < 4; k++) m[r][k] -= f * m[col][k];
    }
  }
  *a = m[0][3] / m[0][0];
  *b = m[1][3] / m[1][1];
  return 1;
}

/* Best size estimate: the vertex of log(score) fitted around the best-scoring size. */
static int estimate_best(ae_batchopt *o, const char **how) {
  const bucket *bb = best_bucket(o);
  *how = "best measured size";
  if (!bb) return o->cur;
  double x0 = log2((double)bb->size);
  double xs[256], ys[256], ws[256];
  int n = 0;
  for (int k = 0; k < o->nb && n < 256; k++) {
    double x = log2((double)o->b[k].size) - x0;
    if (fabs(x) > FIT_WINDOW_OCT || o->b[k].size > upper(o)) continue;
    xs[n] = x;
    ys[n] = log(o->b[k].score);
    ws[n] = o->b[k].n < FIT_WEIGHT_CAP ? o->b[k].n : FIT_WEIGHT_CAP;
    n++;
  }
  double a, b;
  if (n >= 3 && fit_parabola(xs, ys, ws, n, &a, &b) && a < -1e-9) {
    double v = -b / (2 * a);
    if (v > 1) v = 1;
    if (v < -1) v = -1;
    *how = "vertex of the score fit";
    return clamp_size(o, exp2(x0 + v));
  }
  return clamp_size(o, bb->size);
}

static double support_near(const ae_batchopt *o, int est) {
  int near = 0, all = 0;
  for (int i = 0; i < o->hlen; i++) {
    const ae_batch_sample *s = hist_at(o, i);
    if (!s->success) continue;
    all++;
    if (fabs((double)s->batch_size - est) <= 0.25 * est + 0.5) near++;
  }
  return all ? (double)near / all : 0;
}

static double stability_of(const ae_batchopt *o, int size) {
  for (int k = 0; k < o->nb; k++)
    if (o->b[k].size == size && o->b[k].n >= 2 && o->b[k].mean > 0)
      return 1 / (1 + sqrt(o->b[k].m2 / (o->b[k].n - 1)) / o->b[k].mean);
  return 0.5;
}

static void update_confidence(ae_batchopt *o) {
  double sf = (double)o->healthy_total / o->c.min_samples;
  if (sf > 1) sf = 1;
  double c = sf * (0.4 + 0.3 * stability_of(o, o->best) + 0.3 * support_near(o, o->best));
  if (o->phase == PH_EXPLORE && c > 0.5) c = 0.5;
  if (o->just_backed_off && c > 0.3) c = 0.3;
  o->confidence = c < 0 ? 0 : c > 1 ? 1 : c;
}

/* ---- decisions ------------------------------------------------------------------ */

static double explore_factor(const ae_batchopt *o) {
  double g = 1 + o->c.aggressiveness / 0.3;
  return g < 1.25 ? 1.25 : g > 3 ? 3 : g;
}

/* Multiplicative back-off after a failed or over-target batch. */
static void back_off(ae_batchopt *o, const ae_batch_sample *s, double factor, const char *why) {
  int from = s->batch_size;
  int to = clampi((int)floor(from * factor), o->c.min_batch_size, o->c.max_batch_size);
  o->ceiling = to;
  if (s->tokens > 0) {
    int t = (int)floor(s->tokens * factor);
    o->tok_ceiling = t < 1 ? 1 : t;
  }
  o->cur = o->best = to;
  o->healthy_run = 0;
  o->just_backed_off = 1;
  if (o->phase == PH_EXPLORE) o->phase = PH_EXPLOIT;
  snprintf(o->reason, sizeof o->reason, "backing off %d -> %d: %s", from, to, why);
}

/* Largest size below limit that ran healthy in the retained history (0 if none). */
static int largest_ok_below(const ae_batchopt *o, int limit) {
  int best = 0;
  for (int k = 0; k < o->nb; k++)
    if (o->b[k].size < limit && o->b[k].size > best) best = o->b[k].size;
  return best;
}

/* Smallest size that failed within the retained history, or 0. */
static int recent_failed_size(const ae_batchopt *o) {
  int fail = 0;
  for (int i = 0; i < o->hlen; i++) {
    const ae_batch_sample *s = hist_at(o, i);
    if (!s->success && (!fail || s->batch_size < fail)) fail = s->batch_size;
  }
  return fail;
}

/* CPU evidence for a back-off: the mean CPU at this size (over CPU_EVIDENCE samples
 * or more) is above target while the samples at smaller sizes (as many, pooled) are
 * within it on average. One reading is not evidence: process CPU over a short batch
 * is a few clock ticks (±1 tick is ±30% for a 15 ms batch on two cores), and on a
 * shared machine a batch whose threads were preempted reads low. Judged on single
 * readings, a generator whose encoder saturates the cores at every size backed off
 * batch after batch down to one item (its first batches, run while the machine was
 * busy, had read 50%). */
static int cpu_over_evidence(const ae_batchopt *o, int size) {
  double here = 0, below = 0;
  int here_n = 0, below_n = 0;
  for (int k = 0; k < o->nb; k++) {
    if (o->b[k].size == size) { here += o->b[k].cpu_sum; here_n += o->b[k].cpu_n; }
    else if (o->b[k].size < size) { below += o->b[k].cpu_sum; below_n += o->b[k].cpu_n; }
  }
  return here_n >= CPU_EVIDENCE && below_n >= CPU_EVIDENCE &&
         here / here_n > o->c.target_cpu_usage && below / below_n <= o->c.target_cpu_usage;
}

/* Smallest size with CPU evidence over target (see cpu_over_evidence), or 0. */
static int hot_size(const ae_batchopt *o) {
  int hot = 0;
  for (int k = 0; k < o->nb; k++)
    if ((!hot || o->b[k].size < hot) && cpu_over_evidence(o, o->b[k].size)) hot = o->b[k].size;
  return hot;
}

/* Every min_samples/2 (at least 2) healthy batches in a row, loosen the ceilings by
 * 1 + aggr, but not onto a size that failed or ran over the CPU target. */
static void relax_ceiling(ae_batchopt *o) {
  int every = o->c.min_samples / 2 < 2 ? 2 : o->c.min_samples / 2;
  if (o->healthy_run == 0 || o->healthy_run % every) return;
  if (o->ceiling) {
    int up = (int)ceil(o->ceiling * (1 + o->c.aggressiveness));
    if (up <= o->ceiling) up = o->ceiling + 1;
    int fail = recent_failed_size(o);
    if (fail) {
      /* bisect between the largest healthy size and the failed one */
      int ok = largest_ok_below(o, fail);
      int mid = ok + (fail - ok) / 2;
      int cap = mid > o->ceiling ? mid : o->ceiling;
      if (up > cap) up = cap;
    }
    /* a size measured over the CPU target stays out of reach while its samples are
     * retained, as a failed one does */
    int hot = hot_size(o);
    if (hot && up >= hot) up = hot - 1 > o->ceiling ? hot - 1 : o->ceiling;
    o->ceiling = up >= o->c.max_batch_size ? 0 : up;
  }
  if (o->tok_ceiling) {
    long up = (long)ceil(o->tok_ceiling * (1 + o->c.aggressiveness));
    o->tok_ceiling = up > INT_MAX / 2 ? 0 : (int)(up <= o->tok_ceiling ? o->tok_ceiling + 1 : up);
  }
}

static void explore_step(ae_batchopt *o, const ae_batch_sample *s) {
  const bucket *bb = best_bucket(o);
  double thr = o->by_tokens || s->tokens <= 0 ? sample_rate(s)
                                               : (double)s->items_processed / (s->processing_time_ms / 1000.0);
  /* One batch is one noisy measurement: a size that falls below 80% of the best may
   * just be unlucky (or the best lucky), so the peak counts as passed after
   * DROPS_TO_PASS sizes in a row below it, and only once the best has at least
   * MIN_JUDGED_SIZE items (see the header comment). */
  int below = bb && s->batch_size > bb->size && thr < PEAK_PASSED * bb->thr;
  o->drops = below ? o->drops + 1 : 0;
  int passed = o->drops >= DROPS_TO_PASS && bb->size >= MIN_JUDGED_SIZE;
  if (o->healthy_total >= o->c.min_samples || passed || o->cur >= upper(o)) {
    o->phase = PH_EXPLOIT;
    return;
  }
  int from = o->cur;
  if (s->batch_size >= 0.75 * o->cur) {
    double next = ceil(o->cur * explore_factor(o));
    o->cur = clamp_size(o, next);
  }
  o->best = bb ? bb->size : o->cur;
  snprintf(o->reason, sizeof o->reason,
           "exploring: growing %d -> %d (healthy sample %d of %d, best so far %d at %.1f %s/s)",
           from, o->cur, o->healthy_total, o->c.min_samples, o->best, bb ? bb->thr : thr,
           o->by_tokens ? "tokens" : "items");
}

static void exploit_step(ae_batchopt *o) {
  const char *how;
  o->best = estimate_best(o, &how);
  int k = o->exploit_k++;
  int early = k < 2 * o->c.min_samples;
  int period = early ? 4 : 8;
  double wide = 0.5 + 2 * o->pooled_cv;
  double f = 1 + o->c.aggressiveness * (wide > 1 ? 1 : wide);
  int slot = k % period, next = o->best;
  const char *what = "running at";
  if (slot == period / 4 || slot == 3 * period / 4) {
    int up = slot == period / 4;
    int p = clamp_size(o, up ? o->best * f : o->best / f);
    if (p == o->best) p = clamp_size(o, o->best + (up ? 1 : -1));
    if (p != o->best) { next = p; what = up ? "probing above" : "probing below"; }
  }
  o->cur = next;
  const bucket *bb = best_bucket(o);
  snprintf(o->reason, sizeof o->reason,
           "%s %d: best estimate %d (%s; best measured %d, %.1f %s/s, score %.3f%s)",
           what, next, o->best, how, bb ? bb->size : 0, bb ? bb->thr : 0.0,
           o->by_tokens ? "tokens" : "items",
           bb ? bb->score : 0.0, o->ceiling ? ", under a back-off ceiling" : "");
}

int ae_batchopt_record(ae_batchopt *o, const ae_batch_sample *s) {
  if (!o || !s) return ae__error(AE_EINVAL, "ae_batchopt_record: NULL argument");
  if (s->batch_size < 1 || s->tokens < 0 || !(s->processing_time_ms > 0) ||
      s->items_processed < 0 || s->items_processed > s->batch_size ||
      !(s->processing_time_ms < 1e12))
    return ae__error(AE_EINVAL, "ae_batchopt_record: bad sample (batch_size %d, tokens %d, "
                     "time %g ms, items_processed %d)", s->batch_size, s->tokens,
                     s->processing_time_ms, s->items_processed);
  int cap = o->c.history_retention;
  o->hist[o->hhead] = *s;
  o->hhead = (o->hhead + 1) % cap;
  if (o->hlen < cap) o->hlen++;
  o->total++;
  bucket_stats(o);

  int mem_over = s->memory_usage >= 0 && s->memory_usage > o->c.target_memory_usage;
  int cpu_over = s->cpu_usage >= 0 && s->cpu_usage > o->c.target_cpu_usage &&
                 cpu_over_evidence(o, s->batch_size);
  char why[128];
  if (!s->success) {
    back_off(o, s, 0.5, "the batch failed");
  } else if (mem_over || cpu_over) {
    if (mem_over)
      snprintf(why, sizeof why, "memory %.1f%% above target %.0f%%", s->memory_usage,
               o->c.target_memory_usage);
    else
      snprintf(why, sizeof why, "CPU %.1f%% above target %.0f%% (smaller sizes stay within it)",
               s->cpu_usage, o->c.target_cpu_usage);
    back_off(o, s, 1 - o->c.aggressiveness, why);
  } else {
    o->healthy_total++;
    o->healthy_run++;
    o->just_backed_off = 0;
    if (s->items_processed > 0 && s->tokens > 0) {
      double t = (double)s->tokens / s->batch_size;
      o->tpi = o->tpi > 0 ? (1 - TPI_ALPHA) * o->tpi + TPI_ALPHA * t : t;
    }
    relax_ceiling(o);
    if (o->phase == PH_EXPLORE) explore_step(o, s);
    if (o->phase == PH_EXPLOIT) exploit_step(o);
  }
  o->cur = clamp_size(o, o->cur);
  o->best = clamp_size(o, o->best);
  update_confidence(o);
  return AE_OK;
}

static int token_budget(const ae_batchopt *o, int size) {
  double b = o->tpi > 0 ? ceil(TOKEN_HEADROOM * size * o->tpi) : (double)size * 512;
  if (o->tok_ceiling && b > o->tok_ceiling) b = o->tok_ceiling;
  if (o->c.max_tokens && b > o->c.max_tokens) b = o->c.max_tokens;
  if (b > INT_MAX / 2) b = INT_MAX / 2;
  return b < 1 ? 1 : (int)b;
}

int ae_batchopt_recommend(ae_batchopt *o, ae_batch_recommendation *r) {
  if (!o || !r) return ae__error(AE_EINVAL, "ae_batchopt_recommend: NULL argument");
  memset(r, 0, sizeof *r);
  r->batch_size = clamp_size(o, o->cur);
  r->best_batch_size = clamp_size(o, o->best);
  r->token_budget = token_budget(o, r->batch_size);
  r->confidence = o->confidence;
  snprintf(r->reason, sizeof r->reason, "%s", o->reason);
  return AE_OK;
}

int ae_batchopt_analytics(ae_batchopt *o, ae_batch_analytics *a) {
  if (!o || !a) return ae__error(AE_EINVAL, "ae_batchopt_analytics: NULL argument");
  memset(a, 0, sizeof *a);
  snprintf(a->trend, sizeof a->trend, "stable");
  a->samples = o->hlen;
  if (!o->hlen) return AE_OK;
  double items = 0, tokens = 0, ms = 0, size = 0, util = 0, score = 0;
  int util_n = 0;
  for (int i = 0; i < o->hlen; i++) {
    const ae_batch_sample *s = hist_at(o, i);
    items += s->items_processed;
    tokens += s->success ? s->tokens : 0;
    ms += s->processing_time_ms;
    size += s->batch_size;
    double u = 0;
    int un = 0;
    if (s->cpu_usage >= 0) { u += s->cpu_usage / o->c.target_cpu_usage; un++; }
    if (s->memory_usage >= 0) { u += s->memory_usage / o->c.target_memory_usage; un++; }
    if (un) { util += u / un; util_n++; }
    if (s->success)
      for (int k = 0; k < o->nb; k++)
        if (o->b[k].size == s->batch_size) score += o->b[k].score;
  }
  a->average_throughput_items = items / (ms / 1000.0);
  a->average_throughput_tokens = tokens / (ms / 1000.0);
  a->average_batch_size = size / o->hlen;
  a->optimization_score = score / o->hlen; /* failed batches score 0 */
  a->resource_utilization = util_n ? util / util_n : 0;
  /* trend: items/s of the newer half of the window against the older half */
  if (o->hlen >= 4) {
    double it[2] = {0}, t[2] = {0};
    for (int i = 0; i < o->hlen; i++) {
      const ae_batch_sample *s = hist_at(o, i);
      int h = i >= o->hlen / 2;
      it[h] += s->items_processed;
      t[h] += s->processing_time_ms;
    }
    double older = it[0] / t[0], newer = it[1] / t[1];
    if (newer > older * 1.05) snprintf(a->trend, sizeof a->trend, "improving");
    else if (newer < older * 0.95) snprintf(a->trend, sizeof a->trend, "degrading");
  }
  return AE_OK;
}
