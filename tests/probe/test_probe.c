// ctest-timeout: 60
/* Resource probes against scripted machines (every file exact) and against the real
 * /proc and /sys/fs/cgroup of this machine (cross-checked with getrusage and
 * /proc/self/status). */
#define _GNU_SOURCE
#include "common/common.h"
#include "test.h"

#include <sched.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- a scripted machine: path -> content ---------------------------------- */

#define MAXF 64
typedef struct {
  const char *path[MAXF];
  char content[MAXF][1024];
  int n;
  uint64_t now;
  int logs[16];
  char last_log[512];
  int nlogs;
} machine;

static void put(machine *m, const char *path, const char *fmt, ...) {
  int i;
  for (i = 0; i < m->n; i++)
    if (strcmp(m->path[i], path) == 0) break;
  if (i == m->n) m->path[m->n++] = path;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->content[i], sizeof m->content[i], fmt, ap);
  va_end(ap);
}

static void drop(machine *m, const char *path) {
  for (int i = 0; i < m->n; i++)
    if (strcmp(m->path[i], path) == 0) {
      m->path[i] = m->path[m->n - 1];
      memcpy(m->content[i], m->content[m->n - 1], sizeof m->content[i]);
      m->n--;
      return;
    }
}

static char *m_read(const char *path, void *ud) {
  machine *m = ud;
  for (int i = 0; i < m->n; i++)
    if (strcmp(m->path[i], path) == 0) return strdup(m->content[i]);
  return NULL;
}
static uint64_t m_now(void *ud) { return ((machine *)ud)->now; }
static void m_log(void *ud, const char *msg) {
  machine *m = ud;
  m->nlogs++;
  snprintf(m->last_log, sizeof m->last_log, "%s", msg);
}

static ae_probe *scripted(machine *m) {
  ae_probe_options o = {0};
  o.read_file = m_read; o.read_ud = m;
  o.now_ns = m_now; o.now_ud = m;
  o.cores = 4; o.clk_tck = 100;
  o.log = m_log; o.log_ud = m;
  ae_probe *p = NULL;
  CHECK_OK(ae_probe_new_ex(&o, &p));
  return p;
}

#define MiB (1024ull * 1024)
#define NEAR(a, b, eps) (fabs((double)(a) - (double)(b)) <= (eps))

static void stat_line(machine *m, unsigned utime, unsigned stime, unsigned start) {
  /* a command name with spaces and parentheses must not shift the fields */
  put(m, "/proc/self/stat",
      "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194304 100 0 0 0 %u %u 0 0 20 0 3 0 %u "
      "1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
      utime, stime, start);
}

static void base_machine(machine *m) {
  memset(m, 0, sizeof *m);
  put(m, "/proc/self/mountinfo",
      "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
      "31 22 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n");
  put(m, "/proc/self/cgroup", "0::/user.slice/app.scope\n");
  put(m, "/proc/meminfo", "MemTotal:       16777216 kB\nMemFree:  100 kB\n"
                          "MemAvailable:    8388608 kB\nCached: 5 kB\n");
  put(m, "/sys/fs/cgroup/user.slice/app.scope/memory.current", "%llu\n", 300 * MiB);
  put(m, "/sys/fs/cgroup/user.slice/app.scope/memory.max", "max\n");
  put(m, "/sys/fs/cgroup/user.slice/app.scope/memory.stat", "anon 1\ninactive_file 0\n");
  put(m, "/sys/fs/cgroup/user.slice/app.scope/memory.pressure",
      "some avg10=1.50 avg60=0.20 avg300=0.00 total=123\n"
      "full avg10=0.25 avg60=0.00 avg300=0.00 total=45\n");
  put(m, "/sys/fs/cgroup/user.slice/memory.current", "%llu\n", 600 * MiB);
  put(m, "/sys/fs/cgroup/user.slice/memory.max", "%llu\n", 1024 * MiB);
  put(m, "/sys/fs/cgroup/user.slice/memory.stat",
      "anon 5\nfile 9\ninactive_file %llu\nactive_file 7\n", 100 * MiB);
  put(m, "/proc/pressure/memory", "some avg10=9.00 avg60=0 avg300=0 total=1\n"
                                  "full avg10=8.00 avg60=0 avg300=0 total=1\n");
  put(m, "/proc/loadavg", "0.50 1.25 2.00 3/400 12345\n");
  put(m, "/proc/self/statm", "5000 1234 300 10 0 400 0\n");
  put(m, "/proc/uptime", "1000.00 3000.00\n");
  stat_line(m, 150, 50, 90000);
  put(m, "/proc/stat", "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n");
  m->now = 5000000000ull;
}

