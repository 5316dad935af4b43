/* Resource probes: CPU, load, RSS and the memory budget of this process.
 *
 * Every number comes from a kernel file read through one hook (ae_probe_read_fn), so
 * tests can script a machine exactly and production reads /proc and /sys/fs/cgroup.
 *
 * CPU. Process CPU % is Δ(utime+stime) / (Δwall × cores): the kernel counts CPU time
 * in clock ticks across all threads, so dividing by wall time alone would report
 * 200% for two busy threads; dividing by the cores the process may run on gives the
 * share of the machine it actually uses. The first reading has no previous sample and
 * averages over the process lifetime (starttime from /proc/self/stat against
 * /proc/uptime). System CPU is the busy share of the "cpu" line of /proc/stat between
 * two readings (since boot for the first).
 *
 * Memory. What matters is how close this process is to being OOM-killed, which is
 * bounded by two things: the machine (MemAvailable) and the tightest cgroup memory
 * limit on the path from the process's cgroup to the hierarchy root. Limits may be set
 * on any ancestor (systemd slices, container runtimes), so every level is checked and
 * the one with the least headroom wins. Usage counts the working set (usage minus
 * inactive file cache, as kubelet does), since clean inactive page cache is reclaimed
 * before anything is killed. cgroup v2 is preferred; on hybrid hosts whose memory
 * controller is still bound to cgroup v1, the v1 files are used instead.
 *
 * Degradation. A missing source makes its fields -1 (or 0 bytes) and is reported once
 * per probe through the log hook; the other fields are still filled in.
 */
#define _GNU_SOURCE
#include "common/common.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
  SRC_STAT = 1 << 0, SRC_PROCSTAT = 1 << 1, SRC_LOADAVG = 1 << 2, SRC_STATM = 1 << 3,
  SRC_MEMINFO = 1 << 4, SRC_CGROUP = 1 << 5, SRC_PSI = 1 << 6, SRC_UPTIME = 1 << 7,
};

/* v1 reports "no limit" as a huge page-aligned number near INT64_MAX. */
#define UNLIMITED_V1 (UINT64_C(1) << 60)

struct ae_probe {
  ae_probe_options o;
  pthread_mutex_t mu;
  unsigned said;             /* SRC_* already reported missing */
  char *cg_dir;              /* memory cgroup directory of the process, or NULL */
  char *cg_root;             /* the hierarchy's mount point (walk stops there) */
  int cg_version;            /* 2, 1 or 0 */
  char *psi_path;            /* cgroup memory.pressure, or /proc/pressure/memory */
  int have_prev, have_prev_proc;
  uint64_t prev_wall_ns, prev_proc_ticks;
  uint64_t prev_sys_busy, prev_sys_total;
  double last_proc_pct;
};

/* ---- file access --------------------------------------------------------- */

static char *real_read(const char *path, void *ud) {
  (void)ud;
  FILE *f = fopen(path, "re");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) break;
    if (n + 1 >= cap) {
      char *nb = realloc(buf, cap * 2);
      if (!nb) { free(buf); buf = NULL; break; }
      buf = nb;
      cap *= 2;
    }
  }
  int err = ferror(f);
  fclose(f);
  if (!buf) return NULL;
  if (err) { free(buf); return NULL; }
  buf[n] = 0;
  return buf;
}

static char *rd(ae_probe *p, const char *path) { return p->o.read_file(path, p->o.read_ud); }

