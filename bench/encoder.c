/*
 * bench/encoder — astembed's encoder against PyTorch and ONNX Runtime, in one run,
 * on the same random-weight model and the same token ids.
 *
 *   bench_encoder --model DIR [--torch-cmd CMD] [--ort-cmd CMD] [options]
 *
 * What it does, in order:
 *   1. loads the model folder with astembed (threads = --threads, max length 256) and
 *      makes the workloads' token ids with astembed's tokenizer:
 *        (a) "fixed": --fixed-batches batches of 32 random sequences of 128 tokens;
 *        (b) the first --n-ann annotations of --data, text = signature + " " + summary
 *            + " " + sourceSnippet, truncated at 256 tokens;
 *      and writes them once to WORKDIR/work.json, which every peer reads, so only the
 *      encoders are compared;
 *   2. times astembed on (a) (one call per batch of 32) and (b) (its own way: one call
 *      with every sequence, packed, no padding, batched inside; and, for reference,
 *      one call per 32 sequences in input order);
 *   3. times oneDNN's raw fp32 matmul on the model's GEMM shapes (M = 4096 tokens,
 *      prepacked weights) — the ceiling the end-to-end rate is judged against;
 *   4. runs each peer command (`CMD WORKDIR/work.json`, JSON on stdout; see
 *      bench/peers/) and, for peak RSS, runs each system once more in a fresh process
 *      on batches of 32 x 256 tokens (WORKDIR/rss.json) and reads ru_maxrss from wait4;
 *   5. prints the table, the PASS/FAIL checks against the targets and the
 *      max |diff| between the systems' vectors on a sample, and writes --json.
 * Unless --no-bf16, astembed also runs at precision bf16 (ae_encoder_options.precision)
 * right after its f32 runs on the same workloads ("astembed-bf16" rows), and the
 * bf16/f32 speed ratios and the bf16 vectors' closeness to f32 are printed. The
 * issue's checks stay f32-only.
 *
 * Unless --no-cpu-paths, astembed also runs workload (b) on each CPU path of its
 * kernels (avx512, avx2, generic: ASTEMBED_CPU, which caps oneDNN too), each in its
 * own process (the path is chosen once per process), the paths taking turns in every
 * round; the table gives items/s per path, the ratio to the best path and the max
 * |diff| of each path's vectors from the best path's (a check: <= 1e-5).
 *
 * Every timing is the median of several repetitions after warm-up. GFLOP/s counts
 * useful work only (real tokens, never padding): per layer 2·T·(4H² + 2HI) for the
 * dense layers plus 4·ΣL²·H for attention scores and context.
 */
#include <astembed.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/common.h"
#include "common/jsonl.h"
#include "peer_run.h"

#define BATCH 32
#define FIXED_LEN 128
#define RSS_LEN 256
#define MAX_LEN 256
#define EXACT_TOL 1e-4

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct {
  const char *model, *data, *workdir, *torch_cmd, *ort_cmd, *json_out, *rss_probe;
  int threads, n_ann, fixed_batches, warmup_batches, reps_fixed, reps_ann, rounds;
  int gemm_reps, own32, bf16, cpu_paths;
  const char *path_probe;
  uint64_t seed;
} options;

static void usage(FILE *f) {
  fprintf(f,
    "usage: bench_encoder --model DIR [options]\n"
    "  --model DIR          random-weight model folder (astembed model init-random)\n"
    "  --data FILE          annotations JSONL (default ../shared/testdata/"
    "cpython-stdlib-annotations.jsonl)\n"
    "  --workdir DIR        where work.json, rss.json and peer outputs go (default .)\n"
    "  --torch-cmd CMD      PyTorch peer command; WORK.json is appended (omit: skip)\n"
    "  --ort-cmd CMD        ONNX Runtime peer command; WORK.json is appended (omit: skip)\n"
    "  --threads N          threads for every system (default 2)\n"
    "  --n-ann N            annotations of workload (b) (default 2000)\n"
    "  --fixed-batches N    batches of 32x128 per repetition of (a) (default 4)\n"
    "  --warmup-batches N   warm-up batches before each timed workload (default 2)\n"
    "  --reps-fixed N       repetitions of (a) (default 5)\n"
    "  --reps-ann N         repetitions of (b) (default 3)\n"
    "  --rounds N           run astembed, PyTorch, ORT N times in turn (default 1)\n"
    "  --gemm-reps N        repetitions per GEMM shape (default 20)\n"
    "  --seed N             seed of the random ids of (a) (default 1)\n"
    "  --json FILE          write every measurement as JSON\n"
    "  --no-own32           skip the astembed row 'packed, input order /32' (saves time)\n"
    "  --no-bf16            skip the astembed-bf16 rows (precision bf16)\n"
    "  --no-cpu-paths       skip the per-CPU-path rows (avx512, avx2, generic)\n");
}

static int parse_int(const char *s, const char *flag, int min) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == 0 || *end || v < min || v > 1000000) {
    fprintf(stderr, "bench_encoder: %s wants an integer >= %d, got '%s'\n", flag, min, s);
    exit(2);
  }
  return (int)v;
}

static void parse_args(int argc, char **argv, options *o) {
  *o = (options){.data = "../shared/testdata/cpython-stdlib-annotations.jsonl",
                 .workdir = ".", .threads = 2, .n_ann = 2000, .fixed_batches = 4,
                 .warmup_batches = 2, .reps_fixed = 5, .reps_ann = 3, .rounds = 1, .bf16 = 1,
                 .gemm_reps = 20, .seed = 1, .own32 = 1, .cpu_paths = 1};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
    if (!strcmp(a, "--no-own32")) { o->own32 = 0; continue; }
    if (!strcmp(a, "--no-bf16")) { o->bf16 = 0; continue; }
    if (!strcmp(a, "--no-cpu-paths")) { o->cpu_paths = 0; continue; }
    if (i + 1 >= argc) { fprintf(stderr, "bench_encoder: %s needs a value\n", a); exit(2); }
    const char *v = argv[++i];
    if (!strcmp(a, "--model")) o->model = v;
    else if (!strcmp(a, "--data")) o->data = v;
    else if (!strcmp(a, "--workdir")) o->workdir = v;
    else if (!strcmp(a, "--torch-cmd")) o->torch_cmd = v;
    else if (!strcmp(a, "--ort-cmd")) o->ort_cmd = v;
    else if (!strcmp(a, "--json")) o->json_out = v;
    else if (!strcmp(a, "--rss-probe")) o->rss_probe = v;
    else if (!strcmp(a, "--path-probe")) o->path_probe = v;
    else if (!strcmp(a, "--threads")) o->threads = parse_int(v, a, 1);
    else if (!strcmp(a, "--n-ann")) o->n_ann = parse_int(v, a, 0);
    else if (!strcmp(a, "--fixed-batches")) o->fixed_batches = parse_int(v, a, 1);
    else if (!strcmp(a, "--warmup-batches")) o->warmup_batches = parse_int(v, a, 0);
    else if (!strcmp(a, "--reps-fixed")) o->reps_fixed = parse_int(v, a, 1);
    else if (!strcmp(a, "--reps-ann")) o->reps_ann = parse_int(v, a, 1);
    else if (!strcmp(a, "--rounds")) o->rounds = parse_int(v, a, 1);
    else if (!strcmp(a, "--gemm-reps")) o->gemm_reps = parse_int(v, a, 1);
    else if (!strcmp(a, "--seed")) o->seed = (uint64_t)parse_int(v, a, 0);
    else { fprintf(stderr, "bench_encoder: unknown option %s\n", a); usage(stderr); exit(2); }
  }
  if (!o->model) { fprintf(stderr, "bench_encoder: --model is required\n"); usage(stderr); exit(2); }
}

