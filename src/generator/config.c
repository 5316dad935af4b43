/* The generator's configuration: defaults, the two presets, and JSON.
 *
 * One table describes every key (its JSON name, type, range and where it lives in
 * ae_generator_config), and both the parser and the JSON writer walk that table, so
 * the documented keys, the accepted keys and the written keys cannot drift apart.
 * A document is applied to a copy and only committed when every key and the
 * cross-key rules pass: a bad file never leaves a half-applied configuration.
 *
 * Presets (config/production.json and config/development.json hold the same values;
 * a test checks they agree):
 *   production:  cache 50000 entries / 1000 MB / TTL 14400 s; batch optimizer up to
 *                128 items, CPU target 80 %, memory target 75 %, 10 samples before
 *                exploiting, 200 kept, aggressiveness 0.3; memory processor with the
 *                seed thresholds 85/70/55/35 and pressure re-read every 100 ms.
 *   development: cache 1000 entries / 100 MB / TTL 3600 s; batch optimizer up to 32
 *                items, CPU target 60 %, memory target 60 %, 5 samples, 50 kept,
 *                aggressiveness 0.5 (adapts quickly on small inputs); memory
 *                processor tighter (thresholds 75/60/45/25) so a laptop stays usable.
 */
#include "generator/generator.h"
#include "common/strbuf.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const k_strategy_names[AE_STRAT_COUNT] = {"streaming", "conservative",
                                                            "balanced", "aggressive"};
static const char *const k_policies[] = {"lru", "tinylfu", NULL};
static const char *const k_approaches[] = {"sequential", "parallel", NULL};
static const char *const k_precisions[] = {"f32", "bf16", NULL};   /* AE_PRECISION_* order */

void ae_generator_config_default(ae_generator_config *c) {
  memset(c, 0, sizeof *c);
  c->model.enabled = 1;
  ae_text_options_default(&c->model.text);

  /* Each section starts from its component's own defaults (the original tool's
   * values), so a field added to a component is never left zero here. */
  c->cache.enabled = 1;
  ae_cache_config_default(&c->cache.config);

  c->batch_optimizer.enabled = 1;
  ae_batchopt_config_default(&c->batch_optimizer.config);

  c->memory_processor.enabled = 1;
  ae_memproc_config_default(&c->memory_processor.config);
}

int ae_generator_config_preset(ae_generator_config *c, const char *name) {
  ae_generator_config d;
  ae_generator_config_default(&d);
  if (!strcmp(name, "production")) {
    d.cache.config.max_entries = 50000;
    d.cache.config.max_memory_mb = 1000;
    d.cache.config.ttl_seconds = 14400;
    d.batch_optimizer.config.max_batch_size = 128;
    d.batch_optimizer.config.target_cpu_usage = 80;
    d.batch_optimizer.config.target_memory_usage = 75;
    d.batch_optimizer.config.min_samples = 10;
    d.batch_optimizer.config.history_retention = 200;
    d.batch_optimizer.config.aggressiveness = 0.3;
  } else if (!strcmp(name, "development")) {
    d.cache.config.max_entries = 1000;
    d.cache.config.max_memory_mb = 100;
    d.cache.config.ttl_seconds = 3600;
    d.batch_optimizer.config.max_batch_size = 32;
    d.batch_optimizer.config.target_cpu_usage = 60;
    d.batch_optimizer.config.target_memory_usage = 60;
    d.batch_optimizer.config.min_samples = 5;
    d.batch_optimizer.config.history_retention = 50;
    d.batch_optimizer.config.aggressiveness = 0.5;
    d.memory_processor.config.critical = 75;
    d.memory_processor.config.high = 60;
    d.memory_processor.config.normal = 45;
    d.memory_processor.config.low = 25;
  } else {
    return ae__error(AE_EINVAL, "unknown preset '%s' (production or development)", name);
  }
  /* a preset keeps the model section and whatever path was given */
  d.model = c->model;
  snprintf(d.preset, sizeof d.preset, "%s", name);
  *c = d;
  return AE_OK;
}

/* ---- the key table ---------------------------------------------------------------- */

enum { T_BOOL, T_INT, T_SIZE, T_U32, T_DBL, T_STR, T_ENUM, T_OBJ };

typedef struct field {
  const char *key;
  int type;
  void *ptr;
  double min, max;
  const char *const *names;      /* T_ENUM */
  size_t cap;                    /* T_STR buffer size */
  struct field *sub;             /* T_OBJ, terminated by key == NULL */
} field;

