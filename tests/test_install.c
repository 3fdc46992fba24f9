/*  test_install - what `cmake --install` gives an SDK user: the header,
    libdrover and drover.pc, enough to build examples/sdk_square.c with
    `pkg-config --cflags --libs drover`, against both the shared and the
    static library, and run it. (In a sanitizer build the example gets the
    same -fsanitize flags as the library it links.)
*/

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drv_testutil.h"

static char prefix [64];

static void
setup (void)
{
    snprintf (prefix, sizeof prefix, "/tmp/drover-install-XXXXXX");
    cr_assert_not_null (mkdtemp (prefix));
}

static void
teardown (void)
{
    char command [128];
    snprintf (command, sizeof command, "rm -rf '%s'", prefix);
    if (system (command) != 0)
        fprintf (stderr, "cannot remove %s\n", prefix);
    drv_test_reap_all ();
}

//  Run a shell command line; returns its output, asserting exit 0.
static drv_test_output_t
s_sh (const char *line)
{
    const char *argv [] = {"/bin/sh", "-c", line, NULL};
    drv_test_output_t out = drv_test_run (argv, NULL, NULL, 240000);
    cr_assert_eq (out.status, 0, "%s\nstdout: %s\nstderr: %s", line, out.out, out.err);
    return out;
}

Test (install, sdk_builds_with_pkg_config, .init = setup, .fini = teardown, .timeout = 300)
{
    char line [1024];
    snprintf (line, sizeof line, "cmake --install '%s' --prefix '%s' >/dev/null", DROVER_BIN_DIR,
              prefix);
    drv_test_output_t out = s_sh (line);
    drv_test_output_free (&out);
    const char *installed [] = {"bin/drover-broker", "bin/drover-worker", "bin/drover",
                                "include/drover.h"};
    for (int i = 0; i < 4; i++) {
        snprintf (line, sizeof line, "%s/%s", prefix, installed [i]);
        cr_assert_eq (access (line, F_OK), 0, "%s installed", line);
    }
    //  Against the shared library, as pkg-config gives it.
    snprintf (line, sizeof line,
              "export PKG_CONFIG_PATH=$(dirname $(find '%s' -name drover.pc)) && "
              "cc " DROVER_TEST_CFLAGS " '%s/examples/sdk_square.c' -o '%s/sdk_square' "
              "$(pkg-config --cflags --libs drover) && "
              "LD_LIBRARY_PATH=$(pkg-config --variable=libdir drover) '%s/sdk_square'",
              prefix, DROVER_SOURCE_DIR, prefix, prefix);
    out = s_sh (line);
    cr_assert_str_eq (out.out, "1 4 9 16 25 36 49 64 81 100\n");
    drv_test_output_free (&out);
    //  Against the static library, with its dependencies' flags.
    snprintf (line, sizeof line,
              "export PKG_CONFIG_PATH=$(dirname $(find '%s' -name drover.pc)) && "
              "cc " DROVER_TEST_CFLAGS " '%s/examples/sdk_square.c' -o '%s/sdk_square_static' "
              "$(pkg-config --cflags drover) $(pkg-config --variable=libdir drover)/libdrover.a "
              "$(pkg-config --libs libczmq libzmq libprotobuf-c sqlite3) && '%s/sdk_square_static'",
              prefix, DROVER_SOURCE_DIR, prefix, prefix);
    out = s_sh (line);
    cr_assert_str_eq (out.out, "1 4 9 16 25 36 49 64 81 100\n");
    drv_test_output_free (&out);
}