static void test_v2_machine(void) {
  machine m;
  base_machine(&m);
  ae_probe *p = scripted(&m);
  ae_probe_reading r;
  CHECK_OK(ae_probe_read(p, &r));
  /* lifetime: 2 s of CPU over 100 s on 4 cores */
  CHECKF(NEAR(r.process_cpu_pct, 0.5, 1e-9), "%f", r.process_cpu_pct);
  CHECKF(NEAR(r.system_cpu_pct, 20.0, 1e-9), "%f", r.system_cpu_pct);
  CHECK(r.load1 == 0.5 && r.load5 == 1.25 && r.load15 == 2.0);
  CHECK(r.rss_bytes == 1234ull * (uint64_t)sysconf(_SC_PAGESIZE));
  /* the parent slice binds: 1 GiB limit, 600 - 100 MiB working set */
  CHECK(r.have_cgroup == 1 && r.cgroup_version == 2);
  CHECK(r.limit_bytes == 1024 * MiB);
  CHECK(r.available_bytes == 524 * MiB);
  CHECKF(NEAR(r.memory_pct, 100.0 * 500 / 1024, 1e-9), "%f", r.memory_pct);
  CHECK(r.have_psi && r.psi_some_avg10 == 1.5 && r.psi_full_avg10 == 0.25);

  /* 2 s later: 4 s of CPU (utime+stime) on 4 cores = 50%; 300 busy of 400 jiffies */
  m.now += 2000000000ull;
  stat_line(&m, 350, 250, 90000);
  put(&m, "/proc/stat", "cpu  300 0 200 800 100 0 0 0 0 0\n");
  CHECK_OK(ae_probe_read(p, &r));
  CHECKF(NEAR(r.process_cpu_pct, 50.0, 1e-9), "%f", r.process_cpu_pct);
  CHECKF(NEAR(r.system_cpu_pct, 75.0, 1e-9), "%f", r.system_cpu_pct);

  /* 5 ms later the tick counters cannot resolve anything: previous value repeated */
  m.now += 5000000ull;
  stat_line(&m, 351, 250, 90000);
  CHECK_OK(ae_probe_read(p, &r));
  CHECKF(NEAR(r.process_cpu_pct, 50.0, 1e-9), "%f", r.process_cpu_pct);
  /* and the baseline was kept: 1 s after the 50% reading, 1 more tick pair */
  m.now += 995000000ull;
  stat_line(&m, 550, 250, 90000);
  CHECK_OK(ae_probe_read(p, &r));
  CHECKF(NEAR(r.process_cpu_pct, 50.0, 1e-9), "%f", r.process_cpu_pct);

  /* a tighter leaf limit wins over the parent's */
  put(&m, "/sys/fs/cgroup/user.slice/app.scope/memory.max", "%llu\n", 400 * MiB);
  CHECK_OK(ae_probe_read(p, &r));
  CHECK(r.limit_bytes == 400 * MiB && r.available_bytes == 100 * MiB);
  CHECKF(NEAR(r.memory_pct, 75.0, 1e-9), "%f", r.memory_pct);

  /* the machine is tighter than the cgroup: MemAvailable wins, % of the limit */
  put(&m, "/proc/meminfo", "MemTotal: 16777216 kB\nMemAvailable: %llu kB\n", 40 * 1024ull);
  CHECK_OK(ae_probe_read(p, &r));
  CHECK(r.available_bytes == 40 * MiB && r.limit_bytes == 400 * MiB);
  CHECKF(NEAR(r.memory_pct, 90.0, 1e-9), "%f", r.memory_pct);

  /* no limit anywhere: relative to MemTotal */
  put(&m, "/sys/fs/cgroup/user.slice/app.scope/memory.max", "max\n");
  put(&m, "/sys/fs/cgroup/user.slice/memory.max", "max\n");
  put(&m, "/proc/meminfo", "MemTotal: 1000 kB\nMemAvailable: 250 kB\n");
  CHECK_OK(ae_probe_read(p, &r));
  CHECK(r.have_cgroup == 0 && r.cgroup_version == 2);
  CHECK(r.limit_bytes == 1000 * 1024 && r.available_bytes == 250 * 1024);
  CHECKF(NEAR(r.memory_pct, 75.0, 1e-9), "%f", r.memory_pct);
  CHECK(m.nlogs == 0);
  ae_probe_free(p);
}

