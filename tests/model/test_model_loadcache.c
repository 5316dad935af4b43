// ctest-labels: model
// ctest-timeout: 120
/* The weights entry of the load cache: the fingerprint is the same with and without
 * it; a second load takes the digest and the finite check from it; any change to
 * model.safetensors (in-place rewrite of other bytes of the same size, a NaN
 * injected in place or by replacing the file, a touch) or to config.json is a miss;
 * a corrupt entry is a miss; an unusable cache folder never fails a load; the
 * encoder's vectors are bit-identical with and without the cache; allocation
 * failures on the cached path give AE_OK or AE_ENOMEM and leak nothing. */
#include "model_test_util.h"
#include "encoder/encoder.h"
#include "test.h"
#include "failalloc.h"

#include <dirent.h>
#include <fcntl.h>
#include <time.h>

/* Entries are written only for files older than the current coarse-clock tick. */
static void let_tick_pass(void) {
  struct timespec ts = {0, 30 * 1000 * 1000};
  nanosleep(&ts, NULL);
}

typedef struct { int rc, cached; uint8_t fp[16]; } load_result;

static load_result load(const char *dir, const char *cache) {
  load_result r;
  memset(&r, 0, sizeof r);
  ae__bert_model *m = NULL;
  r.rc = ae__bert_load_ex(dir, 0, cache, &m);
  if (m) {
    r.cached = m->weights_cached;
    memcpy(r.fp, m->fingerprint, 16);
  }
  ae__bert_free(m);
  return r;
}

/* File offset of a tensor's first byte. */
static long tensor_offset(const char *dir, const char *name) {
  st_parts p = st_read(dir);
  json_t *e = json_object_get(p.hdr, name);
  long off = e ? (long)(p.data - p.file) + (long)json_integer_value(json_array_get(json_object_get(e, "data_offsets"), 0)) : -1;
  st_parts_free(&p);
  return off;
}

/* Overwrites 4 bytes of model.safetensors in place (same inode, same size). */
static void poke(const char *dir, long off, uint32_t bits) {
  char *p = pjoin(dir, "model.safetensors");
  int fd = open(p, O_WRONLY);
  REQUIRE(fd >= 0 && off > 0);
  CHECK(pwrite(fd, &bits, 4, off) == 4);
  close(fd);
  free(p);
}

static void entry_path(const char *cache, char *buf, size_t cap) {
  DIR *d = opendir(cache);
  buf[0] = 0;
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strstr(e->d_name, "weights-") && !strstr(e->d_name, ".tmp")) snprintf(buf, cap, "%s/%s", cache, e->d_name);
  closedir(d);
}

