/* bench_adaptive: the DynamicBatchOptimizer against fixed batch sizes on a real
 * CPU-bound workload.
 *
 * Workload. A stream of items with token counts drawn from a log-normal (median 24
 * tokens, sigma --spread, default 0.5, in ln; clipped to [4, 256]). A batch is
 * processed the way a padded BERT layer would be: every item is padded to the batch's
 * longest item, one projection GEMM [count·maxlen × d]·[d × d] runs over the batch, and
 * each item gets an attention-like pair of GEMMs [maxlen × d]·[d × maxlen] and
 * [maxlen × maxlen]·[maxlen × d] (oneDNN sgemm: real floating-point work). Each batch
 * also pays a fixed cost, one pass over a weight buffer (--overhead-mb, default 8 MiB),
 * as a per-batch weight re-pack or kernel set-up would. Small batches pay the fixed
 * cost often; large ones pay for padding, since the longest of more items is longer.
 * So a best batch size exists, and nobody tells the optimizer where.
 *
 * Protocol. Each round: a fresh optimizer learns for --batches batches (recommend ->
 * batch of at most batch_size items and token_budget tokens -> record). Then chunks of
 * 256 items are processed by every fixed size in {1, 8, 32, 64, 128} and by the
 * optimizer (which keeps learning and probing) in rotating order, so load changes on
 * the shared machine hit every configuration alike; throughput = items / time summed
 * over the chunks. Time is the thread's CPU time (--clock wall for wall time), which
 * does not charge a batch for time spent preempted. The table shows medians over the
 * rounds. PASS when the optimizer's steady state is within 5% of the best fixed size.
 * "converged" is the first batch after which the best estimate stays within ±25% of
 * its value at the end of learning. --sweep N prints the throughput of every fixed
 * size 1..N instead, to see the curve.
 */
#include "common/common.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>

#define MAXLEN 256
#define MAXB 128

typedef struct {
  int dim, n_items;
  int *len;                 /* token count per item */
  float *emb;               /* [1024 × dim] token embedding table */
  float *w;                 /* [dim × dim] projection */
  float *x, *y, *s, *o;     /* scratch */
  float *weights;           /* per-batch overhead buffer */
  size_t weights_n;
  volatile float sink;
} workload;

static uint64_t rng = 88172645463325252ull;
static double unif(void) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (double)(rng >> 11) / 9007199254740992.0;
}

static double spread = 0.5; /* sigma of ln(tokens) */

static int wl_init(workload *w, int n_items, int dim, double overhead_mb) {
  memset(w, 0, sizeof *w);
  w->dim = dim;
  w->n_items = n_items;
  w->len = malloc(n_items * sizeof *w->len);
  for (int i = 0; i < n_items; i++) {
    double g = sqrt(-2 * log(unif() + 1e-12)) * cos(2 * M_PI * unif());
    int l = (int)lround(24 * exp(spread * g));
    w->len[i] = l < 4 ? 4 : l > MAXLEN ? MAXLEN : l;
  }
  w->emb = malloc(sizeof(float) * 1024 * dim);
  w->w = malloc(sizeof(float) * dim * dim);
  w->x = malloc(sizeof(float) * (size_t)MAXB * MAXLEN * dim);
  w->y = malloc(sizeof(float) * (size_t)MAXB * MAXLEN * dim);
  w->s = malloc(sizeof(float) * MAXLEN * MAXLEN);
  w->o = malloc(sizeof(float) * MAXLEN * dim);
  w->weights_n = (size_t)(overhead_mb * 1024 * 1024 / sizeof(float));
  w->weights = malloc(sizeof(float) * (w->weights_n ? w->weights_n : 1));
  if (!w->len || !w->emb || !w->w || !w->x || !w->y || !w->s || !w->o || !w->weights) return -1;
  for (int i = 0; i < 1024 * dim; i++) w->emb[i] = (float)(unif() - 0.5);
  for (int i = 0; i < dim * dim; i++) w->w[i] = (float)((unif() - 0.5) / sqrt(dim));
  for (size_t i = 0; i < w->weights_n; i++) w->weights[i] = (float)unif();
  return 0;
}