static void die(const char *what, int status) {
  fprintf(stderr, "bench_encoder: %s: %s (%s)\n", what, ae_strerror(status), ae_last_error());
  exit(1);
}

/* ------------------------------------------------------------------------ */
/* Token sequences                                                           */
/* ------------------------------------------------------------------------ */

typedef struct {
  int32_t **ids;
  size_t *lens;
  size_t n, cap;
} seqset;

static void seqset_push(seqset *s, int32_t *ids, size_t len) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 64;
    s->ids = realloc(s->ids, s->cap * sizeof *s->ids);
    s->lens = realloc(s->lens, s->cap * sizeof *s->lens);
    if (!s->ids || !s->lens) { fprintf(stderr, "bench_encoder: out of memory\n"); exit(1); }
  }
  s->ids[s->n] = ids;
  s->lens[s->n++] = len;
}

static void seqset_free(seqset *s) {
  for (size_t i = 0; i < s->n; i++) free(s->ids[i]);
  free(s->ids);
  free(s->lens);
  *s = (seqset){0};
}

static size_t seqset_tokens(const seqset *s) {
  size_t t = 0;
  for (size_t i = 0; i < s->n; i++) t += s->lens[i];
  return t;
}

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* n sequences of len ids: [CLS] + random ids from 1000..vocab-1 + [SEP]. The special
 * tokens are the tokenizer's own (what it wraps an empty text in). */
static void make_random(seqset *out, size_t n, size_t len, const ae_tokenizer *tok,
                        uint64_t seed) {
  int32_t *special;
  size_t ns;
  int rc = ae_tokenizer_encode(tok, "", 0, 0, &special, &ns, NULL);
  if (rc) die("tokenizing the empty text", rc);
  int32_t cls = ns >= 1 ? special[0] : 101, sep = ns >= 2 ? special[ns - 1] : 102;
  ae_free(special);
  uint64_t state = seed, vocab = ae_tokenizer_vocab_size(tok);
  for (size_t i = 0; i < n; i++) {
    int32_t *ids = malloc(len * sizeof *ids);
    ids[0] = cls;
    for (size_t p = 1; p + 1 < len; p++) ids[p] = (int32_t)(1000 + splitmix64(&state) % (vocab - 1000));
    ids[len - 1] = sep;
    seqset_push(out, ids, len);
  }
}

static const char *field(json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s ? s : "";
}

/* The first n annotations of path, text = signature + " " + summary + " " +
 * sourceSnippet, tokenized by astembed and truncated at max_len. */
static void load_annotations(const char *path, size_t n, const ae_tokenizer *tok,
                             size_t max_len, seqset *out) {
  FILE *f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "bench_encoder: %s: %s\n", path, strerror(errno)); exit(1); }
  ae_jsonl *r;
  int rc = ae_jsonl_open(f, path, &r);
  if (rc) die(path, rc);
  json_t *v;
  size_t line;
  while (out->n < n && (rc = ae_jsonl_next(r, &v, &line)) != 1) {
    if (rc) die(path, rc);
    const char *sig = field(v, "signature"), *sum = field(v, "summary"),
               *src = field(v, "sourceSnippet");
    size_t len = strlen(sig) + strlen(sum) + strlen(src) + 2;
    char *text = malloc(len + 1);
    snprintf(text, len + 1, "%s %s %s", sig, sum, src);
    int32_t *ids;
    size_t nids;
    rc = ae_tokenizer_encode(tok, text, len, max_len, &ids, &nids, NULL);
    if (rc) { fprintf(stderr, "bench_encoder: %s:%zu: ", path, line); die("tokenize", rc); }
    int32_t *copy = malloc(nids * sizeof *copy);
    memcpy(copy, ids, nids * sizeof *copy);
    ae_free(ids);
    seqset_push(out, copy, nids);
    free(text);
    json_decref(v);
  }
  ae_jsonl_close(r);
  fclose(f);
  if (out->n < n) {
    fprintf(stderr, "bench_encoder: %s has only %zu annotations, %zu wanted\n", path, out->n, n);
    exit(1);
  }
}

/* A verification sample: annotations of many lengths (the shortest, the longest and
 * evenly spaced ranks between) plus two fixed sequences, embedded by the peers as one
 * padded batch so their attention masks are exercised too. */
static void pick_sample(const seqset *ann, const seqset *fixed, seqset *out) {
  size_t want = ann->n < 22 ? ann->n : 22;
  size_t *order = malloc((ann->n ? ann->n : 1) * sizeof *order);
  for (size_t i = 0; i < ann->n; i++) order[i] = i;
  for (size_t i = 1; i < ann->n; i++) /* insertion sort by length: n is small */
    for (size_t j = i; j > 0 && ann->lens[order[j]] < ann->lens[order[j - 1]]; j--) {
      size_t t = order[j]; order[j] = order[j - 1]; order[j - 1] = t;
    }
  for (size_t k = 0; k < want; k++) {
    size_t i = order[want > 1 ? k * (ann->n - 1) / (want - 1) : 0];
    int32_t *copy = malloc(ann->lens[i] * sizeof *copy);
    memcpy(copy, ann->ids[i], ann->lens[i] * sizeof *copy);
    seqset_push(out, copy, ann->lens[i]);
  }
  for (size_t i = 0; i < 2 && i < fixed->n; i++) {
    int32_t *copy = malloc(fixed->lens[i] * sizeof *copy);
    memcpy(copy, fixed->ids[i], fixed->lens[i] * sizeof *copy);
    seqset_push(out, copy, fixed->lens[i]);
  }
  free(order);
}

static json_t *seqset_json(const seqset *s) {
  json_t *arr = json_array();
  for (size_t i = 0; i < s->n; i++) {
    json_t *seq = json_array();
    for (size_t p = 0; p < s->lens[i]; p++) json_array_append_new(seq, json_integer(s->ids[i][p]));
    json_array_append_new(arr, seq);
  }
  return arr;
}

static seqset seqset_from_json(json_t *arr, const char *what) {
  seqset s = {0};
  size_t i;
  json_t *seq;
  json_array_foreach(arr, i, seq) {
    size_t n = json_array_size(seq);
    if (!n) { fprintf(stderr, "bench_encoder: %s: sequence %zu is empty\n", what, i); exit(1); }
    int32_t *ids = malloc(n * sizeof *ids);
    for (size_t p = 0; p < n; p++) ids[p] = (int32_t)json_integer_value(json_array_get(seq, p));
    seqset_push(&s, ids, n);
  }
  return s;
}

/* ------------------------------------------------------------------------ */
/* Work files for the peers                                                  */
/* ------------------------------------------------------------------------ */

static void write_json_file(const char *path, json_t *root) {
  if (json_dump_file(root, path, JSON_COMPACT)) {
    fprintf(stderr, "bench_encoder: cannot write %s\n", path);
    exit(1);
  }
}

static json_t *work_params(const options *o, int warmup, int reps_fixed, int reps_ann) {
  return json_pack("{s:i, s:i, s:i, s:i, s:i}", "threads", o->threads, "batch", BATCH,
                   "warmup_batches", warmup, "reps_fixed", reps_fixed, "reps_ann", reps_ann);
}

