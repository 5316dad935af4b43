/* The Hugging Face cache, laid out exactly as huggingface_hub (Python) and
 * @huggingface/hub (JavaScript) lay it out, so that a model pulled by any of them
 * serves the others:
 *
 *   <root>/models--ORG--NAME/blobs/<etag>            file contents, named by ETag
 *                            blobs/<etag>.incomplete  a download in progress
 *                            refs/<revision>          the commit the revision names
 *                            snapshots/<commit>/<path> relative symlink to
 *                                                     ../../blobs/<etag> (one more ../
 *                                                     per folder level of <path>)
 *   <root>/.locks/models--ORG--NAME/<etag>.lock       flock(2) of one blob's download
 *
 * <root> is $HF_HUB_CACHE, else $HF_HOME/hub, where HF_HOME defaults to
 * $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. A snapshot is complete
 * for astembed when config.json and model.safetensors resolve to regular files; pull.c
 * creates its links only after every blob is verified, so a complete snapshot never
 * points at a partial or corrupt blob. Resolution is offline: refs/<rev> (or the
 * commit itself) names the snapshot.
 *
 * Listing reports one row per snapshot, with the refs that name its commit, the sizes
 * of the blobs its links reach and their newest access time (what huggingface_hub's
 * scan-cache calls last accessed). Removal renames the repository folder aside first
 * (atomic: a concurrent resolve sees all or nothing), then deletes it with nftw(3) in
 * FTW_PHYS mode, which never follows a symlink, so it cannot reach outside. */
#define _GNU_SOURCE
#include "hub/hub.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static char *fmt_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_path(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = n >= 0 ? ae__malloc((size_t)n + 1) : NULL;
  if (!s) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

static const char *env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

/* $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface (ae__free). */
static char *hf_home(void) {
  if (env("HF_HOME")) return ae__strdup(env("HF_HOME"));
  const char *xdg = env("XDG_CACHE_HOME");
  if (xdg && xdg[0] == '/') return fmt_path("%s/huggingface", xdg);
  if (env("HOME")) return fmt_path("%s/.cache/huggingface", env("HOME"));
  return NULL;
}

static int truthy(const char *v) {
  return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
               !strcasecmp(v, "on"));
}

/* The token file's first line, trimmed (ae__free), or NULL. */
static char *read_token_file(const char *path) {
  char *data = NULL;
  size_t len = 0;
  if (!path || ae__read_file(path, &data, &len)) { ae__clear_error(); return NULL; }
  size_t a = 0;
  while (a < len && (data[a] == ' ' || data[a] == '\t' || data[a] == '\n' || data[a] == '\r')) a++;
  size_t b = a;
  while (b < len && data[b] != '\n' && data[b] != '\r') b++;
  while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\t')) b--;
  char *t = b > a ? ae__strndup(data + a, b - a) : NULL;
  ae__free(data);
  return t;
}

void ae__hub_env_free(ae__hub_env *e) {
  ae__free(e->root);
  ae__free(e->endpoint);
  if (e->token) {
    memset(e->token, 0, strlen(e->token));
    ae__free(e->token);
  }
  memset(e, 0, sizeof *e);
}

int ae__hub_env_get(const ae_hub_options *o, ae__hub_env *e) {
  memset(e, 0, sizeof *e);
  char *home = hf_home();
  if (o && o->cache_dir && *o->cache_dir) e->root = ae__strdup(o->cache_dir);
  else if (env("HF_HUB_CACHE")) e->root = ae__strdup(env("HF_HUB_CACHE"));
  else if (home) e->root = fmt_path("%s/hub", home);
  else {
    ae__free(home);
    return ae__error(AE_EINVAL, "Hugging Face cache: no HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME or HOME");
  }
  const char *ep = o && o->endpoint && *o->endpoint ? o->endpoint
                 : env("HF_ENDPOINT") ? env("HF_ENDPOINT") : "https://huggingface.co";
  e->endpoint = ae__strdup(ep);
  if (e->endpoint)
    for (size_t n = strlen(e->endpoint); n > 0 && e->endpoint[n - 1] == '/'; n--) e->endpoint[n - 1] = 0;
  if (o && o->token && *o->token) e->token = ae__strdup(o->token);
  else if (env("HF_TOKEN")) e->token = ae__strdup(env("HF_TOKEN"));
  else {
    char *tp = env("HF_TOKEN_PATH") ? ae__strdup(env("HF_TOKEN_PATH")) : home ? fmt_path("%s/token", home) : NULL;
    e->token = read_token_file(tp);
    ae__free(tp);
  }
  ae__free(home);
  e->offline = (o && o->offline) || truthy(getenv("HF_HUB_OFFLINE"));
  if (!e->root || !e->endpoint) { ae__hub_env_free(e); return ae__error(AE_ENOMEM, "out of memory"); }
  if (strncmp(e->endpoint, "http://", 7) && strncmp(e->endpoint, "https://", 8)) {
    int rc = ae__error(AE_EINVAL, "hub endpoint '%.200s' (HF_ENDPOINT) is not an http:// or https:// URL", e->endpoint);
    ae__hub_env_free(e);
    return rc;
  }
  if (e->token)
    for (const char *p = e->token; *p; p++)
      if ((unsigned char)*p < 0x21 || *p == 0x7f) {
        ae__hub_env_free(e);
        return ae__error(AE_EINVAL, "the Hugging Face token (HF_TOKEN or the token file) holds a "
                         "space or control character");
      }
  return AE_OK;
}

