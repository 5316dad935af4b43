/* astembed: dispatch to subcommands. */
#include "cli/cli.h"
#include <stdlib.h>
#include <string.h>

int cmd_model(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_encode(int argc, char **argv);

/* Subcommands, one per cmd_*.c file. */
static const cli_command commands[] = {
  {"model", cmd_model, "inspect a model folder or write a random-weight one"},
  {"tokenize", cmd_tokenize, "tokenize JSONL texts into BERT ids (exact against Hugging Face)"},
  {"encode", cmd_encode, "embed JSONL texts with the model (JSONL or raw float32 out)"},
  {"embed", cmd_embed, "embed annotations (JSONL or SQLite) into the index database"},
  {"query", cmd_query, "semantic search over the index"},
  {"stats", cmd_stats, "what the index holds"},
  {NULL, NULL, NULL},
};

static void usage(FILE *f) {
  fprintf(f, "usage: astembed <command> [options]\n\n"
             "Embed code annotations with a native BERT-family encoder, store the vectors\n"
             "in SQLite and search them.\n\ncommands:\n");
  for (const cli_command *c = commands; c->name; c++)
    fprintf(f, "  %-10s %s\n", c->name, c->summary);
  fprintf(f, "\nRun 'astembed <command> --help' for a command's options.\n"
             "Environment: ASTEMBED_MODEL (default model folder).\n");
}

int cli_fail(const char *what, int status) {
  const char *detail = ae_last_error();
  if (detail && *detail)
    fprintf(stderr, "astembed: %s: %s: %s\n", what, ae_strerror(status), detail);
  else
    fprintf(stderr, "astembed: %s: %s\n", what, ae_strerror(status));
  return CLI_FAIL;
}

const char *cli_default_model(void) {
  const char *m = getenv("ASTEMBED_MODEL");
  return m && *m ? m : NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) { usage(stderr); return CLI_USAGE; }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return CLI_OK;
  }
  if (!strcmp(argv[1], "--version")) { printf("astembed %s\n", ae_version()); return CLI_OK; }
  for (const cli_command *c = commands; c->name; c++)
    if (!strcmp(argv[1], c->name)) return c->run(argc - 1, argv + 1);
  fprintf(stderr, "astembed: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return CLI_USAGE;
}