/* ------------------------------------------------------------------------ */
/* Statistics and FLOPs                                                      */
/* ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(const double *v, size_t n) {
  if (!n) return NAN;
  double *c = malloc(n * sizeof *c);
  memcpy(c, v, n * sizeof *c);
  qsort(c, n, sizeof *c, cmp_double);
  double m = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
  free(c);
  return m;
}

typedef struct { int hidden, inter, layers, vocab; } shape;

static shape read_shape(const char *model_dir) {
  char *path = ae__path_join(model_dir, "config.json");
  json_error_t err;
  json_t *cfg = json_load_file(path, 0, &err);
  if (!cfg) { fprintf(stderr, "bench_encoder: %s:%d: %s\n", path, err.line, err.text); exit(1); }
  shape s = {(int)json_integer_value(json_object_get(cfg, "hidden_size")),
             (int)json_integer_value(json_object_get(cfg, "intermediate_size")),
             (int)json_integer_value(json_object_get(cfg, "num_hidden_layers")),
             (int)json_integer_value(json_object_get(cfg, "vocab_size"))};
  json_decref(cfg);
  ae__free(path);
  if (s.hidden <= 0 || s.inter <= 0 || s.layers <= 0) {
    fprintf(stderr, "bench_encoder: %s lacks hidden_size/intermediate_size/num_hidden_layers\n",
            model_dir);
    exit(1);
  }
  return s;
}

/* Useful FLOPs of embedding s once: padding is never counted. */
static double useful_flops(const seqset *s, shape m) {
  double H = m.hidden, I = m.inter, dense = 0, attn = 0;
  for (size_t i = 0; i < s->n; i++) {
    double L = (double)s->lens[i];
    dense += 2.0 * L * (4.0 * H * H + 2.0 * H * I);
    attn += 4.0 * L * L * H;
  }
  return m.layers * (dense + attn);
}

/* ------------------------------------------------------------------------ */
/* Results                                                                   */
/* ------------------------------------------------------------------------ */

enum { W_FIXED, W_NAIVE, W_SORTED, W_OWN, W_OWN32, W_COUNT };
static const char *const workload_key[W_COUNT] = {"fixed", "naive", "sorted", "own", "own32"};
static const char *const workload_label[W_COUNT] = {
    "(a) 32x128 fixed batches", "(b) naive: input order, pad/32",
    "(b) length-sorted, pad/32", "(b) own: packed, own batching",
    "(b) packed, input order /32"};

enum { S_AE, S_TORCH, S_ORT, S_AE16, S_COUNT };   /* S_AE16: astembed at precision bf16 */
static const char *const system_name[S_COUNT] = {"astembed", "pytorch", "onnxruntime",
                                                 "astembed-bf16"};

typedef struct {
  double times[256];
  size_t ntimes;
  size_t items, real_tokens, padded_tokens;
  double flops;
  int present;
} result;

typedef struct {
  result r[S_COUNT][W_COUNT];
  char version[S_COUNT][64];
  uint64_t rss[S_COUNT];
  float *sample_vec[S_COUNT];
  size_t sample_n, dim;
} results;

/* astembed on workload (b) per CPU path of its kernels (run_cpu_paths) */
enum { CP_COUNT = 3 };
static const char *const cpu_path_name[CP_COUNT] = {"avx512", "avx2", "generic"};
typedef struct {
  result r;
  float *sample;           /* the first round's vectors */
  char got[16];            /* the path the probe reported ("" = not run) */
} cpu_path_result;

static void add_times(result *r, const double *t, size_t n) {
  for (size_t i = 0; i < n && r->ntimes < 256; i++) r->times[r->ntimes++] = t[i];
  r->present = 1;
}

static double items_per_s(const result *r) { return r->items / median(r->times, r->ntimes); }
static double tokens_per_s(const result *r) { return r->real_tokens / median(r->times, r->ntimes); }
static double gflops(const result *r) { return r->flops / median(r->times, r->ntimes) / 1e9; }

/* ------------------------------------------------------------------------ */
/* astembed                                                                  */
/* ------------------------------------------------------------------------ */

/* One pass: the sequences in calls of `per_call` (0 = one call with all of them). */
static double astembed_pass(ae_encoder *enc, const seqset *s, size_t per_call, float *out,
                            size_t first_calls) {
  size_t step = per_call ? per_call : s->n, dim = (size_t)ae_encoder_dim(enc);
  size_t limit = first_calls ? first_calls * step : s->n;
  if (limit > s->n) limit = s->n;
  uint64_t t0 = ae__now_ns();
  for (size_t i = 0; i < limit; i += step) {
    size_t cnt = limit - i < step ? limit - i : step;
    int rc = ae_encoder_embed_ids(enc, (const int32_t *const *)s->ids + i, s->lens + i, cnt,
                                  out + i * dim);
    if (rc) die("ae_encoder_embed_ids", rc);
  }
  return (ae__now_ns() - t0) / 1e9;
}

static void time_astembed(ae_encoder *enc, const seqset *s, size_t per_call, int warmup,
                          int reps, result *r, shape m) {
  float *out = malloc(s->n * (size_t)ae_encoder_dim(enc) * sizeof *out);
  if (warmup) astembed_pass(enc, s, per_call ? per_call : BATCH, out, (size_t)warmup);
  double t[256];
  for (int k = 0; k < reps && k < 256; k++) t[k] = astembed_pass(enc, s, per_call, out, 0);
  add_times(r, t, (size_t)reps);
  r->items = s->n;
  r->real_tokens = r->padded_tokens = seqset_tokens(s);
  r->flops = useful_flops(s, m);
  free(out);
}

static ae_encoder *load_encoder(const options *o) {
  ae_encoder_options eo = {.threads = o->threads, .max_length = MAX_LEN};
  ae_encoder *enc;
  int rc = ae_encoder_load(o->model, &eo, &enc);
  if (rc) die(o->model, rc);
  return enc;
}

/* The bf16 encoder, or NULL (with a note) where oneDNN has no bf16 matmul. */
static ae_encoder *load_encoder_bf16(const options *o) {
  ae_encoder_options eo = {.threads = o->threads, .max_length = MAX_LEN, .precision = "bf16"};
  ae_encoder *enc = NULL;
  int rc = ae_encoder_load(o->model, &eo, &enc);
  if (rc == AE_EUNSUPPORTED) {
    fprintf(stderr, "bench_encoder: no bf16 rows: %s\n", ae_last_error());
    return NULL;
  }
  if (rc) die(o->model, rc);
  return enc;
}