#define F_BOOL(k, p) {k, T_BOOL, p, 0, 1, NULL, 0, NULL}
#define F_INT(k, p, lo, hi) {k, T_INT, p, lo, hi, NULL, 0, NULL}
#define F_SIZE(k, p, lo, hi) {k, T_SIZE, p, lo, hi, NULL, 0, NULL}
#define F_U32(k, p, lo, hi) {k, T_U32, p, lo, hi, NULL, 0, NULL}
#define F_DBL(k, p, lo, hi) {k, T_DBL, p, lo, hi, NULL, 0, NULL}
#define F_STR(k, p) {k, T_STR, p, 0, 0, NULL, sizeof(p), NULL}
#define F_ENUM(k, p, n) {k, T_ENUM, p, 0, 0, n, 0, NULL}
#define F_OBJ(k, s) {k, T_OBJ, NULL, 0, 0, NULL, 0, s}
#define F_END {NULL, 0, NULL, 0, 0, NULL, 0, NULL}

/* The tables point into one config; built per call (they are small). */
typedef struct {
  field text[6], model[7], cache[10], batch[10], thresholds[5], strat[AE_STRAT_COUNT][6];
  field strategies[AE_STRAT_COUNT + 1], memproc[9], root[5];
} table;

static void build_table(table *t, ae_generator_config *c) {
  ae_text_options *to = &c->model.text;
  field text[] = {F_BOOL("includeSignature", &to->include_signature),
                  F_BOOL("includeSummary", &to->include_summary),
                  F_BOOL("includeCode", &to->include_code),
                  F_BOOL("stripComments", &to->strip_comments),
                  F_SIZE("maxCodeChars", &to->max_code_chars, 0, 1e9), F_END};
  memcpy(t->text, text, sizeof text);
  field model[] = {F_BOOL("enabled", &c->model.enabled), F_STR("path", c->model.path),
                   F_INT("threads", &c->model.threads, 0, 1024),
                   F_INT("maxLength", &c->model.max_length, 0, 65536),
                   F_ENUM("precision", &c->model.precision, k_precisions), F_OBJ("text", t->text), F_END};
  model[1].cap = sizeof c->model.path;
  memcpy(t->model, model, sizeof model);
  ae_cache_config *cc = &c->cache.config;
  field cache[] = {F_BOOL("enabled", &c->cache.enabled),
                   F_SIZE("maxEntries", &cc->max_entries, 1, 1e8),
                   F_SIZE("maxMemoryMB", &cc->max_memory_mb, 1, 1e6),
                   F_U32("ttlSeconds", &cc->ttl_seconds, 0, 315360000),
                   F_BOOL("enableContentValidation", &cc->enable_content_validation),
                   F_U32("maintenanceInterval", &cc->maintenance_interval_ms, 0, 86400000),
                   F_ENUM("policy", &cc->policy, k_policies),
                   F_STR("persistPath", c->cache.persist_path),
                   F_SIZE("persistMaxMB", &cc->persist_max_mb, 0, 1e7), F_END};
  cache[7].cap = sizeof c->cache.persist_path;
  memcpy(t->cache, cache, sizeof cache);
  ae_batchopt_config *b = &c->batch_optimizer.config;
  field batch[] = {F_BOOL("enabled", &c->batch_optimizer.enabled),
                   F_INT("minBatchSize", &b->min_batch_size, 1, 4096),
                   F_INT("maxBatchSize", &b->max_batch_size, 1, 4096),
                   F_DBL("targetCpuUsage", &b->target_cpu_usage, 1, 100),
                   F_DBL("targetMemoryUsage", &b->target_memory_usage, 1, 100),
                   F_INT("minSamples", &b->min_samples, 1, 100000),
                   F_INT("historyRetention", &b->history_retention, 1, 1000000),
                   F_DBL("aggressiveness", &b->aggressiveness, 0.01, 1),
                   F_INT("maxTokens", &b->max_tokens, 0, 10000000), F_END};
  memcpy(t->batch, batch, sizeof batch);
  ae_memproc_config *m = &c->memory_processor.config;
  field thr[] = {F_DBL("critical", &m->critical, 1, 100), F_DBL("high", &m->high, 1, 100),
                 F_DBL("normal", &m->normal, 1, 100), F_DBL("low", &m->low, 0, 100), F_END};
  memcpy(t->thresholds, thr, sizeof thr);
  for (int i = 0; i < AE_STRAT_COUNT; i++) {
    ae_strategy *s = &m->strategies[i];
    field st[] = {F_INT("maxBatchSize", &s->max_batch_size, 1, 4096),
                  F_ENUM("approach", &s->approach, k_approaches),
                  F_DBL("memoryOverhead", &s->memory_overhead, 0, 100),
                  F_DBL("cpuOverhead", &s->cpu_overhead, 0, 100),
                  F_INT("cleanupFrequency", &s->cleanup_frequency, 0, 100000000), F_END};
    memcpy(t->strat[i], st, sizeof st);
    field o = F_OBJ(k_strategy_names[i], t->strat[i]);
    t->strategies[i] = o;
  }
  field end = F_END;
  t->strategies[AE_STRAT_COUNT] = end;
  field mp[] = {F_BOOL("enabled", &c->memory_processor.enabled),
                F_SIZE("memoryLimitMB", &c->memory_processor.memory_limit_mb, 0, 1e8),
                F_U32("monitoringInterval", &m->monitoring_interval_ms, 0, 3600000),
                F_DBL("cleanupThreshold", &m->cleanup_threshold, 0, 100),
                F_DBL("gcThreshold", &m->gc_threshold, 0, 100),
                F_INT("threads", &m->threads, 0, 1024),
                F_OBJ("thresholds", t->thresholds), F_OBJ("strategies", t->strategies), F_END};
  memcpy(t->memproc, mp, sizeof mp);
  field root[] = {F_OBJ("model", t->model), F_OBJ("cache", t->cache),
                  F_OBJ("batchOptimizer", t->batch), F_OBJ("memoryProcessor", t->memproc), F_END};
  memcpy(t->root, root, sizeof root);
}

