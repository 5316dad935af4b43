/* The metrics tables and their two writers.
 *
 * Before this module each output format had its own hand-written list of metrics
 * (the generator's JSON, the generator's Prometheus text, `astembed stats`), and a
 * metric added to one was missing from the others. Here each struct that carries
 * metrics has one table: a row per member, giving where it goes in the JSON (section
 * and camelCase key, the seed's names) and what it is called in Prometheus
 * (astembed_NAME, its type and help). Every writer walks the table, so a new member
 * needs one new row and appears everywhere at once.
 *
 * Prometheus conventions: counters end in _total, times are exported in seconds (the
 * structs keep milliseconds; prom_scale converts), and a string member (the memory
 * strategy, the optimizer's trend) becomes one series with the value as a label and
 * the sample 1.
 */
#define _GNU_SOURCE
#include "common/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PM(sec, js, pr, ty, k, mem, sc, help) \
  {sec, js, pr, ty, help, k, offsetof(ae_performance_metrics, mem), sc, NULL}
#define PS(sec, js, pr, mem, lbl, help) \
  {sec, js, pr, "gauge", help, AE__M_STR, offsetof(ae_performance_metrics, mem), 0, lbl}

const ae__metric ae__perf_metrics[] = {
  PM("cache", "hitRatio", "cache_hit_ratio", "gauge", AE__M_DBL, cache.hit_ratio, 0,
     "Share of lookups served by the memory cache or the store."),
  PM("cache", "missRatio", "cache_miss_ratio", "gauge", AE__M_DBL, cache.miss_ratio, 0,
     "Share of lookups that missed every tier."),
  PM("cache", "averageAccessTime", "cache_average_access_time_ns", "gauge", AE__M_DBL,
     cache.average_access_time_ns, 0, "Mean memory cache access time."),
  PM("cache", "memoryEfficiency", "cache_memory_efficiency", "gauge", AE__M_DBL,
     cache.memory_efficiency, 0, "Memory cache hits per megabyte held."),
  PM("cache", "performanceScore", "cache_performance_score", "gauge", AE__M_DBL,
     cache.performance_score, 0, "Memory cache performance score."),
  PM("cache", "lookups", "cache_lookups_total", "counter", AE__M_U64, cache.lookups, 0, "Cache lookups."),
  PM("cache", "hits", "cache_hits_total", "counter", AE__M_U64, cache.hits, 0, "Hits in any cache tier."),
  PM("cache", "memoryHits", "cache_memory_hits_total", "counter", AE__M_U64, cache.memory_hits, 0,
     "Hits in the memory cache."),
  PM("cache", "storeHits", "cache_store_hits_total", "counter", AE__M_U64, cache.store_hits, 0,
     "Hits in the store tier."),
  PM("cache", "misses", "cache_misses_total", "counter", AE__M_U64, cache.misses, 0, "Lookups that missed."),
  PM("cache", "entries", "cache_entries", "gauge", AE__M_U64, cache.entries, 0, "Memory cache entries."),
  PM("cache", "bytes", "cache_bytes", "gauge", AE__M_U64, cache.bytes, 0, "Memory cache bytes."),
  PM("cache", "evictions", "cache_evictions_total", "counter", AE__M_U64, cache.evictions, 0,
     "Memory cache evictions."),
  PM("batchOptimizer", "averageBatchSize", "batch_average_size", "gauge", AE__M_DBL,
     batch_optimizer.average_batch_size, 0, "Mean items per encoder batch."),
  PM("batchOptimizer", "averageThroughput", "batch_average_throughput", "gauge", AE__M_DBL,
     batch_optimizer.average_throughput, 0, "Mean items per second of the encoder batches."),
  PM("batchOptimizer", "averageThroughputTokens", "batch_average_throughput_tokens", "gauge", AE__M_DBL,
     batch_optimizer.average_throughput_tokens, 0, "Mean tokens per second of the encoder batches."),
  PM("batchOptimizer", "optimizationScore", "batch_optimization_score", "gauge", AE__M_DBL,
     batch_optimizer.optimization_score, 0, "Batch optimizer score (0..1)."),
  PM("batchOptimizer", "resourceUtilization", "batch_resource_utilization", "gauge", AE__M_DBL,
     batch_optimizer.resource_utilization, 0, "CPU and memory use relative to the targets."),
  PM("batchOptimizer", "recommendedBatchSize", "batch_recommended_size", "gauge", AE__M_INT,
     batch_optimizer.recommended_batch_size, 0, "Batch size the optimizer recommends now (max-length sequences)."),
  PM("batchOptimizer", "tokenBudget", "batch_token_budget", "gauge", AE__M_INT,
     batch_optimizer.token_budget, 0, "Tokens the next encoder batch may hold."),
  PS("batchOptimizer", "trend", "batch_trend", batch_optimizer.trend, "trend",
     "Throughput trend of the batch optimizer (1 for the current one)."),
  PS("memoryProcessor", "currentStrategy", "memory_strategy", memory_processor.current_strategy, "strategy",
     "Current memory strategy (1 for the active one)."),
  PM("memoryProcessor", "memoryUsage", "memory_usage_percent", "gauge", AE__M_DBL,
     memory_processor.memory_usage, 0, "Memory use relative to the limit."),
  PM("memoryProcessor", "efficiency", "memory_efficiency", "gauge", AE__M_DBL, memory_processor.efficiency, 0,
     "Items succeeded per item processed."),
  PM("memoryProcessor", "strategyChanges", "memory_strategy_changes_total", "counter", AE__M_INT,
     memory_processor.strategy_changes, 0, "Strategy changes."),
  PM("memoryProcessor", "cleanups", "memory_cleanups_total", "counter", AE__M_INT, memory_processor.cleanups, 0,
     "Cleanups."),
  PM("memoryProcessor", "peakMemoryUsage", "memory_peak_usage_percent", "gauge", AE__M_DBL,
     memory_processor.peak_memory_pct, 0, "Highest memory use read."),
  PM("overall", "totalProcessingTime", "processing_seconds_total", "counter", AE__M_DBL,
     overall.total_processing_time_ms, 0.001, "Time spent in embed calls."),
  PM("overall", "itemsProcessed", "items_processed_total", "counter", AE__M_U64, overall.items_processed, 0,
     "Items processed."),
  PM("overall", "averageItemTime", "average_item_seconds", "gauge", AE__M_DBL, overall.average_item_time_ms,
     0.001, "Mean time per item."),
  PM("overall", "errorRate", "error_rate", "gauge", AE__M_DBL, overall.error_rate, 0, "Failed items per item."),
  PM("overall", "itemsPerSecond", "items_per_second", "gauge", AE__M_DBL, overall.items_per_second, 0,
     "Items per second of embed-call time."),
  PM("overall", "embedded", "items_embedded_total", "counter", AE__M_U64, overall.embedded, 0,
     "Items run through the encoder."),
  PM("overall", "failed", "items_failed_total", "counter", AE__M_U64, overall.failed, 0, "Items that failed."),
  PM("overall", "truncated", "items_truncated_total", "counter", AE__M_U64, overall.truncated, 0,
     "Items truncated at the max length."),
  PM("overall", "tokens", "tokens_total", "counter", AE__M_U64, overall.tokens, 0,
     "Tokens run through the encoder."),
  PM("overall", "batches", "batches_total", "counter", AE__M_U64, overall.batches, 0, "Encoder batches."),
  PM("overall", "tokenizeTime", "tokenize_seconds_total", "counter", AE__M_DBL, overall.tokenize_ms, 0.001,
     "Time spent tokenizing."),
  PM("overall", "tokenizeWaitTime", "tokenize_wait_seconds_total", "counter", AE__M_DBL,
     overall.tokenize_wait_ms, 0.001, "Time batches waited for the tokenizer thread."),
  PM("overall", "overlappedBatches", "overlapped_batches_total", "counter", AE__M_U64,
     overall.overlapped_batches, 0, "Batches encoded while the tokenizer thread was still working."),
  PM("overall", "encodeTime", "encode_seconds_total", "counter", AE__M_DBL, overall.encode_ms, 0.001,
     "Time spent in the encoder."),
  PM("overall", "storeTime", "store_seconds_total", "counter", AE__M_DBL, overall.store_ms, 0.001,
     "Time spent writing the store."),
  PM("overall", "peakRssBytes", "peak_rss_bytes", "gauge", AE__M_U64, overall.peak_rss_bytes, 0,
     "Peak resident memory."),
};
const size_t ae__perf_metrics_n = sizeof ae__perf_metrics / sizeof ae__perf_metrics[0];