static void say_once(ae_probe *p, unsigned src, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say_once(ae_probe *p, unsigned src, const char *fmt, ...) {
  if (p->said & src) return;
  p->said |= src;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (p->o.log) p->o.log(p->o.log_ud, msg);
  else fprintf(stderr, "astembed: probe: %s\n", msg);
}

static uint64_t default_now(void *ud) { (void)ud; return ae__now_ns(); }

static int affinity_cores(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return ae__cpu_count();
}

/* Value of "Key:" in a "Key: value kB" file (meminfo) or "key value" (memory.stat);
 * returns 0 and leaves *v alone when the key is missing. */
static int find_u64(const char *text, const char *key, uint64_t *v) {
  size_t kl = strlen(key);
  for (const char *s = text; s && *s; s = strchr(s, '\n'), s = s ? s + 1 : NULL) {
    if (strncmp(s, key, kl) == 0 && (s[kl] == ':' || s[kl] == ' ')) {
      const char *q = s + kl + 1;
      while (*q == ' ' || *q == '\t') q++;
      char *end;
      errno = 0;
      unsigned long long x = strtoull(q, &end, 10);
      if (end == q || errno) return 0;
      *v = x;
      return 1;
    }
  }
  return 0;
}

/* ---- cgroup discovery ------------------------------------------------------ */

/* From /proc/self/mountinfo: mount point and root of the cgroup2 hierarchy (want_v1
 * = 0) or of the v1 hierarchy carrying the memory controller (want_v1 = 1). */
static int find_mount(const char *mountinfo, int want_v1, char *mnt, size_t mcap,
                      char *root, size_t rcap) {
  for (const char *s = mountinfo; s && *s; s = strchr(s, '\n'), s = s ? s + 1 : NULL) {
    const char *eol = strchr(s, '\n');
    size_t len = eol ? (size_t)(eol - s) : strlen(s);
    char line[1024];
    if (len >= sizeof line) continue;
    memcpy(line, s, len);
    line[len] = 0;
    char *sep = strstr(line, " - ");
    if (!sep) continue;
    *sep = 0;
    char fstype[64] = "", source[256] = "", opts[512] = "";
    if (sscanf(sep + 3, "%63s %255s %511s", fstype, source, opts) < 1) continue;
    char r[512], m[512];
    if (sscanf(line, "%*s %*s %*s %511s %511s", r, m) != 2) continue;
    int match = want_v1 ? strcmp(fstype, "cgroup") == 0 &&
                              (strstr(opts, ",memory") || strncmp(opts, "memory", 6) == 0)
                        : strcmp(fstype, "cgroup2") == 0;
    if (!match) continue;
    snprintf(mnt, mcap, "%s", m);
    snprintf(root, rcap, "%s", r);
    return 1;
  }
  return 0;
}

/* From /proc/self/cgroup: the path of the unified ("0::") or memory v1 line. */
static int find_cgroup_path(const char *text, int want_v1, char *out, size_t cap) {
  for (const char *s = text; s && *s; s = strchr(s, '\n'), s = s ? s + 1 : NULL) {
    const char *c1 = strchr(s, ':');
    const char *eol = strchr(s, '\n');
    if (!c1 || (eol && c1 > eol)) continue;
    const char *c2 = strchr(c1 + 1, ':');
    if (!c2 || (eol && c2 > eol)) continue;
    size_t clen = (size_t)(c2 - c1 - 1);
    int match;
    if (!want_v1) match = strncmp(s, "0:", 2) == 0 && clen == 0;
    else {
      char ctrl[256];
      if (clen >= sizeof ctrl) continue;
      memcpy(ctrl, c1 + 1, clen);
      ctrl[clen] = 0;
      match = 0;
      for (char *tok = strtok(ctrl, ","); tok; tok = strtok(NULL, ","))
        if (strcmp(tok, "memory") == 0) match = 1;
    }
    if (!match) continue;
    size_t plen = eol ? (size_t)(eol - c2 - 1) : strlen(c2 + 1);
    if (plen >= cap) return 0;
    memcpy(out, c2 + 1, plen);
    out[plen] = 0;
    return 1;
  }
  return 0;
}

/* Directory of the process's cgroup in one hierarchy: mount point + the cgroup path
 * made relative to the mount's root (bind-mounted container hierarchies). */
static char *cgroup_dir(const char *mnt, const char *root, const char *path) {
  const char *rel = path;
  size_t rl = strlen(root);
  if (strcmp(root, "/") != 0 && strncmp(path, root, rl) == 0 &&
      (path[rl] == '/' || path[rl] == 0))
    rel = path + rl;
  size_t n = strlen(mnt) + strlen(rel) + 2;
  char *d = ae__malloc(n);
  if (!d) return NULL;
  snprintf(d, n, "%s%s%s", mnt, rel[0] == '/' || rel[0] == 0 ? "" : "/", rel);
  size_t dl = strlen(d);
  while (dl > 1 && d[dl - 1] == '/') d[--dl] = 0;
  return d;
}

static int file_present(ae_probe *p, const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  char *t = rd(p, path);
  free(t);
  return t != NULL;
}

/* Finds the memory cgroup (v2 with the memory controller, else v1) and the PSI file. */
static void discover(ae_probe *p) {
  char *mi = rd(p, "/proc/self/mountinfo");
  char *cg = rd(p, "/proc/self/cgroup");
  char mnt[512], root[512], path[1024];
  char *v2dir = NULL;
  if (mi && cg && find_mount(mi, 0, mnt, sizeof mnt, root, sizeof root) &&
      find_cgroup_path(cg, 0, path, sizeof path)) {
    v2dir = cgroup_dir(mnt, root, path);
    if (v2dir && file_present(p, v2dir, "memory.current")) {
      p->cg_dir = ae__strdup(v2dir);
      p->cg_root = ae__strdup(mnt);
      p->cg_version = 2;
    }
  }
  if (!p->cg_version && mi && cg && find_mount(mi, 1, mnt, sizeof mnt, root, sizeof root) &&
      find_cgroup_path(cg, 1, path, sizeof path)) {
    char *d = cgroup_dir(mnt, root, path);
    if (d && file_present(p, d, "memory.usage_in_bytes")) {
      p->cg_dir = d;
      p->cg_root = ae__strdup(mnt);
      p->cg_version = 1;
    } else {
      ae__free(d);
    }
  }
  /* PSI of the cgroup covers exactly this workload; the system-wide file is next best. */
  if (v2dir && file_present(p, v2dir, "memory.pressure")) {
    size_t n = strlen(v2dir) + 32;
    p->psi_path = ae__malloc(n);
    if (p->psi_path) snprintf(p->psi_path, n, "%s/memory.pressure", v2dir);
  }
  if (!p->psi_path) p->psi_path = ae__strdup("/proc/pressure/memory");
  ae__free(v2dir);
  free(mi);
  free(cg);
}

/* ---- readers ----------------------------------------------------------------- */

/* utime+stime and starttime from /proc/self/stat. The command name may contain
 * spaces and parentheses, so fields are counted from the last ')'. */
static int read_proc_ticks(ae_probe *p, uint64_t *ticks, uint64_t *start) {
  char *t = rd(p, "/proc/self/stat");
  if (!t) return 0;
  char *q = strrchr(t, ')');
  int ok = 0;
  if (q) {
    unsigned long long f[20];
    int k = 0;
    char *s = q + 1;
    /* fields 3.. : state is a char, then numbers */
    while (*s == ' ') s++;
    if (*s) s++;
    for (k = 0; k < 20; k++) {
      char *end;
      long long v = strtoll(s, &end, 10);
      if (end == s) break;
      f[k] = (unsigned long long)(v < 0 ? 0 : v);
      s = end;
    }
    /* f[0] is field 4 (ppid): utime = field 14 -> f[10], stime f[11], starttime f[18] */
    if (k >= 19) {
      *ticks = f[10] + f[11];
      *start = f[18];
      ok = 1;
    }
  }
  free(t);
  return ok;
}

static int read_sys_cpu(ae_probe *p, uint64_t *busy, uint64_t *total) {
  char *t = rd(p, "/proc/stat");
  if (!t) return 0;
  unsigned long long v[8] = {0};
  int n = strncmp(t, "cpu ", 4) == 0
              ? sscanf(t + 4, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                       &v[3], &v[4], &v[5], &v[6], &v[7])
              : 0;
  free(t);
  if (n < 4) return 0;
  uint64_t tot = 0;
  for (int i = 0; i < 8; i++) tot += v[i];
  *total = tot;
  *busy = tot - v[3] - v[4]; /* minus idle and iowait */
  return 1;
}

static void read_cpu(ae_probe *p, ae_probe_reading *r) {
  uint64_t now = p->o.now_ns(p->o.now_ud);
  uint64_t ticks = 0, start = 0;
  double hz = (double)p->o.clk_tck, cores = (double)p->o.cores;
  r->process_cpu_pct = -1;
  if (read_proc_ticks(p, &ticks, &start)) {
    if (p->have_prev_proc) {
      double dwall = (double)(now - p->prev_wall_ns) / 1e9;
      /* Below two ticks of wall time the tick counters cannot resolve a share:
       * repeat the previous value and keep the old baseline. */
      if (dwall * hz < 2.0) {
        r->process_cpu_pct = p->last_proc_pct;
      } else {
        uint64_t d = ticks >= p->prev_proc_ticks ? ticks - p->prev_proc_ticks : 0;
        r->process_cpu_pct = 100.0 * ((double)d / hz) / (dwall * cores);
        p->prev_wall_ns = now;
        p->prev_proc_ticks = ticks;
      }
    } else {
      char *up = rd(p, "/proc/uptime");
      if (up) {
        double life = strtod(up, NULL) - (double)start / hz;
        if (life > 0) r->process_cpu_pct = 100.0 * ((double)ticks / hz) / (life * cores);
      } else {
        say_once(p, SRC_UPTIME, "/proc/uptime unavailable: first process CPU reading is -1");
      }
      free(up);
      p->prev_wall_ns = now;
      p->prev_proc_ticks = ticks;
      p->have_prev_proc = 1;
    }
    if (r->process_cpu_pct > 100) r->process_cpu_pct = 100;
    p->last_proc_pct = r->process_cpu_pct;
  } else {
    say_once(p, SRC_STAT, "/proc/self/stat unavailable: process CPU reported as -1");
  }

  uint64_t busy, total;
  r->system_cpu_pct = -1;
  if (read_sys_cpu(p, &busy, &total)) {
    uint64_t db = busy, dt = total;
    if (p->have_prev && total > p->prev_sys_total && busy >= p->prev_sys_busy) {
      db = busy - p->prev_sys_busy;
      dt = total - p->prev_sys_total;
    }
    if (dt > 0) r->system_cpu_pct = 100.0 * (double)db / (double)dt;
    if (!p->have_prev || total > p->prev_sys_total) {
      p->prev_sys_busy = busy;
      p->prev_sys_total = total;
    }
  } else {
    say_once(p, SRC_PROCSTAT, "/proc/stat unavailable: system CPU reported as -1");
  }
  p->have_prev = 1;
}

static void read_load(ae_probe *p, ae_probe_reading *r) {
  r->load1 = r->load5 = r->load15 = -1;
  char *t = rd(p, "/proc/loadavg");
  if (!t || sscanf(t, "%lf %lf %lf", &r->load1, &r->load5, &r->load15) != 3) {
    r->load1 = r->load5 = r->load15 = -1;
    say_once(p, SRC_LOADAVG, "/proc/loadavg unavailable: load reported as -1");
  }
  free(t);
}

static void read_rss(ae_probe *p, ae_probe_reading *r) {
  char *t = rd(p, "/proc/self/statm");
  unsigned long long size, res;
  if (t && sscanf(t, "%llu %llu", &size, &res) == 2) {
    long ps = sysconf(_SC_PAGESIZE);
    r->rss_bytes = (uint64_t)res * (uint64_t)(ps > 0 ? ps : 4096);
  } else {
    say_once(p, SRC_STATM, "/proc/self/statm unavailable: RSS reported as 0");
  }
  free(t);
}

/* Reads "<dir>/<name>" as a number; "max" (v2 unlimited) gives UINT64_MAX. */
static int read_num(ae_probe *p, const char *dir, const char *name, uint64_t *v) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  char *t = rd(p, path);
  if (!t) return 0;
  int ok = 1;
  if (strncmp(t, "max", 3) == 0) *v = UINT64_MAX;
  else {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(t, &end, 10);
    if (end == t || errno) ok = 0;
    else *v = x;
  }
  free(t);
  return ok;
}

