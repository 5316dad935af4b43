/* bench_adaptive: the batch optimizer against fixed batch sizes on a real
 * workload.
 *
 * Workload (--kernel encoder, the default when a model can be found or made). The
 * native encoder (ae_encoder_embed_ids, --threads 2) embedding real annotations:
 * CPython stdlib annotations from ../shared/testdata (the text the generator embeds:
 * signature, summary and code), a seeded random subset of --items of them, tokenized
 * once with the encoder's tokenizer and truncated at its max length (256). The model
 * is --model DIR, else ../shared/models/all-MiniLM-L6-v2 when it has weights, else a
 * random-weight model of that shape made by ae_model_init_random into a temporary
 * folder (removed at exit). The encoder packs the tokens of a batch without padding,
 * so the cost per token hardly depends on the batch size: what a batch size changes
 * is how often the per-batch fixed costs are paid (GEMM primitive lookup, the OpenMP
 * fork/join of every kernel, GEMMs over few rows using the cores badly) and, for
 * large batches, the working set of the activations. So the curve is flat-topped and
 * the best fixed size is whatever this machine says; nobody tells the optimizer.
 *
 * Workload (--kernel synthetic). A stream of items with token counts drawn from a
 * log-normal (median 24 tokens, sigma --spread, default 0.5, in ln; clipped to
 * [4, 256]). A batch is processed the way a padded BERT layer would be: every item is
 * padded to the batch's longest item, one projection GEMM [count·maxlen × d]·[d × d]
 * runs over the batch, and each item gets an attention-like pair of GEMMs
 * [maxlen × d]·[d × maxlen] and [maxlen × maxlen]·[maxlen × d] (oneDNN sgemm: real
 * floating-point work). Each batch also pays a fixed cost, one pass over a weight
 * buffer (--overhead-mb, default 8 MiB). Small batches pay the fixed cost often; large
 * ones pay for padding, since the longest of more items is longer. So a best batch
 * size exists in the interior.
 *
 * Protocol. A fresh optimizer learns for --batches batches (recommend -> batch of at
 * most batch_size items and token_budget tokens -> record); "converged" is the first
 * batch after which its best estimate stays within ±25% of its value at the end of
 * learning. Then --rounds rounds measure the steady state: in each, every fixed size
 * in {1, 8, 32, 64, 128} and the optimizer (which keeps learning and probing) run on
 * the same stretch of the item stream, one after the other, in an order that reverses
 * every other round and rotates, so load changes on the shared machine hit every
 * configuration alike. The optimizer and the sizes of 64 and 128 run --chunk items a
 * round, size 32 half that, size 8 32 items and size 1 8 items: the small sizes cost
 * the most per item and give many batches anyway. Every batch is one sample, tokens /
 * time, on two clocks: wall time, and the process's CPU time (all threads), which does
 * not charge a batch for time its threads spent preempted by other processes. A
 * configuration's throughput is the median of its samples (the table also shows the
 * 20%-trimmed mean and the aggregate, all tokens / all time); tokens rather than items
 * because the items differ in length and each configuration gets different ones.
 * --clock picks the clock the optimizer learns from and the verdict uses (default
 * cpu). PASS when the optimizer's median is within 5% of the best fixed size's.
 * --sweep N prints the per-batch median tokens/s of every fixed size 1..N instead
 * (1, 2, 4, ... when --sweep-pow2), to see the curve.
 *
 * OpenMP waiting. By default libgomp's threads spin (up to GOMP_SPINCOUNT, 300000
 * iterations) at every barrier before sleeping. On a machine shared with other
 * processes, a thread whose partner was preempted spins for the whole wait, so CPU
 * time per token rises with the load, the most for small batches (the same ~40
 * barriers a forward pass for fewer tokens). --omp-wait passive (the bench sets
 * OMP_WAIT_POLICY and runs itself again, since libgomp reads it once at load) makes
 * the threads sleep at once: CPU per token no longer depends on the load.
 */
#define _GNU_SOURCE
#include "common/common.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <oneapi/dnnl/dnnl.h>

#define MAXLEN 256
#define MAXB 128

enum { K_ENCODER, K_SYNTHETIC };

typedef struct {
  int kind, n_items;
  int *len;                 /* token count per item */
  /* synthetic kernel */
  int dim;
  float *emb;               /* [1024 × dim] token embedding table */
  float *w;                 /* [dim × dim] projection */
  float *x, *y, *s, *o;     /* scratch */
  float *weights;           /* per-batch overhead buffer */
  size_t weights_n;
  volatile float sink;
  /* encoder */
  ae_encoder *enc;
  int32_t **ids;            /* token ids per item */
  const int32_t **bid;      /* the batch being run */
  size_t *blen;
  float *out;               /* [MAXB × dim] */
} workload;

