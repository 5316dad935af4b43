/* Annotation input and the text builder (private helpers). */
#ifndef AE_TEXT_H
#define AE_TEXT_H
#include "common/common.h"

/* Language name guessed from a file extension ("python", "c", ...), "" if unknown. */
const char *ae__guess_language(const char *file_path);
#endif
