/* Generator configuration: the defaults, the two presets (and that the shipped
 * config/ JSON files say exactly the same), JSON round trip, and every kind of bad
 * document rejected with the key named and the configuration left untouched. */
#include "astembed.h"
#include "test.h"

static int rejects(ae_generator_config *c, const char *json, int status, const char *needle) {
  char *before = ae_generator_config_json(c);
  int rc = ae_generator_config_apply_json(c, json, "t.json");
  char *after = ae_generator_config_json(c);
  int ok = rc == status && strstr(ae_last_error(), needle) && !strcmp(before, after);
  if (!ok) fprintf(stderr, "  %s -> %d (%s)\n", json, rc, ae_last_error());
  ae_free(before);
  ae_free(after);
  return ok;
}

int main(void) {
  ae_generator_config c;
  ae_generator_config_default(&c);
  CHECK(c.model.enabled && c.cache.enabled && c.batch_optimizer.enabled && c.memory_processor.enabled);
  CHECK(c.cache.config.max_entries == 1000 && c.cache.config.max_memory_mb == 100 &&
        c.cache.config.ttl_seconds == 3600 && c.cache.config.enable_content_validation == 1 &&
        c.cache.config.maintenance_interval_ms == 300000);
  ae_batchopt_config *b = &c.batch_optimizer.config;
  CHECK(b->min_batch_size == 1 && b->max_batch_size == 128 && b->target_cpu_usage == 70 &&
        b->target_memory_usage == 75 && b->min_samples == 10 && b->history_retention == 100 &&
        b->aggressiveness == 0.3);
  ae_memproc_config *m = &c.memory_processor.config;
  CHECK(m->critical == 85 && m->high == 70 && m->normal == 55 && m->low == 35);
  CHECK(m->strategies[AE_STRAT_STREAMING].max_batch_size == 1 &&
        m->strategies[AE_STRAT_CONSERVATIVE].max_batch_size == 16 &&
        m->strategies[AE_STRAT_BALANCED].max_batch_size == 32 &&
        m->strategies[AE_STRAT_AGGRESSIVE].max_batch_size == 128 &&
        m->strategies[AE_STRAT_BALANCED].approach == AE_APPROACH_PARALLEL &&
        m->strategies[AE_STRAT_CONSERVATIVE].cleanup_frequency == 50);

  /* presets: the original tool's cache numbers exactly */
  ae_generator_config p;
  ae_generator_config_default(&p);
  strcpy(p.model.path, "/models/x");
  CHECK_OK(ae_generator_config_preset(&p, "production"));
  CHECK(p.cache.config.max_entries == 50000 && p.cache.config.max_memory_mb == 1000 &&
        p.cache.config.ttl_seconds == 14400 && !strcmp(p.preset, "production"));
  CHECK(!strcmp(p.model.path, "/models/x"));   /* the model section survives a preset */
  CHECK_OK(ae_generator_config_preset(&p, "development"));
  CHECK(p.cache.config.max_entries == 1000 && p.cache.config.max_memory_mb == 100 &&
        p.cache.config.ttl_seconds == 3600 && p.batch_optimizer.config.max_batch_size == 32);
  CHECK(ae_generator_config_preset(&p, "staging") == AE_EINVAL && strstr(ae_last_error(), "staging"));

  /* the shipped files equal the compiled presets */
  const char *names[] = {"production", "development"};
  for (int i = 0; i < 2; i++) {
    char path[256];
    snprintf(path, sizeof path, "config/%s.json", names[i]);
    ae_generator_config f, g;
    ae_generator_config_default(&f);
    ae_generator_config_default(&g);
    CHECK_OK(ae_generator_config_load_file(&f, path));
    CHECK_OK(ae_generator_config_preset(&g, names[i]));
    char *a = ae_generator_config_json(&f), *bb = ae_generator_config_json(&g);
    CHECKF(a && bb && !strcmp(a, bb), "%s differs from the compiled preset", path);
    ae_free(a);
    ae_free(bb);
  }

  /* partial documents apply on top; the round trip is exact */
  CHECK_OK(ae_generator_config_apply_json(&c, "{\"preset\": \"production\", \"cache\": {\"maxEntries\": 7,"
           " \"policy\": \"tinylfu\", \"persistPath\": \"/tmp/p.db\"}, \"batchOptimizer\": {\"enabled\": false},"
           " \"memoryProcessor\": {\"strategies\": {\"balanced\": {\"approach\": \"sequential\"}}}}", "t.json"));
  CHECK(c.cache.config.max_entries == 7 && c.cache.config.max_memory_mb == 1000 &&
        c.cache.config.policy == AE_CACHE_TINYLFU && !strcmp(c.cache.persist_path, "/tmp/p.db") &&
        !c.batch_optimizer.enabled &&
        c.memory_processor.config.strategies[AE_STRAT_BALANCED].approach == AE_APPROACH_SEQUENTIAL);
  char *j1 = ae_generator_config_json(&c);
  ae_generator_config r;
  ae_generator_config_default(&r);
  CHECK_OK(ae_generator_config_apply_json(&r, j1, "roundtrip"));
  char *j2 = ae_generator_config_json(&r);
  CHECK(j1 && j2 && !strcmp(j1, j2));
  ae_free(j1);
  ae_free(j2);

  /* model.precision: f32 by default (the presets too), bf16 on request, written back */
  ae_generator_config q;
  ae_generator_config_default(&q);
  CHECK(q.model.precision == AE_PRECISION_F32 && !strcmp(ae_precision_name(q.model.precision), "f32"));
  CHECK_OK(ae_generator_config_preset(&q, "production"));
  CHECK(q.model.precision == AE_PRECISION_F32);
  char *qj = ae_generator_config_json(&q);
  CHECK(qj && strstr(qj, "\"precision\": \"f32\""));
  ae_free(qj);
  CHECK_OK(ae_generator_config_apply_json(&q, "{\"model\": {\"precision\": \"bf16\"}}", "t.json"));
  CHECK(q.model.precision == AE_PRECISION_BF16 && !strcmp(ae_precision_name(q.model.precision), "bf16"));
  CHECK_OK(ae_generator_config_preset(&q, "development"));
  CHECK(q.model.precision == AE_PRECISION_BF16);   /* a preset keeps the model section */
  qj = ae_generator_config_json(&q);
  CHECK(qj && strstr(qj, "\"precision\": \"bf16\""));
  ae_generator_config q2;
  ae_generator_config_default(&q2);
  CHECK_OK(ae_generator_config_apply_json(&q2, qj, "roundtrip"));
  CHECK(q2.model.precision == AE_PRECISION_BF16);
  ae_free(qj);
  CHECK_OK(ae_generator_config_apply_json(&q2, "{\"model\": {\"precision\": \"f32\"}}", "t.json"));
  CHECK(q2.model.precision == AE_PRECISION_F32);

  /* errors name the key, and nothing is half-applied */
  CHECK(rejects(&c, "{\"cache\": {\"maxEntriez\": 5}}", AE_EINVAL, "unknown key 'cache.maxEntriez'"));
  CHECK(rejects(&c, "{\"cahce\": {}}", AE_EINVAL, "unknown key 'cahce'"));
  CHECK(rejects(&c, "{\"memoryProcessor\": {\"strategies\": {\"turbo\": {}}}}", AE_EINVAL,
                "memoryProcessor.strategies.turbo"));
  CHECK(rejects(&c, "{\"cache\": {\"maxEntries\": 9, \"maxMemoryMB\": 0}}", AE_ERANGE, "cache.maxMemoryMB: must be in [1,"));
  CHECK(rejects(&c, "{\"cache\": {\"maxEntries\": -1}}", AE_ERANGE, "cache.maxEntries"));
  CHECK(rejects(&c, "{\"cache\": {\"maxEntries\": 1.5}}", AE_EFORMAT, "cache.maxEntries: must be an integer"));
  CHECK(rejects(&c, "{\"cache\": {\"maxEntries\": \"10\"}}", AE_EFORMAT, "cache.maxEntries: must be a number"));
  CHECK(rejects(&c, "{\"cache\": {\"enabled\": 1}}", AE_EFORMAT, "cache.enabled: must be true or false"));
  CHECK(rejects(&c, "{\"cache\": {\"policy\": \"lfu\"}}", AE_ERANGE, "cache.policy: 'lfu' is not one of lru, tinylfu"));
  CHECK(rejects(&c, "{\"batchOptimizer\": {\"aggressiveness\": 1.5}}", AE_ERANGE, "batchOptimizer.aggressiveness"));
  CHECK(rejects(&c, "{\"batchOptimizer\": {\"targetCpuUsage\": 0}}", AE_ERANGE, "batchOptimizer.targetCpuUsage"));
  CHECK(rejects(&c, "{\"batchOptimizer\": {\"minBatchSize\": 64, \"maxBatchSize\": 8}}", AE_ERANGE,
                "minBatchSize (64) is above maxBatchSize (8)"));
  CHECK(rejects(&c, "{\"batchOptimizer\": {\"minSamples\": 500, \"historyRetention\": 100}}", AE_ERANGE,
                "historyRetention"));
  CHECK(rejects(&c, "{\"memoryProcessor\": {\"thresholds\": {\"high\": 90}}}", AE_ERANGE,
                "memoryProcessor.thresholds: need low < normal < high < critical"));
  CHECK(rejects(&c, "{\"memoryProcessor\": {\"thresholds\": {\"critical\": 101}}}", AE_ERANGE,
                "memoryProcessor.thresholds.critical"));
  CHECK(rejects(&c, "{\"memoryProcessor\": {\"strategies\": {\"streaming\": {\"approach\": \"both\"}}}}",
                AE_ERANGE, "memoryProcessor.strategies.streaming.approach"));
  CHECK(rejects(&c, "{\"model\": {\"text\": {\"stripComments\": \"yes\"}}}", AE_EFORMAT,
                "model.text.stripComments"));
  CHECK(rejects(&c, "{\"model\": 3}", AE_EFORMAT, "model: must be an object"));
  CHECK(rejects(&c, "{\"model\": {\"precision\": \"fp16\"}}", AE_ERANGE,
                "model.precision: 'fp16' is not one of f32, bf16"));
  CHECK(rejects(&c, "{\"model\": {\"precision\": 16}}", AE_EFORMAT, "model.precision: must be a string"));
  CHECK(rejects(&c, "{\"preset\": \"prod\"}", AE_EINVAL, "preset: 'prod'"));
  CHECK(rejects(&c, "{\"cache\": {", AE_EFORMAT, "t.json:1: invalid JSON"));
  CHECK(rejects(&c, "[1, 2]", AE_EFORMAT, "must be an object"));
  CHECK(ae_generator_config_load_file(&c, "/nonexistent/cfg.json") == AE_ENOTFOUND);
  TEST_DONE();
}
