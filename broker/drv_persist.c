/*  drv_persist - the broker's durable record of jobs, on SQLite.

    Why SQLite: it is a well-kept Debian library (libsqlite3), and its
    write-ahead log does what a job queue's journal must. WAL frames are
    checksummed and chained by salts, so a torn or garbled tail of the log
    (a crash in the middle of a write, a disk that lost the last sectors)
    is discarded on open and the database comes back as of its last
    committed transaction. Group commit is simply one transaction for many
    jobs: with synchronous=FULL every COMMIT fsyncs the log once, however
    many jobs it carries. PRAGMA quick_check detects corruption in the
    middle of the file, which the log cannot, so we run it on every open
    and refuse a damaged store rather than serve half of it.

    Layout: DIR/jobs.db (and jobs.db-wal while open), three tables:

        jobs (id INTEGER PRIMARY KEY, tag, client, function, payload,
              timeout_ms, attempts, finished, outcome, result, reason,
              retries, failures, lost, priority, run_at, unique_key, flags)
        queues (function TEXT PRIMARY KEY, max_running, paused, max_queue)
        meta (key TEXT PRIMARY KEY, value): schema_version, max_id

    All are STRICT, so a value of the wrong type is refused on write.
    Schema version 2 added priority, run_at, unique_key and flags to jobs,
    and the queues table; a version 1 store is migrated on open (the new
    columns read as their defaults: priority 0, no run-at time, no key).
    SQLite integers are signed 64-bit: ids must be 1..INT64_MAX (they
    count up from 1), and tags are stored as their bit pattern.

    States of the connection, and the call for each transition:

                 drv_persist_open
                        |
                        v
        +---------> CLEAN  (no transaction open)
        |               |
        |               |  drv_persist_add / _finish / _attempts / _remove
        |               |  (BEGIN at the first staged change)
        |               v
        |           STAGED  (changes executed in an open transaction)
        |               |
        +---------------+  drv_persist_commit: COMMIT, one fsync of the WAL
                        |
                        |  any disk error (full, I/O, fsync): ROLLBACK
                        v
                     FAILED  (every later call returns -1)

    FAILED is sticky on purpose: after fsync has failed once, the kernel
    may have dropped the dirty pages and a retry can report success for
    data that never reached the disk, so the only safe course is to stop
    acknowledging, exit, and let the next start recover from the log. An
    error that is the caller's (unknown id, duplicate id, a value too big)
    leaves the transaction and the staged changes as they were.

    The connection takes locking_mode=EXCLUSIVE: it holds the database
    locked while open (a second broker on the same DIR is refused rather
    than both running the same jobs), and keeps the WAL index in its own
    memory instead of a -shm file. The store makes no decisions and knows
    nothing of sockets, the scheduler or the clock.
*/

#include "drv_persist.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

//  The schema this code writes and reads; version 1 is migrated, any
//  other is refused.
#define S_SCHEMA_VERSION 2

//  flags bits in the jobs table.
#define S_FLAG_DETACHED 1
#define S_FLAG_FOLLOWER 2
//  The payload is an encoded Chunk (a map with a chunk size): only
//  workers that run chunks get it. A bit in the version 2 column, so no
//  migration; a drover older than chunks would ignore it (docs/protocol.md).
#define S_FLAG_CHUNK 4

//  Pages of 16 KiB for a new store (an existing one keeps its own): a
//  1000-job commit of 1 KiB payloads then runs 2.5 times as fast as with
//  SQLite's 4 KiB (fewer overflow pages, write calls and checkpoints),
//  for a quarter fewer single-job commits a second.
#define S_PAGE_SIZE_SQL "PRAGMA page_size = 16384"

//  After a checkpoint, the WAL file is cut back to 64 MiB, so one huge
//  burst does not leave a huge file behind for ever.
#define S_WAL_SIZE_LIMIT_SQL "PRAGMA journal_size_limit = 67108864"

//  Longest client routing id the record allows.
#define S_CLIENT_MAX 255

struct _drv_persist_t {
    sqlite3 *db;                     //  the connection; holds jobs.db locked
    char *dir;                       //  the data directory, for messages
    sqlite3_stmt *begin;             //  BEGIN
    sqlite3_stmt *commit;            //  COMMIT
    sqlite3_stmt *rollback;          //  ROLLBACK
    sqlite3_stmt *insert;            //  store a new job
    sqlite3_stmt *finish;            //  store a job's result
    sqlite3_stmt *attempts;          //  store a job's attempt count
    sqlite3_stmt *counts;            //  store attempts, failures and losses
    sqlite3_stmt *remove;            //  forget a job
    sqlite3_stmt *set_max_id;        //  meta max_id
    sqlite3_stmt *select;            //  every job in id order, for load
    sqlite3_stmt *queue_set;         //  store a queue's settings
    sqlite3_stmt *queue_clear;       //  forget a queue's settings
    sqlite3_stmt *queue_select;      //  every queue's settings, for load
    size_t staged;                   //  changes staged since the last commit
    uint64_t max_id;                 //  largest id stored, staged adds too
    uint64_t max_id_stored;          //  max_id as the meta table has it
    bool failed;                     //  a disk error happened: refuse all
    char error [512];                //  the last error, a sentence
};

