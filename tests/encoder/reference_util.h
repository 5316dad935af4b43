/* Test helpers shared by the encoder tests that compare against tools/reference.py
 * (an independent float64 PyTorch BERT run by Debian's /usr/bin/python3). */
#ifndef AE_REFERENCE_UTIL_H
#define AE_REFERENCE_UTIL_H
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static inline int have_torch(void) {
  return system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") == 0;
}

static inline const char *src_dir(void) {
  const char *s = getenv("AE_SOURCE_DIR");
  return s ? s : ".";
}

/* Runs the reference on ids and returns its vectors (n * H), or NULL. */
static inline float *run_reference(const char *dir, int32_t **ids, size_t *lens, size_t n, int H) {
  char in[4400], outp[4400], cmd[13400];
  snprintf(in, sizeof in, "%s/in.jsonl", dir);
  snprintf(outp, sizeof outp, "%s/out.jsonl", dir);
  FILE *f = fopen(in, "w");
  for (size_t i = 0; i < n; i++) {
    fputs("{\"ids\": [", f);
    for (size_t p = 0; p < lens[i]; p++) fprintf(f, p ? ",%d" : "%d", ids[i][p]);
    fputs("]}\n", f);
  }
  fclose(f);
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tools/reference.py %s %s %s", src_dir(), dir,
           in, outp);
  if (system(cmd) != 0) return NULL;
  float *ref = calloc(n * H, sizeof(float));
  f = fopen(outp, "r");
  char *line = NULL;
  size_t cap = 0, i = 0;
  while (i < n && getline(&line, &cap, f) > 0) {
    json_t *v = json_loads(line, 0, NULL);
    json_t *e = v ? json_object_get(v, "embedding") : NULL;
    if (!e || json_array_size(e) != (size_t)H) { json_decref(v); break; }
    for (int c = 0; c < H; c++) ref[i * H + c] = (float)json_real_value(json_array_get(e, c));
    json_decref(v);
    i++;
  }
  free(line);
  fclose(f);
  if (i != n) { free(ref); return NULL; }
  return ref;
}

static inline double max_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (!(d <= m)) m = d;   /* NaN propagates as a failure */
  }
  return m;
}

#endif
