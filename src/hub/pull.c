/* ae_hub_pull's network half: the Hub's download protocol, as huggingface_hub's
 * hf_hub_download speaks it, over libcurl.
 *
 * 1. Listing. GET {endpoint}/api/models/{repo}/revision/{rev} names the commit ("sha")
 *    and the files ("siblings"). names.c refuses a listing with a name that would leave
 *    the snapshot. From it the pull takes what an encoder needs (k_wanted: config,
 *    weights, tokenizer, sentence-transformers files, README.md on request); a
 *    repository without model.safetensors is refused, naming what it has.
 * 2. Metadata. HEAD {endpoint}/{repo}/resolve/{commit}/{path}, following relative
 *    redirects only (a renamed repository), gives X-Repo-Commit, X-Linked-Etag (else
 *    ETag) and X-Linked-Size (else Content-Length). An absolute redirect is the CDN of
 *    a large (LFS) file: its Location is where the bytes come from. Every file's
 *    metadata is read before any byte is fetched, so a missing token or a bad name fails
 *    fast, and the progress bar knows the total.
 * 3. Blob. The ETag names blobs/<etag>. When it exists the file is cached. Otherwise
 *    the pull takes an exclusive flock(2) on .locks/models--ORG--NAME/<etag>.lock (the
 *    lock huggingface_hub's filelock takes, so the tools exclude each other), checks
 *    again, and downloads into blobs/<etag>.incomplete. An .incomplete left by an
 *    interrupted pull is continued with "Range: bytes=N-"; a server that answers 200
 *    instead of 206 sends the whole file, so the file restarts from zero. A body longer
 *    than the announced size is cut off. A complete file is checked against its ETag
 *    (sha256 for LFS files, whose ETag is the LFS oid; git's blob sha1, "blob <size>\0"
 *    + bytes, for the others) and its size; a mismatch deletes it and fails the pull.
 *    Only a verified file is renamed to blobs/<etag>.
 * 4. Snapshot. When every blob is in place, snapshots/<commit>/<path> become relative
 *    symlinks to ../../blobs/<etag> (created under a temporary name and renamed over,
 *    so two pulls at once both succeed), then refs/<rev> records the commit. A failed
 *    pull therefore leaves no snapshot link at all, and never one to a bad blob.
 *
 * Faults. Transport errors (refused, reset, timed out), 429 and 5xx are retried
 * ($ASTEMBED_HUB_RETRIES times, default 5) after Retry-After when the server gives
 * one (at most 60 s), else an exponential backoff from $ASTEMBED_HUB_BACKOFF_MS (default
 * 1000 ms, at most 8x). Connect and metadata requests time out after
 * $HF_HUB_ETAG_TIMEOUT seconds, a download that receives nothing for
 * $HF_HUB_DOWNLOAD_TIMEOUT seconds is abandoned (both default 10, as in
 * huggingface_hub). 401/403/404 are final and say what to do.
 *
 * Credentials. The bearer token goes only to the endpoint's own origin (scheme, host,
 * port): redirects are followed by this file, not by libcurl, and a request to another
 * origin (the CDN) carries no Authorization header. Neither the token nor a URL's query
 * string (the CDN's signature) is ever put in an error message. TLS peer and host
 * verification stay on; only http and https are allowed, also for redirects. */
#define _GNU_SOURCE
#include "hub/hub.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The files an encoder needs, by exact repository path. */
static const char *const k_wanted[] = {
  "config.json", "model.safetensors",
  "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
  "added_tokens.json", "vocab.json", "merges.txt",
  "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", NULL,
};

#define LISTING_MAX (16u << 20)
#define STR_(x) #x
#define STR(x) STR_(x)
#define MAX_HOPS 5

typedef struct {
  char *name;                 /* repository path */
  char etag[130];
  int64_t size;               /* -1: unknown */
  char *url;                  /* where the bytes come from */
  int cached;
} hub_file;

typedef struct {
  const ae__hub_env *e;
  const ae__hub_spec *s;
  const ae_hub_options *o;
  CURL *curl;
  char origin[512];           /* scheme://host:port of the endpoint */
  long etag_ms, download_s, backoff_ms;
  int retries;
  char *folder, *locks;
  ae_hub_progress pr;
} puller;

