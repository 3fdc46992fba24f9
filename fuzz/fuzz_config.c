/*  fuzz_config - the configuration-file parser (drv_config_parse) on any
    text, against an option table with every kind of flag the daemons
    have: with an argument, without one, and repeatable. A configuration
    that parses must give well-formed arguments ("--key" or "--key=...",
    for a key in the table).
*/

#include <czmq.h>
#include <getopt.h>

#include "drv_config.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const struct option s_options [] = {
    {"clients", required_argument, 0, 'c'},
    {"workers", required_argument, 0, 'w'},
    {"data", required_argument, 0, 'D'},
    {"max-queue", required_argument, 0, 'Q'},
    {"broker", required_argument, 0, 'b'},
    {"function", required_argument, 0, 'f'},
    {"slots", required_argument, 0, 's'},
    {"insecure", no_argument, 0, 'I'},
    {"verbose", no_argument, 0, 'v'},
    {0, 0, 0, 0}};

//  Is arg "--NAME" or "--NAME=..." for a NAME in the table?
static bool
s_known (const char *arg)
{
    if (strncmp (arg, "--", 2) != 0)
        return false;
    const char *name = arg + 2;
    size_t length = strcspn (name, "=");
    for (const struct option *option = s_options; option->name; option++)
        if (strlen (option->name) == length && strncmp (option->name, name, length) == 0)
            return option->has_arg == required_argument ? name [length] == '='
                                                        : name [length] == 0;
    return false;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char err [512] = "";
    drv_config_t *config =
        drv_config_parse ((const char *) data, size, "fuzz.cfg", s_options, err, sizeof err);
    if (!config) {
        //  A refusal says why.
        if (!err [0])
            abort ();
        return 0;
    }
    for (size_t i = 0; i < drv_config_size (config); i++) {
        const char *arg = drv_config_arg (config, i);
        if (!arg || !s_known (arg))
            abort ();
    }
    if (drv_config_arg (config, drv_config_size (config)))
        abort ();
    drv_config_destroy (&config);
    return 0;
}