/* --rss-probe: what astembed's process needs for batches of 32 x 256 tokens. */
static int rss_probe(const options *o) {
  json_error_t err;
  json_t *work = json_load_file(o->rss_probe, 0, &err);
  if (!work) { fprintf(stderr, "bench_encoder: %s:%d: %s\n", o->rss_probe, err.line, err.text); return 1; }
  seqset s = seqset_from_json(json_object_get(work, "fixed"), o->rss_probe);
  int reps = (int)json_integer_value(json_object_get(work, "reps_fixed"));
  json_decref(work);
  ae_encoder *enc = load_encoder(o);
  float *out = malloc(s.n * (size_t)ae_encoder_dim(enc) * sizeof *out);
  for (int k = 0; k < (reps > 0 ? reps : 1); k++) astembed_pass(enc, &s, BATCH, out, 0);
  free(out);
  ae_encoder_free(enc);
  seqset_free(&s);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* oneDNN GEMM ceiling                                                       */
/* ------------------------------------------------------------------------ */

#define DNNL_CHECK(call)                                                       \
  do {                                                                         \
    dnnl_status_t st_ = (call);                                                \
    if (st_ != dnnl_success) {                                                 \
      fprintf(stderr, "bench_encoder: %s failed (oneDNN status %d)\n", #call, (int)st_); \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

typedef struct { int m, k, n; const char *what; double gflops; } gemm_shape;

/* C[M,N] = A[M,K] · W[K,N] with W given as PyTorch stores a Linear ([N,K], i.e. tag
 * ba) and reordered once into the layout the matmul primitive picks (format any):
 * what an encoder that prepacks its weights at load time can reach. */
/* in_dt bf16: A and the packed W in bf16 (the bf16 precision's GEMMs), C f32; A is
 * then filled through a reorder from f32. */
static double gemm_rate(dnnl_engine_t eng, dnnl_stream_t strm, int M, int K, int N, int reps,
                        dnnl_data_type_t in_dt) {
  dnnl_dims_t ad = {M, K}, wd = {K, N}, cd = {M, N};
  dnnl_memory_desc_t a_md, a32_md, w_md, w_any, c_md;
  DNNL_CHECK(dnnl_memory_desc_init_by_tag(&a_md, 2, ad, in_dt, dnnl_ab));
  DNNL_CHECK(dnnl_memory_desc_init_by_tag(&a32_md, 2, ad, dnnl_f32, dnnl_ab));
  DNNL_CHECK(dnnl_memory_desc_init_by_tag(&w_md, 2, wd, dnnl_f32, dnnl_ba));
  DNNL_CHECK(dnnl_memory_desc_init_by_tag(&w_any, 2, wd, in_dt, dnnl_format_tag_any));
  DNNL_CHECK(dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_f32, dnnl_ab));
  dnnl_matmul_desc_t mdesc;
  DNNL_CHECK(dnnl_matmul_desc_init(&mdesc, &a_md, &w_any, NULL, &c_md));
  dnnl_primitive_desc_t pd, rpd;
  DNNL_CHECK(dnnl_primitive_desc_create(&pd, &mdesc, NULL, eng, NULL));
  const dnnl_memory_desc_t *packed_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  dnnl_memory_t a, a32, w, wp, c;
  DNNL_CHECK(dnnl_memory_create(&a, &a_md, eng, DNNL_MEMORY_ALLOCATE));
  DNNL_CHECK(dnnl_memory_create(&a32, &a32_md, eng, DNNL_MEMORY_ALLOCATE));
  DNNL_CHECK(dnnl_memory_create(&w, &w_md, eng, DNNL_MEMORY_ALLOCATE));
  DNNL_CHECK(dnnl_memory_create(&wp, packed_md, eng, DNNL_MEMORY_ALLOCATE));
  DNNL_CHECK(dnnl_memory_create(&c, &c_md, eng, DNNL_MEMORY_ALLOCATE));
  float *ap, *wptr;
  DNNL_CHECK(dnnl_memory_get_data_handle(a32, (void **)&ap));
  DNNL_CHECK(dnnl_memory_get_data_handle(w, (void **)&wptr));
  uint64_t state = 42;
  for (size_t i = 0; i < (size_t)M * K; i++) ap[i] = (float)(splitmix64(&state) % 2001) / 1000.0f - 1.0f;
  for (size_t i = 0; i < (size_t)K * N; i++) wptr[i] = (float)(splitmix64(&state) % 2001) / 50000.0f - 0.02f;
  DNNL_CHECK(dnnl_reorder_primitive_desc_create(&rpd, &w_md, eng, packed_md, eng, NULL));
  dnnl_primitive_t reorder, mm;
  DNNL_CHECK(dnnl_primitive_create(&reorder, rpd));
  DNNL_CHECK(dnnl_primitive_create(&mm, pd));
  dnnl_exec_arg_t rargs[] = {{DNNL_ARG_FROM, w}, {DNNL_ARG_TO, wp}};
  DNNL_CHECK(dnnl_primitive_execute(reorder, strm, 2, rargs));
  dnnl_primitive_desc_t apd;   /* A: f32 values into the input type (a copy for f32) */
  dnnl_primitive_t areorder;
  DNNL_CHECK(dnnl_reorder_primitive_desc_create(&apd, &a32_md, eng, &a_md, eng, NULL));
  DNNL_CHECK(dnnl_primitive_create(&areorder, apd));
  dnnl_exec_arg_t aargs[] = {{DNNL_ARG_FROM, a32}, {DNNL_ARG_TO, a}};
  DNNL_CHECK(dnnl_primitive_execute(areorder, strm, 2, aargs));
  DNNL_CHECK(dnnl_stream_wait(strm));
  dnnl_primitive_destroy(areorder);
  dnnl_primitive_desc_destroy(apd);
  dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, wp}, {DNNL_ARG_DST, c}};
  double t[512];
  if (reps > 512) reps = 512;
  for (int k = -3; k < reps; k++) { /* three warm-up runs */
    uint64_t t0 = ae__now_ns();
    DNNL_CHECK(dnnl_primitive_execute(mm, strm, 3, args));
    DNNL_CHECK(dnnl_stream_wait(strm));
    if (k >= 0) t[k] = (ae__now_ns() - t0) / 1e9;
  }
  dnnl_primitive_destroy(mm);
  dnnl_primitive_destroy(reorder);
  dnnl_primitive_desc_destroy(rpd);
  dnnl_primitive_desc_destroy(pd);
  dnnl_memory_destroy(a); dnnl_memory_destroy(a32);
  dnnl_memory_destroy(w); dnnl_memory_destroy(wp); dnnl_memory_destroy(c);
  return 2.0 * M * K * N / median(t, (size_t)reps) / 1e9;
}

/* Measures every shape and keeps, per shape, the best rate seen so far. */
static void measure_gemm(const options *o, gemm_shape *g, int ng, dnnl_data_type_t in_dt) {
  dnnl_engine_t eng;
  dnnl_stream_t strm;
  omp_set_num_threads(o->threads);
  DNNL_CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
  DNNL_CHECK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
  for (int i = 0; i < ng; i++) {
    double r = gemm_rate(eng, strm, g[i].m, g[i].k, g[i].n, o->gemm_reps, in_dt);
    if (r > g[i].gflops) g[i].gflops = r;
  }
  dnnl_stream_destroy(strm);
  dnnl_engine_destroy(eng);
}

/* ------------------------------------------------------------------------ */
/* Peers                                                                     */
/* ------------------------------------------------------------------------ */

/* A peer as a child (bench/peer_run.h); *maxrss_bytes gets its own peak RSS. */
static int run_child(const char *cmd, const char *arg, const char *out_path,
                     uint64_t *maxrss_bytes) {
  long kb = 0;
  int rc = bench_run_peer(cmd, arg, out_path, &kb);
  if (rc < 0) { perror("bench_encoder: starting a peer"); exit(1); }
  if (maxrss_bytes) *maxrss_bytes = (uint64_t)kb * 1024;
  return rc;
}

static int workload_index(const char *key) {
  for (int w = 0; w < W_COUNT; w++)
    if (!strcmp(key, workload_key[w])) return w;
  return -1;
}

/* Reads a peer's JSON: per-workload times and counts, its version and the sample
 * vectors. */
static int read_peer(const char *path, int sys, results *res, shape m,
                     const seqset *fixed, const seqset *ann) {
  json_error_t err;
  json_t *root = json_load_file(path, 0, &err);
  if (!root) {
    fprintf(stderr, "bench_encoder: %s: %s output unreadable (%s line %d)\n", path,
            system_name[sys], err.text, err.line);
    return -1;
  }
  snprintf(res->version[sys], sizeof res->version[sys], "%s",
           json_string_value(json_object_get(root, "version")) ?: "?");
  size_t i;
  json_t *r;
  json_array_foreach(json_object_get(root, "results"), i, r) {
    int w = workload_index(json_string_value(json_object_get(r, "workload")) ?: "");
    if (w < 0) continue;
    result *dst = &res->r[sys][w];
    size_t k;
    json_t *t;
    json_array_foreach(json_object_get(r, "times_s"), k, t) {
      double v = json_number_value(t);
      add_times(dst, &v, 1);
    }
    dst->items = (size_t)json_integer_value(json_object_get(r, "items"));
    dst->real_tokens = (size_t)json_integer_value(json_object_get(r, "real_tokens"));
    dst->padded_tokens = (size_t)json_integer_value(json_object_get(r, "padded_tokens"));
    dst->flops = useful_flops(w == W_FIXED ? fixed : ann, m);
  }
  json_t *vecs = json_object_get(root, "sample_vectors");
  if (json_array_size(vecs) == res->sample_n && !res->sample_vec[sys]) {
    res->sample_vec[sys] = calloc(res->sample_n * res->dim, sizeof(float));
    json_array_foreach(vecs, i, r)
      for (size_t d = 0; d < res->dim && d < json_array_size(r); d++)
        res->sample_vec[sys][i * res->dim + d] = (float)json_number_value(json_array_get(r, d));
  }
  json_decref(root);
  return 0;
}

static int run_peer(const options *o, int sys, const char *cmd, const char *work_path,
                    int round, results *res, shape m, const seqset *fixed, const seqset *ann) {
  char out[4096];
  snprintf(out, sizeof out, "%s/%s-round%d.json", o->workdir, system_name[sys], round);
  fprintf(stderr, "bench_encoder: running %s peer (round %d) ...\n", system_name[sys], round + 1);
  uint64_t t0 = ae__now_ns();
  int rc = run_child(cmd, work_path, out, NULL);
  if (rc) {
    fprintf(stderr, "bench_encoder: %s peer exited with status %d (command: %s)\n",
            system_name[sys], rc, cmd);
    return -1;
  }
  fprintf(stderr, "bench_encoder: %s peer done in %.0f s\n", system_name[sys],
          (ae__now_ns() - t0) / 1e9);
  return read_peer(out, sys, res, m, fixed, ann);
}

/* ------------------------------------------------------------------------ */
/* Report                                                                    */
/* ------------------------------------------------------------------------ */

static double max_abs_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
  }
  return m;
}