/* One response: headers of interest and where the body goes. */
typedef struct {
  long status;
  char etag[160], linked_etag[160], commit[64], location[2048];
  int64_t linked_size, content_length;
  long retry_after;           /* seconds, -1: none */
  /* memory body (listing) */
  char *mem;
  size_t mem_len, mem_cap, mem_max;
  /* file body (download) */
  puller *p;
  int fd;
  int64_t offset, limit;      /* bytes in the file; the file's size (-1 unknown) */
  int overflow, io_error;
  int began;                  /* a body byte of this response arrived */
} xfer;

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static double env_num(const char *name, double dflt, double lo, double hi) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  char *end;
  double d = strtod(v, &end);
  return *end || d != d ? dflt : d < lo ? lo : d > hi ? hi : d;
}

/* The URL without its query string or fragment, for messages (a CDN URL's query holds
 * a signature). */
static void url_for_message(const char *url, char *out, size_t cap) {
  size_t n = strcspn(url, "?#");
  snprintf(out, cap, "%.*s", (int)(n > 300 ? 300 : n), url);
}

/* scheme://host:port of url into out; "" when it does not parse. */
static void origin_of(const char *url, char *out, size_t cap) {
  out[0] = 0;
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL;
  if (u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
      !curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) && !curl_url_get(u, CURLUPART_HOST, &host, 0) &&
      !curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT))
    snprintf(out, cap, "%s://%s:%s", scheme, host, port);
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
}

static int same_origin(const puller *p, const char *url) {
  char o[512];
  origin_of(url, o, sizeof o);
  return o[0] && !strcmp(o, p->origin);
}

/* ---- libcurl callbacks -------------------------------------------------------------- */

static void set_value(char *d, size_t cap, const char *v) {
  size_t n = strlen(v);
  if (n >= cap) n = cap - 1;
  memcpy(d, v, n);
  d[n] = 0;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t len = size * n;
  if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {   /* a new response (e.g. after 100) */
    x->etag[0] = x->linked_etag[0] = x->commit[0] = x->location[0] = 0;
    x->linked_size = x->content_length = -1;
    x->retry_after = -1;
    return len;
  }
  const char *colon = memchr(buf, ':', len);
  if (!colon) return len;
  size_t kn = (size_t)(colon - buf);
  const char *v = colon + 1;
  size_t vn = len - kn - 1;
  while (vn && (*v == ' ' || *v == '\t')) { v++; vn--; }
  while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' ')) vn--;
  char val[2048];
  if (vn >= sizeof val) vn = sizeof val - 1;
  memcpy(val, v, vn);
  val[vn] = 0;
#define IS(h) (kn == sizeof(h) - 1 && !strncasecmp(buf, h, kn))
  if (IS("ETag")) set_value(x->etag, sizeof x->etag, val);
  else if (IS("X-Linked-Etag")) set_value(x->linked_etag, sizeof x->linked_etag, val);
  else if (IS("X-Repo-Commit")) set_value(x->commit, sizeof x->commit, val);
  else if (IS("Location")) set_value(x->location, sizeof x->location, val);
  else if (IS("X-Linked-Size") || IS("Content-Length")) {
    char *end;
    long long s = strtoll(val, &end, 10);
    if (end != val && !*end && s >= 0) *(IS("X-Linked-Size") ? &x->linked_size : &x->content_length) = s;
  } else if (IS("Retry-After")) {
    char *end;
    long s = strtol(val, &end, 10);
    if (end != val && !*end && s >= 0) x->retry_after = s;
  }
#undef IS
  return len;
}

static void report(puller *p) {
  if (p->o && p->o->progress) p->o->progress(p->o->progress_ud, &p->pr);
}

static size_t on_mem_body(char *buf, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t len = size * n;
  if (x->mem_len + len > x->mem_max) { x->overflow = 1; return 0; }
  if (x->mem_len + len + 1 > x->mem_cap) {
    size_t cap = (x->mem_len + len + 1) * 2;
    if (cap > x->mem_max + 1) cap = x->mem_max + 1;
    char *m = ae__realloc(x->mem, cap);
    if (!m) { x->io_error = ENOMEM; return 0; }
    x->mem = m;
    x->mem_cap = cap;
  }
  memcpy(x->mem + x->mem_len, buf, len);
  x->mem_len += len;
  x->mem[x->mem_len] = 0;
  return len;
}

