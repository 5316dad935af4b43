/* The embedding server's private parts: request parsing (also the fuzz target's
 * entry), the batcher and the request it answers. See server.c for the design. */
#ifndef AE_SERVE_H
#define AE_SERVE_H
#include "common/common.h"
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- request bodies (parse.c) ---- */

enum { AE__FMT_FLOAT = 0, AE__FMT_BASE64 = 1 };

typedef struct {
  size_t max_inputs;        /* per request */
  size_t max_input_bytes;   /* per input */
} ae__serve_limits;

/* A parse failure: HTTP status (400 malformed JSON, 413 too many / too large inputs,
 * 422 wrong types or values), the message, and the member it is about. */
typedef struct {
  int status;
  char param[32];
  char message[256];
} ae__serve_error;

/* An embeddings request (OpenAI or TEI): texts point into root's strings. */
typedef struct {
  json_t *root;
  size_t n;
  const char **texts;
  size_t *lens;
  int format;               /* AE__FMT_* (OpenAI encoding_format) */
  int normalize;            /* TEI normalize (default 1) */
  int truncate;             /* TEI truncate (default 0: an over-long input is 413);
                               OpenAI: 1 */
  int input_is_array;       /* TEI: a single string answers [[...]] too */
  const char *model;        /* OpenAI model member, or NULL */
  int dimensions;           /* OpenAI dimensions, -1 = not given */
} ae__embed_request;

typedef struct {
  json_t *root;
  const char *query;
  size_t query_len;
  size_t top_k;             /* default 10, 1..1000 */
  const char *language, *node_type, *path;  /* filters, NULL = any */
  int mode;                 /* AE_SEARCH_*, -1 = the index's default */
} ae__search_request;

/* 0, or the status of e. On success the request holds root (free with
 * ae__embed_request_free). */
int ae__parse_openai(const char *body, size_t len, const ae__serve_limits *lim, ae__embed_request *r,
                     ae__serve_error *e);
int ae__parse_tei(const char *body, size_t len, const ae__serve_limits *lim, ae__embed_request *r,
                  ae__serve_error *e);
void ae__embed_request_free(ae__embed_request *r);
int ae__parse_search(const char *body, size_t len, const ae__serve_limits *lim, ae__search_request *r,
                     ae__serve_error *e);
void ae__search_request_free(ae__search_request *r);

/* ---- the batcher (batcher.c) ---- */

/* One request's inputs as the batcher sees them. The submitter fills texts, lens,
 * tokens and n; the batcher writes vecs[i * dim], status[i] and, when the last input
 * is done, calls done(done_ud) once (after which it never touches the job). */
typedef struct ae__serve_job {
  size_t n;
  const char *const *texts;
  const size_t *lens;
  const int *tokens;        /* per input, after truncation */
  float *vecs;
  int *status;
  int *from_cache;
  size_t pending;           /* batcher-owned */
  void (*done)(struct ae__serve_job *job, void *ud);
  void *done_ud;
} ae__serve_job;

typedef struct ae__batcher ae__batcher;

typedef struct {
  size_t max_queue;         /* inputs */
  int max_batch_items;      /* 0 = optimizer / strategy */
  double max_wait_ms;       /* < 0: none */
} ae__batcher_options;

/* Histogram buckets of the batch sizes and tokens. */
#define AE__HIST_MAX 16
typedef struct {
  int n;                    /* buckets used */
  double le[AE__HIST_MAX];  /* upper bounds (the +Inf bucket is implied) */
  uint64_t count[AE__HIST_MAX + 1];
  double sum;
  uint64_t total;
} ae__hist;
void ae__hist_init(ae__hist *h, const double *le, int n);
void ae__hist_add(ae__hist *h, double v);

typedef struct {
  size_t queue_depth, queue_capacity;
  uint64_t rejected_full;
  ae__hist batch_items, batch_tokens;
  ae_performance_metrics perf;
} ae__batcher_stats;

/* g: an initialised generator, used only by the batcher thread from now on. */
int ae__batcher_new(ae_generator *g, const ae_generator_config *cfg, const ae__batcher_options *o,
                    ae__batcher **out);
/* Queues every input of job, or none: AE_ERANGE when the queue cannot take them all
 * now (the caller answers 429), AE_ESTATE once draining. */
int ae__batcher_submit(ae__batcher *b, ae__serve_job *job);
/* Stops taking jobs, embeds everything queued, then joins the thread. */
void ae__batcher_drain(ae__batcher *b);
void ae__batcher_free(ae__batcher *b);
void ae__batcher_stats_get(ae__batcher *b, ae__batcher_stats *st);
#endif
