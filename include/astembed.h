/*
 * astembed — embed code annotations with a native BERT-family encoder, cache the
 * vectors, store them in SQLite and answer semantic code-search queries.
 *
 * One public header. Conventions (after libuv):
 *   - every type is opaque unless it is a plain options/metrics struct;
 *   - every call that can fail returns an int status: AE_OK (0) or a negative AE_E*;
 *   - ae_strerror(status) names the status, ae_last_error() gives the detail of the
 *     last failure on the calling thread (file, tensor, key, line ...);
 *   - objects come in pairs: ae_X_new/ae_X_load ... ae_X_free (free accepts NULL).
 *
 * The header is split into one section per component; each section is owned by
 * that component's module in src/.
 */
#ifndef ASTEMBED_H
#define ASTEMBED_H

#include <stdio.h> /* FILE */
#include <stddef.h>
#include <stdint.h>
/* AE_EXTERN marks the public API: the only symbols the shared library exports. */
#ifndef AE_EXTERN
#if defined(__GNUC__) || defined(__clang__)
#define AE_EXTERN __attribute__((visibility("default")))
#else
#define AE_EXTERN
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define AE_VERSION_MAJOR 0
#define AE_VERSION_MINOR 1
#define AE_VERSION_PATCH 0
AE_EXTERN const char *ae_version(void);

/* ======================================================================== */
/* Common: status codes, errors, allocator                                   */
/* ======================================================================== */

enum {
  AE_OK = 0,
  AE_EINVAL = -1,       /* invalid argument or input */
  AE_ENOMEM = -2,       /* allocation failed */
  AE_EIO = -3,          /* file or system I/O failed */
  AE_EFORMAT = -4,      /* malformed file or data (JSON, safetensors, ...) */
  AE_EUNSUPPORTED = -5, /* valid but unsupported (architecture, dtype, ...) */
  AE_ENOTFOUND = -6,    /* file, key or tensor not found */
  AE_EMISMATCH = -7,    /* shape, dtype, length or checksum mismatch */
  AE_EDB = -8,          /* database error */
  AE_ERANGE = -9,       /* value out of range */
  AE_ESTATE = -10,      /* call not valid in the object's current state */
  AE_EMISS = -11,       /* lookup missed (not an error for callers that expect it) */
  AE_EINTR = -12,       /* interrupted (signal, cancellation) */
};

/* Name of a status ("invalid argument", ...). Never NULL. */
AE_EXTERN const char *ae_strerror(int status);

/* Detail of the last failure on this thread, e.g.
 * "model.safetensors: tensor 'encoder.layer.0.attention.self.query.weight' has shape
 * [384,383], config wants [384,384]". Empty string when none. */
AE_EXTERN const char *ae_last_error(void);

/* Allocator hook for every allocation astembed makes (used by tests to inject
 * allocation failures). Pass NULLs to restore the libc allocator. Not thread-safe
 * with respect to concurrent allocations: set it before creating objects. */
typedef struct {
  void *(*malloc_fn)(size_t size, void *ud);
  void *(*realloc_fn)(void *ptr, size_t size, void *ud);
  void (*free_fn)(void *ptr, void *ud);
  void *ud;
} ae_allocator;
AE_EXTERN void ae_set_allocator(const ae_allocator *alloc);

/* JSONL input (src/common): one JSON value per line, lines of any length, blank
 * lines skipped; values are jansson's json_t (include <jansson.h> to use them). */
typedef struct ae_jsonl ae_jsonl;
struct json_t;
/* Reads f (not closed by the reader); name is used in error messages ("stdin", a
 * file path). */
AE_EXTERN int ae_jsonl_open(FILE *f, const char *name, ae_jsonl **out);
/* AE_OK with *val set (the caller json_decref's it), 1 at the end of the input, or an
 * error with *val NULL: AE_EFORMAT ("NAME:LINE: message"; the next call reads the
 * following line) or AE_EIO. *line_no (may be NULL) gets the line's number, from 1. */
AE_EXTERN int ae_jsonl_next(ae_jsonl *r, struct json_t **val, size_t *line_no);
AE_EXTERN void ae_jsonl_close(ae_jsonl *r);

/* ======================================================================== */
/* Tokenizer (src/tokenizer)                                                 */
/* ======================================================================== */

typedef struct ae_tokenizer ae_tokenizer;

/* Loads the tokenizer of a Hugging Face model folder: tokenizer.json when present
 * (BertNormalizer, BertPreTokenizer, WordPiece, TemplateProcessing/BertProcessing,
 * added tokens), else vocab.txt + tokenizer_config.json (+ special_tokens_map.json)
 * configured as transformers' BertTokenizerFast. Other tokenizer types (BPE, Unigram,
 * other normalisers or pre-tokenizers) fail with AE_EUNSUPPORTED naming the file;
 * malformed files with AE_EFORMAT naming the file and the member. */
AE_EXTERN int ae_tokenizer_load(const char *model_dir, ae_tokenizer **out);
/* The same, through a load cache: the loaded tokenizer is also written, compiled, to
 * cache_dir (created when missing) under a name derived from the XXH3-128 of every
 * file the loader reads, and a later load of the same bytes rebuilds it from there
 * with a few copies instead of parsing JSON (~0.5 ms instead of ~18 ms for MiniLM).
 * The compiled file is validated as untrusted input; a missing, stale or corrupt one
 * and an unwritable cache_dir fall back to parsing silently. cache_dir NULL or "" =
 * ae_tokenizer_load. Gives the same tokenizer either way. */
AE_EXTERN int ae_tokenizer_load_cached(const char *model_dir, const char *cache_dir, ae_tokenizer **out);
AE_EXTERN void ae_tokenizer_free(ae_tokenizer *tok);

/* Tokenizes UTF-8 text exactly as Hugging Face's tokenizers library does (invalid
 * bytes are replaced by U+FFFD first) into ids with the post-processor's special
 * tokens ([CLS] ... [SEP]). max_len 0 = no truncation; otherwise the result has at
 * most max_len ids, keeping [CLS] and [SEP] and the first max_len - 2 pieces
 * (AE_ERANGE when max_len cannot hold the special tokens).
 * *ids is allocated with the library allocator; free it with ae_free.
 * *truncated (may be NULL) is set to 1 when tokens were dropped.
 * The tokenizer is read-only after load: any number of threads may encode with it
 * at the same time. */
AE_EXTERN int ae_tokenizer_encode(const ae_tokenizer *tok, const char *text, size_t len,
                        size_t max_len, int32_t **ids, size_t *n_ids, int *truncated);
/* Largest id + 1, added tokens included. */
AE_EXTERN size_t ae_tokenizer_vocab_size(const ae_tokenizer *tok);
/* Token string of an id, or NULL when out of range. */
AE_EXTERN const char *ae_tokenizer_id_to_token(const ae_tokenizer *tok, int32_t id);

/* Frees memory returned by the library (ids, JSON strings, ...). */
AE_EXTERN void ae_free(void *ptr);

/* ======================================================================== */
/* Encoder (src/model, src/encoder)                                          */
/* ======================================================================== */

typedef struct ae_encoder ae_encoder;

enum { AE_POOL_MEAN = 0, AE_POOL_CLS = 1, AE_POOL_MAX = 2, AE_POOL_MEAN_SQRT_LEN = 3 };

typedef struct {
  int threads;        /* 0 = all online CPUs (OpenMP threads of every embed call) */
  int max_length;     /* 0 = the model folder's (sentence_bert_config, tokenizer, positions) */
  int prepack;        /* AE_PREPACK_AUTO (0) = AE_PREPACK_ON: weights reordered once at load
                       * into oneDNN's blocked layout (fastest for many texts, ~90 MB and
                       * ~100 ms for MiniLM). AE_PREPACK_OFF: the GEMMs read the weights in
                       * place as loaded (no copy, no reorder): for one or a few short texts.
                       * Vectors agree within 1e-6 either way. */
  const char *cache_dir; /* NULL (default) = no load cache. Else a folder (created when
                       * missing) for derived files that make the next load of the same
                       * folder cheap: the compiled tokenizer (ae_tokenizer_load_cached)
                       * and, keyed by model.safetensors' identity (device, inode, size,
                       * mtime, ctime: any write changes it), the weights' XXH3-128 and
                       * the result of the NaN/Inf scan, so neither reads the 90 MB
                       * again. Same encoder, fingerprint and vectors either way; an
                       * unusable cache is ignored. */
  const char *precision; /* NULL or "f32" (default): everything in f32. "bf16": the dense
                       * layers' GEMMs take bf16 inputs (weights rounded to bf16 once at
                       * load, activations before each GEMM) and accumulate in f32;
                       * embeddings, attention, LayerNorm, softmax, GELU, residuals and
                       * pooling stay f32. About 2x the GEMM rate on AVX512-BF16 CPUs;
                       * vectors within cosine ~0.9999 of f32 (see README). Its own
                       * fingerprint, so f32 and bf16 vectors never mix in a cache or
                       * store. With AE_PREPACK_OFF the GEMMs run in f32 whatever the
                       * precision (there is no bf16 copy of the weights); the
                       * fingerprint still follows the precision. Other values:
                       * AE_EINVAL naming the value. AE_EUNSUPPORTED when oneDNN has no
                       * bf16 matmul on this CPU (it needs AVX-512). */
} ae_encoder_options;