static size_t on_file_body(char *buf, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(x->p->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200 && status != 206) return len;     /* an error page: not file bytes */
  if (status == 200 && x->offset > 0 && !x->began) {  /* the server ignored Range */
    if (ftruncate(x->fd, 0) || lseek(x->fd, 0, SEEK_SET) < 0) { x->io_error = errno; return 0; }
    x->p->pr.done -= (uint64_t)x->offset;
    x->offset = 0;
  }
  x->began = 1;
  if (x->limit >= 0 && x->offset + (int64_t)len > x->limit) { x->overflow = 1; return 0; }
  for (size_t w = 0; w < len;) {
    ssize_t k = write(x->fd, buf + w, len - w);
    if (k < 0) {
      if (errno == EINTR) continue;
      x->io_error = errno;
      return 0;
    }
    w += (size_t)k;
  }
  x->offset += (int64_t)len;
  x->p->pr.event = AE_HUB_FILE_PROGRESS;
  x->p->pr.file_done = (uint64_t)x->offset;
  x->p->pr.done += len;
  report(x->p);
  return len;
}

/* ---- one request -------------------------------------------------------------------- */

enum { REQ_HEAD, REQ_GET_MEM, REQ_GET_FILE };

/* Performs one request. AE_OK when a response arrived (x->status), else AE_EIO with
 * the transport error named (*transient: worth retrying). */
static int request(puller *p, const char *what, const char *url, int kind, xfer *x, int *transient) {
  CURL *c = p->curl;
  curl_easy_reset(c);
  x->status = 0;
  x->etag[0] = x->linked_etag[0] = x->commit[0] = x->location[0] = 0;
  x->linked_size = x->content_length = -1;
  x->retry_after = -1;
  x->overflow = x->io_error = x->began = 0;
  x->p = p;
  *transient = 0;
  struct curl_slist *h = NULL;
  char auth[4200], range[64];
  if (p->e->token && same_origin(p, url)) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", p->e->token);
    h = curl_slist_append(h, auth);
    memset(auth, 0, sizeof auth);
  }
  if (kind == REQ_GET_FILE && x->offset > 0) {
    snprintf(range, sizeof range, "Range: bytes=%lld-", (long long)x->offset);
    h = curl_slist_append(h, range);
  }
  h = curl_slist_append(h, "Accept-Encoding: identity");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "astembed/" STR(AE_VERSION_MAJOR) "." STR(AE_VERSION_MINOR) "." STR(AE_VERSION_PATCH));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, p->etag_ms);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, kind == REQ_GET_FILE ? p->download_s : (p->etag_ms + 999) / 1000);
  if (kind == REQ_HEAD) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, p->etag_ms);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
  if (kind == REQ_HEAD) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, kind == REQ_GET_FILE ? on_file_body : on_mem_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
  char err[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
  CURLcode cc = curl_easy_perform(c);
  curl_slist_free_all(h);   /* held the token: libcurl copies nothing it keeps */
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
  char shown[400];
  url_for_message(url, shown, sizeof shown);
  if (x->io_error)
    return ae__error(AE_EIO, "%s: writing the download: %s", what, strerror(x->io_error));
  if (x->overflow)
    return ae__error(AE_EFORMAT, "%s: %s sent more bytes than announced", what, shown);
  if (cc == CURLE_OK) return AE_OK;
  *transient = cc != CURLE_UNSUPPORTED_PROTOCOL && cc != CURLE_URL_MALFORMAT &&
               cc != CURLE_PEER_FAILED_VERIFICATION && cc != CURLE_SSL_CACERT_BADFILE;
  if (cc == CURLE_OPERATION_TIMEDOUT && kind == REQ_GET_FILE)
    return ae__error(AE_EIO, "%s: %s: timed out: the server sent nothing for %ld s (HF_HUB_DOWNLOAD_TIMEOUT)",
                     what, shown, p->download_s);
  if (cc == CURLE_OPERATION_TIMEDOUT)
    return ae__error(AE_EIO, "%s: %s: timed out: no answer within %.1f s (HF_HUB_ETAG_TIMEOUT)", what, shown,
                     p->etag_ms / 1000.0);
  return ae__error(AE_EIO, "%s: %s: %s", what, shown, err[0] ? err : curl_easy_strerror(cc));
}