//  The statements prepared once at open and reused for every call.
static const char *s_insert_sql =
    "INSERT INTO jobs (id, tag, client, function, payload, timeout_ms, attempts,"
    " finished, outcome, result, reason, retries, failures, lost, priority, run_at,"
    " unique_key, flags)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
    " ?18)";
static const char *s_finish_sql =
    "UPDATE jobs SET finished = 1, outcome = ?2, result = ?3, reason = ?4,"
    " payload = CASE WHEN ?2 IN (1, 7) THEN x'' ELSE payload END WHERE id = ?1";
static const char *s_attempts_sql = "UPDATE jobs SET attempts = ?2 WHERE id = ?1";
static const char *s_counts_sql =
    "UPDATE jobs SET attempts = ?2, failures = ?3, lost = ?4 WHERE id = ?1";
static const char *s_remove_sql = "DELETE FROM jobs WHERE id = ?1";
static const char *s_set_max_id_sql = "UPDATE meta SET value = ?1 WHERE key = 'max_id'";
static const char *s_select_sql =
    "SELECT id, tag, client, function, payload, timeout_ms, attempts, finished, outcome,"
    " result, reason, retries, failures, lost, priority, run_at, unique_key, flags"
    " FROM jobs ORDER BY id";
static const char *s_queue_set_sql =
    "INSERT INTO queues (function, max_running, paused, max_queue) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (function) DO UPDATE SET max_running = ?2, paused = ?3, max_queue = ?4";
static const char *s_queue_clear_sql = "DELETE FROM queues WHERE function = ?1";
static const char *s_queue_select_sql =
    "SELECT function, max_running, paused, max_queue FROM queues ORDER BY function";

//  The schema of a new store, created in one transaction.
static const char *s_schema_sql =
    "CREATE TABLE meta ("
    "  key TEXT PRIMARY KEY,"
    "  value ANY NOT NULL"
    ") STRICT;"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  tag INTEGER NOT NULL,"
    "  client BLOB NOT NULL,"
    "  function TEXT NOT NULL,"
    "  payload BLOB NOT NULL,"
    "  timeout_ms INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL,"
    "  finished INTEGER NOT NULL,"
    "  outcome INTEGER NOT NULL,"
    "  result BLOB,"
    "  reason TEXT,"
    "  retries INTEGER NOT NULL,"
    "  failures INTEGER NOT NULL,"
    "  lost INTEGER NOT NULL,"
    "  priority INTEGER NOT NULL DEFAULT 0,"
    "  run_at INTEGER NOT NULL DEFAULT 0,"
    "  unique_key TEXT,"
    "  flags INTEGER NOT NULL DEFAULT 0"
    ") STRICT;"
    "CREATE TABLE queues ("
    "  function TEXT PRIMARY KEY,"
    "  max_running INTEGER NOT NULL,"
    "  paused INTEGER NOT NULL,"
    "  max_queue INTEGER NOT NULL"
    ") STRICT;"
    "INSERT INTO meta (key, value) VALUES ('schema_version', 2), ('max_id', 0);";

//  From schema version 1 to 2, in the same transaction as the check.
static const char *s_migrate_1_sql =
    "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN run_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN unique_key TEXT;"
    "ALTER TABLE jobs ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE queues ("
    "  function TEXT PRIMARY KEY,"
    "  max_running INTEGER NOT NULL,"
    "  paused INTEGER NOT NULL,"
    "  max_queue INTEGER NOT NULL"
    ") STRICT;"
    "UPDATE meta SET value = 2 WHERE key = 'schema_version';";

//  What a zero-length blob reads as, so record pointers are never NULL.
static const uint8_t s_empty [1] = {0};

