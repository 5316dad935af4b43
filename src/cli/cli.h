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
/* The one integer option parser (defined in main.c): a decimal integer in [lo, hi]
 * into *out, or -1 after printing "astembed CMD: OPT needs an integer in [lo, hi],
 * got 'VALUE'" (value NULL: the option came without one). */
int cli_parse_int(const char *cmd, const char *opt, const char *value, long long lo,
                  long long hi, long long *out);

/* Monotonic clock in milliseconds. */
double cli_now_ms(void);

/* Models by name (model_hub.c). cli_model_dir: spec's folder into *dir (free): a
 * folder as is; ORG/NAME[@REV] its Hugging Face snapshot, pulled first when missing
 * unless cli_offline (--offline) or HF_HUB_OFFLINE; progress on stderr when progress.
 * CLI_OK, or CLI_FAIL after printing the error. */
extern int cli_offline;
int cli_model_dir(const char *cmd, const char *spec, int progress, char **dir);
void cli_model_hub_usage(FILE *f);
int cli_model_pull(int argc, char **argv);
int cli_model_list(int argc, char **argv);
int cli_model_rm(int argc, char **argv);
#endif