/* Least headroom (limit - working set) over the cgroup and its ancestors that have a
 * limit. Returns 1 when some level has one. */
static int cgroup_headroom(ae_probe *p, uint64_t *limit_out, uint64_t *headroom_out) {
  const char *lim_name = p->cg_version == 2 ? "memory.max" : "memory.limit_in_bytes";
  const char *use_name = p->cg_version == 2 ? "memory.current" : "memory.usage_in_bytes";
  const char *inact = p->cg_version == 2 ? "inactive_file" : "total_inactive_file";
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", p->cg_dir);
  size_t rootlen = strlen(p->cg_root);
  int found = 0;
  for (;;) {
    uint64_t lim, use;
    if (read_num(p, dir, lim_name, &lim) && lim != UINT64_MAX &&
        !(p->cg_version == 1 && lim >= UNLIMITED_V1) && read_num(p, dir, use_name, &use)) {
      char path[4200];
      snprintf(path, sizeof path, "%s/memory.stat", dir);
      char *st = rd(p, path);
      uint64_t inactive = 0;
      if (st) find_u64(st, inact, &inactive);
      free(st);
      uint64_t ws = use > inactive ? use - inactive : 0;
      uint64_t head = lim > ws ? lim - ws : 0;
      if (!found || head < *headroom_out) {
        *headroom_out = head;
        *limit_out = lim;
      }
      found = 1;
    }
    size_t dl = strlen(dir);
    if (dl <= rootlen) break;
    char *slash = strrchr(dir, '/');
    if (!slash || (size_t)(slash - dir) < rootlen) break;
    *slash = 0;
  }
  return found;
}

