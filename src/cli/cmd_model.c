/* astembed model: inspect a model folder (info) or write a random-weight one
 * (init-random) for tests and benchmarks. */
#include "cli/cli.h"
#include "model/model.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f,
    "usage: astembed model info [--model DIR] [--max-length N] [--json]\n"
    "       astembed model init-random --like DIR --out DIR [--seed N] [--dtype F32|F16|BF16]\n"
    "                [--layers N] [--hidden N] [--heads N] [--intermediate N]\n"
    "                [--max-positions N] [--act gelu|gelu_new|relu] [--max-seq-length N]\n"
    "                [--pooling mean|cls|max|mean_sqrt_len] [--normalize | --no-normalize]\n"
    "                [--bert-prefix]\n\n"
    "info         loads and validates a Hugging Face BERT model folder (config.json,\n"
    "             model.safetensors, sentence-transformers files) and prints its shape,\n"
    "             weight dtype, pooling, normalisation, max length, parameter count and\n"
    "             fingerprint. --model defaults to $ASTEMBED_MODEL.\n"
    "init-random  writes a model folder with --like's config, tokenizer and\n"
    "             sentence-transformers files and deterministic random weights (seed 0\n"
    "             by default); the other options change the shape or the pipeline.\n");
}

/* Parses a non-negative integer option value; -1 on error. */
static long long parse_num(const char *opt, const char *s) {
  char *end;
  errno = 0;
  long long v = s ? strtoll(s, &end, 10) : -1;
  if (!s || errno || *end || v < 0 || end == s) {
    fprintf(stderr, "astembed model: %s needs a non-negative integer, got '%s'\n", opt, s ? s : "");
    return -1;
  }
  return v;
}

static int print_info(const ae__bert_model *m, int json) {
  char fp[33];
  for (int i = 0; i < 16; i++) snprintf(fp + 2 * i, 3, "%02x", m->fingerprint[i]);
  const ae__bert_config *c = &m->cfg;
  if (json) {
    char eps[32]; /* the float's shortest decimal, not its double expansion */
    snprintf(eps, sizeof eps, "%.7g", (double)c->ln_eps);
    json_t *o = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:s,s:i,s:s,s:s,s:b,s:i,s:I,s:b,s:s}",
        "model", m->dir, "hidden_size", c->hidden, "num_hidden_layers", c->layers,
        "num_attention_heads", c->heads, "intermediate_size", c->intermediate,
        "vocab_size", c->vocab, "max_position_embeddings", c->max_positions,
        "type_vocab_size", c->type_vocab, "layer_norm_eps", strtod(eps, NULL),
        "hidden_act", ae__act_name(c->act), "pad_token_id", c->pad_id, "dtype", m->dtype,
        "pooling", ae__pooling_name(m->pooling), "normalize", m->normalize,
        "max_length", m->max_length, "parameters", (json_int_t)m->n_params,
        "bert_prefix", m->bert_prefix, "fingerprint", fp);
    json_object_set_new(o, "cpu_path", json_string(ae_cpu_path()));
    char *s = json_dumps(o, JSON_COMPACT);
    puts(s ? s : "{}");
    free(s);
    json_decref(o);
    return CLI_OK;
  }
  printf("model:        %s\n", m->dir);
  printf("architecture: BERT, %d layers, hidden %d, %d heads, intermediate %d, %s\n", c->layers,
         c->hidden, c->heads, c->intermediate, ae__act_name(c->act));
  printf("vocabulary:   %d tokens, %d positions, %d token types, pad id %d\n", c->vocab,
         c->max_positions, c->type_vocab, c->pad_id);
  printf("layer norm:   eps %g\n", (double)c->ln_eps);
  printf("weights:      %s%s, %lld parameters\n", m->dtype, m->bert_prefix ? " (bert. prefix)" : "",
         (long long)m->n_params);
  printf("pooling:      %s%s\n", ae__pooling_name(m->pooling), m->normalize ? ", L2-normalised" : "");
  printf("max length:   %d tokens\n", m->max_length);
  printf("fingerprint:  %s\n", fp);
  printf("cpu path:     %s\n", ae_cpu_path());
  return CLI_OK;
}