static uint64_t rng = 88172645463325252ull;
static double unif(void) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return (double)(rng >> 11) / 9007199254740992.0;
}

static double spread = 0.5; /* sigma of ln(tokens) */

/* ---- synthetic kernel --------------------------------------------------------- */

static int syn_init(workload *w, int n_items, int dim, double overhead_mb) {
  w->kind = K_SYNTHETIC;
  w->dim = dim;
  w->n_items = n_items;
  w->len = malloc(n_items * sizeof *w->len);
  if (!w->len) return -1;
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
  if (!w->emb || !w->w || !w->x || !w->y || !w->s || !w->o || !w->weights) return -1;
  for (int i = 0; i < 1024 * dim; i++) w->emb[i] = (float)(unif() - 0.5);
  for (int i = 0; i < dim * dim; i++) w->w[i] = (float)((unif() - 0.5) / sqrt(dim));
  for (size_t i = 0; i < w->weights_n; i++) w->weights[i] = (float)unif();
  return 0;
}

/* Processes items [first, first+count) of the stream (wrapping). */
static void syn_batch(workload *w, int first, int count) {
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

/* ---- encoder ------------------------------------------------------------------ */

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static char tmp_model_root[256]; /* a temporary folder to remove at exit, or "" */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st; (void)flag; (void)ftw;
  return remove(path);
}
static void remove_tmp_model(void) {
  if (tmp_model_root[0]) nftw(tmp_model_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Finds the model folder: --model, the shared MiniLM when it has weights, else a
 * random-weight model of its shape made into a temporary folder. 0 on success. */
static int find_model(const char *model_arg, const char *shared, char *dir, size_t n,
                      char *why, size_t wn) {
  if (model_arg) { snprintf(dir, n, "%s", model_arg); return 0; }
  char like[1100], path[1300];
  snprintf(like, sizeof like, "%s/models/all-MiniLM-L6-v2", shared);
  snprintf(path, sizeof path, "%s/model.safetensors", like);
  if (file_exists(path)) { snprintf(dir, n, "%s", like); return 0; }
  snprintf(path, sizeof path, "%s/config.json", like);
  if (!file_exists(path)) {
    snprintf(why, wn, "no --model and no %s to make a random-weight model like", path);
    return -1;
  }
  snprintf(tmp_model_root, sizeof tmp_model_root, "%s/bench_adaptive.XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmp_model_root)) {
    snprintf(why, wn, "cannot create a temporary folder for the model");
    tmp_model_root[0] = 0;
    return -1;
  }
  atexit(remove_tmp_model);
  snprintf(dir, n, "%s/model", tmp_model_root);
  if (ae_model_init_random(like, dir, 1, "F32") != AE_OK) {
    snprintf(why, wn, "ae_model_init_random: %s", ae_last_error());
    return -1;
  }
  return 0;
}

/* Loads the annotations, picks n_items of them at random (seeded), builds the text the
 * generator would embed and tokenizes it once with the encoder's tokenizer. */
static int enc_items(workload *w, const char *data, int n_items, char *why, size_t wn) {
  ae_annotation_set *set;
  if (ae_annotations_load_jsonl(data, NULL, NULL, &set) != AE_OK) {
    snprintf(why, wn, "%s", ae_last_error());
    return -1;
  }
  size_t total = ae_annotation_set_count(set);
  const ae_annotation *a = ae_annotation_set_items(set);
  size_t *order = malloc(sizeof(size_t) * (total ? total : 1));
  w->len = malloc(sizeof(int) * n_items);
  w->ids = calloc(n_items, sizeof *w->ids);
  if (!order || !w->len || !w->ids) { snprintf(why, wn, "out of memory"); return -1; }
  for (size_t i = 0; i < total; i++) order[i] = i;
  for (size_t i = total; i > 1; i--) {   /* Fisher-Yates */
    size_t j = (size_t)(unif() * i), t = order[i - 1];
    order[i - 1] = order[j];
    order[j] = t;
  }
  ae_text_options to;
  ae_text_options_default(&to);
  const ae_tokenizer *tok = ae_encoder_tokenizer(w->enc);
  size_t max_len = (size_t)ae_encoder_max_length(w->enc);
  w->n_items = 0;
  for (size_t i = 0; i < total && w->n_items < n_items; i++) {
    char *text;
    size_t len, n_ids;
    int32_t *ids;
    if (ae_annotation_text(&a[order[i]], &to, &text, &len, NULL) != AE_OK) continue;
    int rc = ae_tokenizer_encode(tok, text, len, max_len, &ids, &n_ids, NULL);
    ae_free(text);
    if (rc != AE_OK) continue;
    w->ids[w->n_items] = ids;
    w->len[w->n_items++] = (int)n_ids;
  }
  free(order);
  ae_annotation_set_free(set);
  if (w->n_items < 256) {
    snprintf(why, wn, "%s gave only %d usable annotations", data, w->n_items);
    return -1;
  }
  return 0;
}

static int enc_init(workload *w, const char *model, const char *data, int n_items,
                    int threads, char *why, size_t wn) {
  w->kind = K_ENCODER;
  ae_encoder_options eo = {.threads = threads};
  if (ae_encoder_load(model, &eo, &w->enc) != AE_OK) {
    snprintf(why, wn, "%s", ae_last_error());
    return -1;
  }
  w->dim = ae_encoder_dim(w->enc);
  w->bid = malloc(sizeof *w->bid * MAXB);
  w->blen = malloc(sizeof *w->blen * MAXB);
  w->out = malloc(sizeof(float) * MAXB * w->dim);
  if (!w->bid || !w->blen || !w->out) { snprintf(why, wn, "out of memory"); return -1; }
  return enc_items(w, data, n_items, why, wn);
}

static void enc_batch(workload *w, int first, int count) {
  for (int i = 0; i < count; i++) {
    int item = (first + i) % w->n_items;
    w->bid[i] = w->ids[item];
    w->blen[i] = (size_t)w->len[item];
  }
  if (ae_encoder_embed_ids(w->enc, w->bid, w->blen, (size_t)count, w->out) != AE_OK) {
    fprintf(stderr, "bench_adaptive: encoder failed: %s\n", ae_last_error());
    exit(1);
  }
}

static void wl_free(workload *w) {
  free(w->len); free(w->emb); free(w->w); free(w->x); free(w->y); free(w->s); free(w->o);
  free(w->weights);
  if (w->ids)
    for (int i = 0; i < w->n_items; i++) ae_free(w->ids[i]);
  free(w->ids); free(w->bid); free(w->blen); free(w->out);
  ae_encoder_free(w->enc);
}

static void run_batch(workload *w, int first, int count) {
  if (w->kind == K_ENCODER) enc_batch(w, first, count);
  else syn_batch(w, first, count);
}

/* ---- clocks ------------------------------------------------------------------- */

/* Every batch is timed on both clocks; use_wall says which one the optimizer sees and
 * the verdict uses. Process CPU time counts all of the process's threads (OpenMP
 * workers included) but not time they spent preempted. */
static int use_wall;
static int trace; /* --trace: print every learning batch */
typedef struct { double wall, cpu; } stamp;
static stamp now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  stamp s = {ae__now_ms(), ts.tv_sec * 1e3 + ts.tv_nsec / 1e6};
  return s;
}
static void add_since(stamp t0, stamp *acc) {
  stamp t = now();
  acc->wall += t.wall - t0.wall;
  acc->cpu += t.cpu - t0.cpu;
}
static double pick(stamp s) { return use_wall ? s.wall : s.cpu; }

/* ---- per-batch throughput samples -------------------------------------------- */

/* Every batch gives one sample per clock: tokens / seconds of that batch. A
 * configuration's throughput is the median of its samples (robust to the batches a
 * load spike hit), the same estimator for the fixed sizes and for the optimizer. */
typedef struct {
  double *v[2];               /* [clock] 0 = chosen, 1 = the other */
  int n, cap;
  double tokens, ms[2];       /* sums, for the aggregate Σ tokens / Σ time */
} samples;

static void add_sample(samples *sm, int tokens, stamp t) {
  if (sm->n == sm->cap) {
    sm->cap = sm->cap ? 2 * sm->cap : 64;
    for (int c = 0; c < 2; c++) {
      sm->v[c] = realloc(sm->v[c], sizeof(double) * sm->cap);
      if (!sm->v[c]) { fprintf(stderr, "bench_adaptive: out of memory\n"); exit(1); }
    }
  }
  double chosen = use_wall ? t.wall : t.cpu, other = use_wall ? t.cpu : t.wall;
  sm->v[0][sm->n] = tokens / (chosen > 1e-6 ? chosen / 1000.0 : 1e-9);
  sm->v[1][sm->n] = tokens / (other > 1e-6 ? other / 1000.0 : 1e-9);
  sm->n++;
  sm->tokens += tokens;
  sm->ms[0] += chosen;
  sm->ms[1] += other;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median_of(const double *in, int n) {
  if (n <= 0) return 0;
  double *v = malloc(sizeof(double) * n);
  memcpy(v, in, sizeof(double) * n);
  qsort(v, n, sizeof *v, cmp_d);
  double m = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  free(v);
  return m;
}
/* Mean of the middle 60% (20% trimmed off each end). */
static double trimmed_mean(const double *in, int n) {
  if (n <= 0) return 0;
  double *v = malloc(sizeof(double) * n);
  memcpy(v, in, sizeof(double) * n);
  qsort(v, n, sizeof *v, cmp_d);
  int lo = n / 5, hi = n - n / 5;
  double sum = 0;
  for (int i = lo; i < hi; i++) sum += v[i];
  free(v);
  return sum / (hi - lo);
}

/* ---- the optimizer's loop ----------------------------------------------------- */

typedef struct {
  ae_batchopt *o;
  ae_probe *probe;
  ae_probe_reading pr;
  int pos, batches;
} optimizer;

/* One optimizer batch at the optimizer's own stream position; returns its items and
 * adds a throughput sample to *sm (when given). */
static int optimizer_batch(workload *w, optimizer *op, samples *sm, ae_batch_recommendation *after) {
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
  stamp t0 = now(), t = {0, 0};
  run_batch(w, op->pos, count);
  add_since(t0, &t);
  op->pos = (op->pos + count) % w->n_items;
  double ms = pick(t);
  ae_batch_sample s = {count, tokens, ms > 1e-6 ? ms : 1e-6, op->pr.process_cpu_pct,
                       op->pr.memory_pct, 1, count};
  ae_batchopt_record(op->o, &s);
  if (sm) add_sample(sm, tokens, t);
  if (after) ae_batchopt_recommend(op->o, after);
  if (trace && after)
    printf("  learning batch %3d: %3d items %5d tokens, cpu %8.1f ms, wall %8.1f ms, %7.1f "
           "tokens/cpu-s, probe cpu %.0f%% mem %.0f%% -> next %d (best %d): %s\n", op->batches,
           count, tokens, t.cpu, t.wall, tokens / (t.cpu / 1000), op->pr.process_cpu_pct,
           op->pr.memory_pct, after->batch_size, after->best_batch_size, after->reason);
  return count;
}

#define NCONF 6                /* the five fixed sizes, then the optimizer */
static const int sizes[5] = {1, 8, 32, 64, 128};
static int history; /* --history: history_retention, 0 = default (100) */

/* Items each fixed size runs per round: enough for several batches of the small sizes
 * (whose per-batch throughput varies least and which cost the most per item) and one
 * or more of the large ones; `chunk` for the optimizer and the sizes of 64 and up. */
static int items_for(int k, int chunk) {
  int want = sizes[k] <= 1 ? 8 : sizes[k] <= 8 ? 32 : sizes[k] <= 32 ? chunk / 2 : chunk;
  if (want < sizes[k]) want = sizes[k];
  return want;
}

typedef struct {
  samples all[NCONF];          /* every measured batch, all rounds */
  double *round_med[NCONF][2]; /* per round: median of that round's batches */
  double *round_agg[NCONF][2]; /* per round: that round's tokens / time */
  int final_best, converged_at;
  double confidence;
  long opt_items, opt_batches;
  char reason[256];
  char learned[512];           /* sizes of the learning batches, as run */
} bench_out;

/* --sweep N: tokens/s of every fixed size 1..N (per-batch medians, interleaved), to see
 * the curve. */
static int sweep(workload *w, int max, int pow2, int chunks, int chunk) {
  int ks[MAXB + 1], nk = 0;
  for (int k = 1; k <= max && k <= MAXB; k = pow2 ? k * 2 : k + 1) ks[nk++] = k;
  samples sm[MAXB + 1];
  memset(sm, 0, sizeof sm);
  for (int c = 0; c < chunks; c++) {
    int first = (c * chunk) % w->n_items;
    for (int j = 0; j < nk; j++) {
      int k = ks[(j + c) % nk];
      for (int f = 0; f < chunk; f += k) {
        int n = f + k <= chunk ? k : chunk - f, tokens = 0;
        for (int i = 0; i < n; i++) tokens += w->len[(first + f + i) % w->n_items];
        stamp t0 = now(), t = {0, 0};
        run_batch(w, first + f, n);
        add_since(t0, &t);
        add_sample(&sm[k], tokens, t);
      }
    }
  }
  double best = 0;
  for (int j = 0; j < nk; j++) {
    double m = median_of(sm[ks[j]].v[0], sm[ks[j]].n);
    if (m > best) best = m;
  }
  printf("%-9s %14s %8s %16s\n", "size", use_wall ? "wall tokens/s" : "cpu tokens/s", "vs best",
         use_wall ? "cpu tokens/s" : "wall tokens/s");
  for (int j = 0; j < nk; j++) {
    double m0 = median_of(sm[ks[j]].v[0], sm[ks[j]].n), m1 = median_of(sm[ks[j]].v[1], sm[ks[j]].n);
    printf("size %4d %14.1f %7.1f%% %16.1f\n", ks[j], m0, 100 * m0 / best, m1);
    free(sm[ks[j]].v[0]);
    free(sm[ks[j]].v[1]);
  }
  return 0;
}

/* Learning: a fresh optimizer runs `batches` batches. Measurement: `rounds` rounds;
 * in each, every fixed size and the optimizer (which keeps learning and probing) run
 * on the same stretch of the item stream, one after the other, in an order that
 * reverses on every other round and rotates, so load changes on the shared machine
 * hit every configuration alike. Each batch is one throughput sample. */
static void run_bench(workload *w, int batches, int rounds, int chunk, bench_out *out) {
  optimizer op = {0};
  ae_batchopt_config cfg;
  ae_batchopt_config_default(&cfg);
  if (history > 0) cfg.history_retention = history;
  if (ae_batchopt_new(&cfg, &op.o) != AE_OK) {
    fprintf(stderr, "bench_adaptive: %s\n", ae_last_error());
    exit(2);
  }
  ae_probe_new(NULL, NULL, &op.probe);
  /* learning starts at a stretch of the stream the measurement does not use first */
  op.pos = w->n_items / 2;
  int *best = malloc(sizeof(int) * batches);
  size_t used = 0;
  out->learned[0] = 0;
  for (int b = 0; b < batches; b++) {
    ae_batch_recommendation r;
    int n = optimizer_batch(w, &op, NULL, &r);
    best[b] = r.best_batch_size;
    if (used + 8 < sizeof out->learned)
      used += (size_t)snprintf(out->learned + used, sizeof out->learned - used, " %d", n);
  }
  out->final_best = best[batches - 1];
  out->converged_at = batches;
  for (int b = batches - 1; b >= 0; b--) {
    if (fabs((double)(best[b] - out->final_best)) > 0.25 * out->final_best) break;
    out->converged_at = b + 1;
  }
  free(best);

  for (int k = 0; k < NCONF; k++)
    for (int c = 0; c < 2; c++) {
      out->round_med[k][c] = calloc(rounds, sizeof(double));
      out->round_agg[k][c] = calloc(rounds, sizeof(double));
    }
  op.pos = 0;
  for (int r = 0; r < rounds; r++) {
    int first = (r * chunk) % w->n_items;
    op.pos = first;  /* the optimizer runs the same stretch as the fixed sizes */
    for (int j = 0; j < NCONF; j++) {
      int k = (r % 2 ? NCONF - 1 - j + r / 2 : j + r / 2) % NCONF;
      samples *sm = &out->all[k];
      int n0 = sm->n;
      double tok0 = sm->tokens, ms0[2] = {sm->ms[0], sm->ms[1]};
      if (k < 5) {
        int total = items_for(k, chunk);
        for (int f = 0; f < total; f += sizes[k]) {
          int n = f + sizes[k] <= total ? sizes[k] : total - f, tokens = 0;
          for (int i = 0; i < n; i++) tokens += w->len[(first + f + i) % w->n_items];
          stamp t0 = now(), t = {0, 0};
          run_batch(w, first + f, n);
          add_since(t0, &t);
          add_sample(sm, tokens, t);
        }
      } else {
        long done = 0;
        while (done < chunk) {
          done += optimizer_batch(w, &op, sm, NULL);
          out->opt_batches++;
        }
        out->opt_items += done;
      }
      for (int c = 0; c < 2; c++) {
        out->round_med[k][c][r] = median_of(sm->v[c] + n0, sm->n - n0);
        out->round_agg[k][c][r] = (sm->tokens - tok0) / ((sm->ms[c] - ms0[c]) / 1000.0);
      }
    }
  }
  ae_batch_recommendation r;
  ae_batchopt_recommend(op.o, &r);
  out->confidence = r.confidence;
  snprintf(out->reason, sizeof out->reason, "%s", r.reason);
  ae_probe_free(op.probe);
  ae_batchopt_free(op.o);
}

/* The three load averages of /proc/loadavg ("" when unreadable). */
static void loadavg(char *buf, size_t n) {
  double l[3];
  FILE *f = fopen("/proc/loadavg", "r");
  buf[0] = 0;
  if (f && fscanf(f, "%lf %lf %lf", &l[0], &l[1], &l[2]) == 3)
    snprintf(buf, n, "%.2f %.2f %.2f", l[0], l[1], l[2]);
  if (f) fclose(f);
}

/* Paired comparison: for each fixed size, the median over rounds of the optimizer's
 * round value / that size's round value (both from the same round, so a load change
 * between rounds cancels); the worst of them (against the size the optimizer fares
 * worst against, i.e. the best fixed size) is the verdict ratio. */
static double paired(double *const per_round[NCONF], int rounds, double out[5], int *worst_k) {
  double v[1000], worst = 0;
  for (int k = 0; k < 5; k++) {
    for (int r = 0; r < rounds; r++) v[r] = per_round[5][r] / per_round[k][r];
    out[k] = median_of(v, rounds);
    if (k == 0 || out[k] < worst) { worst = out[k]; *worst_k = k; }
  }
  return worst;
}

/* Prints the table for one clock (0 = chosen, 1 = the other); returns the verdict
 * ratio (paired per-batch medians, see paired()) and in *by_agg the same on the
 * rounds' aggregates. */
static double report(const bench_out *bo, int rounds, int c, const char *clock_name,
                     double *by_agg) {
  double med[NCONF], tm[NCONF], pm[5], pa[5];
  double *rmed[NCONF], *ragg[NCONF];
  for (int k = 0; k < NCONF; k++) {
    med[k] = median_of(bo->all[k].v[c], bo->all[k].n);
    tm[k] = trimmed_mean(bo->all[k].v[c], bo->all[k].n);
    rmed[k] = bo->round_med[k][c];
    ragg[k] = bo->round_agg[k][c];
  }
  int wk, wa;
  double ratio = paired(rmed, rounds, pm, &wk);
  *by_agg = paired(ragg, rounds, pa, &wa);
  printf("\n%s time, tokens/s over %d rounds. median, trimmed: of the per-batch samples "
         "(20%% trimmed mean); aggregate: all tokens / all time; paired: median over rounds "
         "of optimizer / this size within the round (per-batch medians; round aggregates)\n",
         clock_name, rounds);
  printf("%-25s %7s %9s %9s %9s %17s\n", "configuration", "batches", "median", "trimmed",
         "aggregate", "paired opt/this");
  for (int k = 0; k < NCONF; k++) {
    char name[32];
    if (k < 5) snprintf(name, sizeof name, "fixed %d", sizes[k]);
    else snprintf(name, sizeof name, "optimizer (steady state)");
    printf("%-25s %7d %9.1f %9.1f %9.1f", name, bo->all[k].n, med[k], tm[k],
           bo->all[k].tokens / (bo->all[k].ms[c] / 1000.0));
    if (k < 5) printf("   %6.3f; %6.3f%s\n", pm[k], pa[k], k == wk ? "  (best fixed)" : "");
    else printf("\n");
  }
  printf("per round, optimizer / best fixed of that round (per-batch medians):");
  for (int r = 0; r < rounds; r++) {
    double bf = 0;
    for (int k = 0; k < 5; k++) if (rmed[k][r] > bf) bf = rmed[k][r];
    printf(" %.3f", rmed[5][r] / bf);
  }
  printf("\n");
  return ratio;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_adaptive [--kernel encoder|synthetic] [--rounds R] [--chunks C]\n"
          "         [--chunk N] [--batches B] [--threads T] [--seed S] [--clock cpu|wall]\n"
          "         [--sweep N] [--sweep-pow2] [--history N] [--trace] [--omp-wait passive|active]\n"
          "  encoder:   [--model DIR] [--data FILE.jsonl] [--items N]\n"
          "  synthetic: [--dim D] [--overhead-mb M] [--spread SIGMA]\n");
}

/* --omp-wait POLICY: libgomp reads OMP_WAIT_POLICY once, when it is loaded, so the
 * bench sets it and runs itself again (without the option). */
static void reexec_with_wait_policy(int argc, char **argv, const char *policy) {
  if (strcmp(policy, "passive") && strcmp(policy, "active")) {
    fprintf(stderr, "bench_adaptive: --omp-wait %s: expected passive or active\n", policy);
    exit(2);
  }
  char **args = calloc((size_t)argc + 1, sizeof *args);
  int n = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--omp-wait") && i + 1 < argc) { i++; continue; }
    args[n++] = argv[i];
  }
  setenv("OMP_WAIT_POLICY", policy, 1);
  execv("/proc/self/exe", args);
  fprintf(stderr, "bench_adaptive: cannot run itself again: %s\n", strerror(errno));
  exit(1);
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--omp-wait")) reexec_with_wait_policy(argc, argv, argv[i + 1]);
  int kind = K_ENCODER, kind_given = 0, rounds = -1, chunks = -1, chunk = -1, batches = -1;
  int dim = 128, threads = -1, n_items = 2048, sweep_max = 0, sweep_pow2 = 0;
  double overhead_mb = 8;
  const char *model_arg = NULL, *data_arg = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
    if (!strcmp(a, "--sweep-pow2")) { sweep_pow2 = 1; continue; }
    if (!strcmp(a, "--trace")) { trace = 1; continue; }
    if (!v) { fprintf(stderr, "bench_adaptive: %s needs a value\n", a); return 2; }
    if (!strcmp(a, "--kernel")) {
      if (!strcmp(v, "encoder")) kind = K_ENCODER;
      else if (!strcmp(v, "synthetic")) kind = K_SYNTHETIC;
      else { fprintf(stderr, "bench_adaptive: --kernel %s: expected encoder or synthetic\n", v); return 2; }
      kind_given = 1;
    }
    else if (!strcmp(a, "--rounds")) rounds = atoi(v);
    else if (!strcmp(a, "--chunks")) chunks = atoi(v);
    else if (!strcmp(a, "--chunk")) chunk = atoi(v);
    else if (!strcmp(a, "--batches")) batches = atoi(v);
    else if (!strcmp(a, "--dim")) dim = atoi(v);
    else if (!strcmp(a, "--overhead-mb")) overhead_mb = atof(v);
    else if (!strcmp(a, "--threads")) threads = atoi(v);
    else if (!strcmp(a, "--seed")) rng = strtoull(v, NULL, 10) | 1;
    else if (!strcmp(a, "--clock")) {
      if (strcmp(v, "wall") && strcmp(v, "cpu")) { fprintf(stderr, "bench_adaptive: --clock %s: expected cpu or wall\n", v); return 2; }
      use_wall = !strcmp(v, "wall");
    }
    else if (!strcmp(a, "--sweep")) sweep_max = atoi(v);
    else if (!strcmp(a, "--spread")) spread = atof(v);
    else if (!strcmp(a, "--history")) history = atoi(v);
    else if (!strcmp(a, "--model")) model_arg = v;
    else if (!strcmp(a, "--data")) data_arg = v;
    else if (!strcmp(a, "--items")) n_items = atoi(v);
    else { fprintf(stderr, "bench_adaptive: unknown option %s\n", a); usage(stderr); return 2; }
    i++;
  }

  workload w;
  memset(&w, 0, sizeof w);
  char why[1600] = "", model[1200] = "", data[1200], shared[1024];
  const char *src = getenv("AE_SOURCE_DIR");
  snprintf(shared, sizeof shared, "%s/../shared", src ? src : ".");
  if (data_arg) snprintf(data, sizeof data, "%s", data_arg);
  else snprintf(data, sizeof data, "%s/testdata/cpython-stdlib-annotations.jsonl", shared);
  if (threads < 0) threads = kind == K_ENCODER ? 2 : 1;
  if (kind == K_ENCODER) {
    if (n_items < 256 || find_model(model_arg, shared, model, sizeof model, why, sizeof why) ||
        enc_init(&w, model, data, n_items, threads, why, sizeof why)) {
      if (n_items < 256) snprintf(why, sizeof why, "--items %d is below 256", n_items);
      fprintf(stderr, "bench_adaptive: encoder workload unavailable: %s\n", why);
      if (kind_given) return 1;
      fprintf(stderr, "bench_adaptive: running --kernel synthetic instead\n");
      wl_free(&w);
      memset(&w, 0, sizeof w);
      kind = K_SYNTHETIC;
      threads = 1;
    }
  }
  /* defaults per workload: an encoder item costs ~40 ms of CPU at the best size (far
   * more at size 1, and more on a busy machine). Learning, 30 batches (the issue's
   * convergence horizon), is ~1000 items; a round is ~450 item-equivalents (8 items at
   * size 1, 32 at size 8, 64 at size 32, 128 each at 64, 128 and the optimizer). Six
   * rounds and the learning are ~180 s of CPU: under two minutes alone on the
   * machine's 2 cores, about three to four when it is shared. */
  if (rounds < 0) rounds = kind == K_ENCODER ? 6 : 12;
  if (chunks < 0) chunks = kind == K_ENCODER ? 2 : 12;
  if (chunk < 0) chunk = kind == K_ENCODER ? 128 : 256;
  if (batches < 0) batches = kind == K_ENCODER ? 30 : 60;
  if (rounds < 1 || rounds > 1000 || chunks < 1 || chunk < 8 || batches < 10 || dim < 16 ||
      threads < 1 || overhead_mb < 0) {
    fprintf(stderr, "bench_adaptive: bad arguments\n");
    return 2;
  }
  omp_set_num_threads(threads);
  if (kind == K_SYNTHETIC && syn_init(&w, 4096, dim, overhead_mb)) {
    fprintf(stderr, "bench_adaptive: out of memory\n");
    return 1;
  }
  run_batch(&w, 0, 32); /* warm up oneDNN's kernels */
  char load0[128], load1[128];
  loadavg(load0, sizeof load0);
  if (kind == K_ENCODER) {
    double sum = 0;
    int at_max = 0;
    for (int i = 0; i < w.n_items; i++) {
      sum += w.len[i];
      at_max += w.len[i] >= ae_encoder_max_length(w.enc);
    }
    printf("bench_adaptive: encoder %s (dim %d, max length %d), %d thread(s), OMP_WAIT_POLICY "
           "%s; %d annotations from %s, %.1f tokens mean, %.0f%% truncated at the max length\n",
           model, w.dim, ae_encoder_max_length(w.enc), threads,
           getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "unset", w.n_items, data,
           sum / w.n_items, 100.0 * at_max / w.n_items);
  } else {
    printf("bench_adaptive: synthetic padded-encoder kernel (d=%d, %.0f MiB per-batch overhead, "
           "token spread %.2f), %d thread(s)\n", dim, overhead_mb, spread, threads);
  }
  if (sweep_max > 0) {
    int rc = sweep(&w, sweep_max, sweep_pow2, chunks, chunk);
    wl_free(&w);
    return rc;
  }
  printf("the optimizer (history %d) learns for %d batches, then %d interleaved rounds "
         "(the optimizer and the sizes of 64 and up run %d items a round, fixed 32 %d, fixed "
         "8 %d, fixed 1 %d); the optimizer is fed %s time; load average before: %s\n",
         history ? history : 100, batches, rounds, chunk, items_for(2, chunk),
         items_for(1, chunk), items_for(0, chunk), use_wall ? "wall" : "process CPU", load0);
  fflush(stdout);
  bench_out bo;
  memset(&bo, 0, sizeof bo);
  double t0 = ae__now_ms();
  run_bench(&w, batches, rounds, chunk, &bo);
  loadavg(load1, sizeof load1);

  double ratio_r, other_r;
  double ratio = report(&bo, rounds, 0, use_wall ? "wall" : "process CPU", &ratio_r);
  report(&bo, rounds, 1, use_wall ? "process CPU" : "wall", &other_r);
  printf("\nlearning: final estimate %d, converged (estimate within 25%% of the final one from) "
         "batch %d; learning batch sizes:%s\n", bo.final_best, bo.converged_at, bo.learned);
  printf("steady state: %ld optimizer batches, mean size %.1f\n", bo.opt_batches,
         bo.opt_batches ? (double)bo.opt_items / bo.opt_batches : 0.0);
  printf("last reason: %s (confidence %.2f)\n", bo.reason, bo.confidence);
  printf("load average after: %s; %.0f s\n", load1, (ae__now_ms() - t0) / 1000);
  int pass = ratio >= 0.95;
  printf("%s: optimizer steady-state %.1f%% of the best fixed size (paired per-round medians "
         "of tokens/s per batch, %s time; %.1f%% on the round aggregates); criterion >= 95%%\n",
         pass ? "PASS" : "FAIL", 100 * ratio, use_wall ? "wall" : "process CPU", 100 * ratio_r);
  for (int k = 0; k < NCONF; k++)
    for (int c = 0; c < 2; c++) {
      free(bo.all[k].v[c]);
      free(bo.round_med[k][c]);
      free(bo.round_agg[k][c]);
    }
  wl_free(&w);
  return pass ? 0 : 1;
}