enum { AE_PREPACK_AUTO = 0, AE_PREPACK_ON = 1, AE_PREPACK_OFF = -1 };

/* The encoder's precisions (ae_encoder_options.precision takes their names). */
enum { AE_PRECISION_F32 = 0, AE_PRECISION_BF16 = 1 };
/* "f32" / "bf16" for AE_PRECISION_* (anything else: "f32"). */
AE_EXTERN const char *ae_precision_name(int precision);
/* AE_PRECISION_* for "f32" / "bf16" (exact, lowercase); -1 for anything else. */
AE_EXTERN int ae_precision_parse(const char *name);

/* Loads a BERT-family model folder (config.json, model.safetensors, tokenizer,
 * sentence-transformers pooling/normalize config) and prepacks the weights for the
 * GEMMs. opts may be NULL. Errors name the file and the key or tensor. An encoder
 * runs one embed call at a time (it owns reusable activation buffers); use one
 * encoder per thread for concurrency. */
AE_EXTERN int ae_encoder_load(const char *model_dir, const ae_encoder_options *opts, ae_encoder **out);
AE_EXTERN void ae_encoder_free(ae_encoder *enc);

AE_EXTERN int ae_encoder_dim(const ae_encoder *enc);
AE_EXTERN int ae_encoder_max_length(const ae_encoder *enc);
AE_EXTERN const ae_tokenizer *ae_encoder_tokenizer(const ae_encoder *enc);
/* 16-byte fingerprint over config, weights, tokenizer, max length, pooling,
 * normalisation and precision ("f32" or "bf16"): vectors from two encoders are
 * interchangeable iff their fingerprints are equal. */
AE_EXTERN void ae_encoder_fingerprint(const ae_encoder *enc, uint8_t out[16]);
/* The fingerprint this encoder would have with another precision ("f32", "bf16";
 * AE_EINVAL naming any other): lets a reader find which precision a stored
 * fingerprint was made with without loading the model again. */
AE_EXTERN int ae_encoder_fingerprint_as(const ae_encoder *enc, const char *precision, uint8_t out[16]);
/* "f32" or "bf16", as loaded. */
AE_EXTERN const char *ae_encoder_precision(const ae_encoder *enc);

/* Embeds n token sequences (each already truncated, with special tokens) into
 * out[n * dim]. Sequences may have any lengths from 1 to max_position_embeddings;
 * no work is spent on padding and a vector does not depend on the other items of
 * the call. AE_EINVAL (naming the item) for an empty or too long sequence or an id
 * outside the vocabulary; nothing is embedded then. Calls with many tokens are
 * processed in chunks of whole sequences, so memory stays bounded. */
AE_EXTERN int ae_encoder_embed_ids(ae_encoder *enc, const int32_t *const *ids, const size_t *lens,
                         size_t n, float *out);

/* Tokenizes (truncating to the max length) and embeds n texts. lens may be NULL
 * (NUL-terminated texts). status[i] (may be NULL) receives each item's status;
 * a bad item (NULL text, tokenizer failure) gets a per-item error and a zero
 * vector, the others are still embedded. Empty, whitespace- or control-only texts
 * embed as [CLS] [SEP]; invalid UTF-8 is replaced by U+FFFD.
 * Returns AE_OK unless the whole call failed (then every item's status says so). */
AE_EXTERN int ae_encoder_embed_texts(ae_encoder *enc, const char *const *texts, const size_t *lens,
                           size_t n, float *out, int *status);

/* Writes a random-weight model folder with the shape of like_dir's config (config,
 * tokenizer and sentence-transformers files copied, model.safetensors of random
 * weights from seed). dtype: "F32", "F16" or "BF16" (NULL = F32). Deterministic:
 * the same seed gives the same file on every machine, and the F16/BF16 weights are
 * the F32 ones rounded to nearest even. Weights ~ N(0, 0.02), LayerNorm gains
 * 1 + N(0, 0.05), biases N(0, 0.02); tensor names as transformers writes them,
 * with embeddings.position_ids (I64) and the pooler. Files are written atomically
 * (temp + rename); out_dir is created and must differ from like_dir. */
AE_EXTERN int ae_model_init_random(const char *like_dir, const char *out_dir, uint64_t seed,
                         const char *dtype);
/* ae_model_init_random with variations (used by tests, benchmarks and `astembed model
 * init-random`). Fields left at their defaults keep like_dir's values. */
typedef struct {
  uint64_t seed;
  const char *dtype;      /* "F32" (default), "F16" or "BF16" */
  int layers, hidden, heads, intermediate, max_positions; /* 0 = like_dir's config */
  const char *hidden_act; /* NULL = like_dir's; "gelu", "gelu_new" or "relu" */
  int pooling;            /* -1 = like_dir's, else AE_POOL_* */
  int normalize;          /* -1 = like_dir's, 0 = no Normalize module, 1 = Normalize */
  int max_seq_length;     /* 0 = like_dir's sentence_bert_config.json */
  int bert_prefix;        /* 1 = tensor names with the "bert." prefix */
} ae_model_random_options;
AE_EXTERN void ae_model_random_options_default(ae_model_random_options *o);
AE_EXTERN int ae_model_init_random_opts(const char *like_dir, const char *out_dir,
                                        const ae_model_random_options *o);

/* "mean", "cls", "max", "mean_sqrt_len" for AE_POOL_* ("?" for anything else). */
AE_EXTERN const char *ae_pooling_name(int pooling);
/* AE_POOL_* for those names (exact, lowercase); -1 for anything else. */
AE_EXTERN int ae_pooling_parse(const char *name);

/* What a model folder holds, as ae_encoder_load validates it (same errors). */
typedef struct {
  int hidden_size, num_hidden_layers, num_attention_heads, intermediate_size;
  int vocab_size, max_position_embeddings, type_vocab_size, pad_token_id;
  float layer_norm_eps;
  char hidden_act[16];    /* "gelu", "gelu_new" or "relu" */
  char dtype[8];          /* model.safetensors' weight dtype: "F32", "F16" or "BF16" */
  int pooling;            /* AE_POOL_* */
  int normalize;          /* 1 when the folder L2-normalises the pooled vector */
  int max_length;         /* tokens per text (see ae_model_max_length) */
  int64_t parameters;     /* of the encoder tensors (no pooler, no position_ids) */
  int bert_prefix;        /* 1 when the tensor names carry the "bert." prefix */
  uint8_t fingerprint[16];/* over config, weights, tokenizer, max length, pooling and
                             normalisation; ae_encoder_fingerprint mixes the precision
                             into it */
} ae_model_info;
/* Loads and validates model_dir (max_length 0 = the folder's, else it replaces it) and
 * describes it in *info; nothing stays loaded. */
AE_EXTERN int ae_model_info_load(const char *model_dir, int max_length, ae_model_info *info);
/* The folder's max sequence length, as the encoder derives it: sentence_bert_config.json
 * max_seq_length, else tokenizer_config.json model_max_length (when below 1e6), else
 * config.json max_position_embeddings, and never above the latter. A folder without
 * config.json (a tokenizer alone) has no position bound: *max_length 0 when neither
 * file names a length. */
AE_EXTERN int ae_model_max_length(const char *model_dir, int *max_length);

/* ======================================================================== */
/* Cache (src/cache)                                                         */
/* ======================================================================== */

typedef struct ae_cache ae_cache;

