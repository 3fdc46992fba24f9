/*  test_config - configuration files (drv_config): zconfig text into the
    daemons' long options, every kind of mistake as an error that names
    the file and the key, the merge with the command line, and the real
    drover-broker and drover-worker reading --config.
*/

#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <unistd.h>

#include "drv_config.h"
#include "drv_testutil.h"

//  A table like the daemons': flags with a value, a flag without, a
//  repeatable one, and the ones a file may not use.
static const struct option s_options [] = {
    {"clients", required_argument, 0, 'c'},
    {"max-queue", required_argument, 0, 'Q'},
    {"function", required_argument, 0, 'f'},
    {"insecure", no_argument, 0, 'I'},
    {"level", optional_argument, 0, 'l'},
    {"config", required_argument, 0, 'C'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0}};

static char err [512];

//  Parse text; NULL on error (the message in err).
static drv_config_t *
s_parse (const char *text)
{
    err [0] = 0;
    return drv_config_parse (text, strlen (text), "test.cfg", s_options, err, sizeof err);
}

//  Assert that text is refused with a message holding every fragment.
static void
s_refused (const char *text, const char *fragment, const char *other)
{
    drv_config_t *config = s_parse (text);
    cr_assert_null (config, "accepted: %s", text);
    cr_assert (strstr (err, "test.cfg: "), "no file name in '%s'", err);
    cr_assert (strstr (err, fragment), "'%s' lacks '%s'", err, fragment);
    if (other)
        cr_assert (strstr (err, other), "'%s' lacks '%s'", err, other);
}

Test (config, keys_become_long_options_in_file_order)
{
    drv_config_t *config = s_parse ("#  a comment\n"
                                    "clients = \"tcp://0.0.0.0:7700\"   # why\n"
                                    "max-queue = 1000\n"
                                    "function = \"upper=exec:tr a-z A-Z\"\n"
                                    "insecure = true\n"
                                    "function = 'wc=exec:wc -w'\n"
                                    "level\n"
                                    "level = 3\n");
    cr_assert_not_null (config, "%s", err);
    const char *expected [] = {"--clients=tcp://0.0.0.0:7700", "--max-queue=1000",
                               "--function=upper=exec:tr a-z A-Z", "--insecure",
                               "--function=wc=exec:wc -w", "--level", "--level=3"};
    cr_assert_eq (drv_config_size (config), 7);
    for (size_t i = 0; i < 7; i++)
        cr_assert_str_eq (drv_config_arg (config, i), expected [i]);
    cr_assert_null (drv_config_arg (config, 7));
    drv_config_destroy (&config);
    cr_assert_null (config);
}

Test (config, false_leaves_a_flag_out_and_empty_text_is_empty)
{
    drv_config_t *config = s_parse ("insecure = false\n");
    cr_assert_not_null (config, "%s", err);
    cr_assert_eq (drv_config_size (config), 0);
    drv_config_destroy (&config);
    config = s_parse ("");
    cr_assert_not_null (config, "%s", err);
    cr_assert_eq (drv_config_size (config), 0);
    drv_config_destroy (&config);
}

Test (config, every_mistake_names_the_file_and_the_key)
{
    s_refused ("clients = x\nworkerz = y\n", "unknown key 'workerz'", NULL);
    s_refused ("insecure = yes\n", "key 'insecure'", "true or false");
    s_refused ("max-queue =\n", "key 'max-queue'", "needs a value");
    s_refused ("clients\n", "key 'clients'", "needs a value");
    s_refused ("clients = x\n    max-queue = 3\n", "key 'clients'", "indented");
    s_refused ("config = other.cfg\n", "key 'config'", "cannot be used");
    s_refused ("help = true\n", "key 'help'", "cannot be used");
    //  zconfig's own complaints, with the line they are on.
    s_refused ("clients = x\nmax-queue = \"1000\n", "line 2", "missing \"");
    s_refused ("clients = x\n  max-queue = 1\n", "line 2", "indent");
    s_refused ("max queue = 1\n", "line 1", "invalid syntax");
}

Test (config, what_zconfig_would_cut_or_misread_is_refused)
{
    char *line = (char *) malloc (2100);
    cr_assert_not_null (line);
    strcpy (line, "clients = x\nfunction = \"");
    memset (line + strlen (line), 'a', 2000);
    strcpy (line + 2024, "\"\n");
    s_refused (line, "line 2", "longer than 1024");
    free (line);
    drv_config_t *config =
        drv_config_parse ("clients = x\0y\n", 14, "test.cfg", s_options, err, sizeof err);
    cr_assert_null (config);
    cr_assert (strstr (err, "test.cfg: ") && strstr (err, "NUL"), "%s", err);
    //  Text that does not end in a NUL is read to its size, no further.
    config = drv_config_parse ("max-queue = 12345", 15, "test.cfg", s_options, err, sizeof err);
    cr_assert_not_null (config, "%s", err);
    cr_assert_str_eq (drv_config_arg (config, 0), "--max-queue=123");
    drv_config_destroy (&config);
}