static void read_memory(ae_probe *p, ae_probe_reading *r) {
  uint64_t total = 0, avail = 0;
  int have_mi = 0;
  char *mi = rd(p, "/proc/meminfo");
  if (mi && find_u64(mi, "MemTotal", &total)) {
    have_mi = 1;
    if (!find_u64(mi, "MemAvailable", &avail)) {
      /* kernels before 3.14: free + reclaimable caches approximates it */
      uint64_t f = 0, b = 0, c = 0;
      find_u64(mi, "MemFree", &f);
      find_u64(mi, "Buffers", &b);
      find_u64(mi, "Cached", &c);
      avail = f + b + c;
    }
    total *= 1024;
    avail *= 1024;
    if (avail > total) avail = total;
  } else {
    say_once(p, SRC_MEMINFO, "/proc/meminfo unavailable: machine memory unknown");
  }
  free(mi);

  uint64_t limit = 0, head = 0;
  r->cgroup_version = p->cg_version;
  if (p->cg_version && cgroup_headroom(p, &limit, &head) && (!have_mi || limit < total)) {
    r->have_cgroup = 1;
    r->limit_bytes = limit;
    r->available_bytes = have_mi && avail < head ? avail : head;
  } else if (have_mi) {
    r->limit_bytes = total;
    r->available_bytes = avail;
  }
  if (!p->cg_version)
    say_once(p, SRC_CGROUP, "no cgroup v2 memory controller (nor v1 memory hierarchy) for "
                            "this process: memory %% is relative to MemTotal");
  if (r->limit_bytes > 0) {
    uint64_t used = r->limit_bytes > r->available_bytes ? r->limit_bytes - r->available_bytes : 0;
    r->memory_pct = 100.0 * (double)used / (double)r->limit_bytes;
  } else {
    r->memory_pct = -1;
  }
}