#define IM(js, pr, ty, mem, help) {NULL, js, pr, ty, help, AE__M_U64, offsetof(ae_store_stats, mem), 0, NULL}
const ae__metric ae__index_metrics[] = {
  IM("bytes", "index_bytes", "gauge", db_bytes, "Database size including its WAL."),
  IM("annotations", "index_annotations", "gauge", annotations, "Annotations in the index."),
  IM("files", "index_files", "gauge", files, "Distinct files in the index."),
  IM("vectors", "index_vectors", "gauge", vectors, "Stored vectors (all models)."),
  IM("currentVectors", "index_current_vectors", "gauge", current_vectors,
     "Stored vectors whose text is the annotation's current text (all models)."),
  IM("generation", "index_generation", "counter", generation, "Committed changes so far."),
};
const size_t ae__index_metrics_n = sizeof ae__index_metrics / sizeof ae__index_metrics[0];

static double num_of(const ae__metric *m, const void *src) {
  const char *p = (const char *)src + m->offset;
  switch (m->kind) {
  case AE__M_U64: { uint64_t v; memcpy(&v, p, sizeof v); return (double)v; }
  case AE__M_INT: { int v; memcpy(&v, p, sizeof v); return v; }
  case AE__M_DBL: { double v; memcpy(&v, p, sizeof v); return v; }
  default: return 0;
  }
}