Test (config, an_unreadable_file_is_an_error_naming_it)
{
    drv_config_t *config = drv_config_load ("/nonexistent/drover.cfg", s_options, err, sizeof err);
    cr_assert_null (config);
    cr_assert (strstr (err, "/nonexistent/drover.cfg: cannot read"), "%s", err);
    config = drv_config_load ("/", s_options, err, sizeof err);
    cr_assert_null (config);
    cr_assert (strstr (err, "/: cannot read"), "%s", err);
}

//  Write text to a fresh temporary file; its path in path.
static void
s_write (char *path, size_t size, const char *text)
{
    snprintf (path, size, "/tmp/drover-config-XXXXXX");
    int fd = mkstemp (path);
    cr_assert (fd >= 0);
    cr_assert_eq (write (fd, text, strlen (text)), (ssize_t) strlen (text));
    close (fd);
}

Test (config, the_command_line_comes_after_the_file_and_replaces_its_flags)
{
    char path [64];
    s_write (path, sizeof path,
             "clients = tcp://a:1\nmax-queue = 7\nfunction = f1\nfunction = f2\ninsecure = true\n");
    char config_flag [80];
    snprintf (config_flag, sizeof config_flag, "--config=%s", path);
    char *argv [] = {"prog", "-f", "f3", config_flag, "--max-queue", "9", NULL};
    int argc = 6;
    char **args = argv;
    drv_config_t *config = NULL;
    int rc = drv_config_apply (&argc, &args, "f:h", s_options, &config, err, sizeof err);
    unlink (path);
    cr_assert_eq (rc, 0, "%s", err);
    cr_assert_not_null (config);
    //  The file's function and max-queue lines gave way to the command line.
    const char *expected [] = {"prog", "--clients=tcp://a:1", "--insecure", "-f", "f3",
                               config_flag, "--max-queue", "9"};
    cr_assert_eq (argc, 8);
    for (int i = 0; i < argc; i++)
        cr_assert_str_eq (args [i], expected [i], "argv[%d]", i);
    cr_assert_null (args [argc]);
    //  The program's own pass over the result, asking where each came from.
    int opt, seen = 0;
    while ((opt = getopt_long (argc, args, "f:h", s_options, NULL)) != -1) {
        const char *origin = drv_config_origin (config, optind);
        if (opt == 'c' || opt == 'I')
            cr_assert (strstr (origin, path) && strstr (origin, opt == 'c' ? "key 'clients'"
                                                                           : "key 'insecure'"),
                       "origin '%s'", origin);
        else
            cr_assert_str_eq (origin, "", "option %c", opt);
        seen++;
    }
    cr_assert_eq (seen, 5);
    drv_config_destroy (&config);
}

Test (config, without_config_argv_stays_and_a_bad_file_is_an_error)
{
    char *argv [] = {"prog", "--clients", "x", NULL};
    int argc = 3;
    char **args = argv;
    drv_config_t *config = NULL;
    cr_assert_eq (drv_config_apply (&argc, &args, "h", s_options, &config, err, sizeof err), 0);
    cr_assert_null (config);
    cr_assert_eq (args, argv);
    cr_assert_eq (argc, 3);
    cr_assert_str_eq (drv_config_origin (NULL, 2), "");
    char *bad [] = {"prog", "--config", "/nonexistent.cfg", NULL};
    argc = 3;
    args = bad;
    cr_assert_eq (drv_config_apply (&argc, &args, "h", s_options, &config, err, sizeof err), -1);
    cr_assert_null (config);
    cr_assert (strstr (err, "/nonexistent.cfg"), "%s", err);
}

//  Run a program with args; the caller frees the output.
static drv_test_output_t
s_run (const char *const argv [])
{
    return drv_test_run (argv, NULL, NULL, 60000);
}