/* Waits before attempt number `attempt` (1-based) after x. */
static void backoff(const puller *p, const xfer *x, int attempt) {
  long ms = x && x->retry_after >= 0 ? (x->retry_after > 60 ? 60 : x->retry_after) * 1000
                                    : p->backoff_ms << (attempt - 1 < 3 ? attempt - 1 : 3);
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

static int retryable_status(long s) { return s == 429 || (s >= 500 && s <= 599); }

/* The final error of an HTTP status. */
static int status_error(const puller *p, const char *what, long status) {
  if (status == 401 || status == 403)
    return ae__error(AE_EINVAL, "%s: access denied (HTTP %ld): %s is gated or private, or does not exist: "
                     "%s (set HF_TOKEN or write it to $HF_HOME/token)", what, status, p->s->repo,
                     p->e->token ? "the token given has no access" : "no token given");
  if (status == 404)
    return ae__error(AE_ENOTFOUND, "%s: not found (HTTP 404) on %s", what, p->e->endpoint);
  return ae__error(AE_EIO, "%s: HTTP %ld from %s", what, status, p->e->endpoint);
}

/* ---- listing and metadata ------------------------------------------------------------ */

static char *escape(CURL *c, const char *s) {
  char *e = curl_easy_escape(c, s, 0), *r = e ? ae__strdup(e) : NULL;
  curl_free(e);
  return r;
}

/* The repository path with each component percent-encoded (ae__free). */
static char *escape_path(CURL *c, const char *path) {
  size_t cap = strlen(path) * 3 + 1, n = 0;
  char *out = ae__malloc(cap);
  if (!out) return NULL;
  for (const char *p = path; ; ) {
    size_t k = strcspn(p, "/");
    char *part = curl_easy_escape(c, p, (int)k);
    if (!part) { ae__free(out); return NULL; }
    n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "/" : "", part);
    curl_free(part);
    if (!p[k]) break;
    p += k + 1;
  }
  return out;
}

static int get_listing(puller *p, ae__hub_listing *l) {
  char *rev = escape(p->curl, p->s->rev);
  char *url = rev ? ae__malloc(strlen(p->e->endpoint) + strlen(p->s->repo) + strlen(rev) + 32) : NULL;
  if (!url) { ae__free(rev); return ae__error(AE_ENOMEM, "out of memory"); }
  sprintf(url, "%s/api/models/%s/revision/%s", p->e->endpoint, p->s->repo, rev);
  ae__free(rev);
  char what[AE__HUB_REPO_MAX + AE__HUB_REV_MAX + 32];
  snprintf(what, sizeof what, "listing %s@%s", p->s->repo, p->s->rev);
  xfer x;
  memset(&x, 0, sizeof x);
  x.mem_max = LISTING_MAX;
  int rc;
  for (int attempt = 0;; attempt++) {
    int transient;
    x.mem_len = 0;
    rc = request(p, what, url, REQ_GET_MEM, &x, &transient);
    if (rc == AE_OK && x.status == 200) break;
    int again = rc ? transient : retryable_status(x.status);
    if (!rc) rc = x.status == 404 ? ae__error(AE_ENOTFOUND, "%s: repository or revision not found (HTTP 404) on %s",
                                              what, p->e->endpoint)
                                  : status_error(p, what, x.status);
    if (!again || attempt >= p->retries) goto out;
    backoff(p, &x, attempt + 1);
  }
  rc = ae__hub_parse_listing(x.mem ? x.mem : "", x.mem_len, l);
  if (rc) {
    char why[600];
    snprintf(why, sizeof why, "%s", ae_last_error());
    rc = ae__error(rc, "%s: %s", what, why);
  }
out:
  ae__free(x.mem);
  ae__free(url);
  return rc;
}

static int wanted(const char *name, int readme) {
  for (int i = 0; k_wanted[i]; i++)
    if (!strcmp(name, k_wanted[i])) return 1;
  if (readme && !strcmp(name, "README.md")) return 1;
  /* the sentence-transformers pooling module: N_Pooling/config.json */
  const char *q = name;
  while (*q >= '0' && *q <= '9') q++;
  return q > name && !strcmp(q, "_Pooling/config.json");
}

