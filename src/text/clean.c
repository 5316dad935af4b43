/* The text an annotation is embedded as, and the cleaning rules of the original
 * system (with its bugs fixed: `_` kept, `#include`/`#[...]` kept, comment removal
 * aware of strings and of the language, truncation done on tokens elsewhere).
 *
 *   "Signature: <clean sig> | Summary: <clean summary> | Code: <clean code>"
 */
#include "text/text.h"
#include "common/strbuf.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

void ae_text_options_default(ae_text_options *o) {
  o->include_signature = 1;
  o->include_summary = 1;
  o->include_code = 1;
  o->strip_comments = 1;
  o->max_code_chars = 65536;
}

static int is_ws(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Whitespace runs become one space; leading and trailing whitespace goes. */
static void put_collapsed(ae__sb *b, const char *s, size_t n) {
  int pending = 0;
  size_t start = b->n;
  for (size_t i = 0; i < n; i++) {
    if (is_ws((unsigned char)s[i])) { pending = 1; continue; }
    if (pending && b->n > start) sb_putc(b, ' ');
    pending = 0;
    sb_putc(b, s[i]);
  }
}

static char *collapse(const char *s, size_t n) {
  ae__sb b = {0};
  put_collapsed(&b, s, n);
  return sb_finish(&b, NULL);
}

/* ---- signature -------------------------------------------------------------- */

static const char *const k_modifiers[] = {
  "export default", "export", "public", "private", "protected", "static", "async",
  "abstract", "final", "override", "pub(crate)", "pub", "internal", "virtual",
  "inline", "extern", "readonly", "declare", NULL,
};

/* Length of the leading modifier of s followed by a space, or 0. */
static size_t leading_modifier(const char *s) {
  for (int i = 0; k_modifiers[i]; i++) {
    size_t m = strlen(k_modifiers[i]);
    if (!strncmp(s, k_modifiers[i], m) && s[m] == ' ') return m + 1;
  }
  return 0;
}

static int ident_char(unsigned char c) { return isalnum(c) || c == '_' || c == '$' || c >= 0x80; }

/* Removes the type annotation of each parameter in the first parenthesised list:
 * within a parameter (split on top-level commas), a ':' at bracket depth 0 that
 * comes before any '=' starts the annotation, which runs to the '=' or the end of
 * the parameter. Nested brackets ({'a': 1} defaults, Callable[[int], str]) and
 * strings are skipped so their colons are never taken for annotations. */
static void strip_param_types(ae__sb *out, const char *s) {
  const char *open = strchr(s, '(');
  if (!open) { sb_puts(out, s); return; }
  sb_putn(out, s, (size_t)(open - s) + 1);
  const char *p = open + 1;
  int depth = 0, seen_eq = 0, skipping = 0;
  char quote = 0;
  for (; *p; p++) {
    char c = *p;
    if (quote) {
      if (!skipping) sb_putc(out, c);
      if (c == '\\' && p[1]) { p++; if (!skipping) sb_putc(out, *p); }
      else if (c == quote) quote = 0;
      continue;
    }
    if (depth == 0 && c == ')') break;
    if (c == '"' || c == '\'' || c == '`') quote = c;
    else if (c == '(' || c == '[' || c == '{' || (c == '<' && skipping)) depth++;
    else if (c == ')' || c == ']' || c == '}' || (c == '>' && skipping && depth > 0 &&
                                                  p[-1] != '=')) depth--;
    else if (depth == 0 && c == ',') { seen_eq = 0; skipping = 0; }
    else if (depth == 0 && c == '=' && p[1] != '>') {
      if (skipping) { skipping = 0; /* keep " = default" */ sb_putc(out, ' '); }
      seen_eq = 1;
    } else if (depth == 0 && c == ':' && !seen_eq && !skipping) {
      skipping = 1;
      /* trim the space before the colon that is left behind */
      while (out->n && out->p[out->n - 1] == ' ') out->p[--out->n] = 0;
      continue;
    }
    if (!skipping) sb_putc(out, c);
  }
  sb_puts(out, p);
}

/* `=>` always spaced as " => ". */
static void space_arrows(ae__sb *out, const char *s) {
  for (const char *p = s; *p; p++) {
    if (p[0] == '=' && p[1] == '>') {
      while (out->n && out->p[out->n - 1] == ' ') out->p[--out->n] = 0;
      sb_puts(out, " => ");
      p++;
      while (p[1] == ' ') p++;
    } else {
      sb_putc(out, *p);
    }
  }
}

char *ae_clean_signature(const char *sig) {
  char *a = collapse(sig, strlen(sig));
  if (!a) return NULL;
  const char *s = a + leading_modifier(a);
  ae__sb b = {0};
  /* the word "function " (JS/TS), once, wherever it starts a word */
  size_t at = 0, len = strlen(s);
  const char *f;
  for (;;) {
    f = strstr(s + at, "function ");
    if (!f || f == s || !ident_char((unsigned char)f[-1])) break;
    at = (size_t)(f - s) + 1;
  }
  at = f ? (size_t)(f - s) : len;
  if (at > len) at = len;
  sb_putn(&b, s, at);
  if (at < len) sb_puts(&b, s + at + 9);
  char *c = sb_finish(&b, NULL);
  ae__free(a);
  if (!c) return NULL;
  ae__sb d = {0};
  space_arrows(&d, c);
  ae__free(c);
  c = sb_finish(&d, NULL);
  if (!c) return NULL;
  ae__sb e = {0};
  strip_param_types(&e, c);
  ae__free(c);
  c = sb_finish(&e, NULL);
  if (!c) return NULL;
  char *r = collapse(c, strlen(c));
  ae__free(c);
  return r;
}

/* ---- summary ---------------------------------------------------------------- */

/* Markdown emphasis: a run of 1-3 '*' that opens (next char not space) and a later
 * run of the same length on the same line that closes (previous char not space) are
 * both dropped; lone '*' (a * b, *args) stay. Backticks around code spans go. '_' is
 * left alone so identifiers such as __init__ survive. */
static void strip_emphasis(ae__sb *out, const char *s) {
  size_t n = strlen(s);
  char *drop = ae__calloc(n + 1, 1);
  if (!drop) { out->failed = 1; return; }
  for (size_t i = 0; i < n;) {
    if (s[i] == '`') {
      const char *close = strchr(s + i + 1, '`');
      if (close) { drop[i] = 1; drop[close - s] = 1; i = (size_t)(close - s) + 1; continue; }
      i++;
      continue;
    }
    if (s[i] != '*') { i++; continue; }
    size_t run = 0;
    while (s[i + run] == '*') run++;
    int opens = run <= 3 && s[i + run] && !is_ws((unsigned char)s[i + run]) &&
                (i == 0 || !ident_char((unsigned char)s[i - 1]));
    size_t j = i + run, found = 0;
    if (opens) {
      for (; j < n && s[j] != '\n'; j++) {
        if (s[j] != '*') continue;
        size_t r2 = 0;
        while (s[j + r2] == '*') r2++;
        if (r2 == run && !is_ws((unsigned char)s[j - 1]) && !ident_char((unsigned char)s[j + r2])) {
          found = j;
          break;
        }
        j += r2 - 1;
      }
    }
    if (found) {
      memset(drop + i, 1, run);
      memset(drop + found, 1, run);
      i = found + run;
    } else {
      i += run;
    }
  }
  for (size_t i = 0; i < n; i++)
    if (!drop[i]) sb_putc(out, s[i]);
  ae__free(drop);
}

char *ae_clean_summary(const char *summary) {
  ae__sb b = {0};
  strip_emphasis(&b, summary);
  char *e = sb_finish(&b, NULL);
  if (!e) return NULL;
  char *c = collapse(e, strlen(e));
  ae__free(e);
  if (!c) return NULL;
  static const char *const lead[] = {"This function ", "This method ", "This class ", NULL};
  for (int i = 0; lead[i]; i++) {
    size_t m = strlen(lead[i]);
    if (!strncasecmp(c, lead[i], m)) {
      memmove(c, c + m, strlen(c + m) + 1);
      break;
    }
  }
  return c;
}

/* ---- code ------------------------------------------------------------------- */

enum { LANG_UNKNOWN, LANG_HASH, LANG_PYTHON, LANG_CLIKE };

static int lang_kind(const char *lang) {
  static const char *const py[] = {"python", "py", NULL};
  static const char *const hash[] = {"ruby", "rb", "shell", "bash", "sh", "zsh", "perl",
                                     "r", "yaml", "toml", "makefile", "powershell", "cmake",
                                     "elixir", "julia", "nim", NULL};
  static const char *const clike[] = {"c", "cpp", "c++", "cc", "h", "hpp", "java",
                                      "javascript", "js", "jsx", "typescript", "ts", "tsx",
                                      "go", "rust", "rs", "csharp", "c#", "cs", "kotlin",
                                      "kt", "swift", "scala", "php", "dart", "objc",
                                      "objective-c", "zig", "solidity", "groovy", NULL};
  if (!lang || !*lang) return LANG_UNKNOWN;
  for (int i = 0; py[i]; i++) if (!strcasecmp(lang, py[i])) return LANG_PYTHON;
  for (int i = 0; hash[i]; i++) if (!strcasecmp(lang, hash[i])) return LANG_HASH;
  for (int i = 0; clike[i]; i++) if (!strcasecmp(lang, clike[i])) return LANG_CLIKE;
  return LANG_UNKNOWN;
}

/* '#' at the start of a line (after indentation) introducing a directive that must
 * survive: #include, #[attr], #![attr], #! shebang, and C preprocessor lines. */
static int hash_directive(const char *line_start, const char *p) {
  for (const char *q = line_start; q < p; q++)
    if (!is_ws((unsigned char)*q)) return 0;
  static const char *const keep[] = {"#include", "#[", "#![", "#!", "#define", "#if",
                                     "#ifdef", "#ifndef", "#endif", "#else", "#elif",
                                     "#pragma", "#import", "#undef", NULL};
  for (int i = 0; keep[i]; i++)
    if (!strncmp(p, keep[i], strlen(keep[i]))) return 1;
  return 0;
}

/* Comment removal with a small lexer: strings (', ", `, and Python's triple quotes)
 * are copied verbatim so a '#' or '//' inside them is never taken for a comment.
 * Single-quoted strings end at a newline, which keeps Rust lifetimes ('a) and
 * apostrophes in odd places from swallowing the rest of the snippet. */
static void strip_comments(ae__sb *out, const char *s, int kind) {
  int hash = kind != LANG_CLIKE, slashes = kind == LANG_CLIKE || kind == LANG_UNKNOWN;
  const char *line = s;
  for (const char *p = s; *p;) {
    char c = *p;
    if (c == '\n') { line = p + 1; sb_putc(out, c); p++; continue; }
    if (c == '"' || c == '\'' || c == '`') {
      int triple = kind == LANG_PYTHON && p[1] == c && p[2] == c;
      const char *q = p + (triple ? 3 : 1);
      for (; *q; q++) {
        if (*q == '\\' && q[1]) { q++; continue; }
        if (triple) {
          if (q[0] == c && q[1] == c && q[2] == c) { q += 3; break; }
        } else if (*q == c) { q++; break; }
        else if (*q == '\n' && c != '`') break;
      }
      sb_putn(out, p, (size_t)(q - p));
      p = q;
      continue;
    }
    if (hash && c == '#' && !hash_directive(line, p)) {
      while (*p && *p != '\n') p++;
      continue;
    }
    if (slashes && c == '/' && p[1] == '/') {
      while (*p && *p != '\n') p++;
      continue;
    }
    if (slashes && c == '/' && p[1] == '*') {
      const char *e = strstr(p + 2, "*/");
      p = e ? e + 2 : p + strlen(p);
      sb_putc(out, ' ');
      continue;
    }
    sb_putc(out, c);
    p++;
  }
}

char *ae_clean_code(const char *code, const char *language) {
  ae__sb b = {0};
  strip_comments(&b, code, lang_kind(language));
  char *s = sb_finish(&b, NULL);
  if (!s) return NULL;
  char *c = collapse(s, strlen(s));
  ae__free(s);
  return c;
}

const char *ae__guess_language(const char *file_path) {
  static const struct { const char *ext, *lang; } map[] = {
    {".py", "python"}, {".pyi", "python"}, {".c", "c"}, {".h", "c"}, {".cc", "cpp"},
    {".cpp", "cpp"}, {".hpp", "cpp"}, {".cxx", "cpp"}, {".js", "javascript"},
    {".mjs", "javascript"}, {".cjs", "javascript"}, {".jsx", "javascript"},
    {".ts", "typescript"}, {".tsx", "typescript"}, {".go", "go"}, {".rs", "rust"},
    {".java", "java"}, {".cs", "csharp"}, {".kt", "kotlin"}, {".swift", "swift"},
    {".rb", "ruby"}, {".sh", "shell"}, {".php", "php"}, {".scala", "scala"}, {NULL, NULL}};
  const char *dot = file_path ? strrchr(file_path, '.') : NULL;
  if (!dot || strchr(dot, '/')) return "";
  for (int i = 0; map[i].ext; i++)
    if (!strcasecmp(dot, map[i].ext)) return map[i].lang;
  return "";
}

/* ---- the whole text ----------------------------------------------------------- */

int ae_annotation_text(const ae_annotation *a, const ae_text_options *o, char **text,
                       size_t *len, int *code_capped) {
  ae_text_options def;
  if (!o) { ae_text_options_default(&def); o = &def; }
  if (code_capped) *code_capped = 0;
  *text = NULL;
  char *sig = NULL, *sum = NULL, *code = NULL, *capped = NULL;
  const char *snippet = a->snippet ? a->snippet : "";
  if (o->max_code_chars && strlen(snippet) > o->max_code_chars) {
    size_t cut = o->max_code_chars;
    while (cut && ((unsigned char)snippet[cut] & 0xC0) == 0x80) cut--; /* UTF-8 boundary */
    capped = ae__strndup(snippet, cut);
    if (!capped) return ae__error(AE_ENOMEM, "%s: out of memory", a->node_id);
    snippet = capped;
    if (code_capped) *code_capped = 1;
  }
  if (o->include_signature && a->signature) sig = ae_clean_signature(a->signature);
  if (o->include_summary && a->summary) sum = ae_clean_summary(a->summary);
  if (o->include_code)
    code = o->strip_comments ? ae_clean_code(snippet, a->language)
                             : collapse(snippet, strlen(snippet));
  int oom = (o->include_signature && a->signature && !sig) ||
            (o->include_summary && a->summary && !sum) || (o->include_code && !code);
  ae__sb b = {0};
  if (sig && *sig) { sb_puts(&b, "Signature: "); sb_puts(&b, sig); }
  if (sum && *sum) { if (b.n) sb_puts(&b, " | "); sb_puts(&b, "Summary: "); sb_puts(&b, sum); }
  if (code && *code) { if (b.n) sb_puts(&b, " | "); sb_puts(&b, "Code: "); sb_puts(&b, code); }
  int empty = b.n == 0;
  ae__free(sig);
  ae__free(sum);
  ae__free(code);
  ae__free(capped);
  char *t = sb_finish(&b, len);
  if (oom || !t) { ae__free(t); return ae__error(AE_ENOMEM, "%s: out of memory", a->node_id); }
  if (empty) {
    ae__free(t);
    return ae__error(AE_EINVAL, "%s: nothing to embed (signature, summary and code are empty)",
                     a->node_id && *a->node_id ? a->node_id : "annotation");
  }
  *text = t;
  return AE_OK;
}