enum { AE_CACHE_LRU = 0, AE_CACHE_TINYLFU = 1 };

/* Content-addressed embedding cache. A key (file path or node id) maps to the
 * XXH3-128 hash of its content with the model fingerprint mixed in; the vector is
 * stored once per hash however many keys share it (reference counted). A get hits
 * only for the same content under the same model fingerprint and only unexpired.
 * Limits (entries = keys, bytes = vectors + keys + bookkeeping) hold exactly at all
 * times. Thread-safe: keys are spread over lock shards; each shard runs its own
 * policy (true LRU, or W-TinyLFU) over max_entries / shards entries, so with
 * shards = 1 the whole cache is one exact LRU / W-TinyLFU. */
typedef struct {
  size_t max_entries;            /* maxEntries, default 1000 */
  size_t max_memory_mb;          /* maxMemoryMB, default 100 */
  size_t max_bytes;              /* exact byte limit; 0 = max_memory_mb * 2^20 (default) */
  uint32_t ttl_seconds;          /* ttlSeconds, default 3600, 0 = no expiry */
  int enable_content_validation; /* default 1; 0 = a key hits whatever content it had */
  uint32_t maintenance_interval_ms; /* default 300000, 0 = no background thread */
  int policy;                    /* AE_CACHE_LRU (default) or AE_CACHE_TINYLFU */
  unsigned shards;               /* lock shards (power of two, <= 64); 0 = auto:
                                    1 below 2048 entries, then up to 16 */
  /* Persistent tier (SQLite, WAL), keyed by (model fingerprint, content hash). */
  const char *persist_path;      /* SQLite file, NULL = memory only */
  size_t persist_max_mb;         /* size cap (vector bytes + row overhead), 0 = unlimited */
  uint32_t persist_batch_count;  /* commit pending writes at this many (0 = 256) */
  uint32_t persist_batch_ms;     /* ... or when the oldest is this old (0 = 1000) */
  int persist_sync_full;         /* 1 = synchronous=FULL (a commit survives power loss);
                                    default 0 = NORMAL (a commit survives a process
                                    crash / SIGKILL, the last ones may be lost on power
                                    loss) */
  int persist_no_prefetch;       /* default 0: the first lookup that reaches the
                                    database bulk-loads this model's stored vectors
                                    (one sequential scan, at most max_bytes of them)
                                    so a cold process serves them at memory speed;
                                    1 = one query per lookup */
} ae_cache_config;

typedef struct {
  uint64_t requests, hits, misses;
  double hit_ratio, miss_ratio;
  double average_access_time_ns; /* mean wall time of a get (1-in-16 sample) */
  uint64_t entries, bytes, vectors, evictions, expirations, invalidations;
  double memory_efficiency;      /* vector payload bytes / total bytes */
  /* performance_score = 100 * (0.6 * hit_ratio + 0.2 * memory_efficiency
   *                            + 0.2 * 1000 / (1000 + average_access_time_ns)):
   * hits dominate; a get of 1 us costs half of the speed share. 0 before any get. */
  double performance_score;
  /* persistent tier */
  int persist_enabled;           /* 1 while the SQLite tier is in use */
  int persist_status;            /* AE_OK, or the status that disabled / last failed it */
  char persist_error[256];       /* detail of persist_status, "" when none */
  uint64_t persist_hits, persist_writes, persist_errors, persist_rejected,
           persist_pending, persist_pruned;
} ae_cache_metrics;

AE_EXTERN void ae_cache_config_default(ae_cache_config *cfg);
/* Creates the cache. When the persistent tier cannot be used (unwritable, locked or
 * corrupt file) the cache is still created and works in memory: ae_cache_new returns
 * AE_OK, ae_cache_persist_status() returns the failure and ae_last_error() /
 * metrics.persist_error give the detail. */
AE_EXTERN int ae_cache_new(const ae_cache_config *cfg, const uint8_t model_fingerprint[16],
                 ae_cache **out);
/* Flushes pending persistent writes, stops and joins the maintenance thread. */
AE_EXTERN void ae_cache_free(ae_cache *c);
/* key: file path or node id; content: the text embedded. Refuses dim 0 and
 * non-finite values (AE_EINVAL); AE_ERANGE when one entry exceeds the byte limit;
 * AE_ENOMEM leaves the cache as it was minus the key's previous entry. */
AE_EXTERN int ae_cache_set(ae_cache *c, const char *key, const char *content, size_t content_len,
                 const float *vec, size_t dim);
/* Copies the vector into out (capacity dim). AE_OK on a hit, AE_EMISS on a miss,
 * AE_EMISMATCH when the stored vector's dimension differs from dim. A memory miss
 * reads through to the persistent tier and promotes what it finds. */
AE_EXTERN int ae_cache_get(ae_cache *c, const char *key, const char *content, size_t content_len,
                 float *out, size_t dim);
/* n gets at once; out is n * dim, status[i] gets AE_OK / AE_EMISS / ... per item.
 * The memory tier is looked up shard by shard with the items' memory prefetched
 * ahead (repeated keys keep their order; each item's result is what a single get in
 * item order gives, except that a hit through another key's identical content may
 * see that key's eviction or invalidation by a later item of the same batch).
 * Memory misses are read from the persistent tier in one pass (much faster than n
 * single gets from a cold process). *hits (may be NULL) = number of AE_OK. */
AE_EXTERN int ae_cache_get_many(ae_cache *c, size_t n, const char *const *keys,
                      const char *const *contents, const size_t *content_lens,
                      float *out, size_t dim, int *status, size_t *hits);
/* AE_OK, or AE_ENOTFOUND when the key is not cached. */
AE_EXTERN int ae_cache_delete(ae_cache *c, const char *key);
/* One bounded maintenance step (expiry sweep of at most a few hundred entries,
 * persistent flush when due, prune past the size cap). The background thread runs
 * the same step every maintenance_interval_ms. */
AE_EXTERN int ae_cache_maintain(ae_cache *c);
/* Shrinks the in-memory tier to at most fraction (0..1) of its byte and entry limits
 * (the memory processor's cleanup hook). */
AE_EXTERN int ae_cache_shrink(ae_cache *c, double fraction);
/* Commits pending persistent writes and last-access updates. */
AE_EXTERN int ae_cache_flush(ae_cache *c);
/* AE_OK when the persistent tier works or is not configured; else its failure. */
AE_EXTERN int ae_cache_persist_status(ae_cache *c);
AE_EXTERN void ae_cache_metrics_get(ae_cache *c, ae_cache_metrics *m);
/* JSON text of the metrics (camelCase names: hitRatio, performanceScore, ...),
 * allocated; free with ae_free. NULL on allocation failure. */
AE_EXTERN char *ae_cache_metrics_json(ae_cache *c);

/* ======================================================================== */
/* Resource probes (src/probe)                                               */
/* ======================================================================== */

/* One reading of the process and its memory budget. Values a machine cannot provide
 * (no /proc/pressure, no cgroup, ...) are -1 (percentages) or 0 (bytes), and the
 * probe says once, through its log hook, which source is missing. */
typedef struct {
  double process_cpu_pct;     /* Δ(utime+stime) / (Δwall × cores) × 100; the first
                                 reading averages over the process lifetime; -1 n/a */
  double system_cpu_pct;      /* busy share of all CPUs from /proc/stat deltas; -1 n/a */
  double load1, load5, load15;/* /proc/loadavg; -1 n/a */
  uint64_t rss_bytes;         /* /proc/self/statm resident pages × page size */
  uint64_t available_bytes;   /* min(MemAvailable, cgroup limit - working set) */
  uint64_t limit_bytes;       /* the tightest cgroup memory limit, or MemTotal */
  double memory_pct;          /* (limit - available) / limit × 100; -1 n/a */
  double psi_some_avg10, psi_full_avg10; /* memory PSI; -1 when unavailable */
  int have_cgroup;            /* 1 when a cgroup memory limit bounds the reading */
  int cgroup_version;         /* 2, 1 (v1 memory controller) or 0 (none found) */
  int have_psi;
} ae_probe_reading;

typedef struct ae_probe ae_probe;
/* Reads files through read_file when set (tests script readings); NULL = the real
 * /proc and /sys/fs/cgroup. read_file returns a NUL-terminated string allocated with
 * libc malloc (the probe frees it with free) or NULL when the file does not exist. */