/* HEAD the file (following relative redirects): its etag, size and download URL. */
static int get_meta(puller *p, const char *commit, hub_file *f) {
  char *path = escape_path(p->curl, f->name);
  char *url = path ? ae__malloc(strlen(p->e->endpoint) + strlen(p->s->repo) + strlen(path) + 64) : NULL;
  if (!url) { ae__free(path); return ae__error(AE_ENOMEM, "out of memory"); }
  sprintf(url, "%s/%s/resolve/%s/%s", p->e->endpoint, p->s->repo, commit, path);
  ae__free(path);
  xfer x;
  memset(&x, 0, sizeof x);
  int rc = AE_OK, hops = 0;
  for (int attempt = 0;;) {
    int transient;
    rc = request(p, f->name, url, REQ_HEAD, &x, &transient);
    if (rc == AE_OK && x.status >= 300 && x.status < 400 && x.location[0] == '/' && hops < MAX_HOPS) {
      char *next = ae__malloc(strlen(p->origin) + strlen(x.location) + 1);
      if (!next) { rc = ae__error(AE_ENOMEM, "out of memory"); break; }
      /* origin_of writes scheme://host:port; a relative Location is a path on it */
      sprintf(next, "%s%s", p->origin, x.location);
      ae__free(url);
      url = next;
      hops++;
      continue;
    }
    if (rc == AE_OK && (x.status == 200 || (x.status >= 300 && x.status < 400 && x.location[0]))) break;
    int again = rc ? transient : retryable_status(x.status);
    if (!rc) rc = x.status >= 300 && x.status < 400 ? ae__error(AE_EFORMAT, "%s: redirect without a usable Location", f->name)
                                                    : status_error(p, f->name, x.status);
    if (!again || ++attempt > p->retries) break;
    backoff(p, &x, attempt);
  }
  if (rc == AE_OK) {
    if (x.commit[0] && strcmp(x.commit, commit))
      rc = ae__error(AE_EMISMATCH, "%s: the hub answered for commit %.40s, the listing named %s", f->name, x.commit, commit);
    else if (x.status != 200) {
      CURLU *u = curl_url();   /* absolute Location (the CDN), resolved against url */
      char *abs = NULL;
      if (u && !curl_url_set(u, CURLUPART_URL, url, 0) && !curl_url_set(u, CURLUPART_URL, x.location, 0) &&
          !curl_url_get(u, CURLUPART_URL, &abs, 0))
        f->url = ae__strdup(abs);
      else
        rc = ae__error(AE_EFORMAT, "%s: unusable redirect Location", f->name);
      curl_free(abs);
      curl_url_cleanup(u);
    } else {
      f->url = ae__strdup(url);
    }
  }
  if (rc == AE_OK) {
    const char *tag = x.linked_etag[0] ? x.linked_etag : x.etag;
    if (ae__hub_parse_etag(tag, strlen(tag), f->etag, sizeof f->etag))
      rc = ae__error(AE_EFORMAT, "%s: the hub sent no usable ETag", f->name);
    f->size = x.linked_size >= 0 ? x.linked_size : x.status == 200 ? x.content_length : -1;
    if (!rc && !f->url) rc = ae__error(AE_ENOMEM, "out of memory");
  }
  ae__free(url);
  return rc;
}

/* ---- blobs ---------------------------------------------------------------------------- */

static int hex_equal(const unsigned char *d, unsigned n, const char *hex, char got[129]) {
  for (unsigned i = 0; i < n; i++) sprintf(got + 2 * i, "%02x", d[i]);
  return !strcasecmp(got, hex);
}

/* Checks the file against etag: sha256 (64 hex), git blob sha1 (40 hex), else none. */
static int verify(const char *name, const char *path, const char *etag, int64_t size) {
  size_t tl = strlen(etag);
  int sha256 = tl == 64, sha1 = tl == 40;
  for (size_t i = 0; i < tl; i++)
    if (!((etag[i] >= '0' && etag[i] <= '9') || (etag[i] >= 'a' && etag[i] <= 'f'))) sha256 = sha1 = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st)) {
    if (fd >= 0) close(fd);
    return ae__error(AE_EIO, "%s: %s", path, strerror(errno));
  }
  if (size >= 0 && st.st_size != size) {
    close(fd);
    return ae__error(AE_EMISMATCH, "%s: %lld bytes downloaded, the hub announced %lld", name,
                     (long long)st.st_size, (long long)size);
  }
  if (!sha256 && !sha1) { close(fd); return AE_OK; }
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int rc = AE_OK;
  if (!ctx || !EVP_DigestInit_ex(ctx, sha256 ? EVP_sha256() : EVP_sha1(), NULL)) rc = ae__error(AE_ENOMEM, "sha: no context");
  if (!rc && sha1) {
    char head[64];
    int n = snprintf(head, sizeof head, "blob %lld", (long long)st.st_size);
    EVP_DigestUpdate(ctx, head, (size_t)n + 1);   /* with its NUL */
  }
  static __thread unsigned char buf[1 << 16];
  ssize_t k;
  while (!rc && (k = read(fd, buf, sizeof buf)) != 0) {
    if (k < 0) { if (errno == EINTR) continue; rc = ae__error(AE_EIO, "%s: %s", path, strerror(errno)); break; }
    EVP_DigestUpdate(ctx, buf, (size_t)k);
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned dn = 0;
  char got[129];
  if (!rc && EVP_DigestFinal_ex(ctx, d, &dn) && !hex_equal(d, dn, etag, got))
    rc = ae__error(AE_EMISMATCH, "%s: %s mismatch: the hub's ETag says %s, the bytes hash to %s",
                   name, sha256 ? "sha256" : "git blob sha1", etag, got);
  EVP_MD_CTX_free(ctx);
  close(fd);
  return rc;
}