static void
s_set_error (drv_persist_t *self, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_set_error (drv_persist_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
}

//  What failed on the disk, for a message: " (fsync: Input/output
//  error)", or "" if SQLite's message says it all. The errno comes from
//  the file itself (the WAL's, else jobs.db's), not the global errno,
//  which later calls may have changed. Written into text.
static const char *
s_disk_error (drv_persist_t *self, int rc, char *text, size_t size)
{
    const char *call = NULL;
    switch (rc) {
        case SQLITE_IOERR_WRITE:
            call = "write";
            break;
        case SQLITE_IOERR_FSYNC:
            call = "fsync";
            break;
        case SQLITE_IOERR_DIR_FSYNC:
            call = "fsync of the directory";
            break;
        case SQLITE_IOERR_READ:
            call = "read";
            break;
        case SQLITE_IOERR_TRUNCATE:
            call = "truncate";
            break;
        default:
            return "";
    }
    int error = 0;
    sqlite3_file *wal = NULL;
    if (sqlite3_file_control (self->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) == SQLITE_OK
        && wal && wal->pMethods)
        wal->pMethods->xFileControl (wal, SQLITE_FCNTL_LAST_ERRNO, &error);
    if (error == 0)
        sqlite3_file_control (self->db, "main", SQLITE_FCNTL_LAST_ERRNO, &error);
    if (error)
        snprintf (text, size, " (%s: %s)", call, strerror (error));
    else
        snprintf (text, size, " (%s)", call);
    return text;
}

//  Is rc the caller's fault rather than the disk's? Then the statement
//  failed alone and the open transaction is as it was.
static bool
s_is_call_error (int rc)
{
    int primary = rc & 0xff;
    return primary == SQLITE_CONSTRAINT || primary == SQLITE_TOOBIG || primary == SQLITE_RANGE
           || primary == SQLITE_MISMATCH;
}

//  Run a prepared statement that returns no rows, and reset it. Returns
//  SQLITE_OK or the error; sqlite3_errmsg still tells it after reset.
static int
s_step (sqlite3_stmt *stmt)
{
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

//  A disk error: roll back what was staged and refuse everything from now
//  on. The error message must be set already.
static void
s_enter_failed (drv_persist_t *self)
{
    self->failed = true;
    if (!sqlite3_get_autocommit (self->db))
        s_step (self->rollback);
    self->staged = 0;
    self->max_id = self->max_id_stored;
}

//  Record why a staging call failed: the caller's error leaves the
//  transaction alone, any other makes the store FAILED. Returns -1.
static int
s_stage_failed (drv_persist_t *self, int rc, const char *what, uint64_t id)
{
    if (s_is_call_error (rc)) {
        s_set_error (self, "cannot %s job %" PRIu64 ": %s", what, id, sqlite3_errmsg (self->db));
        return -1;
    }
    char disk [128];
    s_set_error (self,
                 "cannot %s job %" PRIu64 " in the job store in %s: %s%s; stop acknowledging "
                 "and restart once the disk is fixed",
                 what, id, self->dir, sqlite3_errmsg (self->db),
                 s_disk_error (self, rc, disk, sizeof disk));
    s_enter_failed (self);
    return -1;
}

//  Open a transaction unless one is open. 0 or -1 (FAILED).
static int
s_begin (drv_persist_t *self)
{
    if (!sqlite3_get_autocommit (self->db))
        return 0;
    int rc = s_step (self->begin);
    if (rc != SQLITE_OK) {
        s_set_error (self, "cannot begin a transaction in the job store in %s: %s", self->dir,
                     sqlite3_errmsg (self->db));
        s_enter_failed (self);
        return -1;
    }
    return 0;
}

//  Bind a blob; a zero-length one binds as an empty blob, not as NULL.
//  The bytes are borrowed until the statement is stepped.
static int
s_bind_blob (sqlite3_stmt *stmt, int index, const void *data, size_t size)
{
    if (size == 0)
        return sqlite3_bind_zeroblob (stmt, index, 0);
    return sqlite3_bind_blob64 (stmt, index, data, (sqlite3_uint64) size, SQLITE_STATIC);
}

//  A blob column, never NULL: a zero-length or NULL value reads as "".
static const uint8_t *
s_column_blob (sqlite3_stmt *stmt, int index, size_t *size)
{
    const uint8_t *data = (const uint8_t *) sqlite3_column_blob (stmt, index);
    *size = (size_t) sqlite3_column_bytes (stmt, index);
    if (!data) {
        *size = 0;
        return s_empty;
    }
    return data;
}

static bool
s_outcome_valid (int64_t outcome)
{
    return outcome >= DROVER_OUTCOME_OK && outcome <= DROVER_OUTCOME_LOST;
}

//  Create dir and any missing parents, mode 0700. 0 or -1 with err.
static int
s_make_dir (const char *dir, char *err, size_t err_size)
{
    if (!*dir) {
        snprintf (err, err_size, "drover: the job store needs a directory, not an empty path");
        return -1;
    }
    struct stat st;
    if (stat (dir, &st) == 0) {
        if (S_ISDIR (st.st_mode))
            return 0;
        snprintf (err, err_size, "drover: cannot use %s for the job store: not a directory", dir);
        return -1;
    }
    char *path = strdup (dir);
    if (!path) {
        snprintf (err, err_size, "drover: out of memory");
        return -1;
    }
    for (char *slash = strchr (path + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        if (mkdir (path, 0700) == -1 && errno != EEXIST) {
            snprintf (err, err_size, "drover: cannot create %s for the job store: %s", path,
                      strerror (errno));
            free (path);
            return -1;
        }
        *slash = '/';
    }
    free (path);
    if (mkdir (dir, 0700) == -1 && errno != EEXIST) {
        snprintf (err, err_size, "drover: cannot create %s for the job store: %s", dir,
                  strerror (errno));
        return -1;
    }
    //  Make the new directory's name durable too: fsync its parent.
    char *parent = strdup (dir);
    if (parent) {
        char *slash = strrchr (parent, '/');
        if (slash == parent)
            slash [1] = 0;
        else
        if (slash)
            *slash = 0;
        int fd = open (slash ? parent : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd != -1) {
            fsync (fd);
            close (fd);
        }
        free (parent);
    }
    return 0;
}

//  Say why open failed, in words the operator can act on, given the
//  SQLite error code and message.
static void
s_open_failed (drv_persist_t *self, int rc, const char *message)
{
    int primary = rc & 0xff;
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB)
        s_set_error (self,
                     "drover: the job store in %s is corrupt (%s): move %s aside to start "
                     "empty, or restore it from a backup",
                     self->dir, message, self->dir);
    else
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
        s_set_error (self,
                     "drover: the job store in %s is in use by another process (is another "
                     "drover-broker running with --data %s?)",
                     self->dir, self->dir);
    else
        s_set_error (self, "drover: cannot open the job store in %s: %s", self->dir, message);
}

//  Run one statement at open; if expect is given, its first row's first
//  column must read so (case-insensitive). 0 or -1 with the error set.
static int
s_run (drv_persist_t *self, const char *sql, const char *expect)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        const char *value =
            rc == SQLITE_ROW ? (const char *) sqlite3_column_text (stmt, 0) : NULL;
        if (expect && (!value || strcasecmp (value, expect) != 0)) {
            s_set_error (self, "drover: cannot open the job store in %s: '%s' gave '%s', not '%s'",
                         self->dir, sql, value ? value : "", expect);
            sqlite3_finalize (stmt);
            return -1;
        }
        sqlite3_finalize (stmt);
        return 0;
    }
    s_open_failed (self, rc, sqlite3_errmsg (self->db));
    sqlite3_finalize (stmt);
    return -1;
}