/* Cgroup's memory.pressure missing: the system-wide PSI file is used. */
static void test_psi_fallback(void) {
  machine m;
  base_machine(&m);
  drop(&m, "/sys/fs/cgroup/user.slice/app.scope/memory.pressure");
  ae_probe *p = scripted(&m);
  ae_probe_reading r;
  CHECK_OK(ae_probe_read(p, &r));
  CHECK(r.have_psi && r.psi_some_avg10 == 9.0 && r.psi_full_avg10 == 8.0);
  ae_probe_free(p);
}

/* A container: the hierarchy is bind-mounted with a root, so the cgroup path is
 * relative to it. */
static void test_container_root(void) {
  machine m;
  base_machine(&m);
  put(&m, "/proc/self/mountinfo",
      "31 22 0:27 /kubepods/pod1 /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n");
  put(&m, "/proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
  put(&m, "/sys/fs/cgroup/ctr/memory.current", "%llu\n", 50 * MiB);
  put(&m, "/sys/fs/cgroup/ctr/memory.max", "%llu\n", 200 * MiB);
  ae_probe *p = scripted(&m);
  ae_probe_reading r;
  CHECK_OK(ae_probe_read(p, &r));
  CHECK(r.cgroup_version == 2 && r.have_cgroup);
  CHECK(r.limit_bytes == 200 * MiB && r.available_bytes == 150 * MiB);
  ae_probe_free(p);
}

/* Hybrid host (this sandbox's layout): cgroup2 mounted without the memory controller,
 * memory bound to v1. */
static void test_v1_hybrid(void) {
  machine m;
  base_machine(&m);
  put(&m, "/proc/self/mountinfo",
      "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
      "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n");
  put(&m, "/proc/self/cgroup", "4:memory:/jobs/j1\n1:cpu:/\n0::/\n");
  put(&m, "/sys/fs/cgroup/unified/memory.pressure",
      "some avg10=3.00 avg60=0 avg300=0 total=1\nfull avg10=2.00 avg60=0 avg300=0 total=1\n");
  put(&m, "/sys/fs/cgroup/memory/jobs/j1/memory.usage_in_bytes", "%llu\n", 96 * MiB);
  put(&m, "/sys/fs/cgroup/memory/jobs/j1/memory.limit_in_bytes", "%llu\n", 128 * MiB);
  put(&m, "/sys/fs/cgroup/memory/jobs/j1/memory.stat", "cache 1\ntotal_inactive_file %llu\n",
      16 * MiB);
  put(&m, "/sys/fs/cgroup/memory/jobs/memory.usage_in_bytes", "%llu\n", 500 * MiB);
  put(&m, "/sys/fs/cgroup/memory/jobs/memory.limit_in_bytes", "9223372036854771712\n");
  ae_probe *p = scripted(&m);
  ae_probe_reading r;
  CHECK_OK(ae_probe_read(p, &r));
  CHECK(r.cgroup_version == 1 && r.have_cgroup);
  CHECK(r.limit_bytes == 128 * MiB && r.available_bytes == 48 * MiB);
  CHECKF(NEAR(r.memory_pct, 62.5, 1e-9), "%f", r.memory_pct);
  CHECK(r.psi_some_avg10 == 3.0 && r.psi_full_avg10 == 2.0);
  CHECK(m.nlogs == 0);
  ae_probe_free(p);
}

/* Nothing readable: everything degrades, each missing source is reported once. */
static void test_missing_everything(void) {
  machine m;
  memset(&m, 0, sizeof m);
  ae_probe *p = scripted(&m);
  ae_probe_reading r;
  for (int i = 0; i < 3; i++) {
    CHECK_OK(ae_probe_read(p, &r));
    CHECK(r.process_cpu_pct == -1 && r.system_cpu_pct == -1 && r.load1 == -1);
    CHECK(r.rss_bytes == 0 && r.memory_pct == -1 && r.limit_bytes == 0);
    CHECK(r.psi_some_avg10 == -1 && !r.have_psi && !r.have_cgroup && r.cgroup_version == 0);
  }
  /* stat, /proc/stat, loadavg, statm, meminfo, cgroup, psi: seven sources, once each */
  CHECKF(m.nlogs == 7, "%d logs", m.nlogs);
  ae_probe_free(p);

  /* only meminfo and stat exist: those work, the rest degrade */
  memset(&m, 0, sizeof m);
  put(&m, "/proc/meminfo", "MemTotal: 2000 kB\nMemFree: 500 kB\nBuffers: 100 kB\nCached: 400 kB\n");
  p = scripted(&m);
  CHECK_OK(ae_probe_read(p, &r));
  CHECK(r.limit_bytes == 2000 * 1024 && r.available_bytes == 1000 * 1024); /* no MemAvailable */
  CHECKF(NEAR(r.memory_pct, 50.0, 1e-9), "%f", r.memory_pct);
  CHECK(strstr(m.last_log, "PSI") != NULL);
  ae_probe_free(p);

  /* garbage content is treated as missing, never crashes */
  memset(&m, 0, sizeof m);
  put(&m, "/proc/self/stat", "garbage");
  put(&m, "/proc/stat", "intr 1 2 3");
  put(&m, "/proc/loadavg", "x y z");
  put(&m, "/proc/self/statm", "");
  put(&m, "/proc/meminfo", "MemTotal: lots\n");
  put(&m, "/proc/self/mountinfo", "broken line\n - cgroup2\n");
  put(&m, "/proc/self/cgroup", "0::\n::\n");
  p = scripted(&m);
  CHECK_OK(ae_probe_read(p, &r));
  CHECK(r.process_cpu_pct == -1 && r.system_cpu_pct == -1 && r.load1 == -1 &&
        r.memory_pct == -1);
  ae_probe_free(p);
  CHECK(ae_probe_read(NULL, &r) == AE_EINVAL);
  CHECK(ae_probe_new_ex(NULL, NULL) == AE_EINVAL);
}

/* ---- the real machine ------------------------------------------------------- */

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static uint64_t status_rss(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  unsigned long long kb = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) break;
  if (f) fclose(f);
  return kb * 1024;
}