typedef char *(*ae_probe_read_fn)(const char *path, void *ud);

typedef struct {
  ae_probe_read_fn read_file; void *read_ud;     /* NULL = real files */
  uint64_t (*now_ns)(void *ud); void *now_ud;    /* NULL = CLOCK_MONOTONIC */
  int cores;                  /* 0 = CPUs in this process's affinity mask */
  long clk_tck;               /* 0 = sysconf(_SC_CLK_TCK) */
  void (*log)(void *ud, const char *msg); void *log_ud; /* NULL = one stderr line */
} ae_probe_options;

AE_EXTERN int ae_probe_new(ae_probe_read_fn read_file, void *ud, ae_probe **out);
AE_EXTERN int ae_probe_new_ex(const ae_probe_options *opts, ae_probe **out);
AE_EXTERN void ae_probe_free(ae_probe *p);
/* Thread-safe. Fails only on bad arguments; missing sources degrade (see above). */
AE_EXTERN int ae_probe_read(ae_probe *p, ae_probe_reading *r);

/* ======================================================================== */
/* Batch optimizer (src/batchopt)                                            */
/* ======================================================================== */

/* Learns the batch size (and the token budget per batch) that maximises a score of
 * throughput, resource use and stability; see src/batchopt/batchopt.c for the search.
 * Usage: loop { recommend(); run a batch of at most batch_size items and at most
 * token_budget tokens; record(the batch as run) }. Not thread-safe. */
typedef struct ae_batchopt ae_batchopt;

typedef struct {
  int min_batch_size;        /* 1 */
  int max_batch_size;        /* 128 */
  double target_cpu_usage;   /* 70 (%) */
  double target_memory_usage;/* 75 (%) */
  int min_samples;           /* 10: batches of exploration before exploiting */
  int history_retention;     /* 100 samples kept */
  double aggressiveness;     /* 0.3, in (0, 1]: step sizes, growth and back-off */
  int max_tokens;            /* token budget ceiling per batch, 0 = no ceiling */
} ae_batchopt_config;

typedef struct {
  int batch_size, tokens;    /* items and tokens in the batch as run */
  double processing_time_ms; /* > 0 */
  double cpu_usage, memory_usage; /* %, -1 = unknown */
  int success;               /* 0 = the whole batch failed (e.g. out of memory) */
  int items_processed;       /* items that succeeded */
} ae_batch_sample;

typedef struct {
  int batch_size;            /* size of the next batch, in [min, max] */
  int token_budget;          /* most tokens for the next batch, >= 1 */
  int best_batch_size;       /* current estimate of the best size (batch_size may be
                                a probe around it) */
  double confidence;         /* 0..1 */
  char reason[256];
} ae_batch_recommendation;

typedef struct {
  double average_throughput_items, average_throughput_tokens; /* per second */
  double average_batch_size, optimization_score; /* score 0..1 */
  double resource_utilization; /* mean of cpu/target and memory/target; 1 = on target */
  char trend[16];            /* "improving", "stable", "degrading" */
  int samples;               /* retained samples */
} ae_batch_analytics;

AE_EXTERN void ae_batchopt_config_default(ae_batchopt_config *cfg);
AE_EXTERN int ae_batchopt_new(const ae_batchopt_config *cfg, ae_batchopt **out);
AE_EXTERN void ae_batchopt_free(ae_batchopt *o);
AE_EXTERN int ae_batchopt_record(ae_batchopt *o, const ae_batch_sample *s);
AE_EXTERN int ae_batchopt_recommend(ae_batchopt *o, ae_batch_recommendation *r);
AE_EXTERN int ae_batchopt_analytics(ae_batchopt *o, ae_batch_analytics *a);

/* ======================================================================== */
/* Memory-aware processor (src/memproc)                                      */
/* ======================================================================== */

typedef struct ae_memproc ae_memproc;

enum { AE_STRAT_STREAMING = 0, AE_STRAT_CONSERVATIVE = 1, AE_STRAT_BALANCED = 2,
       AE_STRAT_AGGRESSIVE = 3, AE_STRAT_COUNT = 4 };
enum { AE_APPROACH_SEQUENTIAL = 0, AE_APPROACH_PARALLEL = 1 };

typedef struct {
  const char *name;
  int max_batch_size;
  int approach;               /* AE_APPROACH_* */
  double memory_overhead, cpu_overhead; /* advisory cost factors (reported) */
  int cleanup_frequency;      /* cleanup after this many items, 0 = never by count */
} ae_strategy;

typedef struct {
  ae_strategy strategies[AE_STRAT_COUNT];
  /* memory % thresholds, with hysteresis: a strategy is tightened as soon as memory
   * reaches critical (streaming), high (conservative) or normal (balanced); it is
   * relaxed one level only once memory falls below the next threshold down
   * (streaming below high, conservative below normal, balanced below low). */
  double critical, high, normal, low;   /* 85, 70, 55, 35 */
  uint32_t monitoring_interval_ms;      /* least time between pressure reads; 0 = before
                                           every batch (default 100) */
  double cleanup_threshold;             /* memory % at or above which each read is
                                           followed by a cleanup (80) */
  double gc_threshold;                  /* memory % at or above which malloc_trim(0)
                                           runs after each batch (75) */
  int threads;                          /* parallel approach pool size, 0 = CPUs */
  ae_probe *probe;                      /* NULL = a real probe owned by the processor */
} ae_memproc_config;

/* fn processes items [first, first+count) and writes each item's status into
 * status[0..count) (pre-set to AE_OK). Returns AE_OK unless the whole batch failed,
 * in which case every item of the batch is failed with the returned status. Under the
 * parallel approach fn runs concurrently on pool threads. Each item is passed to fn
 * exactly once. */
typedef int (*ae_batch_fn)(void *ctx, size_t first, size_t count, int *status);

/* All callbacks run on the thread that called ae_memproc_process, never concurrently. */
typedef struct {
  void (*progress)(void *ud, size_t done, size_t total);
  void (*strategy_change)(void *ud, int from, int to, double memory_pct);
  void (*memory_warning)(void *ud, double memory_pct); /* on rising to high/critical */
  void (*cleanup)(void *ud);            /* e.g. shrink the cache */
  /* Each finished batch, in submission (ascending item) order. */
  void (*batch_done)(void *ud, size_t first, size_t count, const int *status,
                     double elapsed_ms);
  /* How many items starting at first form the next batch, given the strategy's
   * max_count (result clamped to [1, max_count]): lets the caller apply the batch
   * optimizer's size and token budget. NULL = max_count. */
  size_t (*batch_limit)(void *ud, size_t first, size_t max_count);
  void *ud;
} ae_memproc_callbacks;

typedef struct {
  size_t processed, succeeded, failed;
  size_t *failed_index;                 /* failed items, ascending; free with */
  int *failed_status;                   /* ae_memproc_result_free */
  int strategy_changes, cleanups;
  double peak_memory_pct, average_memory_pct; /* over the pressure reads; -1 n/a */
  double elapsed_ms;
  int final_strategy;
  size_t batches;
} ae_memproc_result;

AE_EXTERN void ae_memproc_config_default(ae_memproc_config *cfg);
AE_EXTERN int ae_memproc_new(const ae_memproc_config *cfg, ae_memproc **out);
AE_EXTERN void ae_memproc_free(ae_memproc *m);
/* Runs fn over items 0..n-1. Not reentrant on one processor (AE_ESTATE). AE_ENOMEM
 * before anything ran when the n item statuses cannot be allocated, or after the run
 * when the failed-item lists cannot be (the counts stay valid, the lists are NULL). */
AE_EXTERN int ae_memproc_process(ae_memproc *m, size_t n, ae_batch_fn fn, void *ctx,
                       const ae_memproc_callbacks *cb, ae_memproc_result *res);
AE_EXTERN void ae_memproc_result_free(ae_memproc_result *res);
AE_EXTERN int ae_memproc_current_strategy(const ae_memproc *m);
/* Strategy for a memory % given the current one (the hysteresis rule above). */
AE_EXTERN int ae_memproc_strategy_for(const ae_memproc_config *cfg, int current, double memory_pct);

/* ======================================================================== */
/* Generator, store and query (src/generator, src/store)                     */
/* ======================================================================== */

/* ---- Annotations and the text that gets embedded (src/text) ---- */