/* Downloads f into blobs/<etag>.incomplete (continuing what is there), verifies it and
 * renames it into place. Called with the blob's lock held. */
static int fetch_blob(puller *p, hub_file *f, const char *blob) {
  char *part = ae__malloc(strlen(blob) + 12);
  if (!part) return ae__error(AE_ENOMEM, "out of memory");
  sprintf(part, "%s.incomplete", blob);
  int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  struct stat st;
  if (fd < 0 || fstat(fd, &st)) {
    int rc = ae__error(AE_EIO, "%s: %s", part, strerror(errno));
    if (fd >= 0) close(fd);
    ae__free(part);
    return rc;
  }
  xfer x;
  memset(&x, 0, sizeof x);
  x.fd = fd;
  x.offset = st.st_size;
  x.limit = f->size;
  if (f->size >= 0 && x.offset > f->size) x.offset = 0;
  int rc = AE_OK;
  if (ftruncate(fd, x.offset) || lseek(fd, x.offset, SEEK_SET) < 0)
    rc = ae__error(AE_EIO, "%s: %s", part, strerror(errno));
  p->pr.done += (uint64_t)x.offset;
  p->pr.file_done = (uint64_t)x.offset;
  for (int attempt = 0; !rc && !(f->size >= 0 && x.offset == f->size && f->size > 0);) {
    int transient;
    rc = request(p, f->name, f->url, REQ_GET_FILE, &x, &transient);
    if (rc == AE_OK && (x.status == 200 || x.status == 206)) break;
    int again = rc ? transient : retryable_status(x.status) || x.status == 416;
    if (rc == AE_OK && x.status == 416) {   /* the range is past the end: start over */
      if (ftruncate(fd, 0) || lseek(fd, 0, SEEK_SET) < 0) { rc = ae__error(AE_EIO, "%s: %s", part, strerror(errno)); break; }
      p->pr.done -= (uint64_t)x.offset;
      x.offset = 0;
    }
    if (!rc) rc = x.status == 416 ? ae__error(AE_EIO, "%s: the server refused every range (HTTP 416)", f->name)
                                  : status_error(p, f->name, x.status);
    if (!again || ++attempt > p->retries) break;
    rc = AE_OK;
    backoff(p, &x, attempt);
  }
  if (!rc && fsync(fd)) rc = ae__error(AE_EIO, "%s: %s", part, strerror(errno));
  close(fd);
  if (!rc && (rc = verify(f->name, part, f->etag, f->size)) != AE_OK) {
    unlink(part);     /* a corrupt download is not resumed */
    char why[600];
    snprintf(why, sizeof why, "%s", ae_last_error());
    rc = ae__error(rc, "%s (the download was deleted)", why);
  }
  if (!rc && rename(part, blob)) rc = ae__error(AE_EIO, "%s: %s", blob, strerror(errno));
  ae__free(part);
  return rc;
}

static int blob_present(const char *blob, int64_t size) {
  struct stat st;
  return lstat(blob, &st) == 0 && S_ISREG(st.st_mode) && (size < 0 || st.st_size == size);
}

