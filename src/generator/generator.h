/* The generator: private declarations. */
#ifndef AE_GENERATOR_H
#define AE_GENERATOR_H
#include "common/common.h"
#endif
