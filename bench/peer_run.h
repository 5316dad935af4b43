/* bench/peer_run.h — starting a benchmark peer (ONNX Runtime, PyTorch) as a child
 * process, shared by bench_encoder and bench_pipeline. */
#ifndef AE_BENCH_PEER_RUN_H
#define AE_BENCH_PEER_RUN_H
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs `sh -c "exec CMD ARG > OUT"` and waits for it. *maxrss_kb gets the child's peak
 * RSS as the kernel counted it (exec keeps the process, so that is the peer's own).
 * Returns the exit status (128 + signal when killed), or -1 with errno set when the
 * child could not be started or waited for. */
static int bench_run_peer(const char *cmd, const char *arg, const char *out, long *maxrss_kb) {
  size_t len = strlen(cmd) + strlen(arg) + strlen(out) + 32;
  char *line = malloc(len);
  if (!line) return -1;
  snprintf(line, len, "exec %s '%s' > '%s'", cmd, arg, out);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) { free(line); return -1; }
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", line, (char *)NULL);
    _exit(127);
  }
  free(line);
  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0)
    if (errno != EINTR) return -1;
  if (maxrss_kb) *maxrss_kb = ru.ru_maxrss;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
#endif