Test (config, daemons_refuse_a_bad_file_with_status_2_naming_file_and_key)
{
    char path [64];
    s_write (path, sizeof path,
             "clients = tcp://127.0.0.1:*\nworkers = tcp://127.0.0.1:*\nmax-queue = lots\n");
    const char *broker [] = {DRV_BROKER_BIN, "--config", path, NULL};
    drv_test_output_t out = s_run (broker);
    cr_assert_eq (out.status, 2, "%s", out.err);
    cr_assert (strstr (out.err, path) && strstr (out.err, "key 'max-queue'"), "%s", out.err);
    drv_test_output_free (&out);
    unlink (path);

    s_write (path, sizeof path, "broker = tcp://127.0.0.1:1\nfunction = upper=shell:tr\n");
    const char *worker [] = {DRV_WORKER_BIN, "--config", path, NULL};
    out = s_run (worker);
    cr_assert_eq (out.status, 2, "%s", out.err);
    cr_assert (strstr (out.err, path) && strstr (out.err, "key 'function'"), "%s", out.err);
    drv_test_output_free (&out);
    unlink (path);

    s_write (path, sizeof path, "broker = tcp://127.0.0.1:1\nslotz = 3\n");
    out = s_run (worker);
    cr_assert_eq (out.status, 2, "%s", out.err);
    cr_assert (strstr (out.err, path) && strstr (out.err, "unknown key 'slotz'"), "%s", out.err);
    drv_test_output_free (&out);
    unlink (path);

    const char *missing [] = {DRV_WORKER_BIN, "--config", "/nonexistent/worker.cfg", NULL};
    out = s_run (missing);
    cr_assert_eq (out.status, 2, "%s", out.err);
    cr_assert (strstr (out.err, "/nonexistent/worker.cfg: cannot read"), "%s", out.err);
    drv_test_output_free (&out);
}

Test (config, daemons_run_from_files_and_the_command_line_wins, .fini = drv_test_reap_all,
      .timeout = 120)
{
    char dir [] = "/tmp/drover-config-XXXXXX";
    cr_assert_not_null (mkdtemp (dir));
    char clients [64], workers [64];
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", drv_test_free_port ());
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", drv_test_free_port ());
    char broker_cfg [128], worker_cfg [128], log [128];
    snprintf (broker_cfg, sizeof broker_cfg, "%s/broker.cfg", dir);
    snprintf (worker_cfg, sizeof worker_cfg, "%s/worker.cfg", dir);
    FILE *file = fopen (broker_cfg, "w");
    cr_assert_not_null (file);
    //  The file's worker endpoint is wrong: the command line puts it right.
    fprintf (file, "clients = \"%s\"\nworkers = \"tcp://127.0.0.1:1\"\nheartbeat = 500\n",
             clients);
    fclose (file);
    file = fopen (worker_cfg, "w");
    cr_assert_not_null (file);
    fprintf (file, "broker = \"%s\"\nslots = 2\nheartbeat = 500\n"
                   "function = \"upper=exec:tr a-z A-Z\"\nfunction = \"lower=exec:tr A-Z a-z\"\n",
             workers);
    fclose (file);
    snprintf (log, sizeof log, "%s/broker.log", dir);
    const char *broker [] = {DRV_BROKER_BIN, "--config", broker_cfg, "--workers", workers, NULL};
    pid_t broker_pid = drv_test_spawn (broker, log);
    //  --function on the command line replaces both of the file's.
    snprintf (log, sizeof log, "%s/worker.log", dir);
    const char *worker [] = {DRV_WORKER_BIN, "--config", worker_cfg, "--function",
                             "upper=exec:rev", NULL};
    pid_t worker_pid = drv_test_spawn (worker, log);

    const char *submit [] = {DRV_CLI_BIN, "--broker", clients, "submit", "upper", "--data",
                             "abc", NULL};
    drv_test_output_t out = drv_test_run (submit, NULL, NULL, 60000);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert (strncmp (out.out, "cba", 3) == 0, "upper gave '%s'", out.out);
    drv_test_output_free (&out);
    //  The file's "lower" is not offered: its job waits, and drover says so.
    const char *lower [] = {DRV_CLI_BIN, "--broker", clients, "submit", "lower", "--data", "X",
                            "--timeout", "100", NULL};
    const char *env [] = {NULL};
    out = drv_test_run (lower, NULL, env, 3000);
    cr_assert_neq (out.status, 0);
    cr_assert (strstr (out.err, "no worker offers 'lower'"), "%s", out.err);
    drv_test_output_free (&out);

    cr_assert_eq (drv_test_stop (worker_pid, SIGTERM, 10000), 0);
    cr_assert_eq (drv_test_stop (broker_pid, SIGTERM, 10000), 0);
    char command [128];
    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    cr_assert_eq (system (command), 0);
}