/* ---- parsing ---------------------------------------------------------------------- */

static int set_field(const field *f, json_t *v, const char *name, const char *path) {
  switch (f->type) {
  case T_BOOL:
    if (!json_is_boolean(v)) return ae__error(AE_EFORMAT, "%s: %s: must be true or false", name, path);
    *(int *)f->ptr = json_is_true(v);
    return AE_OK;
  case T_STR:
    if (json_is_null(v)) { ((char *)f->ptr)[0] = 0; return AE_OK; }
    if (!json_is_string(v)) return ae__error(AE_EFORMAT, "%s: %s: must be a string", name, path);
    if (strlen(json_string_value(v)) >= f->cap)
      return ae__error(AE_ERANGE, "%s: %s: longer than %zu bytes", name, path, f->cap - 1);
    strcpy((char *)f->ptr, json_string_value(v));
    return AE_OK;
  case T_ENUM: {
    if (!json_is_string(v)) return ae__error(AE_EFORMAT, "%s: %s: must be a string", name, path);
    for (int i = 0; f->names[i]; i++)
      if (!strcmp(json_string_value(v), f->names[i])) { *(int *)f->ptr = i; return AE_OK; }
    char all[128] = "";
    for (int i = 0; f->names[i]; i++) { strcat(all, i ? ", " : ""); strcat(all, f->names[i]); }
    return ae__error(AE_ERANGE, "%s: %s: '%s' is not one of %s", name, path, json_string_value(v), all);
  }
  default: break;
  }
  if (!json_is_number(v)) return ae__error(AE_EFORMAT, "%s: %s: must be a number", name, path);
  double x = json_number_value(v);
  int integral = f->type != T_DBL;
  if (integral && (!json_is_integer(v) && x != floor(x)))
    return ae__error(AE_EFORMAT, "%s: %s: must be an integer (got %g)", name, path, x);
  if (!(x >= f->min && x <= f->max) || isnan(x))
    return ae__error(AE_ERANGE, "%s: %s: must be in [%g, %g] (got %g)", name, path, f->min, f->max, x);
  switch (f->type) {
  case T_INT: *(int *)f->ptr = (int)x; break;
  case T_SIZE: *(size_t *)f->ptr = (size_t)x; break;
  case T_U32: *(uint32_t *)f->ptr = (uint32_t)x; break;
  default: *(double *)f->ptr = x; break;
  }
  return AE_OK;
}