static int cmd_info(int argc, char **argv) {
  const char *dir = cli_default_model();
  int json = 0;
  long long max_len = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return CLI_OK; }
    else if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--model") && i + 1 < argc) dir = argv[++i];
    else if (!strcmp(a, "--max-length") && i + 1 < argc) {
      if ((max_len = parse_num(a, argv[++i])) < 0 || max_len > 1 << 20) return CLI_USAGE;
    } else {
      fprintf(stderr, "astembed model info: unknown or incomplete option '%s'\n", a);
      return CLI_USAGE;
    }
  }
  if (!dir) {
    fprintf(stderr, "astembed model info: --model DIR is required (or set ASTEMBED_MODEL)\n");
    return CLI_USAGE;
  }
  if (!ae_cpu_path()) {
    fprintf(stderr, "astembed model info: %s\n", ae_last_error());
    return CLI_USAGE;
  }
  ae__bert_model *m;
  int rc = ae__bert_load(dir, (int)max_len, &m);
  if (rc) return cli_fail("model info", rc);
  rc = print_info(m, json);
  ae__bert_free(m);
  return rc;
}

/* Integer options of init-random and where each goes. */
static int *int_option(ae__init_random_options *o, const char *a) {
  if (!strcmp(a, "--layers")) return &o->layers;
  if (!strcmp(a, "--hidden")) return &o->hidden;
  if (!strcmp(a, "--heads")) return &o->heads;
  if (!strcmp(a, "--intermediate")) return &o->intermediate;
  if (!strcmp(a, "--max-positions")) return &o->max_positions;
  if (!strcmp(a, "--max-seq-length")) return &o->max_seq_length;
  return NULL;
}

static int cmd_init_random(int argc, char **argv) {
  ae__init_random_options o;
  ae__init_random_options_default(&o);
  const char *like = NULL, *out = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int *slot;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return CLI_OK; }
    else if (!strcmp(a, "--bert-prefix")) o.bert_prefix = 1;
    else if (!strcmp(a, "--normalize")) o.normalize = 1;
    else if (!strcmp(a, "--no-normalize")) o.normalize = 0;
    else if (!v) { fprintf(stderr, "astembed model init-random: unknown or incomplete option '%s'\n", a); return CLI_USAGE; }
    else if (!strcmp(a, "--like")) like = argv[++i];
    else if (!strcmp(a, "--out")) out = argv[++i];
    else if (!strcmp(a, "--dtype")) o.dtype = argv[++i];
    else if (!strcmp(a, "--act")) o.hidden_act = argv[++i];
    else if (!strcmp(a, "--seed")) {
      char *end;
      errno = 0;
      o.seed = strtoull(argv[++i], &end, 0);
      if (errno || *end || !*argv[i]) { fprintf(stderr, "astembed model init-random: bad --seed '%s'\n", argv[i]); return CLI_USAGE; }
    } else if (!strcmp(a, "--pooling")) {
      if ((o.pooling = ae__pooling_from_name(argv[++i])) < 0) {
        fprintf(stderr, "astembed model init-random: --pooling must be mean, cls, max or mean_sqrt_len\n");
        return CLI_USAGE;
      }
    } else if ((slot = int_option(&o, a))) {
      long long n = parse_num(a, argv[++i]);
      if (n <= 0 || n > 1 << 24) { if (n == 0) fprintf(stderr, "astembed model init-random: %s must be positive\n", a); return CLI_USAGE; }
      *slot = (int)n;
    } else { fprintf(stderr, "astembed model init-random: unknown option '%s'\n", a); return CLI_USAGE; }
  }
  if (!like || !out) {
    fprintf(stderr, "astembed model init-random: --like DIR and --out DIR are required\n");
    return CLI_USAGE;
  }
  if (strcmp(o.dtype, "F32") && strcmp(o.dtype, "F16") && strcmp(o.dtype, "BF16")) {
    fprintf(stderr, "astembed model init-random: --dtype must be F32, F16 or BF16\n");
    return CLI_USAGE;
  }
  int rc = ae__model_init_random_ex(like, out, &o);
  if (rc) return cli_fail("model init-random", rc);
  return CLI_OK;
}

int cmd_model(int argc, char **argv) {
  if (argc < 2) { usage(stderr); return CLI_USAGE; }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { usage(stdout); return CLI_OK; }
  if (!strcmp(argv[1], "info")) return cmd_info(argc - 1, argv + 1);
  if (!strcmp(argv[1], "init-random")) return cmd_init_random(argc - 1, argv + 1);
  fprintf(stderr, "astembed model: unknown subcommand '%s'\n", argv[1]);
  usage(stderr);
  return CLI_USAGE;
}
