/* JSONL reader (declared in astembed.h): one JSON value per line, lines of any length,
 * blank lines skipped. A malformed line is reported with its line number and the
 * reader goes on with the next one, so one bad item never sinks a batch. */
#ifndef AE_JSONL_H
#define AE_JSONL_H
#include "astembed.h"
#include <jansson.h>

/* Parses one line of memory (used by the reader and by fuzzing). */
int ae__jsonl_parse(const char *line, size_t len, const char *name, size_t line_no,
                    json_t **val);
#endif
