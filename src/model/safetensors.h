/* safetensors: parsing and validating the header of a .safetensors file held in
 * memory (usually a read-only mmap), and writing one.
 *
 * Layout (https://github.com/huggingface/safetensors): 8-byte little-endian header
 * length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [b, e]}, ...,
 * "__metadata__": {str: str}}, then the data region; offsets are relative to it. */
#ifndef AE_SAFETENSORS_H
#define AE_SAFETENSORS_H
#include "common/common.h"

enum {
  AE__ST_F64, AE__ST_F32, AE__ST_F16, AE__ST_BF16, AE__ST_I64, AE__ST_I32, AE__ST_I16,
  AE__ST_I8, AE__ST_U64, AE__ST_U32, AE__ST_U16, AE__ST_U8, AE__ST_BOOL,
  AE__ST_F8_E4M3, AE__ST_F8_E5M2, AE__ST_NDTYPES
};

#define AE__ST_MAX_DIMS 8
/* The reference implementation refuses headers above 100 MB; so do we. */
#define AE__ST_MAX_HEADER (100u << 20)

typedef struct {
  char *name;
  int dtype;                       /* AE__ST_* */
  int ndim;
  int64_t shape[AE__ST_MAX_DIMS];
  size_t begin, end;               /* byte offsets in the data region */
  const uint8_t *data;             /* start of the tensor's bytes */
} ae__st_tensor;

typedef struct {
  ae__st_tensor *t;                /* sorted by name */
  size_t n;
  const uint8_t *header;           /* the JSON header bytes (for fingerprints) */
  size_t header_len;
} ae__st_file;

const char *ae__st_dtype_name(int dtype);
size_t ae__st_dtype_size(int dtype);
/* AE__ST_* for a name such as "BF16", or -1. */
int ae__st_dtype_from_name(const char *name);
int64_t ae__st_numel(const ae__st_tensor *t);

/* Parses and validates the header of data[0..len): header length within the file,
 * well-formed JSON object, known dtypes, shapes whose byte size equals the tensor's
 * offsets, every tensor inside the data region, no two tensors overlapping, no
 * duplicate names. `what` names the input in error messages (the file path).
 * On success *out holds the tensors (pointing into data); free with
 * ae__st_file_free. Never reads outside data[0..len). */
int ae__safetensors_parse(const uint8_t *data, size_t len, const char *what, ae__st_file *out);
void ae__st_file_free(ae__st_file *f);
/* Binary search by exact name; NULL when absent. */
const ae__st_tensor *ae__st_find(const ae__st_file *f, const char *name);

/* Writer: a list of tensors whose bytes a callback produces in order. */
typedef struct {
  const char *name;
  int dtype;
  int ndim;
  int64_t shape[AE__ST_MAX_DIMS];
} ae__st_spec;
/* Fills buf (the tensor's numel * dtype size bytes) with tensor i's data. */
typedef int (*ae__st_fill_fn)(void *ud, size_t i, uint8_t *buf, size_t nbytes);
/* Writes path atomically (path.tmp.PID, fsync, rename). The header is padded with
 * spaces to a multiple of 8 bytes so every tensor is 8-byte aligned. */
int ae__safetensors_write(const char *path, const ae__st_spec *specs, size_t n,
                          ae__st_fill_fn fill, void *ud);
#endif
