/* JSONL reader: one JSON value per line, lines of any length, blank lines skipped.
 * A malformed line is reported with its line number and the reader goes on with the
 * next one, so one bad item never sinks a batch. */
#ifndef AE_JSONL_H
#define AE_JSONL_H
#include <jansson.h>
#include <stdio.h>

typedef struct ae__jsonl ae__jsonl;

/* name is used in error messages ("stdin", a file path). f is not closed by the reader. */
int ae__jsonl_open(FILE *f, const char *name, ae__jsonl **out);
/* Parses one line of memory (used by the reader and by fuzzing). */
int ae__jsonl_parse(const char *line, size_t len, const char *name, size_t line_no,
                    json_t **val);
/* Returns AE_OK with *val set (caller json_decref's it), 1 at end of input, or an
 * error (AE_EFORMAT: "NAME:LINE: message"; AE_EIO) with *val NULL. After AE_EFORMAT
 * the next call reads the following line. *line_no gets the line's number (1-based). */
int ae__jsonl_next(ae__jsonl *r, json_t **val, size_t *line_no);
void ae__jsonl_close(ae__jsonl *r);
#endif