/* One code annotation, as the original's JSONL (nodeId, signature, summary,
 * sourceSnippet, metadata{file_path,start_line,end_line,node_type,language}) or its
 * SQLite `annotations` table. Strings are UTF-8, never NULL once loaded ("" when
 * absent); lines are 0 when unknown. */
typedef struct {
  const char *node_id;
  const char *file_path;
  int start_line, end_line;
  const char *node_type;
  const char *language;     /* from metadata, else guessed from the file extension */
  const char *signature;
  const char *summary;
  const char *snippet;
} ae_annotation;

/* A loaded list of annotations that owns its strings. */
typedef struct ae_annotation_set ae_annotation_set;
/* Called for each input record that cannot be used (bad JSON, missing nodeId, wrong
 * field type, ...): where = "FILE:LINE" or "FILE:node_id", message names the problem.
 * Loading goes on with the next record. */
typedef void (*ae_input_error_fn)(void *ud, const char *where, const char *message);

/* Reads JSONL annotations ("-" = stdin). Fails only when the file cannot be read. */
AE_EXTERN int ae_annotations_load_jsonl(const char *path, ae_input_error_fn on_error, void *ud,
                              ae_annotation_set **out);
/* Reads the original's SQLite `annotations` table (node_id, file_path, start_line,
 * end_line, node_type, signature, metadata JSON with summary [, sourceSnippet,
 * language]). */
AE_EXTERN int ae_annotations_load_db(const char *path, ae_input_error_fn on_error, void *ud,
                           ae_annotation_set **out);
AE_EXTERN size_t ae_annotation_set_count(const ae_annotation_set *s);
AE_EXTERN const ae_annotation *ae_annotation_set_items(const ae_annotation_set *s);
/* Number of records rejected while loading. */
AE_EXTERN size_t ae_annotation_set_rejected(const ae_annotation_set *s);
AE_EXTERN void ae_annotation_set_free(ae_annotation_set *s);

/* How an annotation becomes the text that is embedded:
 * "Signature: <sig> | Summary: <summary> | Code: <code>" (empty parts left out).
 * signature: whitespace collapsed, one leading modifier (export, public, private,
 *   protected, static, async, pub, ...) and the word `function ` removed, `=>` spaced,
 *   parameter type annotations removed (defaults kept);
 * summary: markdown emphasis (*x*, **x**, `x`) and a leading "This function/method/
 *   class" removed, whitespace collapsed;
 * code: comments removed according to the language (Python and shell: #, strings
 *   respected; C-like: // and slash-star; unknown: all three), `#include`/`#[...]`/
 *   `#!` lines always kept, whitespace collapsed. `_` is never touched.
 * The text is then truncated on tokens at the model's max length by the tokenizer;
 * max_code_chars only bounds the work spent on huge snippets. */
typedef struct {
  int include_signature;    /* default 1 */
  int include_summary;      /* default 1 */
  int include_code;         /* default 1 */
  int strip_comments;       /* default 1 */
  size_t max_code_chars;    /* default 65536, 0 = unlimited */
} ae_text_options;

AE_EXTERN void ae_text_options_default(ae_text_options *o);
/* Builds the text of one annotation into *text (allocated; free with ae_free).
 * *code_capped (may be NULL) is set when max_code_chars cut the code.
 * AE_EINVAL (with detail naming the node) when nothing is left to embed. */
AE_EXTERN int ae_annotation_text(const ae_annotation *a, const ae_text_options *o, char **text,
                       size_t *len, int *code_capped);
/* The cleaning steps on their own (allocated; free with ae_free). */
AE_EXTERN char *ae_clean_signature(const char *sig);
AE_EXTERN char *ae_clean_summary(const char *summary);
AE_EXTERN char *ae_clean_code(const char *code, const char *language);

/* ---- Store: one SQLite database of annotations and vectors (src/store) ---- */

/* Schema (PRAGMA user_version 3, WAL; files of versions 1 and 2 are upgraded when
 * opened for writing):
 *   annotations(node_id PK, file_path, start_line, end_line, node_type, language,
 *               signature, summary, snippet, text_hash, updated_at, lex_id UNIQUE)
 *   lexical                                -- contentless FTS5 over signature, summary,
 *                                             snippet, file_path, node_type, keyed by
 *                                             lex_id, kept in step by triggers
 *   vectors(id, node_id, fingerprint, text_hash, dim, vec float32 blob,
 *           UNIQUE(node_id, fingerprint))  -- current iff text_hash = the annotation's
 *   models(fingerprint PK, name, dir, dim, created_at, last_used_at)
 *   meta(key PK, value)                    -- 'generation' bumps on every change
 * Every batch is written in one transaction, so a SIGKILL at any moment leaves the
 * database consistent and a rerun recomputes only what is missing. */
typedef struct ae_store ae_store;

#define AE_STORE_DEFAULT_PATH ".astembed/index.db"

/* Opens (creating it and its folder when needed) or fails with a message naming the
 * file: unreadable, not a database, newer schema. read_only: never creates. */
AE_EXTERN int ae_store_open(const char *path, int read_only, ae_store **out);
AE_EXTERN void ae_store_close(ae_store *s);

/* XXH3-128 of the embedded text: what decides whether a node must be re-embedded. */
AE_EXTERN void ae_text_hash(const char *text, size_t len, uint8_t out[16]);

/* Records the model (its folder, made absolute, so `query` finds it). */
AE_EXTERN int ae_store_register_model(ae_store *s, const uint8_t fp[16], const char *name,
                            const char *dir, int dim);
/* The most recently used model (or fp's when fp_in is non-NULL): folder (allocated,
 * ae_free), fingerprint, dim. AE_ENOTFOUND when none. */
AE_EXTERN int ae_store_model(ae_store *s, const uint8_t *fp_in, char **dir, uint8_t fp[16], int *dim);

/* Vector of node_id for model fp when its stored text hash is h: AE_OK (and
 * *same_node = 1); else the vector of any node with the same text under fp
 * (*same_node = 0); else AE_EMISS. out has room for dim floats. *truncated (may be
 * NULL) gets the stored flag: 1 the text was cut at the max length, 0 it was not,
 * -1 unknown (rows from schema version 1). */
AE_EXTERN int ae_store_lookup(ae_store *s, const uint8_t fp[16], const char *node_id,
                    const uint8_t h[16], float *out, int dim, int *same_node, int *truncated);

/* Batch writes: begin, put (annotation row upserted, written only when it changed;
 * vector upserted when vec is non-NULL, with its truncated flag: 1, 0 or -1 unknown),
 * commit. rollback discards the batch. */
AE_EXTERN int ae_store_begin(ae_store *s);
AE_EXTERN int ae_store_put(ae_store *s, const ae_annotation *a, const uint8_t h[16],
                 const uint8_t fp[16], const float *vec, int dim, int truncated);
AE_EXTERN int ae_store_commit(ae_store *s);
AE_EXTERN void ae_store_rollback(ae_store *s);

/* --prune: for every file that occurs in items, deletes the stored nodes of that file
 * that are not among items (and vectors left without an annotation). */
AE_EXTERN int ae_store_prune(ae_store *s, const ae_annotation *items, size_t n, size_t *deleted);

/* Calls fn for every recorded model, most recently used first. */
typedef void (*ae_model_row_fn)(void *ud, const uint8_t fp[16], const char *name,
                                const char *dir, int dim, int64_t last_used_at);
AE_EXTERN int ae_store_list_models(ae_store *s, ae_model_row_fn fn, void *ud);

typedef struct {
  uint64_t annotations, vectors, current_vectors, models, files;
  uint64_t db_bytes, generation;
} ae_store_stats;
AE_EXTERN int ae_store_stats_get(ae_store *s, const uint8_t *fp, ae_store_stats *st);

/* Exact cosine search over every current vector of model fp. The vectors are held
 * as one contiguous row-normalised matrix (cached per store handle and in a snapshot
 * file beside the database, rebuilt when the generation changes), scored with one
 * GEMV (SIMD, all CPUs) and the top k picked with a min-heap. */
typedef struct {
  char *node_id, *file_path, *node_type, *signature, *summary, *snippet;
  int start_line, end_line;
  float score;            /* vector: cosine; lexical: BM25 relevance (-bm25(), higher is
                             better); hybrid: the fused RRF score */
  char *language;
  int lexical_rank;       /* 1-based rank in the lexical list, 0 = not in it */
  int vector_rank;        /* 1-based rank in the vector list, 0 = not in it */
} ae_search_hit;