typedef struct {
  const char *what;
  double value, target;
  const char *unit;
  int known;
} check;

static void print_table(const results *res, const gemm_shape *g, const gemm_shape *g16, int ng,
                        shape m, uint64_t weights_bytes, check *checks, int *nchecks) {
  double best_gemm = 0;
  for (int i = 0; i < ng; i++) if (g[i].gflops > best_gemm) best_gemm = g[i].gflops;
  printf("\n%-12s %-31s %9s %10s %8s %7s %8s %9s\n", "system", "workload", "items/s",
         "tokens/s", "GFLOP/s", "%GEMM", "vs ORT", "padding");
  static const int order[W_COUNT] = {W_FIXED, W_OWN, W_OWN32, W_NAIVE, W_SORTED};
  for (int oi = 0; oi < W_COUNT; oi++) {
    int w = order[oi];
    for (int s = 0; s < S_COUNT; s++) {
      const result *r = &res->r[s][w];
      if (!r->present) continue;
      /* astembed's own-way rows compare with ORT naive; ORT's own row with itself */
      const result *ref = &res->r[S_ORT][w == W_OWN || w == W_OWN32 ? W_NAIVE : w];
      char vs[16] = "-";
      if (ref->present) snprintf(vs, sizeof vs, "%.2fx", w == W_FIXED ? tokens_per_s(r) / tokens_per_s(ref)
                                                                     : items_per_s(r) / items_per_s(ref));
      printf("%-12s %-31s %9.1f %10.0f %8.1f %6.0f%% %8s %8.1f%%\n", system_name[s],
             workload_label[w], items_per_s(r), tokens_per_s(r), gflops(r),
             best_gemm > 0 ? 100.0 * gflops(r) / best_gemm : NAN, vs,
             r->padded_tokens ? 100.0 * (r->padded_tokens - r->real_tokens) / r->padded_tokens : 0.0);
    }
  }
  for (int i = 0; i < ng; i++)
    printf("%-12s %-31s %9s %10s %8.1f %6.0f%%\n", "oneDNN GEMM", g[i].what, "", "",
           g[i].gflops, 100.0 * g[i].gflops / best_gemm);
  double best16 = 0;   /* bf16 ceiling: informational, never in the checks */
  for (int i = 0; i < ng; i++)
    if (g16[i].gflops > 0) {
      printf("%-12s %-31s %9s %10s %8.1f %6.0f%%\n", "GEMM bf16", g16[i].what, "", "",
             g16[i].gflops, 100.0 * g16[i].gflops / best_gemm);
      if (g16[i].gflops > best16) best16 = g16[i].gflops;
    }
  printf("(vs ORT: tokens/s for (a), items/s for (b); astembed's (b) rows against ORT naive."
         " padding: share of computed tokens that were padding)\n");
  for (int w = 0; w < W_COUNT; w++)   /* same workload, same round, minutes apart */
    if (res->r[S_AE][w].present && res->r[S_AE16][w].present)
      printf("astembed bf16 / f32, %-31s %.2fx items/s (medians); bf16 at %.0f%% of the bf16 GEMM\n",
             workload_label[w], items_per_s(&res->r[S_AE16][w]) / items_per_s(&res->r[S_AE][w]),
             best16 > 0 ? 100.0 * gflops(&res->r[S_AE16][w]) / best16 : NAN);

  printf("\npeak RSS, batches of 32 x %d tokens (fresh process, kernel ru_maxrss):\n", RSS_LEN);
  for (int s = 0; s < S_COUNT; s++)
    if (res->rss[s])
      printf("  %-12s %8.1f MB   (weights file %.1f MB)\n", system_name[s], res->rss[s] / 1e6,
             weights_bytes / 1e6);

  /* the targets of the issue */
  int n = 0;
  const result *ae_fixed = &res->r[S_AE][W_FIXED], *ae_own = &res->r[S_AE][W_OWN];
  const result *ort_fixed = &res->r[S_ORT][W_FIXED], *ort_naive = &res->r[S_ORT][W_NAIVE],
               *ort_sorted = &res->r[S_ORT][W_SORTED];
  checks[n++] = (check){"(b) astembed items/s vs ORT naive", 0, 2.5, "x",
                        ae_own->present && ort_naive->present};
  if (checks[n - 1].known) checks[n - 1].value = items_per_s(ae_own) / items_per_s(ort_naive);
  checks[n++] = (check){"(b) astembed items/s vs ORT length-sorted", 0, 1.1, "x",
                        ae_own->present && ort_sorted->present};
  if (checks[n - 1].known) checks[n - 1].value = items_per_s(ae_own) / items_per_s(ort_sorted);
  checks[n++] = (check){"(a) astembed tokens/s vs ORT", 0, 1.1, "x",
                        ae_fixed->present && ort_fixed->present};
  if (checks[n - 1].known) checks[n - 1].value = tokens_per_s(ae_fixed) / tokens_per_s(ort_fixed);
  double e2e = 0;
  if (ae_fixed->present) e2e = gflops(ae_fixed);
  if (ae_own->present && gflops(ae_own) > e2e) e2e = gflops(ae_own);
  checks[n++] = (check){"end-to-end GFLOP/s vs best oneDNN GEMM", 0, 0.6, "",
                        e2e > 0 && best_gemm > 0};
  if (checks[n - 1].known) checks[n - 1].value = e2e / best_gemm;
  (void)m;
  *nchecks = n;
}