int ae__metrics_json(const ae__metric *t, size_t n, const void *src, json_t *root) {
  for (size_t i = 0; i < n; i++) {
    const ae__metric *m = &t[i];
    if (!m->json) continue;
    json_t *obj = root;
    if (m->section) {
      obj = json_object_get(root, m->section);
      if (!obj) {
        if (json_object_set_new(root, m->section, json_object())) return -1;
        obj = json_object_get(root, m->section);
      }
    }
    const char *p = (const char *)src + m->offset;
    json_t *v;
    if (m->kind == AE__M_STR) v = json_string(p);
    else if (m->kind == AE__M_DBL) v = json_real(num_of(m, src));
    else if (m->kind == AE__M_INT) { int x; memcpy(&x, p, sizeof x); v = json_integer(x); }
    else { uint64_t x; memcpy(&x, p, sizeof x); v = json_integer((json_int_t)x); }
    if (!v || json_object_set_new(obj, m->json, v)) return -1;
  }
  return 0;
}

void ae__sb_printf(ae__sb *b, const char *fmt, ...) {
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (k < 0) { b->failed = 1; return; }
  if ((size_t)k < sizeof small) { sb_putn(b, small, (size_t)k); return; }
  sb_reserve(b, (size_t)k);
  if (b->failed) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)k;
}

void ae__metrics_prom(const ae__metric *t, size_t n, const void *src, ae__sb *out) {
  for (size_t i = 0; i < n; i++) {
    const ae__metric *m = &t[i];
    if (!m->prom) continue;
    ae__sb_printf(out, "# HELP astembed_%s %s\n# TYPE astembed_%s %s\n", m->prom, m->help, m->prom, m->type);
    if (m->kind == AE__M_STR) {
      ae__sb_printf(out, "astembed_%s{%s=\"%s\"} 1\n", m->prom, m->label, (const char *)src + m->offset);
    } else if (m->kind == AE__M_DBL) {
      ae__sb_printf(out, "astembed_%s %.9g\n", m->prom, num_of(m, src) * (m->prom_scale ? m->prom_scale : 1));
    } else if (m->kind == AE__M_INT) {
      ae__sb_printf(out, "astembed_%s %d\n", m->prom, (int)num_of(m, src));
    } else {
      uint64_t x;
      memcpy(&x, (const char *)src + m->offset, sizeof x);
      ae__sb_printf(out, "astembed_%s %llu\n", m->prom, (unsigned long long)x);
    }
  }
}

char *ae_store_stats_prometheus(const ae_store_stats *st) {
  ae__sb b = {0};
  ae__metrics_prom(ae__index_metrics, ae__index_metrics_n, st, &b);
  return sb_finish(&b, NULL);
}