char *ae__hub_repo_folder(const char *root, const char *repo) {
  const char *slash = strchr(repo, '/');
  if (!slash) return NULL;
  return fmt_path("%s/models--%.*s--%s", root, (int)(slash - repo), repo, slash + 1);
}

int ae__hub_mkdirs(const char *path) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return ae__error(AE_EINVAL, "%.200s...: path too long", path);
  for (char *p = buf + 1; ; p++) {
    if (*p == '/' || !*p) {
      char c = *p;
      *p = 0;
      if (mkdir(buf, 0755) && errno != EEXIST) return ae__error(AE_EIO, "%s: %s", buf, strerror(errno));
      *p = c;
      if (!c) break;
    }
  }
  struct stat st;
  if (stat(path, &st) || !S_ISDIR(st.st_mode)) return ae__error(AE_EIO, "%s: not a folder", path);
  return AE_OK;
}

static int regular_file(const char *dir, const char *name) {
  char *p = ae__path_join(dir, name);
  struct stat st;
  int ok = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
  ae__free(p);
  return ok;
}

/* The commit refs/<rev> names, or "" (commit: 41 bytes). */
static void read_ref(const char *folder, const char *rev, char commit[41]) {
  commit[0] = 0;
  char *p = fmt_path("%s/refs/%s", folder, rev), *data = NULL;
  size_t len = 0;
  if (p && ae__read_file(p, &data, &len) == AE_OK) {
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' ')) data[--len] = 0;
    if (ae__hub_is_commit(data)) memcpy(commit, data, 41);
  }
  ae__clear_error();
  ae__free(data);
  ae__free(p);
}

int ae__hub_not_cached(const ae__hub_spec *s, const char *why) {
  int main_rev = !strcmp(s->rev, "main");
  return ae__error(AE_ENOTFOUND, "%s%s%s is not in the Hugging Face cache%s: run `astembed model pull %s%s%s`",
                   s->repo, main_rev ? "" : "@", main_rev ? "" : s->rev, why, s->repo,
                   main_rev ? "" : "@", main_rev ? "" : s->rev);
}

int ae__hub_cached_snapshot(const ae__hub_env *e, const ae__hub_spec *s, char **dir, char commit[41]) {
  *dir = NULL;
  char *folder = ae__hub_repo_folder(e->root, s->repo);
  if (!folder) return ae__error(AE_ENOMEM, "out of memory");
  read_ref(folder, s->rev, commit);
  if (!commit[0] && ae__hub_is_commit(s->rev)) memcpy(commit, s->rev, 41);
  char *snap = commit[0] ? fmt_path("%s/snapshots/%s", folder, commit) : NULL;
  ae__free(folder);
  if (snap && regular_file(snap, "config.json") && regular_file(snap, "model.safetensors")) {
    *dir = snap;
    return AE_OK;
  }
  ae__free(snap);
  return AE_ENOTFOUND;
}

