/* astembed serve: the embedding server (src/serve) from the command line. Uses only
 * the public API. SIGTERM and SIGINT stop it cleanly: no new connections, every
 * accepted request answered, exit 0. */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f,
    "usage: astembed serve --model DIR [--db PATH] [--host 127.0.0.1] [--port 8080]\n"
    "                      [--api-key KEY] [--config FILE] [options]\n\n"
    "Serves embeddings over HTTP: POST /v1/embeddings (OpenAI), POST /embed (Text\n"
    "Embeddings Inference), POST /search (with --db), GET /health, /info, /metrics.\n"
    "Inputs of concurrent requests are embedded together in shared batches.\n\n"
    "  --model DIR            model folder (default $ASTEMBED_MODEL)\n"
    "  --db PATH              index database for /search (read-only)\n"
    "  --host ADDR            numeric address to bind (default 127.0.0.1)\n"
    "  --port N               TCP port (default 8080; 0 = any free port, printed)\n"
    "  --api-key KEY          require 'Authorization: Bearer KEY' (default\n"
    "                         $ASTEMBED_API_KEY; /health stays open)\n"
    "  --config FILE          generator configuration (cache, batchOptimizer,\n"
    "                         memoryProcessor; see config/README.md)\n"
    "  --precision f32|bf16   encoder precision (default f32)\n"
    "  --threads N            encoder threads (default: all CPUs)\n"
    "  --max-batch-items N    most inputs per batch (default: the batch optimizer's\n"
    "                         and memory strategy's; 1 = no cross-request batching)\n"
    "  --max-wait-ms MS       how long a batch waits for more inputs (default 2)\n"
    "  --max-queue N          queued inputs before 429 (default 4096)\n"
    "  --max-inputs N         inputs per request (default 2048)\n"
    "  --max-body-bytes N     request body bound (default 4194304)\n"
    "  --max-input-bytes N    bytes per input (default 262144)\n"
    "  --timeout S            idle/slow connection timeout in seconds (default 30)\n"
    "  --http-threads N       HTTP threads (default 2)\n"
    "  --max-connections N    (default 512)\n"
    "  --quiet                no startup line\n");
}

static ae_server *g_server;

static void on_signal(int sig) {
  (void)sig;
  if (g_server) ae_server_stop(g_server);
}

static int number(const char *opt, const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = s ? strtod(s, &end) : 0;
  if (!s || errno || *end || !*s || !(v >= lo && v <= hi)) {
    fprintf(stderr, "astembed serve: %s needs a number in [%g, %g], got '%s'\n", opt, lo, hi, s ? s : "");
    return -1;
  }
  *out = v;
  return 0;
}

int cmd_serve(int argc, char **argv) {
  ae_server_options o;
  ae_server_options_default(&o);
  o.port = 8080;
  const char *config = NULL, *precision = NULL;
  int threads = 0;
  o.api_key = getenv("ASTEMBED_API_KEY");
  if (o.api_key && !*o.api_key) o.api_key = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return CLI_OK; }
    if (!strcmp(a, "--quiet")) { o.quiet = 1; continue; }
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    double x = 0;
    int bad = 0;
    if (!v) { fprintf(stderr, "astembed serve: unknown or incomplete option '%s'\n\n", a); usage(stderr); return CLI_USAGE; }
    i++;
    if (!strcmp(a, "--model")) o.model_dir = v;
    else if (!strcmp(a, "--db")) o.db_path = v;
    else if (!strcmp(a, "--host")) o.host = v;
    else if (!strcmp(a, "--api-key")) o.api_key = v;
    else if (!strcmp(a, "--config")) config = v;
    else if (!strcmp(a, "--precision")) { if (cli_parse_precision("serve", v) < 0) return CLI_USAGE; precision = v; }
    else if (!strcmp(a, "--port")) { bad = number(a, v, 0, 65535, &x); o.port = (int)x; }
    else if (!strcmp(a, "--threads")) { bad = number(a, v, 0, 1024, &x); threads = (int)x; }
    else if (!strcmp(a, "--max-batch-items")) { bad = number(a, v, 1, 1 << 20, &x); o.max_batch_items = (int)x; }
    else if (!strcmp(a, "--max-wait-ms")) { bad = number(a, v, 0, 10000, &x); o.max_wait_ms = x > 0 ? x : -1; }
    else if (!strcmp(a, "--max-queue")) { bad = number(a, v, 1, 1 << 24, &x); o.max_queue = (size_t)x; }
    else if (!strcmp(a, "--max-inputs")) { bad = number(a, v, 1, 1 << 20, &x); o.max_inputs = (size_t)x; }
    else if (!strcmp(a, "--max-body-bytes")) { bad = number(a, v, 64, 1ull << 34, &x); o.max_body_bytes = (size_t)x; }
    else if (!strcmp(a, "--max-input-bytes")) { bad = number(a, v, 1, 1ull << 30, &x); o.max_input_bytes = (size_t)x; }
    else if (!strcmp(a, "--timeout")) { bad = number(a, v, 1, 86400, &x); o.timeout_s = (unsigned)x; }
    else if (!strcmp(a, "--http-threads")) { bad = number(a, v, 1, 256, &x); o.threads = (unsigned)x; }
    else if (!strcmp(a, "--max-connections")) { bad = number(a, v, 1, 100000, &x); o.max_connections = (unsigned)x; }
    else { fprintf(stderr, "astembed serve: unknown option '%s'\n\n", a); usage(stderr); return CLI_USAGE; }
    if (bad) return CLI_USAGE;
  }
  if (!o.model_dir) o.model_dir = cli_default_model();
  if (!o.model_dir) { fprintf(stderr, "astembed serve: no model: pass --model DIR or set ASTEMBED_MODEL\n"); return CLI_USAGE; }
  if (o.max_inputs > o.max_queue) {
    fprintf(stderr, "astembed serve: --max-inputs (%zu) must not exceed --max-queue (%zu)\n", o.max_inputs, o.max_queue);
    return CLI_USAGE;
  }
  ae_generator_config cfg;
  ae_generator_config_default(&cfg);
  int rc;
  if (config && (rc = ae_generator_config_load_file(&cfg, config))) return cli_fail("reading the configuration", rc);
  if (threads) cfg.model.threads = threads;
  if (precision) cfg.model.precision = ae_precision_parse(precision);
  o.generator = &cfg;
  o.load_cache_dir = cli_load_cache_dir();
  ae_server *s;
  if ((rc = ae_server_new(&o, &s))) return cli_fail("starting the server", rc);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  g_server = s;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (!o.quiet)
    fprintf(stderr, "astembed serve: listening on http://%s:%d (model %s)\n", o.host ? o.host : "127.0.0.1",
            ae_server_port(s), o.model_dir);
  rc = ae_server_run(s);
  g_server = NULL;
  ae_server_free(s);
  if (rc) return cli_fail("serving", rc);
  if (!o.quiet) fprintf(stderr, "astembed serve: stopped\n");
  return CLI_OK;
}