static int print_checks(const results *res, check *checks, int n, uint64_t weights_bytes) {
  int failed = 0;
  printf("\n%-48s %10s %10s  %s\n", "check", "measured", "target", "result");
  for (int i = 0; i < n; i++) {
    const check *c = &checks[i];
    const char *verdict = !c->known ? "n/a" : c->value >= c->target ? "PASS" : "FAIL";
    if (c->known && c->value < c->target) failed++;
    if (!c->known)
      printf("%-48s %10s %9s%.*f%s  %s\n", c->what, "-", ">= ", c->unit[0] ? 1 : 0,
             c->unit[0] ? c->target : 100 * c->target, c->unit[0] ? "x" : "%", verdict);
    else if (!strcmp(c->unit, "x"))
      printf("%-48s %9.2fx %9s%.1fx  %s\n", c->what, c->value, ">= ", c->target, verdict);
    else
      printf("%-48s %9.0f%% %8s%.0f%%  %s\n", c->what, 100 * c->value, ">= ", 100 * c->target, verdict);
  }
  if (res->rss[S_AE]) {
    double budget = weights_bytes + 64e6;
    int ok = res->rss[S_AE] <= budget;
    failed += !ok;
    printf("%-48s %8.1fMB %8.1fMB  %s\n", "astembed peak RSS <= weights + 64 MB",
           res->rss[S_AE] / 1e6, budget / 1e6, ok ? "PASS" : "FAIL");
  }
  /* the reference is PyTorch, or ONNX Runtime when PyTorch did not run */
  int ref_sys = res->sample_vec[S_TORCH] ? S_TORCH : S_ORT;
  const float *ref = res->sample_vec[ref_sys];
  for (int s = 0; s < S_COUNT; s++) {
    if (s == ref_sys || s == S_AE16 || !res->sample_vec[s] || !ref) continue;
    double d = max_abs_diff(res->sample_vec[s], ref, res->sample_n * res->dim);
    int ok = d <= EXACT_TOL;
    failed += !ok;
    char what[96];
    snprintf(what, sizeof what, "same vectors: max |%s - %s| (%zu seqs)", system_name[s],
             system_name[ref_sys], res->sample_n);
    printf("%-48s %10.2e %10.0e  %s\n", what, d, EXACT_TOL, ok ? "PASS" : "FAIL");
  }
  if (res->sample_vec[S_AE16] && res->sample_vec[S_AE]) {
    /* bf16: not a target, its own tolerance (tests/encoder/test_encoder_bf16.c) */
    const float *a = res->sample_vec[S_AE], *b = res->sample_vec[S_AE16];
    double d = max_abs_diff(a, b, res->sample_n * res->dim), min_cos = 1;
    for (size_t i = 0; i < res->sample_n; i++) {
      double dot = 0, na = 0, nb = 0;
      for (size_t k = 0; k < res->dim; k++) {
        size_t j = i * res->dim + k;
        dot += (double)a[j] * b[j]; na += (double)a[j] * a[j]; nb += (double)b[j] * b[j];
      }
      double c = na > 0 && nb > 0 ? dot / sqrt(na * nb) : 0;
      if (!(c >= min_cos)) min_cos = c;
    }
    printf("bf16 vectors vs f32 (%zu seqs): max |diff| %.2e, min cosine %.6f (informational)\n",
           res->sample_n, d, min_cos);
  }
  return failed;
}

static json_t *result_json(const result *r) {
  json_t *t = json_array();
  for (size_t i = 0; i < r->ntimes; i++) json_array_append_new(t, json_real(r->times[i]));
  return json_pack("{s:o, s:f, s:I, s:I, s:I, s:f, s:f, s:f}", "times_s", t, "median_s",
                   median(r->times, r->ntimes), "items", (json_int_t)r->items, "real_tokens",
                   (json_int_t)r->real_tokens, "padded_tokens", (json_int_t)r->padded_tokens,
                   "items_per_s", items_per_s(r), "tokens_per_s", tokens_per_s(r), "gflops",
                   gflops(r));
}

static void write_results_json(const char *path, const results *res, const gemm_shape *g, int ng,
                               const check *checks, int nchecks, const cpu_path_result *cp) {
  json_t *root = json_object(), *sys = json_object();
  for (int s = 0; s < S_COUNT; s++) {
    json_t *o = json_object();
    for (int w = 0; w < W_COUNT; w++)
      if (res->r[s][w].present) json_object_set_new(o, workload_key[w], result_json(&res->r[s][w]));
    if (res->rss[s]) json_object_set_new(o, "peak_rss_bytes", json_integer((json_int_t)res->rss[s]));
    if (res->version[s][0]) json_object_set_new(o, "version", json_string(res->version[s]));
    json_object_set_new(sys, system_name[s], o);
  }
  json_object_set_new(root, "systems", sys);
  json_t *ga = json_array();
  for (int i = 0; i < ng; i++)
    json_array_append_new(ga, json_pack("{s:i, s:i, s:i, s:f}", "m", g[i].m, "k", g[i].k, "n",
                                        g[i].n, "gflops", g[i].gflops));
  json_object_set_new(root, "gemm", ga);
  json_t *ca = json_array();
  for (int i = 0; i < nchecks; i++)
    if (checks[i].known)
      json_array_append_new(ca, json_pack("{s:s, s:f, s:f}", "check", checks[i].what, "value",
                                          checks[i].value, "target", checks[i].target));
  json_object_set_new(root, "checks", ca);
  json_t *cpo = json_object();
  for (int p = 0; p < CP_COUNT; p++)
    if (cp[p].r.present && !strcmp(cp[p].got, cpu_path_name[p]))
      json_object_set_new(cpo, cpu_path_name[p], result_json(&cp[p].r));
  json_object_set_new(root, "cpu_paths", cpo);
  if (json_dump_file(root, path, JSON_INDENT(1)))
    fprintf(stderr, "bench_encoder: cannot write %s\n", path);
  json_decref(root);
}

/* ------------------------------------------------------------------------ */
/* main                                                                      */
/* ------------------------------------------------------------------------ */

static char *workpath(const options *o, const char *name) {
  char *p = ae__path_join(o->workdir, name);
  if (!p) { fprintf(stderr, "bench_encoder: out of memory\n"); exit(1); }
  return p;
}