static int apply_obj(const field *fields, json_t *obj, const char *name, const char *prefix) {
  if (!json_is_object(obj))
    return ae__error(AE_EFORMAT, "%s: %s: must be an object", name, *prefix ? prefix : "(root)");
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    char path[256];
    snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
    if (!*prefix && !strcmp(key, "preset")) continue; /* handled by the caller */
    const field *f = fields;
    while (f->key && strcmp(f->key, key)) f++;
    if (!f->key) return ae__error(AE_EINVAL, "%s: unknown key '%s'", name, path);
    int rc = f->type == T_OBJ ? apply_obj(f->sub, v, name, path) : set_field(f, v, name, path);
    if (rc) return rc;
  }
  return AE_OK;
}

/* Rules across keys, checked after the whole document is applied. */
static int check_config(const ae_generator_config *c, const char *name) {
  const ae_batchopt_config *b = &c->batch_optimizer.config;
  if (b->min_batch_size > b->max_batch_size)
    return ae__error(AE_ERANGE, "%s: batchOptimizer.minBatchSize (%d) is above maxBatchSize (%d)",
                     name, b->min_batch_size, b->max_batch_size);
  if (b->history_retention < b->min_samples)
    return ae__error(AE_ERANGE, "%s: batchOptimizer.historyRetention (%d) is below minSamples (%d)",
                     name, b->history_retention, b->min_samples);
  const ae_memproc_config *m = &c->memory_processor.config;
  if (!(m->low < m->normal && m->normal < m->high && m->high < m->critical))
    return ae__error(AE_ERANGE, "%s: memoryProcessor.thresholds: need low < normal < high < critical "
                     "(got %g, %g, %g, %g)", name, m->low, m->normal, m->high, m->critical);
  return AE_OK;
}

int ae_generator_config_apply_json(ae_generator_config *c, const char *json, const char *name) {
  if (!name) name = "config";
  json_error_t err;
  json_t *root = json_loads(json, 0, &err);
  if (!root) return ae__error(AE_EFORMAT, "%s:%d: invalid JSON: %s", name, err.line, err.text);
  ae_generator_config work = *c;
  int rc = AE_OK;
  json_t *preset = json_is_object(root) ? json_object_get(root, "preset") : NULL;
  if (preset) {
    if (!json_is_string(preset)) rc = ae__error(AE_EFORMAT, "%s: preset: must be a string", name);
    else if ((rc = ae_generator_config_preset(&work, json_string_value(preset))))
      rc = ae__error(rc, "%s: preset: '%s' is not production or development", name, json_string_value(preset));
  }
  table t;
  build_table(&t, &work);
  if (!rc) rc = apply_obj(t.root, root, name, "");
  if (!rc) rc = check_config(&work, name);
  json_decref(root);
  if (rc) return rc;
  *c = work;
  return AE_OK;
}

int ae_generator_config_load_file(ae_generator_config *c, const char *path) {
  char *text;
  int rc = ae__read_file(path, &text, NULL);
  if (rc) return rc;
  rc = ae_generator_config_apply_json(c, text, path);
  ae__free(text);
  return rc;
}

/* ---- writing ---------------------------------------------------------------------- */

static json_t *dump_obj(const field *fields) {
  json_t *o = json_object();
  for (const field *f = fields; f->key; f++) {
    json_t *v;
    switch (f->type) {
    case T_BOOL: v = json_boolean(*(int *)f->ptr); break;
    case T_INT: v = json_integer(*(int *)f->ptr); break;
    case T_SIZE: v = json_integer((json_int_t) * (size_t *)f->ptr); break;
    case T_U32: v = json_integer(*(uint32_t *)f->ptr); break;
    case T_DBL: v = json_real(*(double *)f->ptr); break;
    case T_STR: v = *(char *)f->ptr ? json_string((char *)f->ptr) : json_null(); break;
    case T_ENUM: v = json_string(f->names[*(int *)f->ptr]); break;
    default: v = dump_obj(f->sub); break;
    }
    json_object_set_new(o, f->key, v);
  }
  return o;
}

char *ae_generator_config_json(const ae_generator_config *c) {
  ae_generator_config copy = *c;
  table t;
  build_table(&t, &copy);
  json_t *o = json_object();
  if (*c->preset) json_object_set_new(o, "preset", json_string(c->preset));
  json_t *body = dump_obj(t.root);
  json_object_update(o, body);
  json_decref(body);
  char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6) | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (!s) return NULL;
  char *r = ae__strdup(s);
  free(s);
  return r;
}