static void wl_free(workload *w) {
  free(w->len); free(w->emb); free(w->w); free(w->x); free(w->y); free(w->s); free(w->o);
  free(w->weights);
}

/* Processes items [first, first+count) of the stream (wrapping). */
static void run_batch(workload *w, int first, int count) {
  int d = w->dim, maxlen = 0;
  for (int i = 0; i < count; i++) {
    int l = w->len[(first + i) % w->n_items];
    if (l > maxlen) maxlen = l;
  }
  /* fixed per-batch cost: a pass over the weight buffer */
  float acc = 0;
  for (size_t i = 0; i < w->weights_n; i += 16) acc += w->weights[i];
  for (size_t i = 0; i < w->weights_n; i++) w->weights[i] = w->weights[i] * 0.999f + 0.001f;
  /* gather padded embeddings */
  for (int i = 0; i < count; i++) {
    int item = (first + i) % w->n_items, l = w->len[item];
    for (int t = 0; t < maxlen; t++) {
      float *row = w->x + ((size_t)i * maxlen + t) * d;
      if (t < l) memcpy(row, w->emb + (size_t)((item * 31 + t * 7) % 1024) * d, sizeof(float) * d);
      else memset(row, 0, sizeof(float) * d);
    }
  }
  /* projection over the whole padded batch */
  dnnl_sgemm('N', 'N', (dnnl_dim_t)count * maxlen, d, d, 1.0f, w->x, d, w->w, d, 0.0f, w->y, d);
  /* attention-like per item, padded */
  for (int i = 0; i < count; i++) {
    const float *q = w->y + (size_t)i * maxlen * d;
    dnnl_sgemm('N', 'T', maxlen, maxlen, d, 1.0f / sqrtf((float)d), q, d, q, d, 0.0f, w->s, maxlen);
    dnnl_sgemm('N', 'N', maxlen, d, maxlen, 1.0f, w->s, maxlen, q, d, 0.0f, w->o, d);
    acc += w->o[0];
  }
  w->sink = acc;
}

/* Time of one batch: thread CPU time by default (robust on a shared machine: time
 * spent preempted by other processes is not charged to the batch) or wall time. */