static void fingerprints_and_invalidation(void) {
  char *dir = make_model(NULL, "F32", 7, 0), *cache = tmp_dir();
  let_tick_pass();
  load_result plain = load(dir, NULL), miss = load(dir, cache), hit = load(dir, cache);
  CHECK_OK(plain.rc);
  CHECK_OK(miss.rc);
  CHECK_OK(hit.rc);
  CHECK(!plain.cached && !miss.cached);
  CHECKF(hit.cached, "the second cached load did not use the entry");
  CHECK(!memcmp(plain.fp, miss.fp, 16) && !memcmp(plain.fp, hit.fp, 16));

  /* other bytes, same size, same inode */
  long off = tensor_offset(dir, "embeddings.LayerNorm.bias");
  poke(dir, off, 0x3f000000u); /* 0.5f */
  load_result after = load(dir, cache), ref = load(dir, NULL);
  CHECK_OK(after.rc);
  CHECK(!after.cached);
  CHECK(memcmp(after.fp, plain.fp, 16) != 0);
  CHECK(!memcmp(after.fp, ref.fp, 16));

  /* a NaN written in place after a cached load of the good file */
  let_tick_pass();
  load(dir, cache);
  CHECK(load(dir, cache).cached);
  poke(dir, off, 0x7fc00000u);
  load_result nan = load(dir, cache);
  CHECKF(nan.rc == AE_EFORMAT, "NaN file after a cached load: status %d", nan.rc);
  CHECK(strstr(ae_last_error(), "NaN") != NULL);
  CHECK(load(dir, cache).rc == AE_EFORMAT); /* refused files are never cached */

  /* back to good bytes, cached, then replaced by a NaN file through rename */
  poke(dir, off, 0x3f000000u);
  let_tick_pass();
  load(dir, cache);
  CHECK(load(dir, cache).cached);
  size_t len;
  uint8_t *bytes = read_bytes(dir, "model.safetensors", &len);
  uint32_t qnan = 0x7fc00000u;
  memcpy(bytes + off, &qnan, 4);
  write_bytes(dir, "model.safetensors.new", bytes, len);
  char *a = pjoin(dir, "model.safetensors.new"), *b = pjoin(dir, "model.safetensors");
  CHECK(rename(a, b) == 0);
  CHECK(load(dir, cache).rc == AE_EFORMAT);
  /* and back by rename: a miss (new inode), then a hit */
  qnan = 0x3f000000u;
  memcpy(bytes + off, &qnan, 4);
  write_bytes(dir, "model.safetensors.new", bytes, len);
  CHECK(rename(a, b) == 0);
  let_tick_pass();
  load_result back = load(dir, cache);
  CHECK(back.rc == AE_OK && !back.cached && !memcmp(back.fp, ref.fp, 16));
  CHECK(load(dir, cache).cached);

  /* a touch changes ctime: a miss with the same fingerprint */
  let_tick_pass();
  CHECK(utimensat(AT_FDCWD, b, NULL, 0) == 0);
  load_result touched = load(dir, cache);
  CHECK(touched.rc == AE_OK && !touched.cached && !memcmp(touched.fp, ref.fp, 16));

  /* config.json edited (whitespace): the scan is redone. (The touched file was loaded
   * within its own timestamp tick, so that load could not write an entry: racy.) */
  let_tick_pass();
  load(dir, cache);
  CHECK(load(dir, cache).cached);
  size_t clen;
  uint8_t *cfg = read_bytes(dir, "config.json", &clen);
  cfg[clen] = '\n';
  write_bytes(dir, "config.json", cfg, clen + 1);
  free(cfg);
  CHECK(!load(dir, cache).cached);

  /* a corrupt entry (any flipped byte) is a miss, never a wrong answer. The cache is
   * emptied first: the file versions above left entries of their own, and the one
   * flipped must be the one this load uses. */
  rm_rf(cache);
  REQUIRE(mkdir(cache, 0700) == 0);
  let_tick_pass();
  load(dir, cache);
  load_result good = load(dir, cache);
  CHECK(good.cached);
  char ep[4400];
  entry_path(cache, ep, sizeof ep);
  REQUIRE(ep[0]);
  size_t elen;
  FILE *f = fopen(ep, "rb");
  uint8_t entry[256];
  elen = fread(entry, 1, sizeof entry, f);
  fclose(f);
  size_t flips = 0, misses = 0;
  for (size_t i = 0; i < elen; i++) {
    entry[i] ^= 0x10;
    f = fopen(ep, "wb");
    fwrite(entry, 1, elen, f);
    fclose(f);
    entry[i] ^= 0x10;
    /* the digest bytes are what a flip there would change: check it is refused */
    load_result r = load(dir, cache);
    flips++;
    misses += r.rc == AE_OK && !r.cached && !memcmp(r.fp, good.fp, 16);
    f = fopen(ep, "wb"); /* restore for the next flip (the miss rewrote it anyway) */
    fwrite(entry, 1, elen, f);
    fclose(f);
  }
  CHECKF(misses == flips, "%zu of %zu corrupt entries were used", flips - misses, flips);
  f = fopen(ep, "wb");
  fwrite(entry, 1, elen / 2, f);
  fclose(f);
  CHECK(!load(dir, cache).cached);

  free(a); free(b); free(bytes);
  rm_rf(dir); rm_rf(cache);
  free(dir); free(cache);
}

