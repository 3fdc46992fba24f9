/*  drv_config - configuration files for the daemons. See drv_config.h.

    czmq's zconfig does the parsing; this module checks the tree against
    the option table and turns each key into one argument. zconfig says
    what is wrong with a bad file only by printing "(LINE) what" on
    stdout (zclock_log), so stdout goes to a memory file while it parses,
    and that line becomes part of the error message. The daemons parse
    before they start threads, so nothing else is printing then.
*/

#include "drv_config.h"

#include <czmq.h>
#include <sys/mman.h>

//  A configuration larger than this is surely not one.
#define DRV_CONFIG_MAX_SIZE (1024 * 1024)

struct _drv_config_t {
    char *name;                      //  the file's path, for errors
    const struct option *options;    //  the program's table, borrowed
    char **args;                     //  "--key=value" or "--key", file order
    int *option;                     //  for each arg, its entry in options
    size_t size;                     //  entries in args and option
    char **argv;                     //  merged argv after drv_config_apply, or NULL
    size_t *argv_arg;                //  for argv[1..file_argc], its index in args
    size_t file_argc;                //  how many of argv[1..] came from the file
    char origin [512];               //  drv_config_origin's answer
};

//  The entry for a long option name, or -1.
static int
s_find_option (const struct option *options, const char *name)
{
    for (int i = 0; options [i].name; i++)
        if (streq (options [i].name, name))
            return i;
    return -1;
}

//  zconfig's complaint, "(LINE) what" in a log line, as "line LINE: what";
//  the reason when the log held nothing usable.
static void
s_zconfig_reason (const char *log, char *reason, size_t size)
{
    const char *start = log ? strstr (log, ": (") : NULL;
    unsigned line;
    int used = 0;
    if (start && sscanf (start, ": (%u) %n", &line, &used) == 1 && used > 0) {
        const char *what = start + used;
        int length = (int) strcspn (what, "\n");
        snprintf (reason, size, "line %u: %.*s", line, length > 200 ? 200 : length, what);
    }
    else
        snprintf (reason, size, "not in zconfig format");
}

//  Parse text with zconfig, catching its complaint in reason.
static zconfig_t *
s_zconfig_load (const char *text, size_t size, char *reason, size_t reason_size)
{
    zchunk_t *chunk = zchunk_new (text, size);
    if (!chunk) {
        snprintf (reason, reason_size, "out of memory");
        return NULL;
    }
    fflush (stdout);
    int saved = dup (STDOUT_FILENO);
    int capture = memfd_create ("drv_config", MFD_CLOEXEC);
    bool caught = saved != -1 && capture != -1 && dup2 (capture, STDOUT_FILENO) != -1;
    zconfig_t *root = zconfig_chunk_load (chunk);
    fflush (stdout);
    char log [512] = "";
    if (caught) {
        dup2 (saved, STDOUT_FILENO);
        ssize_t length = pread (capture, log, sizeof log - 1, 0);
        log [length > 0 ? length : 0] = 0;
    }
    if (saved != -1)
        close (saved);
    if (capture != -1)
        close (capture);
    zchunk_destroy (&chunk);
    if (!root)
        s_zconfig_reason (log, reason, reason_size);
    return root;
}

//  zconfig (czmq 4.2) cuts a line at 1024 bytes without a word, and then
//  miscounts what is left of the text and reads past it: refuse first.
static int
s_check_lines (const char *text, size_t size, char *reason, size_t reason_size)
{
    unsigned line = 1;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++)
        if (i == size || text [i] == '\n') {
            if (i - start > 1024) {
                snprintf (reason, reason_size, "line %u: longer than 1024 bytes", line);
                return -1;
            }
            line++;
            start = i + 1;
        }
    return 0;
}