int ae_hub_snapshot_info(const char *dir, char *repo, size_t repo_cap, char *commit, size_t commit_cap) {
  if (!dir) return 0;
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/') n--;
  /* .../models--ORG--NAME/snapshots/<40 hex> */
  if (n < 41 + 11) return 0;
  const char *c = dir + n - 40;
  char cm[41];
  memcpy(cm, c, 40);
  cm[40] = 0;
  if (!ae__hub_is_commit(cm) || strncmp(c - 11, "/snapshots/", 11)) return 0;
  const char *end = c - 11, *start = end;
  while (start > dir && start[-1] != '/') start--;
  if (end - start < 9 || strncmp(start, "models--", 8)) return 0;
  const char *sep = start + 8;
  const char *dd = NULL;
  for (const char *p = sep; p + 1 < end; p++)
    if (p[0] == '-' && p[1] == '-') { dd = p; break; }
  if (!dd) return 0;
  char spec[AE__HUB_REPO_MAX];
  if (snprintf(spec, sizeof spec, "%.*s/%.*s", (int)(dd - sep), sep, (int)(end - dd - 2), dd + 2) >= (int)sizeof spec)
    return 0;
  ae__hub_spec s;
  if (ae__hub_parse_spec(spec, &s)) { ae__clear_error(); return 0; }
  if (repo && repo_cap) snprintf(repo, repo_cap, "%s", s.repo);
  if (commit && commit_cap) snprintf(commit, commit_cap, "%s", cm);
  return 1;
}

int ae_hub_is_model_name(const char *spec) {
  struct stat st;
  if (!spec || stat(spec, &st) == 0) return 0;
  ae__hub_spec s;
  int ok = ae__hub_parse_spec(spec, &s) == AE_OK;
  ae__clear_error();
  return ok;
}

static int parse_with(const char *spec, const ae_hub_options *o, ae__hub_spec *s) {
  int rc = ae__hub_parse_spec(spec, s);
  if (rc) return rc;
  if (o && o->revision && *o->revision) {
    char full[AE__HUB_REPO_MAX + AE__HUB_REV_MAX + 2];
    snprintf(full, sizeof full, "%s@%s", s->repo, o->revision);
    return ae__hub_parse_spec(full, s);
  }
  return AE_OK;
}

/* Resolves (network 0) or pulls (network 1, unless offline) spec into *dir. */
static int resolve_or_pull(const char *spec, const ae_hub_options *o, int network, char **dir) {
  if (!dir) return ae__error(AE_EINVAL, "hub: NULL argument");
  *dir = NULL;
  ae__hub_spec s;
  ae__hub_env e;
  int rc = parse_with(spec, o, &s);
  if (rc || (rc = ae__hub_env_get(o, &e))) return rc;
  if (network && !e.offline) {
    rc = ae__hub_download(&e, &s, o, dir);
  } else {
    char commit[41];
    rc = ae__hub_cached_snapshot(&e, &s, dir, commit);
    if (rc == AE_ENOTFOUND)
      rc = ae__hub_not_cached(&s, network ? " and the network is off (HF_HUB_OFFLINE or --offline)" : "");
  }
  ae__hub_env_free(&e);
  return rc;
}

int ae_hub_resolve(const char *spec, const ae_hub_options *o, char **dir) {
  return resolve_or_pull(spec, o, 0, dir);
}

int ae_hub_pull(const char *spec, const ae_hub_options *o, char **dir) {
  return resolve_or_pull(spec, o, 1, dir);
}

int ae_hub_model_dir(const char *spec, const ae_hub_options *o, int auto_pull, char **dir) {
  if (!spec || !dir) return ae__error(AE_EINVAL, "hub: NULL argument");
  *dir = NULL;
  if (!ae_hub_is_model_name(spec)) {
    *dir = ae__strdup(spec);
    return *dir ? AE_OK : ae__error(AE_ENOMEM, "out of memory");
  }
  int rc = ae_hub_resolve(spec, o, dir);
  if (rc == AE_ENOTFOUND && auto_pull) rc = ae_hub_pull(spec, o, dir);
  return rc;
}

/* ---- listing ---------------------------------------------------------------------- */

typedef struct {
  uint64_t bytes;
  int64_t atime;
} usage;

/* Sums the targets of the snapshot's links (folders up to 16 deep). */
static void walk_snapshot(const char *dir, int depth, usage *u) {
  DIR *d = depth < 16 ? opendir(dir) : NULL;
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    char *p = ae__path_join(dir, de->d_name);
    struct stat ls, st;
    if (p && lstat(p, &ls) == 0) {
      if (S_ISDIR(ls.st_mode)) walk_snapshot(p, depth + 1, u);
      else if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
        u->bytes += (uint64_t)st.st_size;
        if (st.st_atime > u->atime) u->atime = st.st_atime;
      }
    }
    ae__free(p);
  }
  closedir(d);
}