/* Peak RSS of each system in a fresh process on batches of 32 x RSS_LEN tokens. */
static void measure_rss(const options *o, const char *rss_path, results *res) {
  char self[4096], cmd[8192];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = 0;
    snprintf(cmd, sizeof cmd, "'%s' --model '%s' --threads %d --rss-probe", self, o->model,
             o->threads);
    if (run_child(cmd, rss_path, "/dev/null", &res->rss[S_AE]))
      fprintf(stderr, "bench_encoder: astembed RSS probe failed\n"), res->rss[S_AE] = 0;
  }
  const char *cmds[S_COUNT] = {NULL, o->torch_cmd, o->ort_cmd};
  for (int s = S_TORCH; s < S_COUNT; s++)
    if (cmds[s] && run_child(cmds[s], rss_path, "/dev/null", &res->rss[s]))
      fprintf(stderr, "bench_encoder: %s RSS probe failed\n", system_name[s]), res->rss[s] = 0;
}

/* --path-probe WORK.json: workload (b) the encoder's own way on the CPU path this
 * process got (ASTEMBED_CPU), after warm-up; prints {"path", "times_s", "items",
 * "real_tokens", "sample": the sample's vectors} on stdout. */
static int path_probe(const options *o) {
  json_error_t err;
  json_t *work = json_load_file(o->path_probe, 0, &err);
  if (!work) { fprintf(stderr, "bench_encoder: %s:%d: %s\n", o->path_probe, err.line, err.text); return 1; }
  seqset ann = seqset_from_json(json_object_get(work, "annotations"), o->path_probe);
  seqset sample = seqset_from_json(json_object_get(work, "sample"), o->path_probe);
  int reps = (int)json_integer_value(json_object_get(work, "reps_ann"));
  int warmup = (int)json_integer_value(json_object_get(work, "warmup_batches"));
  json_decref(work);
  ae_encoder *enc = load_encoder(o);
  size_t dim = (size_t)ae_encoder_dim(enc);
  float *out = malloc((ann.n > sample.n ? ann.n : sample.n) * dim * sizeof *out);
  json_t *times = json_array(), *vec = json_array();
  astembed_pass(enc, &sample, BATCH, out, 0);
  for (size_t i = 0; i < sample.n * dim; i++) json_array_append_new(vec, json_real(out[i]));
  if (warmup) astembed_pass(enc, &ann, BATCH, out, (size_t)warmup);
  for (int k = 0; k < (reps > 0 ? reps : 1); k++)
    json_array_append_new(times, json_real(astembed_pass(enc, &ann, 0, out, 0)));
  json_t *r = json_pack("{s:s, s:o, s:I, s:I, s:o}", "path", ae_cpu_path(), "times_s", times,
                        "items", (json_int_t)ann.n, "real_tokens", (json_int_t)seqset_tokens(&ann),
                        "sample", vec);
  char *txt = json_dumps(r, JSON_COMPACT);
  puts(txt ? txt : "{}");
  free(txt);
  json_decref(r);
  free(out);
  ae_encoder_free(enc);
  seqset_free(&ann);
  seqset_free(&sample);
  return 0;
}

/* One round of the per-path rows: each path's probe in its own process, in turn. */

static void run_cpu_paths(const options *o, const char *work_path, const seqset *ann,
                          const seqset *sample, size_t dim, shape m, cpu_path_result *cp) {
  char self[4096], cmd[8400];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) { fprintf(stderr, "bench_encoder: cannot find my own binary\n"); return; }
  self[n] = 0;
  char *out_path = workpath(o, "path.json");
  for (int p = 0; p < CP_COUNT; p++) {
    fprintf(stderr, "bench_encoder: workload (b) on CPU path %s ...\n", cpu_path_name[p]);
    snprintf(cmd, sizeof cmd, "env ASTEMBED_CPU=%s '%s' --model '%s' --threads %d --path-probe",
             cpu_path_name[p], self, o->model, o->threads);
    if (run_child(cmd, work_path, out_path, NULL)) {
      fprintf(stderr, "bench_encoder: the %s path probe failed\n", cpu_path_name[p]);
      continue;
    }
    json_error_t err;
    json_t *r = json_load_file(out_path, 0, &err);
    const char *got = json_string_value(json_object_get(r, "path"));
    json_t *t = json_object_get(r, "times_s"), *vec = json_object_get(r, "sample");
    if (!got || !json_is_array(t) || json_array_size(vec) != sample->n * dim) {
      fprintf(stderr, "bench_encoder: %s: bad path probe output\n", out_path);
      json_decref(r);
      continue;
    }
    snprintf(cp[p].got, sizeof cp[p].got, "%s", got);
    double tv[256];
    size_t nt = json_array_size(t) < 256 ? json_array_size(t) : 256;
    for (size_t i = 0; i < nt; i++) tv[i] = json_real_value(json_array_get(t, i));
    add_times(&cp[p].r, tv, nt);
    cp[p].r.items = ann->n;
    cp[p].r.real_tokens = cp[p].r.padded_tokens = seqset_tokens(ann);
    cp[p].r.flops = useful_flops(ann, m);
    if (!cp[p].sample) {
      cp[p].sample = malloc(sample->n * dim * sizeof(float));
      for (size_t i = 0; i < sample->n * dim; i++)
        cp[p].sample[i] = (float)json_real_value(json_array_get(vec, i));
    }
    json_decref(r);
  }
  ae__free(out_path);
}


/* The per-path rows; returns the number of failed checks (vectors off the best path's). */
static int print_cpu_paths(const cpu_path_result *cp, size_t sample_n, size_t dim) {
  int best = -1, failed = 0;
  for (int p = 0; p < CP_COUNT && best < 0; p++)
    if (cp[p].r.present && !strcmp(cp[p].got, cpu_path_name[p])) best = p;
  if (best < 0) return 0;
  printf("\nCPU paths, workload (b) the own way, one process per path (ASTEMBED_CPU; caps oneDNN too):\n");
  printf("%-10s %12s %12s %10s %10s %14s\n", "path", "items/s", "tokens/s", "median s",
         "vs best", "max |diff|");
  for (int p = 0; p < CP_COUNT; p++) {
    if (!cp[p].r.present) { printf("%-10s %12s\n", cpu_path_name[p], "(failed)"); continue; }
    if (strcmp(cp[p].got, cpu_path_name[p])) {   /* capped to a lower path: the CPU lacks it */
      printf("%-10s %12s (the CPU lacks it: ran %s)\n", cpu_path_name[p], "n/a", cp[p].got);
      continue;
    }
    double d = max_abs_diff(cp[p].sample, cp[best].sample, sample_n * dim);
    printf("%-10s %12.1f %12.0f %10.3f %9.2fx %14.2e\n", cpu_path_name[p], items_per_s(&cp[p].r),
           tokens_per_s(&cp[p].r), median(cp[p].r.times, cp[p].r.ntimes),
           items_per_s(&cp[p].r) / items_per_s(&cp[best].r), d);
    if (p != best) {
      char what[96];
      snprintf(what, sizeof what, "same vectors: max |%s - %s| (%zu seqs)", cpu_path_name[p],
               cpu_path_name[best], sample_n);
      printf("%-48s %10.2e %10.0e  %s\n", what, d, 1e-5, d <= 1e-5 ? "PASS" : "FAIL");
      failed += !(d <= 1e-5);
    }
  }
  return failed;
}