//  Append one argument for options[option].
static int
s_add (drv_config_t *self, int option, const char *value)
{
    char **args = (char **) realloc (self->args, (self->size + 1) * sizeof *args);
    if (!args)
        return -1;
    self->args = args;
    int *options = (int *) realloc (self->option, (self->size + 1) * sizeof *options);
    if (!options)
        return -1;
    self->option = options;
    const char *name = self->options [option].name;
    char *arg = value ? zsys_sprintf ("--%s=%s", name, value) : zsys_sprintf ("--%s", name);
    if (!arg)
        return -1;
    self->args [self->size] = arg;
    self->option [self->size] = option;
    self->size++;
    return 0;
}

//  Check one key = value against the table and add its argument.
static int
s_add_key (drv_config_t *self, zconfig_t *item, char *err, size_t err_size)
{
    const char *key = zconfig_name (item);
    const char *value = zconfig_value (item) ? zconfig_value (item) : "";
    int option = s_find_option (self->options, key);
    if (option == -1) {
        snprintf (err, err_size,
                  "%s: unknown key '%.64s' (keys are the long options of --help, "
                  "without the --)",
                  self->name, key);
        return -1;
    }
    if (streq (key, "config") || streq (key, "help") || streq (key, "version")) {
        snprintf (err, err_size, "%s: key '%s' cannot be used in a configuration file",
                  self->name, key);
        return -1;
    }
    if (zconfig_child (item)) {
        snprintf (err, err_size,
                  "%s: key '%s' has indented lines below it; write flat key = value lines",
                  self->name, key);
        return -1;
    }
    int rc = 0;
    if (self->options [option].has_arg == no_argument) {
        if (streq (value, "true"))
            rc = s_add (self, option, NULL);
        else
        if (!streq (value, "false")) {
            snprintf (err, err_size, "%s: key '%s' takes true or false, not '%.64s'",
                      self->name, key, value);
            return -1;
        }
    }
    else
    if (self->options [option].has_arg == required_argument && !*value) {
        snprintf (err, err_size, "%s: key '%s' needs a value, e.g. %s = VALUE", self->name, key,
                  key);
        return -1;
    }
    else
        rc = s_add (self, option, *value ? value : NULL);
    if (rc == -1)
        snprintf (err, err_size, "%s: out of memory", self->name);
    return rc;
}

drv_config_t *
drv_config_parse (const char *text, size_t size, const char *name,
                  const struct option *options, char *err, size_t err_size)
{
    if (size > DRV_CONFIG_MAX_SIZE) {
        snprintf (err, err_size, "%s: larger than %d bytes; not a configuration file", name,
                  DRV_CONFIG_MAX_SIZE);
        return NULL;
    }
    if (size && memchr (text, 0, size)) {
        snprintf (err, err_size, "%s: holds a NUL byte; not a configuration file", name);
        return NULL;
    }
    drv_config_t *self = (drv_config_t *) calloc (1, sizeof *self);
    if (self)
        self->name = strdup (name);
    if (!self || !self->name) {
        snprintf (err, err_size, "%s: out of memory", name);
        drv_config_destroy (&self);
        return NULL;
    }
    self->options = options;
    char reason [256];
    zconfig_t *root = NULL;
    if (s_check_lines (text, size, reason, sizeof reason) == 0)
        root = s_zconfig_load (text, size, reason, sizeof reason);
    if (!root) {
        snprintf (err, err_size, "%s: %s", name, reason);
        drv_config_destroy (&self);
        return NULL;
    }
    int rc = 0;
    for (zconfig_t *item = zconfig_child (root); item && rc == 0; item = zconfig_next (item))
        rc = s_add_key (self, item, err, err_size);
    zconfig_destroy (&root);
    if (rc == -1)
        drv_config_destroy (&self);
    return self;
}