static void unusable_cache(void) {
  char *dir = make_model(NULL, "F16", 3, 0);
  char *file = pjoin(dir, "config.json"), *under = pjoin(file, "cache");
  load_result ref = load(dir, NULL);
  const char *caches[] = {file, under, "/proc/astembed-no-such-cache"};
  for (int i = 0; i < 3; i++) {
    load_result r = load(dir, caches[i]);
    CHECK(r.rc == AE_OK && !r.cached && !memcmp(r.fp, ref.fp, 16));
  }
  free(file); free(under);
  rm_rf(dir);
  free(dir);
}

/* The encoder through ae_encoder_load: same fingerprint, bit-identical vectors. */
static void encoder_vectors(void) {
  const char *src = getenv("AE_SOURCE_DIR");
  char tj[4200];
  snprintf(tj, sizeof tj, "%s/tests/tokenizer/data/tiny", src ? src : ".");
  char *dir = make_model(NULL, "F32", 11, 0), *cache = tmp_dir();
  size_t len;
  uint8_t *tok = read_bytes(tj, "tokenizer.json", &len);
  write_bytes(dir, "tokenizer.json", tok, len);
  free(tok);
  let_tick_pass();
  const char *texts[] = {"hello world", "a [MASK] tag", "x"};
  float v[3][3 * 32];
  uint8_t fps[3][16];
  for (int i = 0; i < 3; i++) {
    ae_encoder_options o = {.threads = 1, .prepack = AE_PREPACK_OFF, .cache_dir = i ? cache : NULL};
    ae_encoder *e = NULL;
    CHECK_OK(ae_encoder_load(dir, &o, &e));
    REQUIRE(e && ae_encoder_dim(e) == 32);
    CHECK_OK(ae_encoder_embed_texts(e, texts, NULL, 3, v[i], NULL));
    ae_encoder_fingerprint(e, fps[i]);
    if (i == 2) CHECK(e->model->weights_cached);
    ae_encoder_free(e);
  }
  CHECK(!memcmp(v[0], v[1], sizeof v[0]) && !memcmp(v[0], v[2], sizeof v[0]));
  CHECK(!memcmp(fps[0], fps[1], 16) && !memcmp(fps[0], fps[2], 16));
  rm_rf(dir); rm_rf(cache);
  free(dir); free(cache);
}

typedef struct { const char *dir, *cache; } lpair;

static void alloc_sweep(void) {
  char *dir = make_model(NULL, "BF16", 5, 0), *cache = tmp_dir();
  let_tick_pass();
  load_result ref = load(dir, cache);
  CHECK(load(dir, cache).cached);
  long k;
  for (k = 1; k < 10000; k++) {
    fa_fail_at = k;
    fa_calls = fa_live = 0;
    ae__bert_model *m = NULL;
    ae_set_allocator(&fa_allocator);
    int rc = ae__bert_load_ex(dir, 0, cache, &m);
    int same = m && !memcmp(m->fingerprint, ref.fp, 16);
    ae__bert_free(m);
    ae_set_allocator(NULL);
    CHECKF(fa_live == 0, "k=%ld: %ld blocks leaked", k, fa_live);
    CHECKF(rc == AE_OK || rc == AE_ENOMEM, "k=%ld: status %d", k, rc);
    if (rc == AE_OK) CHECK(same);
    if (rc == AE_OK && fa_calls < k) break;
  }
  printf("cached load: %ld allocations swept\n", k - 1);
  CHECK(k > 5);
  rm_rf(dir); rm_rf(cache);
  free(dir); free(cache);
}

int main(void) {
  fingerprints_and_invalidation();
  unusable_cache();
  encoder_vectors();
  alloc_sweep();
  TEST_DONE();
}