int main(int argc, char **argv) {
  options o;
  parse_args(argc, argv, &o);
  if (o.rss_probe) return rss_probe(&o);
  if (o.path_probe) return path_probe(&o);
  mkdir(o.workdir, 0777);
  shape m = read_shape(o.model);

  ae_encoder *enc = load_encoder(&o);
  const ae_tokenizer *tok = ae_encoder_tokenizer(enc);
  seqset fixed = {0}, ann = {0}, sample = {0}, rss = {0};
  make_random(&fixed, (size_t)o.fixed_batches * BATCH, FIXED_LEN, tok, o.seed);
  make_random(&rss, BATCH, RSS_LEN, tok, o.seed + 1);
  fprintf(stderr, "bench_encoder: tokenizing %d annotations of %s ...\n", o.n_ann, o.data);
  if (o.n_ann) load_annotations(o.data, (size_t)o.n_ann, tok, MAX_LEN, &ann);
  pick_sample(&ann, &fixed, &sample);

  char *work_path = workpath(&o, "work.json"), *rss_path = workpath(&o, "rss.json");
  json_t *work = work_params(&o, o.warmup_batches, o.reps_fixed, o.reps_ann);
  json_object_set_new(work, "fixed", seqset_json(&fixed));
  json_object_set_new(work, "annotations", seqset_json(&ann));
  json_object_set_new(work, "sample", seqset_json(&sample));
  write_json_file(work_path, work);
  json_decref(work);
  json_t *rw = work_params(&o, 0, 2, 0);
  json_object_set_new(rw, "fixed", seqset_json(&rss));
  write_json_file(rss_path, rw);
  json_decref(rw);

  results *res = calloc(1, sizeof *res);
  res->dim = (size_t)ae_encoder_dim(enc);
  res->sample_n = sample.n;
  res->sample_vec[S_AE] = malloc(sample.n * res->dim * sizeof(float));
  astembed_pass(enc, &sample, BATCH, res->sample_vec[S_AE], 0);
  snprintf(res->version[S_AE], sizeof res->version[S_AE], "%s", ae_version());
  ae_encoder *enc16 = o.bf16 ? load_encoder_bf16(&o) : NULL;
  if (enc16) {
    res->sample_vec[S_AE16] = malloc(sample.n * res->dim * sizeof(float));
    astembed_pass(enc16, &sample, BATCH, res->sample_vec[S_AE16], 0);
    snprintf(res->version[S_AE16], sizeof res->version[S_AE16], "%s", ae_version());
  }

  struct stat st;
  char *wpath = ae__path_join(o.model, "model.safetensors");
  uint64_t weights_bytes = stat(wpath, &st) == 0 ? (uint64_t)st.st_size : 0;
  ae__free(wpath);

  size_t ann_tokens = seqset_tokens(&ann);
  printf("bench_encoder: model %s (H=%d I=%d layers=%d), threads %d\n", o.model, m.hidden,
         m.inter, m.layers, o.threads);
  printf("  (a) %zu sequences x %d tokens per repetition, %d repetitions\n", fixed.n, FIXED_LEN,
         o.reps_fixed);
  printf("  (b) %zu annotations, %zu tokens (mean %.1f, max %d), %d repetitions, %d round(s)\n",
         ann.n, ann_tokens, ann.n ? (double)ann_tokens / ann.n : 0.0, MAX_LEN, o.reps_ann, o.rounds);

  /* The GEMM ceiling is measured right before and right after astembed in every
   * round and the best rate of each shape kept: on a shared machine the load changes
   * by the minute, and the ceiling must come from the same minutes as the encoder. */
  gemm_shape g[] = {
      {4096, m.hidden, m.hidden, "(q/k/v/out)", 0},
      {4096, m.hidden, 3 * m.hidden, "(fused qkv)", 0},
      {4096, m.hidden, m.inter, "(ffn up)", 0},
      {4096, m.inter, m.hidden, "(ffn down)", 0},
  };
  enum { NG = sizeof g / sizeof g[0] };
  char label[NG][64];
  for (int i = 0; i < NG; i++) { /* label with the model's real sizes */
    snprintf(label[i], sizeof label[i], "M%d K%d N%d %s", g[i].m, g[i].k, g[i].n, g[i].what);
    g[i].what = label[i];
  }
  gemm_shape g16[NG];   /* the same shapes in bf16 (when the bf16 rows run) */
  memcpy(g16, g, sizeof g);
  const char *cmds[S_COUNT] = {NULL, o.torch_cmd, o.ort_cmd};
  cpu_path_result cpu[CP_COUNT] = {0};
  for (int round = 0; round < o.rounds; round++) {
    fprintf(stderr, "bench_encoder: oneDNN GEMM ceiling, then astembed (round %d) ...\n", round + 1);
    measure_gemm(&o, g, NG, dnnl_f32);
    if (enc16) measure_gemm(&o, g16, NG, dnnl_bf16);
    time_astembed(enc, &fixed, BATCH, o.warmup_batches, o.reps_fixed, &res->r[S_AE][W_FIXED], m);
    if (ann.n) {
      time_astembed(enc, &ann, 0, o.warmup_batches, o.reps_ann, &res->r[S_AE][W_OWN], m);
      if (o.own32)
        time_astembed(enc, &ann, BATCH, o.warmup_batches, o.reps_ann, &res->r[S_AE][W_OWN32], m);
    }
    if (enc16) {
      time_astembed(enc16, &fixed, BATCH, o.warmup_batches, o.reps_fixed, &res->r[S_AE16][W_FIXED], m);
      if (ann.n)
        time_astembed(enc16, &ann, 0, o.warmup_batches, o.reps_ann, &res->r[S_AE16][W_OWN], m);
    }
    measure_gemm(&o, g, NG, dnnl_f32);
    if (enc16) measure_gemm(&o, g16, NG, dnnl_bf16);
    for (int s = S_TORCH; s < S_COUNT; s++)
      if (cmds[s]) run_peer(&o, s, cmds[s], work_path, round, res, m, &fixed, &ann);
    if (o.cpu_paths && ann.n) run_cpu_paths(&o, work_path, &ann, &sample, res->dim, m, cpu);
  }
  ae_encoder_free(enc);
  ae_encoder_free(enc16);

  fprintf(stderr, "bench_encoder: peak RSS probes ...\n");
  measure_rss(&o, rss_path, res);

  check checks[8];
  int nchecks;
  print_table(res, g, g16, NG, m, weights_bytes, checks, &nchecks);
  int failed = print_checks(res, checks, nchecks, weights_bytes);
  failed += print_cpu_paths(cpu, sample.n, res->dim);
  printf("\nversions: astembed %s, pytorch %s, onnxruntime-node %s\n", res->version[S_AE],
         res->version[S_TORCH][0] ? res->version[S_TORCH] : "(not run)",
         res->version[S_ORT][0] ? res->version[S_ORT] : "(not run)");
  if (o.json_out) write_results_json(o.json_out, res, g, NG, checks, nchecks, cpu);
  for (int p = 0; p < CP_COUNT; p++) free(cpu[p].sample);

  for (int s = 0; s < S_COUNT; s++) free(res->sample_vec[s]);
  free(res);
  ae__free(work_path);
  ae__free(rss_path);
  seqset_free(&fixed); seqset_free(&ann); seqset_free(&sample); seqset_free(&rss);
  return failed ? 3 : 0;
}
