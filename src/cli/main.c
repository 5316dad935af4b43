/* astembed: dispatch to subcommands. */
#define _GNU_SOURCE
#include "cli.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cmd_model(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_mcp(int argc, char **argv);

/* Subcommands, one per cmd_*.c file. */
static const cli_command commands[] = {
  {"model", cmd_model, "inspect a model folder or write a random-weight one"},
  {"tokenize", cmd_tokenize, "tokenize JSONL texts into BERT ids (exact against Hugging Face)"},
  {"encode", cmd_encode, "embed JSONL texts with the model (JSONL or raw float32 out)"},
  {"embed", cmd_embed, "embed annotations (JSONL or SQLite) into the index database"},
  {"query", cmd_query, "semantic search over the index"},
  {"stats", cmd_stats, "what the index holds"},
  {"serve", cmd_serve, "HTTP embedding server (OpenAI /v1/embeddings, /embed, /search, /metrics)"},
  {"mcp", cmd_mcp, "serve the index to AI assistants (Model Context Protocol, stdio)"},
  {NULL, NULL, NULL},
};

static void usage(FILE *f) {
  fprintf(f, "usage: astembed <command> [options]\n\n"
             "Embed code annotations with a native BERT-family encoder, store the vectors\n"
             "in SQLite and search them.\n\ncommands:\n");
  for (const cli_command *c = commands; c->name; c++)
    fprintf(f, "  %-10s %s\n", c->name, c->summary);
  fprintf(f, "\nRun 'astembed <command> --help' for a command's options.\n"
             "Environment: ASTEMBED_MODEL (default model folder), ASTEMBED_CACHE_DIR (load\n"
             "cache, 'off' to disable), OMP_WAIT_POLICY (embed and encode default to passive),\n"
             "ASTEMBED_CPU (avx512, avx2 or generic: caps the kernels' instruction set).\n");
}

int cli_fail(const char *what, int status) {
  const char *detail = ae_last_error();
  if (detail && *detail)
    fprintf(stderr, "astembed: %s: %s: %s\n", what, ae_strerror(status), detail);
  else
    fprintf(stderr, "astembed: %s: %s\n", what, ae_strerror(status));
  return CLI_FAIL;
}

int cli_print_cpu_path(void) {
  const char *path = ae_cpu_path();
  if (!path) {
    fprintf(stderr, "astembed: %s\n", ae_last_error());
    return CLI_USAGE;
  }
  printf("cpu path: %s\n", path);
  return CLI_OK;
}

const char *cli_default_model(void) {
  const char *m = getenv("ASTEMBED_MODEL");
  return m && *m ? m : NULL;
}

int cli_parse_precision(const char *cmd, const char *value) {
  int p = ae_precision_parse(value);
  if (p < 0) fprintf(stderr, "astembed %s: bad --precision '%s' (f32 or bf16)\n", cmd, value);
  return p;
}

int cli_parse_int(const char *cmd, const char *opt, const char *value, long long lo,
                  long long hi, long long *out) {
  char *end = NULL;
  errno = 0;
  long long v = value ? strtoll(value, &end, 10) : 0;
  if (!value || !*value || errno || *end || v < lo || v > hi) {
    fprintf(stderr, "astembed %s: %s needs an integer in [%lld, %lld], got '%s'\n", cmd, opt, lo,
            hi, value ? value : "");
    return -1;
  }
  *out = v;
  return 0;
}

double cli_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *cli_load_cache_dir(void) {
  static char buf[4096];
  const char *env = getenv("ASTEMBED_CACHE_DIR");
  if (env && *env) {
    if (!strcmp(env, "off") || !strcmp(env, "0") || !strcmp(env, "none")) return NULL;
    snprintf(buf, sizeof buf, "%s", env);
    return buf;
  }
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  /* the XDG spec: a relative XDG_CACHE_HOME is invalid and ignored */
  if (xdg && xdg[0] == '/') snprintf(buf, sizeof buf, "%s/astembed", xdg);
  else if (home && *home) snprintf(buf, sizeof buf, "%s/.cache/astembed", home);
  else return NULL;
  return buf;
}

/* OpenMP threads spin at every barrier by default (libgomp: about 300,000 spins
 * before sleeping). A forward pass has about 40 barriers, so when another process
 * takes a core away, the waiting thread burns its own core spinning: measured with
 * bench_adaptive --omp-wait, small batches cost 2.5x the CPU under contention, while on
 * an idle machine the wall time of a 1,500-annotation embed is the same either way
 * (22.9 s vs 23.0 s). So the long-running commands ask for the passive policy unless
 * the user chose one. libgomp reads OMP_WAIT_POLICY once, when it is loaded, so the
 * process re-executes itself with the variable set (a few milliseconds, once); if
 * that fails it simply carries on with the default. */
static void prefer_passive_openmp(char **argv) {
  if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
  if (setenv("OMP_WAIT_POLICY", "passive", 1)) return;
  execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
  if (argc < 2) { usage(stderr); return CLI_USAGE; }
  if (!strcmp(argv[1], "embed") || !strcmp(argv[1], "encode") || !strcmp(argv[1], "serve"))
    prefer_passive_openmp(argv);
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return CLI_OK;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("astembed %s\n", ae_version());
    return cli_print_cpu_path();
  }
  for (const cli_command *c = commands; c->name; c++)
    if (!strcmp(argv[1], c->name)) return c->run(argc - 1, argv + 1);
  fprintf(stderr, "astembed: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return CLI_USAGE;
}
