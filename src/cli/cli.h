/* The astembed command-line tool: one file per subcommand (cmd_NAME.c), each
 * exporting int cmd_NAME(int argc, char **argv) where argv[0] is the subcommand. */
#ifndef AE_CLI_H
#define AE_CLI_H
#include "astembed.h"
#include <stdio.h>

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} cli_command;

/* Prints "astembed: <what>: <status name>: <detail>" to stderr; returns exit code 1. */
int cli_fail(const char *what, int status);
/* Exit codes: 0 ok, 1 runtime failure, 2 usage error. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Default model folder: $ASTEMBED_MODEL, else NULL. */
const char *cli_default_model(void);

/* Load-cache folder for ae_encoder_options.cache_dir (defined in main.c):
 * $ASTEMBED_CACHE_DIR, else $XDG_CACHE_HOME/astembed, else ~/.cache/astembed; NULL
 * when ASTEMBED_CACHE_DIR is "off" (or "0", "none") or no home is known. The string
 * lives until the next call. */
const char *cli_load_cache_dir(void);

/* --precision VALUE of subcommand cmd: AE_PRECISION_*, or -1 after printing the usage
 * error (defined in main.c). */
int cli_parse_precision(const char *cmd, const char *value);

/* Prints "cpu path: NAME" (ae_cpu_path) to stdout and returns CLI_OK, or reports a
 * bad ASTEMBED_CPU and returns CLI_USAGE (defined in main.c). */
int cli_print_cpu_path(void);
#endif
