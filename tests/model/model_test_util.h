/* Helpers for the model tests: temporary folders, a tiny BERT config, and rewriting
 * a model.safetensors header to build corrupt files. */
#ifndef AE_MODEL_TEST_UTIL_H
#define AE_MODEL_TEST_UTIL_H
#define _GNU_SOURCE
#include "model/model.h"
#include <ftw.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#pragma GCC diagnostic ignored "-Wunused-function"

/* 2 layers, hidden 32, 4 heads, intermediate 64, vocab 100, 40 positions. */
static const char *tiny_config =
  "{\"architectures\": [\"BertModel\"], \"model_type\": \"bert\", \"hidden_act\": \"gelu\",\n"
  " \"hidden_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,\n"
  " \"intermediate_size\": 64, \"vocab_size\": 100, \"max_position_embeddings\": 40,\n"
  " \"type_vocab_size\": 2, \"layer_norm_eps\": 1e-12, \"pad_token_id\": 0,\n"
  " \"position_embedding_type\": \"absolute\"}\n";

static char *tmp_dir(void) {
  char *d = strdup("/tmp/ae-model-test-XXXXXX");
  if (!mkdtemp(d)) { perror("mkdtemp"); exit(1); }
  return d;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f) {
  (void)sb; (void)flag; (void)f;
  return remove(p);
}
static void rm_rf(const char *d) { nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static char *pjoin(const char *dir, const char *name) {
  char *p = malloc(strlen(dir) + strlen(name) + 2);
  sprintf(p, "%s/%s", dir, name);
  return p;
}

static void write_bytes(const char *dir, const char *name, const void *data, size_t len) {
  char *p = pjoin(dir, name);
  FILE *f = fopen(p, "wb");
  if (!f || fwrite(data, 1, len, f) != len) { perror(p); exit(1); }
  fclose(f);
  free(p);
}
static void write_text(const char *dir, const char *name, const char *text) {
  write_bytes(dir, name, text, strlen(text));
}

static uint8_t *read_bytes(const char *dir, const char *name, size_t *len) {
  char *p = pjoin(dir, name);
  FILE *f = fopen(p, "rb");
  if (!f) { perror(p); exit(1); }
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc(*len + 1);
  if (fread(b, 1, *len, f) != *len) { perror(p); exit(1); }
  fclose(f);
  free(p);
  return b;
}

/* A folder with tiny_config (or cfg) and random weights of the given dtype. */
static char *make_model(const char *cfg, const char *dtype, uint64_t seed, int bert_prefix) {
  char *like = tmp_dir(), *out = tmp_dir();
  write_text(like, "config.json", cfg ? cfg : tiny_config);
  ae_model_random_options o;
  ae_model_random_options_default(&o);
  o.seed = seed;
  o.dtype = dtype;
  o.bert_prefix = bert_prefix;
  int rc = ae_model_init_random_opts(like, out, &o);
  if (rc) { fprintf(stderr, "init-random: %s: %s\n", ae_strerror(rc), ae_last_error()); exit(1); }
  rm_rf(like);
  free(like);
  return out;
}

/* The header JSON and data region of dir/model.safetensors. */
typedef struct { json_t *hdr; uint8_t *data; size_t data_len; uint8_t *file; } st_parts;

static st_parts st_read(const char *dir) {
  st_parts p;
  size_t len;
  p.file = read_bytes(dir, "model.safetensors", &len);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = n << 8 | p.file[i];
  p.hdr = json_loadb((char *)p.file + 8, n, 0, NULL);
  p.data = p.file + 8 + n;
  p.data_len = len - 8 - n;
  return p;
}

/* Writes header (padded with `pad` spaces) + the data region unchanged. */
static void st_write_raw(const char *dir, json_t *hdr, const uint8_t *data, size_t data_len, size_t pad) {
  char *h = json_dumps(hdr, JSON_COMPACT);
  size_t hl = strlen(h) + pad;
  size_t total = 8 + hl + data_len;
  uint8_t *b = malloc(total);
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
  memcpy(b + 8, h, strlen(h));
  memset(b + 8 + strlen(h), ' ', pad);
  memcpy(b + 8 + hl, data, data_len);
  write_bytes(dir, "model.safetensors", b, total);
  free(b);
  free(h);
}

static size_t dtype_bytes(const char *dt) {
  return !strcmp(dt, "F32") || !strcmp(dt, "I32") ? 4 : !strcmp(dt, "I64") || !strcmp(dt, "F64") ? 8
       : !strcmp(dt, "U8") || !strcmp(dt, "I8") || !strcmp(dt, "BOOL") ? 1 : 2;
}

/* Rebuilds the file from a (mutated) header: tensors laid out back to back in
 * header order with sizes from their dtype and shape; each keeps its original bytes
 * (cut or zero-padded to the new size). */
static void st_rebuild(const char *dir, st_parts *p) {
  size_t total = 0;
  const char *k;
  json_t *v;
  json_object_foreach(p->hdr, k, v) {
    if (!strcmp(k, "__metadata__")) continue;
    size_t n = dtype_bytes(json_string_value(json_object_get(v, "dtype")));
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(v, "shape"), i, d) n *= (size_t)json_integer_value(d);
    total += n;
  }
  uint8_t *data = calloc(1, total + 1);
  size_t off = 0;
  json_object_foreach(p->hdr, k, v) {
    if (!strcmp(k, "__metadata__")) continue;
    size_t n = dtype_bytes(json_string_value(json_object_get(v, "dtype")));
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(v, "shape"), i, d) n *= (size_t)json_integer_value(d);
    json_t *o = json_object_get(v, "data_offsets");
    size_t b = (size_t)json_integer_value(json_array_get(o, 0)), e = (size_t)json_integer_value(json_array_get(o, 1));
    memcpy(data + off, p->data + b, e - b < n ? e - b : n);
    json_object_set_new(v, "data_offsets", json_pack("[II]", (json_int_t)off, (json_int_t)(off + n)));
    off += n;
  }
  char *h = json_dumps(p->hdr, JSON_COMPACT);
  size_t hl = strlen(h);
  free(h);
  st_write_raw(dir, p->hdr, data, total, (8 - hl % 8) % 8);
  free(data);
}

static void st_parts_free(st_parts *p) {
  json_decref(p->hdr);
  free(p->file);
}
#endif