//  Read one integer with a query at open: 1 if there was a row, 0 if
//  none, -1 on error (set).
static int
s_query_int (drv_persist_t *self, const char *sql, int64_t *value)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step (stmt);
    int found = -1;
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type (stmt, 0) == SQLITE_INTEGER) {
            *value = sqlite3_column_int64 (stmt, 0);
            found = 1;
        }
        else
            s_set_error (self,
                         "drover: the job store in %s is corrupt ('%s' is not an integer): "
                         "move %s aside to start empty, or restore it from a backup",
                         self->dir, sql, self->dir);
    }
    else
    if (rc == SQLITE_DONE)
        found = 0;
    else
        s_open_failed (self, rc, sqlite3_errmsg (self->db));
    sqlite3_finalize (stmt);
    return found;
}

//  PRAGMA quick_check: anything but a single "ok" is corruption.
static int
s_quick_check (drv_persist_t *self)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2 (self->db, "PRAGMA quick_check", -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        const char *value = (const char *) sqlite3_column_text (stmt, 0);
        if (value && strcmp (value, "ok") == 0)
            rc = sqlite3_step (stmt);
        else {
            //  The first finding, on one line: "Page 16: btreeInitPage()
            //  returns error code 11", without the "*** in database main
            //  ***" line before it.
            const char *finding = value ? value : "no answer";
            const char *newline = strchr (finding, '\n');
            if (strncmp (finding, "***", 3) == 0 && newline)
                finding = newline + 1;
            char message [256];
            snprintf (message, sizeof message, "quick_check: %s", finding);
            for (char *end = strchr (message, '\n'); end; end = strchr (end, '\n'))
                *end = ' ';
            s_open_failed (self, SQLITE_CORRUPT, message);
            sqlite3_finalize (stmt);
            return -1;
        }
    }
    if (rc != SQLITE_DONE) {
        s_open_failed (self, rc, sqlite3_errmsg (self->db));
        sqlite3_finalize (stmt);
        return -1;
    }
    sqlite3_finalize (stmt);
    return 0;
}