static int use_wall;
static double now_ms(void) {
  if (use_wall) return ae__now_ms();
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct {
  ae_batchopt *o;
  ae_probe *probe;
  ae_probe_reading pr;
  int pos, batches;
} optimizer;

/* One optimizer batch at the optimizer's own stream position; returns items and adds
 * its time to *ms. */
static int optimizer_batch(workload *w, optimizer *op, double *ms, ae_batch_recommendation *after) {
  ae_batch_recommendation r;
  ae_batchopt_recommend(op->o, &r);
  /* cut the batch by items and by tokens (always at least one item) */
  int count = 0, tokens = 0;
  while (count < r.batch_size) {
    int l = w->len[(op->pos + count) % w->n_items];
    if (count > 0 && tokens + l > r.token_budget) break;
    tokens += l;
    count++;
  }
  if (op->batches++ % 10 == 0) ae_probe_read(op->probe, &op->pr); /* monitoring, not every batch */
  double t0 = now_ms();
  run_batch(w, op->pos, count);
  double t = now_ms() - t0;
  op->pos = (op->pos + count) % w->n_items;
  ae_batch_sample s = {count, tokens, t > 1e-6 ? t : 1e-6, op->pr.process_cpu_pct,
                       op->pr.memory_pct, 1, count};
  ae_batchopt_record(op->o, &s);
  *ms += t;
  if (after) ae_batchopt_recommend(op->o, after);
  return count;
}

typedef struct {
  double fixed[5], opt;     /* items/s */
  int final_best, converged_at;
  double confidence;
  char reason[256];
} round_out;

static const int sizes[5] = {1, 8, 32, 64, 128};
static int sweep_max;
static int history; /* --history: history_retention, 0 = default (100) */

/* --sweep N: items/s of every fixed size 1..N (interleaved chunks), to see the curve. */
static int sweep(workload *w, int max, int chunks, int chunk) {
  double *ms = calloc(max + 1, sizeof *ms);
  for (int c = 0; c < chunks; c++) {
    int first = (c * chunk) % w->n_items;
    for (int k = 1; k <= max; k++) {
      double t0 = now_ms();
      for (int f = 0; f < chunk; f += k) run_batch(w, first + f, f + k <= chunk ? k : chunk - f);
      ms[k] += now_ms() - t0;
    }
  }
  double best = 0;
  for (int k = 1; k <= max; k++) if (chunks * chunk / (ms[k] / 1000) > best) best = chunks * chunk / (ms[k] / 1000);
  for (int k = 1; k <= max; k++)
    printf("size %3d: %10.1f items/s (%5.1f%%)\n", k, chunks * chunk / (ms[k] / 1000),
           100 * chunks * chunk / (ms[k] / 1000) / best);
  free(ms);
  return 0;
}

/* Learning: `batches` optimizer batches. Measurement: chunks of `chunk` items, each
 * processed by every fixed size and by the optimizer in turn (rotating the order), so
 * that load changes on the machine hit every configuration alike. */
static void run_round(workload *w, int batches, int chunks, int chunk, int round, round_out *out) {
  optimizer op = {0};
  ae_batchopt_config cfg;
  ae_batchopt_config_default(&cfg);
  if (history > 0) cfg.history_retention = history;
  if (ae_batchopt_new(&cfg, &op.o) != AE_OK) {
    fprintf(stderr, "bench_adaptive: %s\n", ae_last_error());
    exit(2);
  }
  ae_probe_new(NULL, NULL, &op.probe);
  int *best = malloc(sizeof(int) * batches);
  double ignore = 0;
  for (int b = 0; b < batches; b++) {
    ae_batch_recommendation r;
    optimizer_batch(w, &op, &ignore, &r);
    best[b] = r.best_batch_size;
  }
  out->final_best = best[batches - 1];
  out->converged_at = batches;
  for (int b = batches - 1; b >= 0; b--) {
    if (fabs((double)(best[b] - out->final_best)) > 0.25 * out->final_best) break;
    out->converged_at = b + 1;
  }
  free(best);

  /* measured on the same stretch of the stream as the fixed sizes: the optimizer's
   * cursor restarts where theirs does and stays within one batch of them */
  op.pos = (round * 977) % w->n_items;
  double ms[6] = {0}, items[6] = {0};
  for (int c = 0; c < chunks; c++) {
    int first = (c * chunk + round * 977) % w->n_items;
    for (int j = 0; j < 6; j++) {
      int k = (j + c) % 6;
      if (k < 5) {
        double t0 = now_ms();
        for (int f = 0; f < chunk; f += sizes[k]) run_batch(w, first + f, sizes[k]);
        ms[k] += now_ms() - t0;
        items[k] += chunk;
      } else {
        while (items[5] < (double)(c + 1) * chunk) items[5] += optimizer_batch(w, &op, &ms[5], NULL);
      }
    }
  }
  for (int k = 0; k < 5; k++) out->fixed[k] = items[k] / (ms[k] / 1000.0);
  out->opt = items[5] / (ms[5] / 1000.0);
  ae_batch_recommendation r;
  ae_batchopt_recommend(op.o, &r);
  out->confidence = r.confidence;
  snprintf(out->reason, sizeof out->reason, "%s", r.reason);
  ae_probe_free(op.probe);
  ae_batchopt_free(op.o);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
  qsort(v, n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
  int rounds = 3, chunks = 12, chunk = 256, batches = 60, dim = 128, threads = 1;
  double overhead_mb = 8;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      printf("usage: bench_adaptive [--rounds R] [--chunks C] [--batches B] [--dim D] "
             "[--overhead-mb M] [--threads T] [--seed S] [--clock cpu|wall] [--sweep N] [--spread SIGMA] [--history N]\n");
      return 0;
    }
    if (!v) { fprintf(stderr, "bench_adaptive: %s needs a value\n", a); return 2; }
    if (!strcmp(a, "--rounds")) rounds = atoi(v);
    else if (!strcmp(a, "--chunks")) chunks = atoi(v);
    else if (!strcmp(a, "--batches")) batches = atoi(v);
    else if (!strcmp(a, "--dim")) dim = atoi(v);
    else if (!strcmp(a, "--overhead-mb")) overhead_mb = atof(v);
    else if (!strcmp(a, "--threads")) threads = atoi(v);
    else if (!strcmp(a, "--seed")) rng = strtoull(v, NULL, 10) | 1;
    else if (!strcmp(a, "--clock")) use_wall = !strcmp(v, "wall");
    else if (!strcmp(a, "--sweep")) sweep_max = atoi(v);
    else if (!strcmp(a, "--spread")) spread = atof(v);
    else if (!strcmp(a, "--history")) history = atoi(v);
    else { fprintf(stderr, "bench_adaptive: unknown option %s\n", a); return 2; }
    i++;
  }
  if (rounds < 1 || rounds > 64 || chunks < 1 || batches < 20 || dim < 16 || threads < 1 ||
      overhead_mb < 0) {
    fprintf(stderr, "bench_adaptive: bad arguments\n");
    return 2;
  }
  omp_set_num_threads(threads);
  workload w;
  if (wl_init(&w, 4096, dim, overhead_mb)) { fprintf(stderr, "bench_adaptive: out of memory\n"); return 1; }
  round_out ro[64];
  run_batch(&w, 0, 32); /* warm up oneDNN's kernels */
  if (sweep_max > 0) return sweep(&w, sweep_max, chunks, chunk);
  for (int r = 0; r < rounds; r++) run_round(&w, batches, chunks, chunk, r, &ro[r]);

  double med[5], v[64], best = 0, ratios[64];
  int best_k = 0;
  for (int k = 0; k < 5; k++) {
    for (int r = 0; r < rounds; r++) v[r] = ro[r].fixed[k];
    med[k] = median(v, rounds);
    if (med[k] > best) { best = med[k]; best_k = k; }
  }
  for (int r = 0; r < rounds; r++) v[r] = ro[r].opt;
  double opt_med = median(v, rounds);
  for (int r = 0; r < rounds; r++) {
    double bf = 0;
    for (int k = 0; k < 5; k++) if (ro[r].fixed[k] > bf) bf = ro[r].fixed[k];
    ratios[r] = ro[r].opt / bf;
  }
  printf("bench_adaptive: padded-encoder kernel (d=%d, %.0f MiB per-batch overhead, token spread "
         "%.2f), %d thread(s), %s time; %d rounds x %d interleaved chunks of %d items; optimizer "
         "(history %d) learns for %d batches first\n", dim, overhead_mb, spread, threads,
         use_wall ? "wall" : "thread CPU", rounds, chunks, chunk, history ? history : 100, batches);
  printf("%-24s %12s %10s\n", "configuration", "items/s", "vs best");
  for (int k = 0; k < 5; k++) {
    char name[32];
    snprintf(name, sizeof name, "fixed %d", sizes[k]);
    printf("%-24s %12.1f %9.1f%%%s\n", name, med[k], 100 * med[k] / best,
           k == best_k ? "  (best fixed)" : "");
  }
  printf("%-24s %12.1f %9.1f%%\n", "optimizer (steady state)", opt_med, 100 * opt_med / best);
  printf("per round: optimizer / best fixed of that round =");
  for (int r = 0; r < rounds; r++) printf(" %.3f", ratios[r]);
  printf("\nper round: final estimate, converged (estimate within 25%% of final from) batch:");
  for (int r = 0; r < rounds; r++) printf(" %d@%d", ro[r].final_best, ro[r].converged_at);
  printf("\nlast reason: %s (confidence %.2f)\n", ro[rounds - 1].reason, ro[rounds - 1].confidence);
  int pass = opt_med >= 0.95 * best;
  printf("%s: optimizer steady-state %.1f%% of the best fixed size (fixed %d); criterion >= 95%%\n",
         pass ? "PASS" : "FAIL", 100 * opt_med / best, sizes[best_k]);
  wl_free(&w);
  return pass ? 0 : 1;
}