static void read_psi(ae_probe *p, ae_probe_reading *r) {
  r->psi_some_avg10 = r->psi_full_avg10 = -1;
  char *t = p->psi_path ? rd(p, p->psi_path) : NULL;
  if (!t && p->psi_path && strcmp(p->psi_path, "/proc/pressure/memory") != 0)
    t = rd(p, "/proc/pressure/memory");
  if (t) {
    const char *s = strstr(t, "some avg10=");
    const char *f = strstr(t, "full avg10=");
    if (s) r->psi_some_avg10 = strtod(s + 11, NULL);
    if (f) r->psi_full_avg10 = strtod(f + 11, NULL);
    r->have_psi = s != NULL;
    free(t);
  }
  if (!r->have_psi)
    say_once(p, SRC_PSI, "memory PSI unavailable (%s, /proc/pressure/memory): reported as -1",
             p->psi_path ? p->psi_path : "no cgroup");
}

/* ---- public ------------------------------------------------------------------ */

int ae_probe_new_ex(const ae_probe_options *opts, ae_probe **out) {
  if (!out) return ae__error(AE_EINVAL, "ae_probe_new: out is NULL");
  *out = NULL;
  ae_probe *p = ae__calloc(1, sizeof *p);
  if (!p) return ae__error(AE_ENOMEM, "ae_probe_new: out of memory");
  if (opts) p->o = *opts;
  if (!p->o.read_file) p->o.read_file = real_read;
  if (!p->o.now_ns) p->o.now_ns = default_now;
  if (p->o.cores <= 0) p->o.cores = affinity_cores();
  if (p->o.clk_tck <= 0) {
    long hz = sysconf(_SC_CLK_TCK);
    p->o.clk_tck = hz > 0 ? hz : 100;
  }
  pthread_mutex_init(&p->mu, NULL);
  discover(p);
  *out = p;
  return AE_OK;
}

int ae_probe_new(ae_probe_read_fn read_file, void *ud, ae_probe **out) {
  ae_probe_options o = {0};
  o.read_file = read_file;
  o.read_ud = ud;
  return ae_probe_new_ex(&o, out);
}

void ae_probe_free(ae_probe *p) {
  if (!p) return;
  pthread_mutex_destroy(&p->mu);
  ae__free(p->cg_dir);
  ae__free(p->cg_root);
  ae__free(p->psi_path);
  ae__free(p);
}

int ae_probe_read(ae_probe *p, ae_probe_reading *r) {
  if (!p || !r) return ae__error(AE_EINVAL, "ae_probe_read: NULL argument");
  memset(r, 0, sizeof *r);
  pthread_mutex_lock(&p->mu);
  read_cpu(p, r);
  read_load(p, r);
  read_rss(p, r);
  read_memory(p, r);
  read_psi(p, r);
  pthread_mutex_unlock(&p->mu);
  return AE_OK;
}
