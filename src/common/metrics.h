/* One table per metrics struct, read by every writer: the generator's JSON and
 * Prometheus text, `astembed stats --json / --prometheus`, and the server's /metrics.
 * A metric is named once (JSON section and key, Prometheus name, type, help) next to
 * the struct member it reads, so the writers cannot drift apart. */
#ifndef AE_METRICS_H
#define AE_METRICS_H
#include "astembed.h"
#include "common/strbuf.h"
#include <jansson.h>
#include <stddef.h>

typedef enum { AE__M_U64, AE__M_INT, AE__M_DBL, AE__M_STR } ae__metric_kind;

typedef struct {
  const char *section;   /* JSON object the key goes in; NULL = the top level */
  const char *json;      /* JSON key; NULL = not in the JSON */
  const char *prom;      /* Prometheus name after "astembed_"; NULL = not exported */
  const char *type;      /* "gauge" or "counter" */
  const char *help;
  ae__metric_kind kind;
  size_t offset;         /* of the member in the struct */
  double prom_scale;     /* Prometheus value = value × scale (ms -> s); 0 = 1 */
  const char *label;     /* AE__M_STR: exported as name{label="value"} 1 */
} ae__metric;

extern const ae__metric ae__perf_metrics[];      /* over ae_performance_metrics */
extern const size_t ae__perf_metrics_n;
extern const ae__metric ae__index_metrics[];     /* over ae_store_stats */
extern const size_t ae__index_metrics_n;

/* Adds the table's members of src to root (sections created as needed, in table
 * order). Returns 0, or -1 when jansson could not allocate. */
int ae__metrics_json(const ae__metric *t, size_t n, const void *src, json_t *root);
/* Appends the Prometheus exposition text (HELP, TYPE, sample) of every exported
 * member of src. */
void ae__metrics_prom(const ae__metric *t, size_t n, const void *src, ae__sb *out);
/* printf into a strbuf (allocation failure sticky, as sb_putn). */
void ae__sb_printf(ae__sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