AE_EXTERN int ae_store_search(ae_store *s, const uint8_t fp[16], const float *query, int dim,
                    size_t k, float min_score, ae_search_hit **hits, size_t *n_hits);
AE_EXTERN void ae_search_hits_free(ae_search_hit *hits, size_t n);
/* Rows in the model's matrix (loads it). */
AE_EXTERN int ae_store_matrix_rows(ae_store *s, const uint8_t fp[16], size_t *rows);

/* ---- Generator (src/generator) ---- */

/* One configuration, four sections, each of which can be disabled. As JSON (keys as
 * in the original tool, see README; config/production.json and config/development.json):
 *   {"preset": "production",           (optional: start from a preset)
 *    "model": {"enabled", "path", "threads", "maxLength", "precision" ("f32"|"bf16"),
 *              "text": {"includeSignature", "includeSummary", "includeCode",
 *                       "stripComments", "maxCodeChars"}},
 *    "cache": {"enabled", "maxEntries", "maxMemoryMB", "ttlSeconds",
 *              "enableContentValidation", "maintenanceInterval", "policy",
 *              "persistPath", "persistMaxMB"},
 *    "batchOptimizer": {"enabled", "minBatchSize", "maxBatchSize", "targetCpuUsage",
 *              "targetMemoryUsage", "minSamples", "historyRetention",
 *              "aggressiveness", "maxTokens"},
 *    "memoryProcessor": {"enabled", "memoryLimitMB", "monitoringInterval",
 *              "cleanupThreshold", "gcThreshold", "threads",
 *              "thresholds": {"critical", "high", "normal", "low"},
 *              "strategies": {"streaming"|"conservative"|"balanced"|"aggressive":
 *                 {"maxBatchSize", "approach", "memoryOverhead", "cpuOverhead",
 *                  "cleanupFrequency"}}}}
 * Unknown keys, wrong types and out-of-range values are errors naming the key
 * ("cache.maxEntries: must be in [1, 100000000]"). */
typedef struct {
  struct {
    int enabled;
    char path[4096];           /* model folder ("" = $ASTEMBED_MODEL / given later) */
    int threads;               /* 0 = all online CPUs */
    int max_length;            /* 0 = the model's */
    int precision;             /* AE_PRECISION_F32 (default) or AE_PRECISION_BF16: see
                                  ae_encoder_options.precision (ae_precision_name) */
    ae_text_options text;
  } model;
  struct {
    int enabled;
    ae_cache_config config;    /* config.persist_path points into persist_path */
    char persist_path[4096];
  } cache;
  struct {
    int enabled;
    ae_batchopt_config config;
  } batch_optimizer;
  struct {
    int enabled;
    ae_memproc_config config;
    size_t memory_limit_mb;    /* 0 = the machine's (cgroup or RAM) limit */
  } memory_processor;
  char preset[32];             /* "" when none */
} ae_generator_config;

/* Every component's defaults (the original tool's values, see README). */
AE_EXTERN void ae_generator_config_default(ae_generator_config *c);
/* "production" or "development" (AE_EINVAL naming the preset otherwise). */
AE_EXTERN int ae_generator_config_preset(ae_generator_config *c, const char *name);
/* Applies a JSON document on top of c (name: used in errors, e.g. the file path). */
AE_EXTERN int ae_generator_config_apply_json(ae_generator_config *c, const char *json, const char *name);
AE_EXTERN int ae_generator_config_load_file(ae_generator_config *c, const char *path);
/* The configuration as JSON (allocated; ae_free). */
AE_EXTERN char *ae_generator_config_json(const ae_generator_config *c);

typedef struct ae_generator ae_generator;

/* One result per input annotation, in input order. */
typedef struct {
  const char *node_id;   /* the annotation's */
  float *vector;         /* dim floats, NULL on error; freed by ae_embed_results_free */
  int from_cache;        /* 0 = embedded now, 1 = memory cache, 2 = the store */
  int truncated;         /* 1 when the text was cut at the model's max length, for
                            hits too: the store keeps the flag with the vector, and a
                            hit no tier knows the flag of is tokenized to find it */
  int tokens;            /* tokens embedded (0 for hits) */
  int status;            /* AE_OK or this item's error */
  char error[192];       /* the error's detail ("" when ok) */
} ae_embed_result;

enum { AE_LOG_ERROR = 0, AE_LOG_WARN = 1, AE_LOG_INFO = 2, AE_LOG_DEBUG = 3 };
/* Log lines: cache evictions, memory strategy changes, optimizer adjustments, ... */
typedef void (*ae_log_fn)(void *ud, int level, const char *msg);
/* Progress: done of total items, of which hits came from a cache tier. */
typedef void (*ae_progress_fn)(void *ud, size_t done, size_t total, size_t hits);

/* The generator's metrics, one struct per component and overall. */
typedef struct {
  struct {
    double hit_ratio, miss_ratio;      /* over lookups: memory cache + store tier */
    double average_access_time_ns;     /* memory tier (ae_cache) */
    double memory_efficiency, performance_score; /* memory tier, see src/cache */
    uint64_t lookups, hits, memory_hits, store_hits, misses;
    uint64_t entries, bytes, evictions;
  } cache;
  struct {
    double average_batch_size, average_throughput, average_throughput_tokens;
    double optimization_score, resource_utilization;
    int recommended_batch_size, token_budget;
    char trend[16];
  } batch_optimizer;
  struct {
    char current_strategy[16];
    double memory_usage;               /* last memory % read */
    double efficiency;                 /* succeeded / processed items */
    int strategy_changes, cleanups;
    double peak_memory_pct;
  } memory_processor;
  struct {
    double total_processing_time_ms, average_item_time_ms, error_rate, items_per_second;
    uint64_t items_processed, embedded, failed, truncated, tokens, batches;
    double tokenize_ms, encode_ms, store_ms;
    double tokenize_wait_ms;           /* batches waiting for the tokenizer thread */
    uint64_t overlapped_batches;       /* batches encoded while it was still tokenizing */
    uint64_t peak_rss_bytes;
  } overall;
} ae_performance_metrics;

/* Checks and copies the configuration; nothing is loaded yet. */
AE_EXTERN int ae_generator_new(const ae_generator_config *cfg, ae_generator **out);
/* Optional, before or after init: the store used as the persistent tier and written
 * to (annotations + vectors, one transaction per batch). Borrowed, not freed. */
AE_EXTERN int ae_generator_set_store(ae_generator *g, ae_store *s);
/* force: ignore the cache tiers and re-embed everything. */
AE_EXTERN void ae_generator_set_force(ae_generator *g, int force);
/* Before init: the load-cache folder passed to ae_encoder_load (see
 * ae_encoder_options.cache_dir; copied; NULL = none, the default). */
AE_EXTERN int ae_generator_set_load_cache_dir(ae_generator *g, const char *dir);
AE_EXTERN void ae_generator_set_log(ae_generator *g, ae_log_fn fn, void *ud, int level);
AE_EXTERN void ae_generator_set_progress(ae_generator *g, ae_progress_fn fn, void *ud);
/* Loads the model and creates the cache, optimizer and memory processor. */
AE_EXTERN int ae_generator_init(ae_generator *g);
AE_EXTERN int ae_generator_dim(const ae_generator *g);
AE_EXTERN void ae_generator_fingerprint(const ae_generator *g, uint8_t fp[16]);
AE_EXTERN ae_encoder *ae_generator_encoder(ae_generator *g);
/* Embeds n annotations into results[n] (see ae_embed_result). Path: store / cache
 * lookup, misses tokenized and ordered by token length, batches sized by the
 * optimizer's token budget within the memory processor's strategy, encoder, then
 * cache and store. One bad annotation never fails the others. Returns AE_OK, or
 * AE_EINTR after ae_generator_cancel (the batch in flight is committed; the items
 * not reached get AE_EINTR), or an error when nothing could run. One call at a time
 * per generator. */
AE_EXTERN int ae_generator_embed(ae_generator *g, const ae_annotation *items, size_t n,
                       ae_embed_result *results);