static int logs_real;
static void real_log(void *ud, const char *msg) { (void)ud; logs_real++; printf("probe said: %s\n", msg); }

/* The probe's clock, wrapped: each reading's instant and this process's CPU time
 * (getrusage) at that instant, so the expectation covers exactly the probe's window. */
typedef struct { uint64_t wall_ns; double cpu_s; } instant;
static uint64_t clock_at(void *ud) {
  instant *i = ud;
  i->cpu_s = cpu_seconds();
  i->wall_ns = ae__now_ns();
  return i->wall_ns;
}

static void test_real_machine(void) {
  instant at = {0, 0};
  ae_probe_options o = {0};
  o.log = real_log;
  o.now_ns = clock_at;
  o.now_ud = &at;
  ae_probe *p = NULL;
  CHECK_OK(ae_probe_new_ex(&o, &p));
  ae_probe_reading r;
  CHECK_OK(ae_probe_read(p, &r));
  instant a0 = at;
  /* spin until this process has used 300 ms of CPU (however long that takes on a
   * loaded machine; at most 60 s of wall time), then compare with getrusage over the
   * probe's own window: both sides count the same CPU over the same instants */
  volatile double x = 0;
  while (cpu_seconds() - a0.cpu_s < 0.3 && (ae__now_ns() - a0.wall_ns) < 60000000000ull)
    for (int i = 0; i < 10000; i++) x += i * 1e-9;
  CHECK_OK(ae_probe_read(p, &r));
  instant a1 = at;
  cpu_set_t set;
  sched_getaffinity(0, sizeof set, &set);
  double wall_s = (double)(a1.wall_ns - a0.wall_ns) / 1e9;
  double expect = 100.0 * (a1.cpu_s - a0.cpu_s) / (wall_s * CPU_COUNT(&set));
  printf("real: process cpu %.1f%% (getrusage %.1f%% over the same %.2f s), system cpu %.1f%%, load %.2f,"
         " rss %.1f MiB, limit %.0f MiB, available %.0f MiB, memory %.1f%%, cgroup v%d (limit %s), psi %.2f/%.2f\n",
         r.process_cpu_pct, expect, wall_s, r.system_cpu_pct, r.load1, r.rss_bytes / 1048576.0,
         r.limit_bytes / 1048576.0, r.available_bytes / 1048576.0, r.memory_pct,
         r.cgroup_version, r.have_cgroup ? "yes" : "no", r.psi_some_avg10, r.psi_full_avg10);
  /* the kernel's tick granularity (1/CLK_TCK) at both ends of >= 300 ms: a few points;
   * the tolerance scales with the window */
  double tol = 100.0 * 3.0 / (double)sysconf(_SC_CLK_TCK) / (wall_s * CPU_COUNT(&set)) + 1.0;
  CHECKF(fabs(r.process_cpu_pct - expect) < tol, "%f vs %f (tolerance %.2f)", r.process_cpu_pct, expect, tol);
  CHECK(r.system_cpu_pct >= 0 && r.system_cpu_pct <= 100);
  CHECK(r.load1 >= 0);
  uint64_t vm = status_rss();
  CHECKF(r.rss_bytes > 0 && (r.rss_bytes > vm ? r.rss_bytes - vm : vm - r.rss_bytes) < 4 * MiB,
         "%llu vs %llu", (unsigned long long)r.rss_bytes, (unsigned long long)vm);
  CHECK(r.limit_bytes > 0 && r.available_bytes <= r.limit_bytes);
  CHECK(r.memory_pct > 0 && r.memory_pct < 100);
  /* cgroup detection agrees with what /proc/self/cgroup says */
  FILE *f = fopen("/proc/self/cgroup", "r");
  char line[512];
  int has_mem_v1 = 0;
  while (f && fgets(line, sizeof line, f)) {
    char *c = strchr(line, ':');
    if (c && strncmp(c + 1, "memory:", 7) == 0) has_mem_v1 = 1;
  }
  if (f) fclose(f);
  int v2mem = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 && !has_mem_v1;
  if (has_mem_v1) CHECK(r.cgroup_version == 1);
  else if (v2mem) CHECK(r.cgroup_version == 2);
  FILE *psi = fopen("/proc/pressure/memory", "r");
  if (psi) { CHECK(r.have_psi && r.psi_some_avg10 >= 0); fclose(psi); }
  CHECK(logs_real <= 7);
  ae_probe_free(p);

  /* the default constructor reads the real files too */
  CHECK_OK(ae_probe_new(NULL, NULL, &p));
  CHECK_OK(ae_probe_read(p, &r));
  CHECK(r.limit_bytes > 0);
  ae_probe_free(p);
}

int main(void) {
  test_v2_machine();
  test_psi_fallback();
  test_container_root();
  test_v1_hybrid();
  test_missing_everything();
  test_real_machine();
  TEST_DONE();
}
