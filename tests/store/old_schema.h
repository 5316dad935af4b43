/* The schema of index files written before version 3 (no lexical index), for the
 * upgrade tests: TRUNCATED is "" (version 1) or the version-2 truncated column
 * (OLD_SCHEMA_TRUNCATED). Ends by setting PRAGMA user_version = VERSION. */
#ifndef AE_TEST_OLD_SCHEMA_H
#define AE_TEST_OLD_SCHEMA_H
#define OLD_SCHEMA_TRUNCATED ", truncated INTEGER NOT NULL DEFAULT -1"
#define OLD_SCHEMA(TRUNCATED, VERSION) \
  "CREATE TABLE annotations (node_id TEXT PRIMARY KEY, file_path TEXT NOT NULL DEFAULT ''," \
  " start_line INTEGER NOT NULL DEFAULT 0, end_line INTEGER NOT NULL DEFAULT 0," \
  " node_type TEXT NOT NULL DEFAULT '', language TEXT NOT NULL DEFAULT ''," \
  " signature TEXT NOT NULL DEFAULT '', summary TEXT NOT NULL DEFAULT ''," \
  " snippet TEXT NOT NULL DEFAULT '', text_hash BLOB NOT NULL, updated_at INTEGER NOT NULL);" \
  "CREATE INDEX annotations_file ON annotations(file_path);" \
  "CREATE TABLE models (fingerprint BLOB PRIMARY KEY, name TEXT NOT NULL DEFAULT ''," \
  " dir TEXT NOT NULL DEFAULT '', dim INTEGER NOT NULL, created_at INTEGER NOT NULL," \
  " last_used_at INTEGER NOT NULL);" \
  "CREATE TABLE vectors (id INTEGER PRIMARY KEY, node_id TEXT NOT NULL, fingerprint BLOB NOT NULL," \
  " text_hash BLOB NOT NULL, dim INTEGER NOT NULL, vec BLOB NOT NULL" TRUNCATED ", UNIQUE(node_id, fingerprint));" \
  "CREATE INDEX vectors_content ON vectors(fingerprint, text_hash);" \
  "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);" \
  "INSERT INTO meta VALUES ('generation', '1');" \
  "PRAGMA user_version = " VERSION ";"
#endif