AE_EXTERN void ae_embed_results_free(ae_embed_result *results, size_t n);
/* Async-signal-safe: stop after the batch in flight. */
AE_EXTERN void ae_generator_cancel(ae_generator *g);
AE_EXTERN int ae_generator_metrics(ae_generator *g, ae_performance_metrics *m);
AE_EXTERN char *ae_generator_metrics_json(ae_generator *g);        /* ae_free */
AE_EXTERN char *ae_generator_metrics_prometheus(ae_generator *g);  /* ae_free */
/* Maintenance: cache expiry sweep and flush, optimizer recommendation, malloc_trim. */
AE_EXTERN int ae_generator_optimize(ae_generator *g);
AE_EXTERN void ae_generator_free(ae_generator *g);

/* ======================================================================== */
/* Embedding server (src/serve) and the metrics writers it shares            */
/* ======================================================================== */

/* Embeds n raw texts (no annotation text building; the store is neither read nor
 * written) into results[n], in input order: the memory cache tier keyed by the text
 * (its XXH3-128), then the misses tokenized, ordered by length and cut into batches
 * exactly as ae_generator_embed does. results[i].node_id is NULL; tokens is the
 * number of tokens embedded (0 for a cache hit). lens may be NULL (NUL-terminated
 * texts). One call at a time per generator. */
AE_EXTERN int ae_generator_embed_texts(ae_generator *g, const char *const *texts, const size_t *lens,
                                       size_t n, ae_embed_result *results);

/* The index's counters (ae_store_stats) as Prometheus exposition text, written from
 * the same metrics table as the generator's metrics and the server's /metrics.
 * Allocated; ae_free. NULL on allocation failure. */
AE_EXTERN char *ae_store_stats_prometheus(const ae_store_stats *st);

/* Search hits as the JSON document of `astembed query --format json` (and the
 * server's /search): {"query", "mode", "model" (null when none), "results": [{rank,
 * score, lexicalRank, vectorRank, nodeId, file, startLine, endLine, nodeType,
 * language, signature, summary, snippet: [first `lines` non-blank lines]}]}. mode:
 * AE_SEARCH_*. Allocated; ae_free. */
AE_EXTERN char *ae_search_hits_json(const char *query, int mode, const char *model, const ae_search_hit *hits,
                                    size_t n, int lines);

/* `astembed serve`: an HTTP server (libmicrohttpd) with
 *   POST /v1/embeddings  the OpenAI embeddings API (input string or array of strings,
 *                        encoding_format float|base64), OpenAI error objects
 *   POST /embed          Text Embeddings Inference's /embed (inputs, normalize, truncate)
 *   POST /search         {query, top_k, filters{language, node_type, path}} over the
 *                        store (only with db_path): the hits of `astembed query --format json`
 *   GET  /health, /info, /metrics (Prometheus text)
 * Inputs of concurrent requests share one bounded queue, and one batcher thread
 * embeds them together (see src/serve/server.c). */
typedef struct ae_server ae_server;

typedef struct {
  const char *model_dir;         /* model folder (required unless generator->model.path is set) */
  const char *model_name;        /* name echoed in responses; NULL = the folder's last component */
  const char *db_path;           /* index database for /search; NULL = no /search (404) */
  const char *host;              /* numeric IPv4/IPv6 address to bind; NULL = "127.0.0.1" */
  int port;                      /* 0 = any free port (ae_server_port tells which) */
  const char *api_key;           /* non-NULL: every route but /health needs
                                    "Authorization: Bearer KEY" (compared in constant time) */
  const ae_generator_config *generator; /* cache, batch optimizer, memory processor;
                                    NULL = the defaults */
  const char *load_cache_dir;    /* ae_encoder_options.cache_dir; NULL = none */
  size_t max_body_bytes;         /* request body bound; 0 = 4 MiB (413 beyond) */
  size_t max_inputs;             /* inputs per request; 0 = 2048 (413 beyond) */
  size_t max_input_bytes;        /* bytes per input; 0 = 256 KiB (413 beyond) */
  size_t max_queue;              /* queued inputs; 0 = 4096 (429 + Retry-After beyond) */
  int max_batch_items;           /* most inputs per batch; 0 = the optimizer's and the
                                    memory strategy's; 1 = no cross-request batching */
  double max_wait_ms;            /* how long the batcher waits for more inputs once one
                                    is queued; 0 = 2 ms; negative = no wait */
  unsigned timeout_s;            /* idle connection timeout (slow clients); 0 = 30 */
  unsigned threads;              /* HTTP threads; 0 = 2 */
  unsigned max_connections;      /* 0 = 512 */
  int quiet;                     /* no request log lines on stderr */
} ae_server_options;

AE_EXTERN void ae_server_options_default(ae_server_options *o);
/* Loads the model (and opens the store read-only when db_path is set), binds the
 * address and starts serving. AE_EINVAL names a bad option; AE_EIO when the address
 * cannot be bound. */
AE_EXTERN int ae_server_new(const ae_server_options *o, ae_server **out);
/* The bound TCP port. */
AE_EXTERN int ae_server_port(const ae_server *s);
/* Blocks until ae_server_stop, then stops accepting connections, answers every
 * request already accepted (new requests on open connections get 503), waits for the
 * responses to be sent (at most timeout_s) and returns AE_OK. */
AE_EXTERN int ae_server_run(ae_server *s);
/* Async-signal-safe (call it from a SIGTERM handler). */
AE_EXTERN void ae_server_stop(ae_server *s);
AE_EXTERN void ae_server_free(ae_server *s);

/* ======================================================================== */
/* Lexical and hybrid search (src/store/lexical.c, src/store/fts_tokenizer.c) */
/* ======================================================================== */

/* The index keeps an FTS5 table over every annotation (signature, summary, code with
 * comments, file path, node type) in the same transactions as the vectors, tokenized
 * for code (identifiers split at camelCase, snake_case, digits and acronyms, the whole
 * identifier kept as a colocated token, case folded, porter-stemmed). */
enum {
  AE_SEARCH_HYBRID = 0,   /* RRF of the lexical and the vector ranking */
  AE_SEARCH_VECTOR = 1,   /* exact cosine (ae_store_search) */
  AE_SEARCH_LEXICAL = 2   /* FTS5 bm25() with tuned column weights; needs no model */
};

typedef struct {
  int mode;               /* AE_SEARCH_*; default AE_SEARCH_HYBRID */
  size_t k;               /* results; default 10 */
  float min_score;        /* cosine floor on vector candidates (vector and hybrid
                             modes); default -1 (none); lexical mode ignores it */
  const char *language;   /* NULL or "" = any; else annotations.language equals it */
  const char *node_type;  /* NULL or "" = any; else annotations.node_type equals it */
  const char *path_glob;  /* NULL or "" = any; else file_path GLOB it (SQLite GLOB:
                             case-sensitive, '*' also crosses '/') */
} ae_search_options;

AE_EXTERN void ae_search_options_default(ae_search_options *o);
/* "hybrid", "vector" or "lexical" -> AE_SEARCH_* (-1 for anything else) and back. */
AE_EXTERN int ae_search_mode_parse(const char *name);
AE_EXTERN const char *ae_search_mode_name(int mode);

/* Searches in o->mode with o's filters. text: the query text (lexical and hybrid
 * modes; may be NULL in vector mode). fp/query/dim: the model fingerprint and the
 * query's vector (vector and hybrid modes; may be NULL/0 in lexical mode, which
 * never needs a model). Hits (ae_search_hits_free) come best first with their
 * lexical_rank and vector_rank. AE_EINVAL names a missing input; AE_EUNSUPPORTED
 * when the index has no lexical table (a schema-1/2 file opened read-only: open it
 * once for writing to upgrade it). */
AE_EXTERN int ae_store_search_ex(ae_store *s, const ae_search_options *o, const char *text,
                                 const uint8_t *fp, const float *query, int dim,
                                 ae_search_hit **hits, size_t *n_hits);

/* The mode a query takes when none is given: AE_SEARCH_HYBRID when the index holds
 * current vectors of its most recent model and that model's folder is not a
 * random-weight one (ae_model_is_random), else AE_SEARCH_LEXICAL; AE_SEARCH_VECTOR
 * when the file has vectors but no lexical index (schema 1/2 opened read-only).
 * *why (may be NULL) gets a static one-line reason. */
AE_EXTERN int ae_store_default_mode(ae_store *s, const char **why);

/* 1 when dir was written by ae_model_init_random (it leaves RANDOM-WEIGHTS.txt there),
 * 0 otherwise. */