//  Run sql (several statements) in one transaction at open. 0 or -1.
static int
s_exec_in_transaction (drv_persist_t *self, const char *sql)
{
    char *message = NULL;
    int rc = sqlite3_exec (self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec (self->db, sql, NULL, NULL, &message);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec (self->db, "COMMIT", NULL, NULL, &message);
    if (rc != SQLITE_OK) {
        s_open_failed (self, rc, message ? message : sqlite3_errmsg (self->db));
        sqlite3_free (message);
        if (!sqlite3_get_autocommit (self->db))
            sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

//  Create the schema in a new database, migrate a version 1 one, or
//  check the one found. 0 or -1.
static int
s_schema (drv_persist_t *self)
{
    int64_t tables = 0, has_meta = 0;
    if (s_query_int (self, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'", &tables) != 1
        || s_query_int (self,
                        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'meta'",
                        &has_meta)
               != 1)
        return -1;
    if (tables == 0)
        return s_exec_in_transaction (self, s_schema_sql);
    int64_t version = 0;
    int found = has_meta ? s_query_int (self,
                                         "SELECT value FROM meta WHERE key = 'schema_version'",
                                         &version)
                         : 0;
    if (found == -1)
        return -1;
    if (found == 0) {
        s_set_error (self,
                     "drover: %s/jobs.db is not a drover job store (it has no schema "
                     "version): move it aside, or give --data another directory",
                     self->dir);
        return -1;
    }
    if (version == 1)
        return s_exec_in_transaction (self, s_migrate_1_sql);
    if (version != S_SCHEMA_VERSION) {
        s_set_error (self,
                     "drover: the job store in %s has schema version %" PRId64
                     ", and this drover knows only version %d: run the drover that wrote it, "
                     "or move %s aside to start empty",
                     self->dir, version, S_SCHEMA_VERSION, self->dir);
        return -1;
    }
    return 0;
}

//  Read max_id, never below the largest id in the jobs table. 0 or -1.
static int
s_read_max_id (drv_persist_t *self)
{
    int64_t stored = 0, largest = 0;
    int found = s_query_int (self, "SELECT value FROM meta WHERE key = 'max_id'", &stored);
    if (found == -1)
        return -1;
    if (found == 0 || stored < 0) {
        s_set_error (self,
                     "drover: the job store in %s is corrupt (max_id is missing or negative): "
                     "move %s aside to start empty, or restore it from a backup",
                     self->dir, self->dir);
        return -1;
    }
    //  One step down the b-tree, not a scan; no row if the table is empty.
    found = s_query_int (self, "SELECT id FROM jobs ORDER BY id DESC LIMIT 1", &largest);
    if (found == -1)
        return -1;
    self->max_id = (uint64_t) (largest > stored ? largest : stored);
    self->max_id_stored = (uint64_t) stored;
    return 0;
}

//  Prepare a statement kept for the life of the store. 0 or -1.
static int
s_prepare (drv_persist_t *self, const char *sql, sqlite3_stmt **stmt)
{
    int rc = sqlite3_prepare_v3 (self->db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, NULL);
    if (rc != SQLITE_OK) {
        s_open_failed (self, rc, sqlite3_errmsg (self->db));
        return -1;
    }
    return 0;
}

drv_persist_t *
drv_persist_open (const char *dir, char *err, size_t err_size)
{
    assert (dir);
    if (err_size)
        err [0] = 0;
    if (s_make_dir (dir, err, err_size))
        return NULL;
    drv_persist_t *self = (drv_persist_t *) calloc (1, sizeof *self);
    if (!self || !(self->dir = strdup (dir))) {
        free (self);
        snprintf (err, err_size, "drover: out of memory");
        return NULL;
    }
    char *path = zsys_sprintf ("%s/jobs.db", dir);
    int rc = path ? sqlite3_open_v2 (path, &self->db,
                                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                                         | SQLITE_OPEN_NOMUTEX,
                                     NULL)
                  : SQLITE_NOMEM;
    zstr_free (&path);
    int failed = -1;
    if (rc != SQLITE_OK)
        s_open_failed (self, rc, self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
    else {
        sqlite3_extended_result_codes (self->db, 1);
        sqlite3_db_config (self->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
        //  Exclusive first, so the WAL index is kept in memory, not in -shm.
        failed = s_run (self, "PRAGMA locking_mode = EXCLUSIVE", "exclusive")
                 || s_run (self, S_PAGE_SIZE_SQL, NULL)
                 || s_run (self, "PRAGMA journal_mode = WAL", "wal")
                 || s_run (self, "PRAGMA synchronous = FULL", NULL)
                 || s_run (self, "PRAGMA synchronous", "2")
                 || s_run (self, S_WAL_SIZE_LIMIT_SQL, NULL)
                 || s_quick_check (self)
                 || s_schema (self)
                 || s_read_max_id (self)
                 || s_prepare (self, "BEGIN", &self->begin)
                 || s_prepare (self, "COMMIT", &self->commit)
                 || s_prepare (self, "ROLLBACK", &self->rollback)
                 || s_prepare (self, s_insert_sql, &self->insert)
                 || s_prepare (self, s_finish_sql, &self->finish)
                 || s_prepare (self, s_attempts_sql, &self->attempts)
                 || s_prepare (self, s_counts_sql, &self->counts)
                 || s_prepare (self, s_remove_sql, &self->remove)
                 || s_prepare (self, s_set_max_id_sql, &self->set_max_id)
                 || s_prepare (self, s_select_sql, &self->select)
                 || s_prepare (self, s_queue_set_sql, &self->queue_set)
                 || s_prepare (self, s_queue_clear_sql, &self->queue_clear)
                 || s_prepare (self, s_queue_select_sql, &self->queue_select);
    }
    if (failed) {
        snprintf (err, err_size, "%s", self->error);
        drv_persist_destroy (&self);
        return NULL;
    }
    return self;
}

void
drv_persist_destroy (drv_persist_t **self_p)
{
    assert (self_p);
    drv_persist_t *self = *self_p;
    if (self) {
        sqlite3_finalize (self->begin);
        sqlite3_finalize (self->commit);
        sqlite3_finalize (self->rollback);
        sqlite3_finalize (self->insert);
        sqlite3_finalize (self->finish);
        sqlite3_finalize (self->attempts);
        sqlite3_finalize (self->counts);
        sqlite3_finalize (self->remove);
        sqlite3_finalize (self->set_max_id);
        sqlite3_finalize (self->select);
        sqlite3_finalize (self->queue_set);
        sqlite3_finalize (self->queue_clear);
        sqlite3_finalize (self->queue_select);
        //  An open transaction is rolled back; the last connection
        //  checkpoints the WAL into jobs.db and deletes it.
        sqlite3_close_v2 (self->db);
        free (self->dir);
        free (self);
        *self_p = NULL;
    }
}

int
drv_persist_add (drv_persist_t *self, const drv_record_t *job)
{
    assert (self);
    assert (job);
    if (self->failed)
        return -1;
    if (job->id == 0 || job->id > INT64_MAX) {
        s_set_error (self, "cannot store job %" PRIu64 ": ids run from 1 to 2^63-1", job->id);
        return -1;
    }
    if (job->client_len > S_CLIENT_MAX || !job->function || (job->client_len && !job->client)
        || (job->size && !job->payload) || (job->result_size && !job->result)
        || (job->finished && !s_outcome_valid (job->outcome))) {
        s_set_error (self, "cannot store job %" PRIu64 ": the record is not valid", job->id);
        return -1;
    }
    if (s_begin (self))
        return -1;
    sqlite3_stmt *stmt = self->insert;
    int rc = sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) job->id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) job->tag);
    if (rc == SQLITE_OK)
        rc = s_bind_blob (stmt, 3, job->client, job->client_len);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text (stmt, 4, job->function, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = s_bind_blob (stmt, 5, job->payload, job->size);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64 (stmt, 6, job->timeout_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64 (stmt, 7, job->attempts);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int (stmt, 8, job->finished ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int (stmt, 9, job->finished ? (int) job->outcome : 0);
    if (rc == SQLITE_OK)
        rc = job->finished ? s_bind_blob (stmt, 10, job->result, job->result_size)
                           : sqlite3_bind_null (stmt, 10);
    if (rc == SQLITE_OK)
        rc = job->finished ? sqlite3_bind_text (stmt, 11, job->reason ? job->reason : "", -1,
                                                SQLITE_STATIC)
                           : sqlite3_bind_null (stmt, 11);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64 (stmt, 12, job->retries);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64 (stmt, 13, job->failures);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64 (stmt, 14, job->lost);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64 (stmt, 15, job->priority);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64 (stmt, 16, job->run_at);
    if (rc == SQLITE_OK)
        rc = job->unique ? sqlite3_bind_text (stmt, 17, job->unique, -1, SQLITE_STATIC)
                         : sqlite3_bind_null (stmt, 17);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64 (stmt, 18, (job->detached ? S_FLAG_DETACHED : 0)
                                               | (job->follower ? S_FLAG_FOLLOWER : 0)
                                               | (job->chunk ? S_FLAG_CHUNK : 0));
    if (rc == SQLITE_OK)
        rc = s_step (stmt);
    if (rc != SQLITE_OK)
        return s_stage_failed (self, rc, "store", job->id);
    if (job->id > self->max_id)
        self->max_id = job->id;
    self->staged++;
    return 0;
}

//  The end of an UPDATE or DELETE of one job by id: an id that matched
//  no row is the caller's error. 0 or -1.
static int
s_stage_changed (drv_persist_t *self, int rc, const char *what, uint64_t id)
{
    if (rc != SQLITE_OK)
        return s_stage_failed (self, rc, what, id);
    if (sqlite3_changes (self->db) == 0) {
        s_set_error (self, "cannot %s job %" PRIu64 ": the store has no such job", what, id);
        return -1;
    }
    self->staged++;
    return 0;
}

int
drv_persist_finish (drv_persist_t *self, uint64_t id, drover_outcome_t outcome,
                    const void *result, size_t size, const char *reason)
{
    assert (self);
    if (self->failed)
        return -1;
    if (!s_outcome_valid (outcome) || (size && !result)) {
        s_set_error (self, "cannot finish job %" PRIu64 ": the result is not valid", id);
        return -1;
    }
    if (s_begin (self))
        return -1;
    sqlite3_stmt *stmt = self->finish;
    int rc = sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int (stmt, 2, (int) outcome);
    if (rc == SQLITE_OK)
        rc = s_bind_blob (stmt, 3, result, size);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text (stmt, 4, reason ? reason : "", -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = s_step (stmt);
    return s_stage_changed (self, rc, "finish", id);
}

int
drv_persist_counts (drv_persist_t *self, uint64_t id, uint32_t attempts, uint32_t failures,
                    uint32_t lost)
{
    assert (self);
    if (self->failed)
        return -1;
    if (s_begin (self))
        return -1;
    sqlite3_stmt *stmt = self->counts;
    int rc = sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64 (stmt, 2, attempts);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64 (stmt, 3, failures);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64 (stmt, 4, lost);
    if (rc == SQLITE_OK)
        rc = s_step (stmt);
    return s_stage_changed (self, rc, "count the attempts of", id);
}

int
drv_persist_attempts (drv_persist_t *self, uint64_t id, uint32_t attempts)
{
    assert (self);
    if (self->failed)
        return -1;
    if (s_begin (self))
        return -1;
    sqlite3_stmt *stmt = self->attempts;
    int rc = sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64 (stmt, 2, attempts);
    if (rc == SQLITE_OK)
        rc = s_step (stmt);
    return s_stage_changed (self, rc, "count an attempt of", id);
}

int
drv_persist_remove (drv_persist_t *self, uint64_t id)
{
    assert (self);
    if (self->failed)
        return -1;
    if (s_begin (self))
        return -1;
    sqlite3_stmt *stmt = self->remove;
    int rc = sqlite3_bind_int64 (stmt, 1, (sqlite3_int64) id);
    if (rc == SQLITE_OK)
        rc = s_step (stmt);
    return s_stage_changed (self, rc, "remove", id);
}

int
drv_persist_commit (drv_persist_t *self)
{
    assert (self);
    if (self->failed)
        return -1;
    if (self->staged == 0)
        return 0;
    int rc = SQLITE_OK;
    if (self->max_id != self->max_id_stored) {
        rc = sqlite3_bind_int64 (self->set_max_id, 1, (sqlite3_int64) self->max_id);
        if (rc == SQLITE_OK)
            rc = s_step (self->set_max_id);
    }
    if (rc == SQLITE_OK)
        rc = s_step (self->commit);
    if (rc != SQLITE_OK) {
        char disk [128];
        s_set_error (self,
                     "cannot commit to the job store in %s: %s%s; stop acknowledging and "
                     "restart once the disk is fixed",
                     self->dir, sqlite3_errmsg (self->db),
                     s_disk_error (self, rc, disk, sizeof disk));
        s_enter_failed (self);
        return -1;
    }
    self->staged = 0;
    self->max_id_stored = self->max_id;
    return 0;
}

size_t
drv_persist_staged (drv_persist_t *self)
{
    assert (self);
    return self->staged;
}

//  Fill a record from the select's current row. 0, or -1 if the row
//  breaks the record's rules (the error is set).
static int
s_read_row (drv_persist_t *self, sqlite3_stmt *stmt, drv_record_t *job)
{
    int64_t id = sqlite3_column_int64 (stmt, 0);
    int64_t timeout_ms = sqlite3_column_int64 (stmt, 5);
    int64_t attempts = sqlite3_column_int64 (stmt, 6);
    int64_t finished = sqlite3_column_int64 (stmt, 7);
    int64_t outcome = sqlite3_column_int64 (stmt, 8);
    memset (job, 0, sizeof *job);
    job->id = (uint64_t) id;
    job->tag = (uint64_t) sqlite3_column_int64 (stmt, 1);
    job->client = s_column_blob (stmt, 2, &job->client_len);
    job->function = (const char *) sqlite3_column_text (stmt, 3);
    job->payload = s_column_blob (stmt, 4, &job->size);
    job->timeout_ms = (uint32_t) timeout_ms;
    job->attempts = (uint32_t) attempts;
    int64_t retries = sqlite3_column_int64 (stmt, 11);
    int64_t failures = sqlite3_column_int64 (stmt, 12);
    int64_t lost = sqlite3_column_int64 (stmt, 13);
    int64_t priority = sqlite3_column_int64 (stmt, 14);
    int64_t flags = sqlite3_column_int64 (stmt, 17);
    job->priority = (int32_t) priority;
    job->run_at = sqlite3_column_int64 (stmt, 15);
    job->unique = (const char *) sqlite3_column_text (stmt, 16);
    job->detached = (flags & S_FLAG_DETACHED) != 0;
    job->follower = (flags & S_FLAG_FOLLOWER) != 0;
    job->chunk = (flags & S_FLAG_CHUNK) != 0;
    job->retries = (uint32_t) retries;
    job->failures = (uint32_t) failures;
    job->lost = (uint32_t) lost;
    job->finished = finished == 1;
    if (job->finished) {
        job->outcome = (drover_outcome_t) outcome;
        job->result = s_column_blob (stmt, 9, &job->result_size);
        job->reason = (const char *) sqlite3_column_text (stmt, 10);
        if (!job->reason)
            job->reason = "";
    }
    const char *broken = id <= 0                                        ? "id"
                         : job->client_len > S_CLIENT_MAX               ? "client"
                         : !job->function                               ? "function"
                         : timeout_ms < 0 || timeout_ms > UINT32_MAX    ? "timeout_ms"
                         : attempts < 0 || attempts > UINT32_MAX        ? "attempts"
                         : retries < 0 || retries > UINT32_MAX          ? "retries"
                         : failures < 0 || failures > UINT32_MAX        ? "failures"
                         : lost < 0 || lost > UINT32_MAX                ? "lost"
                         : priority < INT32_MIN || priority > INT32_MAX ? "priority"
                         : job->run_at < 0                              ? "run_at"
                         : finished != 0 && finished != 1               ? "finished"
                         : job->finished && !s_outcome_valid (outcome)  ? "outcome"
                                                                        : NULL;
    if (broken) {
        s_set_error (self,
                     "the job store in %s is corrupt (job %" PRId64 " has a bad %s): move %s "
                     "aside to start empty, or restore it from a backup",
                     self->dir, id, broken, self->dir);
        return -1;
    }
    return 0;
}

//  The end of a walk over a select's rows, whose last step returned rc
//  and whose caller's result so far is result: a step that failed is an
//  error of the store. Resets the statement; the walk's result.
static int
s_end_walk (drv_persist_t *self, sqlite3_stmt *stmt, int rc, int result)
{
    if (result == 0 && rc != SQLITE_DONE) {
        s_set_error (self, "cannot read the job store in %s: %s", self->dir,
                     sqlite3_errmsg (self->db));
        result = -1;
    }
    sqlite3_reset (stmt);
    return result;
}

int
drv_persist_load (drv_persist_t *self, drv_persist_load_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    if (self->failed)
        return -1;
    sqlite3_stmt *stmt = self->select;
    int result = 0;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        drv_record_t job;
        if (s_read_row (self, stmt, &job)) {
            result = -1;
            break;
        }
        if (fn (&job, arg)) {
            s_set_error (self, "loading the job store stopped at job %" PRIu64, job.id);
            result = -1;
            break;
        }
    }
    return s_end_walk (self, stmt, rc, result);
}

int
drv_persist_queue (drv_persist_t *self, const char *function, uint32_t limit, bool paused,
                   uint64_t max_queue)
{
    assert (self);
    assert (function);
    if (self->failed)
        return -1;
    if (max_queue > INT64_MAX) {
        s_set_error (self, "cannot store the queue of %s: max_queue is too large", function);
        return -1;
    }
    if (s_begin (self))
        return -1;
    bool defaults = limit == 0 && !paused && max_queue == 0;
    sqlite3_stmt *stmt = defaults ? self->queue_clear : self->queue_set;
    int rc = sqlite3_bind_text (stmt, 1, function, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && !defaults)
        rc = sqlite3_bind_int64 (stmt, 2, limit);
    if (rc == SQLITE_OK && !defaults)
        rc = sqlite3_bind_int (stmt, 3, paused ? 1 : 0);
    if (rc == SQLITE_OK && !defaults)
        rc = sqlite3_bind_int64 (stmt, 4, (sqlite3_int64) max_queue);
    if (rc == SQLITE_OK)
        rc = s_step (stmt);
    if (rc != SQLITE_OK) {
        char disk [128];
        s_set_error (self, "cannot store the queue settings of %s in the job store in %s: %s%s",
                     function, self->dir, sqlite3_errmsg (self->db),
                     s_disk_error (self, rc, disk, sizeof disk));
        if (!s_is_call_error (rc))
            s_enter_failed (self);
        return -1;
    }
    self->staged++;
    return 0;
}

int
drv_persist_load_queues (drv_persist_t *self, drv_persist_queue_fn *fn, void *arg)
{
    assert (self);
    assert (fn);
    if (self->failed)
        return -1;
    sqlite3_stmt *stmt = self->queue_select;
    int result = 0;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        const char *function = (const char *) sqlite3_column_text (stmt, 0);
        int64_t limit = sqlite3_column_int64 (stmt, 1);
        int64_t paused = sqlite3_column_int64 (stmt, 2);
        int64_t max_queue = sqlite3_column_int64 (stmt, 3);
        if (!function || limit < 0 || limit > UINT32_MAX || (paused != 0 && paused != 1)
            || max_queue < 0) {
            s_set_error (self,
                         "the job store in %s is corrupt (bad queue settings for %s): move %s "
                         "aside to start empty, or restore it from a backup",
                         self->dir, function ? function : "?", self->dir);
            result = -1;
            break;
        }
        if (fn (function, (uint32_t) limit, paused == 1, (uint64_t) max_queue, arg)) {
            s_set_error (self, "loading the job store stopped at the queue of %s", function);
            result = -1;
            break;
        }
    }
    return s_end_walk (self, stmt, rc, result);
}

uint64_t
drv_persist_max_id (drv_persist_t *self)
{
    assert (self);
    return self->max_id;
}

const char *
drv_persist_error (drv_persist_t *self)
{
    assert (self);
    return self->error;
}