drv_config_t *
drv_config_load (const char *path, const struct option *options, char *err, size_t err_size)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        snprintf (err, err_size, "%s: cannot read: %s", path, strerror (errno));
        return NULL;
    }
    //  One byte more than the limit tells a file that is too large.
    char *text = (char *) malloc (DRV_CONFIG_MAX_SIZE + 1);
    size_t size = text ? fread (text, 1, DRV_CONFIG_MAX_SIZE + 1, file) : 0;
    bool failed = !text || ferror (file);
    int error = errno;
    fclose (file);
    drv_config_t *self = NULL;
    if (failed)
        snprintf (err, err_size, "%s: cannot read: %s", path,
                  text ? strerror (error) : "out of memory");
    else
        self = drv_config_parse (text, size, path, options, err, err_size);
    free (text);
    return self;
}

void
drv_config_destroy (drv_config_t **self_p)
{
    assert (self_p);
    drv_config_t *self = *self_p;
    if (self) {
        for (size_t i = 0; i < self->size; i++)
            free (self->args [i]);
        free (self->args);
        free (self->option);
        free (self->argv);
        free (self->argv_arg);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

size_t
drv_config_size (drv_config_t *self)
{
    return self->size;
}

const char *
drv_config_arg (drv_config_t *self, size_t index)
{
    return index < self->size ? self->args [index] : NULL;
}

int
drv_config_apply (int *argc_p, char ***argv_p, const char *shortopts,
                  const struct option *options, drv_config_t **config_p, char *err,
                  size_t err_size)
{
    *config_p = NULL;
    int argc = *argc_p;
    char **argv = *argv_p;
    size_t noptions = 0;
    while (options [noptions].name)
        noptions++;
    bool *given = (bool *) calloc (noptions + 1, sizeof *given);
    if (!given) {
        snprintf (err, err_size, "out of memory");
        return -1;
    }
    //  Which flags the command line gives, and the file: a quiet pass, as
    //  the program's own pass reports mistakes on the command line.
    const char *path = NULL;
    int saved_opterr = opterr;
    opterr = 0;
    optind = 0;
    int opt, index = -1;
    while ((opt = getopt_long (argc, argv, shortopts, options, &index)) != -1) {
        int which = index;
        if (which == -1 && opt != '?' && opt != ':')
            for (size_t i = 0; i < noptions; i++)
                if (!options [i].flag && options [i].val == opt)
                    which = (int) i;
        if (which >= 0) {
            given [which] = true;
            if (streq (options [which].name, "config"))
                path = optarg;
        }
        index = -1;
    }
    opterr = saved_opterr;
    optind = 0;                      //  glibc starts afresh on the next call
    if (!path) {
        free (given);
        return 0;
    }
    drv_config_t *self = drv_config_load (path, options, err, err_size);
    if (self) {
        self->argv = (char **) calloc (self->size + (size_t) argc + 1, sizeof (char *));
        self->argv_arg = (size_t *) calloc (self->size + 1, sizeof (size_t));
        if (!self->argv || !self->argv_arg) {
            snprintf (err, err_size, "out of memory");
            drv_config_destroy (&self);
        }
    }
    if (!self) {
        free (given);
        return -1;
    }
    size_t count = 0;
    self->argv [count++] = argv [0];
    for (size_t i = 0; i < self->size; i++)
        if (!given [self->option [i]]) {
            self->argv_arg [self->file_argc++] = i;
            self->argv [count++] = self->args [i];
        }
    for (int i = 1; i < argc; i++)
        self->argv [count++] = argv [i];
    self->argv [count] = NULL;
    free (given);
    *argc_p = (int) count;
    *argv_p = self->argv;
    *config_p = self;
    return 0;
}

const char *
drv_config_origin (drv_config_t *self, int optind)
{
    //  The file's arguments are single words at argv[1..file_argc], each
    //  read by itself, so the one just returned sits at optind - 1.
    if (!self || !self->argv || optind < 2 || (size_t) optind - 1 > self->file_argc)
        return "";
    size_t arg = self->argv_arg [optind - 2];
    snprintf (self->origin, sizeof self->origin, "%s: key '%s': ", self->name,
              self->options [self->option [arg]].name);
    return self->origin;
}
