/* libFuzzer target: what the hub client reads from a server or a user, on arbitrary
 * bytes: the revision listing (JSON), an ETag header value and a model spec. Each
 * either parses into something safe (every listed name stays inside the snapshot, the
 * ETag is a plain file name, the spec's repo is ORG/NAME) or fails with AE_EFORMAT /
 * AE_EINVAL. */
#include "hub/hub.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ae__hub_listing l;
  int rc = ae__hub_parse_listing((const char *)data, size, &l);
  if (rc == AE_OK) {
    if (!ae__hub_is_commit(l.sha)) abort();
    for (size_t i = 0; i < l.n; i++) {   /* an independent check: no ".." component, relative */
      const char *f = l.files[i];
      size_t n = strlen(f);
      if (!n || f[0] == '/' || !strcmp(f, "..") || !strncmp(f, "../", 3) || strstr(f, "/../") ||
          (n >= 3 && !strcmp(f + n - 3, "/..")))
        abort();
    }
    ae__hub_listing_free(&l);
  } else if (rc != AE_EFORMAT && rc != AE_ENOMEM) {
    abort();
  }
  char tag[130];
  if (ae__hub_parse_etag((const char *)data, size, tag, sizeof tag) == AE_OK &&
      (strchr(tag, '/') || tag[0] == '.' || !tag[0]))
    abort();
  char *s = malloc(size + 1);
  if (!s) return 0;
  memcpy(s, data, size);
  s[size] = 0;
  ae__hub_spec spec;
  if (ae__hub_parse_spec(s, &spec) == AE_OK) {
    char *slash = strchr(spec.repo, '/');
    if (!slash || strchr(slash + 1, '/') || strstr(spec.repo, "..") || !ae__hub_safe_path(spec.rev)) abort();
  }
  free(s);
  return 0;
}