/* "ref1,ref2" of the top-level refs naming commit. */
static void refs_of(const char *folder, const char *commit, char *out, size_t cap) {
  out[0] = 0;
  char *rd = ae__path_join(folder, "refs");
  DIR *d = rd ? opendir(rd) : NULL;
  struct dirent *de;
  while (d && (de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char c[41];
    read_ref(folder, de->d_name, c);
    if (!strcmp(c, commit) && strlen(out) + strlen(de->d_name) + 2 < cap) {
      if (out[0]) strcat(out, ",");
      strcat(out, de->d_name);
    }
  }
  if (d) closedir(d);
  ae__free(rd);
}

static int by_name(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

int ae_hub_list(const ae_hub_options *o, ae_hub_cached_fn fn, void *ud) {
  if (!fn) return ae__error(AE_EINVAL, "hub: NULL argument");
  ae__hub_env e;
  int rc = ae__hub_env_get(o, &e);
  if (rc) return rc;
  struct dirent **repos = NULL;
  int nr = scandir(e.root, &repos, NULL, by_name);
  if (nr < 0) {
    rc = errno == ENOENT ? AE_OK : ae__error(AE_EIO, "%s: %s", e.root, strerror(errno));
    ae__hub_env_free(&e);
    return rc;
  }
  for (int i = 0; i < nr; i++) {
    char repo[AE__HUB_REPO_MAX], commit[41];
    char *folder = ae__path_join(e.root, repos[i]->d_name);
    char *snaps = folder ? ae__path_join(folder, "snapshots") : NULL;
    struct dirent **cs = NULL;
    int nc = snaps ? scandir(snaps, &cs, NULL, by_name) : -1;
    for (int j = 0; j < nc; j++) {
      char *snap = ae__path_join(snaps, cs[j]->d_name);
      if (snap && ae_hub_snapshot_info(snap, repo, sizeof repo, commit, sizeof commit)) {
        char refs[512];
        refs_of(folder, commit, refs, sizeof refs);
        usage u = {0, 0};
        walk_snapshot(snap, 0, &u);
        ae_hub_cached m = {repo, refs, commit, snap, u.bytes, u.atime,
                           regular_file(snap, "config.json") && regular_file(snap, "model.safetensors")};
        fn(ud, &m);
      }
      ae__free(snap);
      free(cs[j]);
    }
    free(cs);
    ae__free(snaps);
    ae__free(folder);
    free(repos[i]);
  }
  free(repos);
  ae__hub_env_free(&e);
  return AE_OK;
}

/* ---- removal ---------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st; (void)ftw;
  int r = (flag == FTW_DP) ? rmdir(path) : unlink(path);
  return r && errno != ENOENT ? -1 : 0;
}

static int remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st)) return errno == ENOENT ? AE_OK : ae__error(AE_EIO, "%s: %s", path, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return ae__error(AE_EIO, "%s: not a folder, left alone", path);
  if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT))
    return ae__error(AE_EIO, "%s: cannot remove: %s", path, strerror(errno));
  return AE_OK;
}

int ae_hub_remove(const char *repo, const ae_hub_options *o) {
  ae__hub_spec s;
  int rc = ae__hub_parse_spec(repo, &s);
  if (rc) return rc;
  if (strchr(repo, '@')) return ae__error(AE_EINVAL, "'%s': remove takes ORG/NAME, without @REV", repo);
  ae__hub_env e;
  if ((rc = ae__hub_env_get(o, &e))) return rc;
  char *folder = ae__hub_repo_folder(e.root, s.repo);
  char *aside = folder ? fmt_path("%s.removing.%ld", folder, (long)getpid()) : NULL;
  char *locks = fmt_path("%s/.locks/%s", e.root, folder ? strrchr(folder, '/') + 1 : "");
  struct stat st;
  if (!folder || !aside || !locks) rc = ae__error(AE_ENOMEM, "out of memory");
  else if (lstat(folder, &st) || !S_ISDIR(st.st_mode))
    rc = ae__error(AE_ENOTFOUND, "%s is not in the Hugging Face cache (%s)", s.repo, e.root);
  else if (rename(folder, aside))
    rc = ae__error(AE_EIO, "%s: cannot remove: %s", folder, strerror(errno));
  else if ((rc = remove_tree(aside)) == AE_OK)
    rc = remove_tree(locks);
  ae__free(locks);
  ae__free(aside);
  ae__free(folder);
  ae__hub_env_free(&e);
  return rc;
}