static int ensure_blob(puller *p, hub_file *f) {
  char *blob = ae__malloc(strlen(p->folder) + strlen(f->etag) + 16);
  char *lock = ae__malloc(strlen(p->locks) + strlen(f->etag) + 16);
  int rc = AE_OK, lfd = -1;
  if (!blob || !lock) { rc = ae__error(AE_ENOMEM, "out of memory"); goto out; }
  sprintf(blob, "%s/blobs/%s", p->folder, f->etag);
  sprintf(lock, "%s/%s.lock", p->locks, f->etag);
  if (blob_present(blob, f->size)) { f->cached = 1; goto out; }
  if ((lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
    { rc = ae__error(AE_EIO, "%s: %s", lock, strerror(errno)); goto out; }
  while (flock(lfd, LOCK_EX))
    if (errno != EINTR) { rc = ae__error(AE_EIO, "%s: lock: %s", lock, strerror(errno)); goto out; }
  if (blob_present(blob, f->size)) { f->cached = 1; goto out; }   /* another process fetched it */
  rc = fetch_blob(p, f, blob);
out:
  if (lfd >= 0) close(lfd);   /* releases the flock */
  ae__free(blob);
  ae__free(lock);
  return rc;
}

/* ---- snapshot -------------------------------------------------------------------------- */

/* Creates link at path (symlink to target) through a temporary name and rename(2). */
static int put_link(const char *target, const char *path) {
  char tmp[4300];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  unlink(tmp);
  if (symlink(target, tmp) || rename(tmp, path)) {
    int rc = ae__error(AE_EIO, "%s: %s", path, strerror(errno));
    unlink(tmp);
    return rc;
  }
  return AE_OK;
}

/* Creates the folders of name below snap, refusing any that is not a real folder. */
static int make_parents(const char *snap, const char *name) {
  char buf[4200];
  int n = snprintf(buf, sizeof buf, "%s/%s", snap, name);
  if (n < 0 || n >= (int)sizeof buf) return ae__error(AE_EINVAL, "%s: path too long", name);
  for (char *q = buf + strlen(snap) + 1; (q = strchr(q, '/')); q++) {
    *q = 0;
    struct stat st;
    if (mkdir(buf, 0755) && errno != EEXIST) return ae__error(AE_EIO, "%s: %s", buf, strerror(errno));
    if (lstat(buf, &st) || !S_ISDIR(st.st_mode))
      return ae__error(AE_EFORMAT, "%s: a folder of the snapshot is a link or a file: refused", name);
    *q = '/';
  }
  return AE_OK;
}

static int link_snapshot(puller *p, const char *commit, hub_file *files, size_t n, char **dir) {
  char *snap = ae__malloc(strlen(p->folder) + 64);
  if (!snap) return ae__error(AE_ENOMEM, "out of memory");
  sprintf(snap, "%s/snapshots/%s", p->folder, commit);
  int rc = ae__hub_mkdirs(snap);
  for (size_t i = 0; !rc && i < n; i++) {
    char target[4200], path[4200];
    size_t t = 0;
    for (const char *q = files[i].name; (q = strchr(q, '/')); q++) t += (size_t)snprintf(target + t, sizeof target - t, "../");
    snprintf(target + t, sizeof target - t, "../../blobs/%s", files[i].etag);
    snprintf(path, sizeof path, "%s/%s", snap, files[i].name);
    if (!(rc = make_parents(snap, files[i].name))) rc = put_link(target, path);
  }
  if (!rc && strcmp(p->s->rev, commit)) {   /* refs/<rev> = commit */
    char ref[4200], tmp[4300];
    snprintf(ref, sizeof ref, "%s/refs/%s", p->folder, p->s->rev);
    char *slash = strrchr(ref, '/');
    *slash = 0;
    rc = ae__hub_mkdirs(ref);
    *slash = '/';
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", ref, (long)getpid());
    FILE *fp = rc ? NULL : fopen(tmp, "w");
    int bad = !rc && (!fp || fputs(commit, fp) < 0);
    if (fp && fclose(fp)) bad = 1;
    if (!rc && (bad || rename(tmp, ref))) {
      rc = ae__error(AE_EIO, "%s: %s", ref, strerror(errno));
      unlink(tmp);
    }
  }
  if (rc) ae__free(snap);
  else *dir = snap;
  return rc;
}

/* ---- the pull ---------------------------------------------------------------------------- */

static int pick_files(const ae__hub_listing *l, const puller *p, hub_file **out, size_t *n) {
  int has_weights = 0, has_config = 0, has_tok = 0;
  *out = ae__calloc(l->n ? l->n : 1, sizeof **out);
  if (!*out) return ae__error(AE_ENOMEM, "out of memory");
  *n = 0;
  for (size_t i = 0; i < l->n; i++) {
    if (!wanted(l->files[i], p->o && p->o->readme)) continue;
    has_weights |= !strcmp(l->files[i], "model.safetensors");
    has_config |= !strcmp(l->files[i], "config.json");
    has_tok |= !strcmp(l->files[i], "tokenizer.json") || !strcmp(l->files[i], "vocab.txt");
    (*out)[(*n)++].name = l->files[i];
  }
  if (has_weights && has_config && has_tok) return AE_OK;
  char have[1024] = "";
  size_t k = 0;
  for (size_t i = 0; i < l->n && k + 2 < sizeof have; i++)
    k += (size_t)snprintf(have + k, sizeof have - k, "%s%s", i ? ", " : "", l->files[i]);
  if (k >= sizeof have - 2) strcpy(have + sizeof have - 5, "...");
  return ae__error(AE_EUNSUPPORTED, "%s@%s has no %s; it has: %s", p->s->repo, p->s->rev,
                   !has_weights ? "model.safetensors (astembed reads safetensors weights only)"
                   : !has_config ? "config.json" : "tokenizer.json or vocab.txt",
                   l->n ? have : "no files");
}

int ae__hub_download(const ae__hub_env *e, const ae__hub_spec *s, const ae_hub_options *o, char **dir) {
  pthread_once(&g_curl_once, curl_init_once);
  puller p;
  memset(&p, 0, sizeof p);
  p.e = e; p.s = s; p.o = o;
  p.etag_ms = (long)(env_num("HF_HUB_ETAG_TIMEOUT", 10, 0.05, 3600) * 1000);
  p.download_s = (long)env_num("HF_HUB_DOWNLOAD_TIMEOUT", 10, 1, 3600);
  p.retries = (int)env_num("ASTEMBED_HUB_RETRIES", 5, 0, 20);
  p.backoff_ms = (long)env_num("ASTEMBED_HUB_BACKOFF_MS", 1000, 0, 60000);
  origin_of(e->endpoint, p.origin, sizeof p.origin);
  if (!p.origin[0]) return ae__error(AE_EINVAL, "hub endpoint '%.200s' (HF_ENDPOINT) is not a URL", e->endpoint);
  /* origin_of gives scheme://host:port; requests to the endpoint are built from it too */
  if (!(p.curl = curl_easy_init())) return ae__error(AE_ENOMEM, "libcurl: no handle");
  ae__hub_listing l;
  memset(&l, 0, sizeof l);
  hub_file *files = NULL;
  size_t n = 0;
  int rc = get_listing(&p, &l);
  if (!rc) rc = pick_files(&l, &p, &files, &n);
  p.folder = rc ? NULL : ae__hub_repo_folder(e->root, s->repo);
  if (!rc && p.folder) {
    const char *base = strrchr(p.folder, '/') + 1;
    p.locks = ae__malloc(strlen(e->root) + strlen(base) + 16);
    if (p.locks) sprintf(p.locks, "%s/.locks/%s", e->root, base);
  }
  if (!rc && (!p.folder || !p.locks)) rc = ae__error(AE_ENOMEM, "out of memory");
  if (!rc) {
    char *blobs = ae__path_join(p.folder, "blobs");
    rc = blobs ? ae__hub_mkdirs(blobs) : ae__error(AE_ENOMEM, "out of memory");
    if (!rc) rc = ae__hub_mkdirs(p.locks);
    ae__free(blobs);
  }
  for (size_t i = 0; !rc && i < n; i++) {
    files[i].size = -1;
    rc = get_meta(&p, l.sha, &files[i]);
    if (!rc && files[i].size > 0) p.pr.total += (uint64_t)files[i].size;
  }
  for (size_t i = 0; !rc && i < n; i++) {
    p.pr = (ae_hub_progress){AE_HUB_FILE_START, files[i].name, (int)i, (int)n, 0,
                             files[i].size > 0 ? (uint64_t)files[i].size : 0, p.pr.done, p.pr.total, 0};
    report(&p);
    uint64_t before = p.pr.done;
    rc = ensure_blob(&p, &files[i]);
    if (!rc) {
      if (files[i].size > 0) p.pr.done = before + (uint64_t)files[i].size;
      p.pr.event = AE_HUB_FILE_DONE;
      p.pr.file_done = p.pr.file_total;
      p.pr.cached = files[i].cached;
      report(&p);
    }
  }
  if (!rc) rc = link_snapshot(&p, l.sha, files, n, dir);
  for (size_t i = 0; i < n; i++) ae__free(files[i].url);
  ae__free(files);
  ae__hub_listing_free(&l);
  ae__free(p.folder);
  ae__free(p.locks);
  curl_easy_cleanup(p.curl);
  return rc;
}