AE_EXTERN int ae_model_is_random(const char *dir);

/* Annotations rows and lexical-index rows: equal whenever no transaction is open
 * (what tests check after embed, prune and kills). */
AE_EXTERN int ae_store_lexical_count(ae_store *s, uint64_t *annotations, uint64_t *indexed);
/* Index nodes and the MCP server (src/store/nodes.c, src/mcp)               */
/* ======================================================================== */

/* One stored node as the index holds it (strings allocated; ae_node_clear). */
typedef struct {
  char *node_id, *file_path, *node_type, *language, *signature, *summary, *snippet;
  int start_line, end_line;
  int64_t updated_at;    /* unix seconds of the last change of the annotation's row */
  int vectors;           /* stored vectors of the node, all models */
  int current_vectors;   /* of which embed the annotation's current text */
} ae_node;
AE_EXTERN void ae_node_clear(ae_node *n);
AE_EXTERN void ae_nodes_free(ae_node *nodes, size_t n);
/* The node node_id (AE_ENOTFOUND naming it when the index has none). */
AE_EXTERN int ae_store_node_get(ae_store *s, const char *node_id, ae_node *out);
/* The nodes of one file (node_type NULL = all types) in line order; at most limit
 * (0 = all); *more (may be NULL) = 1 when nodes were left out. */
AE_EXTERN int ae_store_file_nodes(ae_store *s, const char *file_path, const char *node_type,
                                  size_t limit, ae_node **out, size_t *n, int *more);
/* The nodes changed (added, or re-embedded because their text changed) at or after
 * since (unix seconds), most recent first; at most limit (0 = all). */
AE_EXTERN int ae_store_recent_nodes(ae_store *s, int64_t since, size_t limit, ae_node **out,
                                    size_t *n, int *more);
/* What `astembed stats --json` prints: totals, generation and the models, read in one
 * transaction (allocated JSON text; ae_free). db_label: the "db" member (NULL = path). */
AE_EXTERN int ae_store_stats_json(ae_store *s, const char *db_label, char **out);

/* The Model Context Protocol server: JSON-RPC 2.0, one message per line, read from
 * in_fd and answered on out_fd (nothing else is written there; logs go to stderr).
 * Speaks the legacy revisions (initialize handshake: 2025-11-25, 2025-06-18,
 * 2025-03-26, 2024-11-05) and the stateless 2026-07-28 (server/discover, per-request
 * _meta) side by side, with the tools query_ast_context, get_node_details,
 * list_recent_changes, ast_file_query and index_status. The model is loaded by the
 * first call that needs it; every search first checks the index's generation and
 * reloads the vectors when another process has written the index. Returns AE_OK at
 * end of input or when *stop becomes non-zero (checked whenever a read is
 * interrupted by a signal). */
typedef struct {
  const char *db_path;         /* NULL = AE_STORE_DEFAULT_PATH */
  const char *model;           /* NULL = the model the index records, else fallback_model */
  const char *fallback_model;  /* used when neither model nor a recorded one exists */
  const char *cache_dir;       /* load cache (ae_encoder_options.cache_dir), NULL = none */
  int threads;                 /* encoder threads, 0 = 1 */
  int workers;                 /* concurrent tool calls, 0 = 4; -1 = none: every request
                                * is answered in the reading thread, in order */
  size_t max_line_bytes;       /* longest message accepted, 0 = 4 MiB */
  volatile int *stop;          /* may be NULL */
  int verbose;                 /* 1 = log each request to stderr */
} ae_mcp_options;
AE_EXTERN int ae_mcp_serve(const ae_mcp_options *o, int in_fd, int out_fd);
/* ---- CPU path ---------------------------------------------------------------
 * The hand-written kernels exist for AVX-512, AVX2+FMA and portable C; the best one
 * the CPU has is chosen once per process (at the first encoder load or call here),
 * capped by the environment variable ASTEMBED_CPU=avx512|avx2|generic, which caps
 * oneDNN's instruction set too. Returns "avx512", "avx2" or "generic" (always
 * "generic" off x86-64), or NULL when ASTEMBED_CPU holds another value
 * (ae_last_error() says which). */
AE_EXTERN const char *ae_cpu_path(void);

/* ---- Hugging Face Hub: models by name (src/hub) ------------------------------------
 * ORG/NAME[@REV] names a model repository on the Hub (REV: branch, tag or commit;
 * default main). Snapshots live in the cache huggingface_hub uses ($HF_HUB_CACHE, else
 * $HF_HOME/hub, HF_HOME defaulting to $XDG_CACHE_HOME/huggingface or
 * ~/.cache/huggingface), so either tool serves the other's downloads. */
enum { AE_HUB_FILE_START, AE_HUB_FILE_PROGRESS, AE_HUB_FILE_DONE };
typedef struct {
  int event;               /* AE_HUB_FILE_* */
  const char *file;        /* path inside the repository */
  int file_index, file_count;
  uint64_t file_done, file_total;   /* bytes of this file (file_total 0: unknown) */
  uint64_t done, total;    /* bytes of every file of the pull */
  int cached;              /* FILE_DONE: it was already in the cache, nothing downloaded */
} ae_hub_progress;
typedef void (*ae_hub_progress_fn)(void *ud, const ae_hub_progress *p);

typedef struct {
  const char *endpoint;    /* NULL: $HF_ENDPOINT, else https://huggingface.co */
  const char *cache_dir;   /* NULL: the Hugging Face cache above */
  const char *token;       /* NULL: $HF_TOKEN, else the file $HF_TOKEN_PATH or $HF_HOME/token */
  const char *revision;    /* overrides the spec's @REV */
  int offline;             /* 1: no network (also when $HF_HUB_OFFLINE is 1, true, yes or on) */
  int readme;              /* 1: also fetch README.md */
  ae_hub_progress_fn progress;
  void *progress_ud;
} ae_hub_options;

/* 1 when spec is ORG/NAME[@REV] and not an existing file or folder (an existing
 * folder always wins), else 0. */
AE_EXTERN int ae_hub_is_model_name(const char *spec);
/* The cached snapshot folder of spec (ae_free), without the network. AE_ENOTFOUND,
 * with the exact `astembed model pull` command in ae_last_error(), when it is not
 * cached or incomplete. */
AE_EXTERN int ae_hub_resolve(const char *spec, const ae_hub_options *o, char **dir);
/* Downloads what an encoder needs (config, model.safetensors, tokenizer and
 * sentence-transformers files) into the cache and returns the snapshot folder
 * (ae_free). Already cached blobs are not fetched again. Offline: ae_hub_resolve. */
AE_EXTERN int ae_hub_pull(const char *spec, const ae_hub_options *o, char **dir);
/* spec's folder: an existing path as is; ORG/NAME[@REV] its cached snapshot, or pulled
 * first when auto_pull and online. */
AE_EXTERN int ae_hub_model_dir(const char *spec, const ae_hub_options *o, int auto_pull, char **dir);

typedef struct {
  const char *repo;        /* ORG/NAME */
  const char *refs;        /* the revisions naming this commit, comma-separated ("" none) */
  const char *commit;
  const char *path;        /* the snapshot folder */
  uint64_t bytes;          /* its files' blobs */
  int64_t last_used;       /* newest access time of its blobs, Unix seconds */
  int complete;            /* 1: config.json and model.safetensors are present */
} ae_hub_cached;
typedef void (*ae_hub_cached_fn)(void *ud, const ae_hub_cached *m);
/* Calls fn for every snapshot in the cache, by repository then commit. */
AE_EXTERN int ae_hub_list(const ae_hub_options *o, ae_hub_cached_fn fn, void *ud);
/* Removes repo (ORG/NAME) from the cache: its blobs, snapshots, refs and locks. Never
 * follows a symlink out of the repository folder. AE_ENOTFOUND when not cached. */
AE_EXTERN int ae_hub_remove(const char *repo, const ae_hub_options *o);
/* 1 when dir is a snapshot folder of the cache layout (.../models--ORG--NAME/
 * snapshots/COMMIT), with repo "ORG/NAME" and commit copied out; else 0. */
AE_EXTERN int ae_hub_snapshot_info(const char *dir, char *repo, size_t repo_cap,
                                   char *commit, size_t commit_cap);

#ifdef __cplusplus
}
#endif
#endif /* ASTEMBED_H */
