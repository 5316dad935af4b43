/* astembed model: inspect a model folder (info) or write a random-weight one
 * (init-random) for tests and benchmarks. */
#include "cli.h"

#include <jansson.h>
#include <limits.h>
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
  cli_model_hub_usage(f);
}

static int print_info(const char *dir, const ae_model_info *m, int json) {
  char fp[33];
  for (int i = 0; i < 16; i++) snprintf(fp + 2 * i, 3, "%02x", m->fingerprint[i]);
  if (json) {
    char eps[32]; /* the float's shortest decimal, not its double expansion */
    snprintf(eps, sizeof eps, "%.7g", (double)m->layer_norm_eps);
    json_t *o = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:s,s:i,s:s,s:s,s:b,s:i,s:I,s:b,s:s}",
        "model", dir, "hidden_size", m->hidden_size, "num_hidden_layers", m->num_hidden_layers,
        "num_attention_heads", m->num_attention_heads, "intermediate_size", m->intermediate_size,
        "vocab_size", m->vocab_size, "max_position_embeddings", m->max_position_embeddings,
        "type_vocab_size", m->type_vocab_size, "layer_norm_eps", strtod(eps, NULL),
        "hidden_act", m->hidden_act, "pad_token_id", m->pad_token_id, "dtype", m->dtype,
        "pooling", ae_pooling_name(m->pooling), "normalize", m->normalize,
        "max_length", m->max_length, "parameters", (json_int_t)m->parameters,
        "bert_prefix", m->bert_prefix, "fingerprint", fp);
    json_object_set_new(o, "cpu_path", json_string(ae_cpu_path()));
    char *s = json_dumps(o, JSON_COMPACT);
    puts(s ? s : "{}");
    free(s);
    json_decref(o);
    return CLI_OK;
  }
  printf("model:        %s\n", dir);
  printf("architecture: BERT, %d layers, hidden %d, %d heads, intermediate %d, %s\n",
         m->num_hidden_layers, m->hidden_size, m->num_attention_heads, m->intermediate_size,
         m->hidden_act);
  printf("vocabulary:   %d tokens, %d positions, %d token types, pad id %d\n", m->vocab_size,
         m->max_position_embeddings, m->type_vocab_size, m->pad_token_id);
  printf("layer norm:   eps %g\n", (double)m->layer_norm_eps);
  printf("weights:      %s%s, %lld parameters\n", m->dtype, m->bert_prefix ? " (bert. prefix)" : "",
         (long long)m->parameters);
  printf("pooling:      %s%s\n", ae_pooling_name(m->pooling), m->normalize ? ", L2-normalised" : "");
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
      if (cli_parse_int("model info", a, argv[++i], 0, 1 << 20, &max_len)) return CLI_USAGE;
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
  char *folder;
  if (cli_model_dir("model info", dir, 1, &folder)) return CLI_FAIL;
  ae_model_info m;
  int rc = ae_model_info_load(folder, (int)max_len, &m);
  free(folder);
  if (rc) return cli_fail("model info", rc);
  return print_info(dir, &m, json);
}

/* Integer options of init-random and where each goes. */
static int *int_option(ae_model_random_options *o, const char *a) {
  if (!strcmp(a, "--layers")) return &o->layers;
  if (!strcmp(a, "--hidden")) return &o->hidden;
  if (!strcmp(a, "--heads")) return &o->heads;
  if (!strcmp(a, "--intermediate")) return &o->intermediate;
  if (!strcmp(a, "--max-positions")) return &o->max_positions;
  if (!strcmp(a, "--max-seq-length")) return &o->max_seq_length;
  return NULL;
}

static int cmd_init_random(int argc, char **argv) {
  ae_model_random_options o;
  ae_model_random_options_default(&o);
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
      long long seed;
      if (cli_parse_int("model init-random", a, argv[++i], 0, LLONG_MAX, &seed)) return CLI_USAGE;
      o.seed = (uint64_t)seed;
    } else if (!strcmp(a, "--pooling")) {
      if ((o.pooling = ae_pooling_parse(argv[++i])) < 0) {
        fprintf(stderr, "astembed model init-random: --pooling must be mean, cls, max or mean_sqrt_len\n");
        return CLI_USAGE;
      }
    } else if ((slot = int_option(&o, a))) {
      long long n;
      if (cli_parse_int("model init-random", a, argv[++i], 1, 1 << 24, &n)) return CLI_USAGE;
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
  int rc = ae_model_init_random_opts(like, out, &o);
  if (rc) return cli_fail("model init-random", rc);
  return CLI_OK;
}

int cmd_model(int argc, char **argv) {
  if (argc < 2) { usage(stderr); return CLI_USAGE; }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { usage(stdout); return CLI_OK; }
  if (!strcmp(argv[1], "info")) return cmd_info(argc - 1, argv + 1);
  if (!strcmp(argv[1], "init-random")) return cmd_init_random(argc - 1, argv + 1);
  if (!strcmp(argv[1], "pull")) return cli_model_pull(argc - 1, argv + 1);
  if (!strcmp(argv[1], "list")) return cli_model_list(argc - 1, argv + 1);
  if (!strcmp(argv[1], "rm")) return cli_model_rm(argc - 1, argv + 1);
  fprintf(stderr, "astembed model: unknown subcommand '%s'\n", argv[1]);
  usage(stderr);
  return CLI_USAGE;
}
