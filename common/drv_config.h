/*  drv_config - configuration files for the daemons (--config FILE).

    A file in czmq's zconfig format (ZPL, RFC 4) of flat "key = value"
    lines whose keys are the program's long options without "--":

        clients = "tcp://0.0.0.0:7700"
        max-queue = 1000
        insecure = true
        function = "upper=exec:tr a-z A-Z"
        function = "wc=exec:wc -w"

    turns into the arguments "--clients=tcp://0.0.0.0:7700",
    "--max-queue=1000", "--insecure", "--function=upper=...", and so on,
    which the program parses with the same getopt_long table as its
    command line. So every flag works in a file without code of its own.
    Flags without an argument take true or false; a key repeats for flags
    that repeat. The file's arguments come first, and a flag given on the
    command line replaces every value the file gave it.

    It knows the options, not what they mean: the program's own flag
    parsing checks the values, and asks drv_config_origin whether a bad
    one came from the file, to name the file and the key in its error.
    Unknown keys, sections, values a flag cannot take and files that are
    not zconfig are errors here.
*/

#ifndef DRV_CONFIG_H_INCLUDED
#define DRV_CONFIG_H_INCLUDED

#include <getopt.h>
#include <stddef.h>

typedef struct _drv_config_t drv_config_t;

//  Parse size bytes of zconfig text (need not end in NUL) against a
//  getopt_long table that ends in a zero entry. name stands for the text
//  in errors (its path). NULL, with a message naming name and the key in
//  err, if the text is not a valid configuration. The caller owns it.
drv_config_t *drv_config_parse (const char *text, size_t size, const char *name,
                                const struct option *options, char *err, size_t err_size);

//  The same for the file at path; an unreadable file is an error too.
drv_config_t *drv_config_load (const char *path, const struct option *options, char *err,
                               size_t err_size);

//  Destroy a configuration and NULL the pointer.
void drv_config_destroy (drv_config_t **self_p);

//  How many arguments the configuration gives.
size_t drv_config_size (drv_config_t *self);

//  The argument at index ("--key=value" or "--key"), in file order;
//  borrowed, NULL past the end.
const char *drv_config_arg (drv_config_t *self, size_t index);

//  For a program's main, before its getopt_long loop: if the command line
//  has --config FILE, load FILE and replace *argc_p and *argv_p with the
//  file's arguments followed by the command line's (less the file's
//  values for flags the command line gives). *config_p is then the
//  configuration, which owns the new argv: destroy it after the last use
//  of argv and of the optarg strings. Without --config, *config_p is NULL
//  and argv stays. -1 with a message in err if the file is bad.
int drv_config_apply (int *argc_p, char ***argv_p, const char *shortopts,
                      const struct option *options, drv_config_t **config_p, char *err,
                      size_t err_size);

//  Where the option that getopt_long has just returned came from, given
//  the optind it left: "FILE: key 'KEY': " if from the file, "" if from
//  the command line (or self is NULL). Borrowed until the next call.
const char *drv_config_origin (drv_config_t *self, int optind);

#endif
