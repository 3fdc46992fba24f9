/*  test_auth - CURVE authentication: keys from drover keygen, a broker
    with allow lists for clients and workers, and everyone it must keep
    out. Real daemons on free loopback ports, plus the SDK and the ZAP
    handler on their own. Each refusal must end the refused program with
    "authentication failed: ..." well within the bound given to it (a
    hang is killed at the bound and fails the test).
*/

#include <criterion/criterion.h>
#include <ctype.h>
#include <czmq.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drover.h"
#include "drv_auth.h"
#include "drv_handshake.h"
#include "drv_testutil.h"

#define S_UPPER "upper=exec:tr a-z A-Z"
//  How long a refused program may take at most before it counts as hung.
#define S_BOUND_MS 20000

//  Key files made for one test.
typedef struct {
    char dir [64];                   //  temp dir holding everything
    char broker [128];               //  broker public certificate
    char broker_secret [128];        //  and its secret
    char clients [128];              //  allow list: c1
    char workers [128];              //  allow list: w1
    char c1 [128], c1_secret [128];  //  a listed client
    char c2 [128], c2_secret [128];  //  an unlisted key
    char w1 [128], w1_secret [128];  //  a listed worker
} s_keys_t;

static s_keys_t keys;
static drv_test_cluster_t cluster;
static bool cluster_up;

static void
s_copy (const char *from, const char *to)
{
    FILE *in = fopen (from, "rb"), *out = fopen (to, "wb");
    cr_assert (in && out, "cannot copy %s to %s", from, to);
    char buffer [4096];
    size_t got;
    while ((got = fread (buffer, 1, sizeof buffer, in)) > 0)
        cr_assert_eq (fwrite (buffer, 1, got, out), got);
    fclose (in);
    fclose (out);
}

static void
s_keygen (char *path, char *secret, const char *name)
{
    snprintf (path, 128, "%s/%s", keys.dir, name);
    snprintf (secret, 128, "%s_secret", path);
    char err [256];
    cr_assert_eq (drover_keygen (path, err, sizeof err), 0, "%s", err);
}

static void
setup (void)
{
    memset (&keys, 0, sizeof keys);
    snprintf (keys.dir, sizeof keys.dir, "/tmp/drover-auth-XXXXXX");
    cr_assert_not_null (mkdtemp (keys.dir));
    s_keygen (keys.broker, keys.broker_secret, "broker");
    s_keygen (keys.c1, keys.c1_secret, "c1");
    s_keygen (keys.c2, keys.c2_secret, "c2");
    s_keygen (keys.w1, keys.w1_secret, "w1");
    snprintf (keys.clients, sizeof keys.clients, "%s/clients", keys.dir);
    snprintf (keys.workers, sizeof keys.workers, "%s/workers", keys.dir);
    cr_assert_eq (mkdir (keys.clients, 0755), 0);
    cr_assert_eq (mkdir (keys.workers, 0755), 0);
    char path [160];
    snprintf (path, sizeof path, "%s/c1", keys.clients);
    s_copy (keys.c1, path);
    snprintf (path, sizeof path, "%s/w1", keys.workers);
    s_copy (keys.w1, path);
    cluster_up = false;
}

static void
teardown (void)
{
    if (cluster_up)
        drv_test_cluster_stop (&cluster);
    drv_test_reap_all ();
    char command [128];
    snprintf (command, sizeof command, "rm -rf '%s'", keys.dir);
    if (system (command) != 0)
        fprintf (stderr, "cannot remove %s\n", keys.dir);
}

TestSuite (auth, .init = setup, .fini = teardown, .timeout = 240);

//  A CURVE broker with the allow lists and one listed worker.
static void
s_start_cluster (void)
{
    const char *flags [] = {"--curve-secret", keys.broker_secret, "--allow-clients",
                            keys.clients, "--allow-workers", keys.workers, NULL};
    drv_test_cluster_start (&cluster, flags);
    cluster_up = true;
    const char *functions [] = {S_UPPER, NULL};
    const char *worker_flags [] = {"--curve-secret", keys.w1_secret, "--broker-key", keys.broker,
                                   NULL};
    drv_test_cluster_worker_flags (&cluster, 2, functions, worker_flags);
}

//  drover with CURVE flags (secret or broker_key NULL: not given).
static drv_test_output_t
s_cli_as (const char *secret, const char *broker_key, const char *const args [],
          const char *input)
{
    const char *argv [32] = {DRV_CLI_BIN, "--broker", cluster.clients};
    int argc = 3;
    if (secret) {
        argv [argc++] = "--curve-secret";
        argv [argc++] = secret;
    }
    if (broker_key) {
        argv [argc++] = "--broker-key";
        argv [argc++] = broker_key;
    }
    for (int i = 0; args [i] && argc < 31; i++)
        argv [argc++] = args [i];
    return drv_test_run (argv, input, NULL, S_BOUND_MS);
}

//  Read a whole file; the caller frees.
static char *
s_slurp (const char *path)
{
    FILE *file = fopen (path, "rb");
    cr_assert_not_null (file, "cannot read %s", path);
    char *text = (char *) calloc (1, 1 << 20);
    size_t got = fread (text, 1, (1 << 20) - 1, file);
    text [got] = 0;
    fclose (file);
    return text;
}

//  Assert that a refused program said why and exited non-zero in time.
static void
s_assert_refused (drv_test_output_t *out, int status, const char *because)
{
    cr_assert_neq (out->status, 137, "hung until killed; stderr: %s", out->err);
    cr_assert_eq (out->status, status, "status %d; stderr: %s", out->status, out->err);
    cr_assert_neq (strstr (out->err, "authentication failed: "), NULL, "%s", out->err);
    cr_assert_neq (strstr (out->err, because), NULL, "wanted '%s' in: %s", because, out->err);
    cr_assert_str_eq (out->out, "");
}

Test (auth, keygen_writes_a_pair_and_never_overwrites)
{
    char path [128];
    snprintf (path, sizeof path, "%s/alice", keys.dir);
    const char *argv [] = {DRV_CLI_BIN, "keygen", path, NULL};
    drv_test_output_t out = drv_test_run (argv, NULL, NULL, S_BOUND_MS);
    cr_assert_eq (out.status, 0, "%s", out.err);
    drv_test_output_free (&out);

    char secret [160];
    snprintf (secret, sizeof secret, "%s_secret", path);
    struct stat st;
    cr_assert_eq (stat (secret, &st), 0);
    cr_assert_eq (st.st_mode & 0777, 0600, "secret mode %o", st.st_mode & 0777);
    cr_assert_eq (stat (path, &st), 0);
    cr_assert_eq (st.st_mode & 0777, 0644, "public mode %o", st.st_mode & 0777);
    char *public_text = s_slurp (path), *secret_text = s_slurp (secret);
    cr_assert_neq (strstr (public_text, "public-key = "), NULL, "%s", public_text);
    cr_assert_eq (strstr (public_text, "secret-key"), NULL, "the public file leaks: %s",
                  public_text);
    cr_assert_neq (strstr (secret_text, "secret-key = "), NULL, "%s", secret_text);
    //  czmq reads them as a pair.
    zcert_t *cert = zcert_load (secret);
    cr_assert_not_null (cert);
    cr_assert_neq (strstr (public_text, zcert_public_txt (cert)), NULL);
    zcert_destroy (&cert);

    //  A second keygen on the same path changes nothing.
    out = drv_test_run (argv, NULL, NULL, S_BOUND_MS);
    cr_assert_eq (out.status, 1);
    cr_assert_neq (strstr (out.err, "not overwriting"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    char *public_after = s_slurp (path), *secret_after = s_slurp (secret);
    cr_assert_str_eq (public_after, public_text);
    cr_assert_str_eq (secret_after, secret_text);
    //  Nor when only the secret is in the way.
    char lone [128];
    snprintf (lone, sizeof lone, "%s/bob", keys.dir);
    char lone_secret [160];
    snprintf (lone_secret, sizeof lone_secret, "%s_secret", lone);
    s_copy (secret, lone_secret);
    char err [256];
    cr_assert_eq (drover_keygen (lone, err, sizeof err), -1);
    cr_assert_neq (strstr (err, "not overwriting"), NULL, "%s", err);
    cr_assert_eq (access (lone, F_OK), -1, "keygen left a half pair behind");
    free (public_text);
    free (secret_text);
    free (public_after);
    free (secret_after);
}

Test (auth, listed_peers_get_in_and_nobody_else_gets_anything_through)
{
    s_start_cluster ();
    const char *map [] = {"map", "upper", NULL};
    drv_test_output_t out = s_cli_as (keys.c1_secret, keys.broker, map, "a\nb\nc\n");
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "A\nB\nC\n");
    drv_test_output_free (&out);

    //  A key the broker does not list.
    out = s_cli_as (keys.c2_secret, keys.broker, map, "x\n");
    s_assert_refused (&out, 3, "--allow-clients");
    drv_test_output_free (&out);
    //  A listed key, but the wrong broker key: the broker drops the link.
    out = s_cli_as (keys.c1_secret, keys.c2, map, "x\n");
    s_assert_refused (&out, 3, "--broker-key");
    drv_test_output_free (&out);
    //  No CURVE at all. The broker may close before the client has read
    //  why (then the client sees only drops), so either message will do;
    //  both say what to give it.
    out = s_cli_as (NULL, NULL, map, "x\n");
    s_assert_refused (&out, 3, "requires CURVE");
    s_assert_refused (&out, 3, "--curve-secret and --broker-key");
    drv_test_output_free (&out);
    //  The keys from the environment, the same refusal.
    const char *argv [] = {DRV_CLI_BIN, "--broker", cluster.clients, "submit", "upper", "--data",
                           "x", NULL};
    char env_secret [160], env_key [160];
    snprintf (env_secret, sizeof env_secret, "DROVER_CURVE_SECRET=%s", keys.c2_secret);
    snprintf (env_key, sizeof env_key, "DROVER_BROKER_KEY=%s", keys.broker);
    const char *env [] = {env_secret, env_key, NULL};
    out = drv_test_run (argv, NULL, env, S_BOUND_MS);
    s_assert_refused (&out, 3, "--allow-clients");
    drv_test_output_free (&out);
    //  A client key cannot register as a worker: the worker stops.
    const char *worker [] = {DRV_WORKER_BIN, "--broker", cluster.workers, "--function", S_UPPER,
                             "--curve-secret", keys.c1_secret, "--broker-key", keys.broker, NULL};
    out = drv_test_run (worker, NULL, NULL, S_BOUND_MS);
    s_assert_refused (&out, 1, "--allow-workers");
    drv_test_output_free (&out);

    //  The broker still serves the listed ones, with the same worker.
    out = s_cli_as (keys.c1_secret, keys.broker, map, "d\ne\n");
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "D\nE\n");
    drv_test_output_free (&out);

    //  Nothing of the refused ones got in: 5 tasks submitted, by c1.
    cr_assert_eq (drv_test_stop (cluster.broker, SIGTERM, 10000), 0);
    char log_path [128];
    snprintf (log_path, sizeof log_path, "%s/broker.log", cluster.dir);
    char *log = s_slurp (log_path);
    cr_assert_neq (strstr (log, "submitted=5 finished=5"), NULL, "%s", log);
    cr_assert_neq (strstr (log, "not in "), NULL, "%s", log);
    cr_assert_neq (strstr (log, "(it is allowed on clients only)"), NULL, "%s", log);
    //  One worker registered: the listed one.
    const char *ready = strstr (log, "worker ready");
    cr_assert_not_null (ready, "%s", log);
    cr_assert_null (strstr (ready + 1, "worker ready"), "%s", log);
    free (log);
}

Test (auth, curve_peers_of_a_plain_broker_are_told)
{
    drv_test_cluster_start (&cluster, NULL);
    cluster_up = true;
    const char *submit [] = {"submit", "upper", "--data", "x", NULL};
    drv_test_output_t out = s_cli_as (keys.c1_secret, keys.broker, submit, NULL);
    s_assert_refused (&out, 3, "does not use CURVE");
    drv_test_output_free (&out);
    const char *worker [] = {DRV_WORKER_BIN, "--broker", cluster.workers, "--function", S_UPPER,
                             "--curve-secret", keys.w1_secret, "--broker-key", keys.broker, NULL};
    out = drv_test_run (worker, NULL, NULL, S_BOUND_MS);
    s_assert_refused (&out, 1, "does not use CURVE");
    drv_test_output_free (&out);
}

Test (auth, allow_lists_are_read_again_when_they_change)
{
    s_start_cluster ();
    const char *submit [] = {"submit", "upper", "--data", "key", NULL};
    drv_test_output_t out = s_cli_as (keys.c2_secret, keys.broker, submit, NULL);
    s_assert_refused (&out, 3, "--allow-clients");
    drv_test_output_free (&out);

    //  Listed while the broker runs: c2 gets in from its next connection.
    char listed [160];
    snprintf (listed, sizeof listed, "%s/c2.cert", keys.clients);
    s_copy (keys.c2, listed);
    //  Junk, a copy of a listed certificate and a stray secret beside it
    //  are skipped, not fatal.
    char junk [160], copy [160], stray [160];
    snprintf (junk, sizeof junk, "%s/README", keys.clients);
    snprintf (copy, sizeof copy, "%s/c1-again", keys.clients);
    snprintf (stray, sizeof stray, "%s/c1_secret", keys.clients);
    FILE *file = fopen (junk, "w");
    cr_assert_not_null (file);
    fputs ("these are the client keys\n  of = our = team\n", file);
    fclose (file);
    s_copy (keys.c1, copy);
    s_copy (keys.c1_secret, stray);
    out = s_cli_as (keys.c2_secret, keys.broker, submit, NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    cr_assert_str_eq (out.out, "KEY");
    drv_test_output_free (&out);
    out = s_cli_as (keys.c1_secret, keys.broker, submit, NULL);
    cr_assert_eq (out.status, 0, "%s", out.err);
    drv_test_output_free (&out);

    //  Taken off the list: refused again.
    cr_assert_eq (unlink (listed), 0);
    out = s_cli_as (keys.c2_secret, keys.broker, submit, NULL);
    s_assert_refused (&out, 3, "--allow-clients");
    drv_test_output_free (&out);
}

//  An in-process handler for the SDK tests.
static int
s_upper (drover_task_t *task, void *arg)
{
    (void) arg;
    size_t size;
    const uint8_t *data = drover_task_payload (task, &size);
    char out [64];
    size_t length = size < sizeof out ? size : sizeof out;
    for (size_t i = 0; i < length; i++)
        out [i] = (char) toupper (data [i]);
    return drover_task_reply (task, out, length);
}

Test (auth, the_sdk_reports_a_refusal_as_an_error)
{
    drover_broker_t *broker = drover_broker_new ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    cr_assert_eq (drover_broker_set_curve (broker, keys.broker_secret, keys.clients,
                                           keys.workers),
                  0, "%s", drover_broker_error (broker));
    cr_assert_eq (drover_broker_start (broker), 0, "%s", drover_broker_error (broker));
    zcert_t *cert = zcert_load (keys.broker);
    cr_assert_str_eq (drover_broker_public_key (broker), zcert_public_txt (cert));
    zcert_destroy (&cert);

    //  A client key offered as a worker: the worker stops by itself.
    drover_worker_t *intruder = drover_worker_new (drover_broker_workers_endpoint (broker));
    cr_assert_eq (drover_worker_add_handler (intruder, "upper", s_upper, NULL), 0);
    cr_assert_eq (drover_worker_set_curve (intruder, keys.c1_secret, keys.broker), 0, "%s",
                  drover_worker_error (intruder));
    cr_assert_eq (drover_worker_start (intruder), 0, "%s", drover_worker_error (intruder));
    cr_assert_eq (drover_worker_wait (intruder, S_BOUND_MS), -1, "the refused worker runs on");
    cr_assert_neq (strstr (drover_worker_error (intruder), "authentication failed: "), NULL, "%s",
                   drover_worker_error (intruder));
    drover_worker_destroy (&intruder);

    drover_worker_t *worker = drover_worker_new (drover_broker_workers_endpoint (broker));
    cr_assert_eq (drover_worker_add_handler (worker, "upper", s_upper, NULL), 0);
    cr_assert_eq (drover_worker_set_curve (worker, keys.w1_secret, keys.broker), 0);
    cr_assert_eq (drover_worker_start (worker), 0, "%s", drover_worker_error (worker));

    //  An unlisted client: calls fail with the code, errno and reason.
    drover_client_t *stranger = drover_client_new (drover_broker_clients_endpoint (broker));
    cr_assert_eq (drover_client_set_curve (stranger, keys.c2_secret, keys.broker), 0, "%s",
                  drover_client_error (stranger));
    drover_result_t *result = NULL;
    cr_assert_eq (drover_client_apply (stranger, "upper", "abc", 3, NULL, S_BOUND_MS, &result), -1);
    cr_assert_eq (errno, EACCES);
    cr_assert_eq (drover_client_error_code (stranger), DROVER_ERR_UNAUTHORIZED);
    cr_assert_eq (strncmp (drover_client_error (stranger), "authentication failed: ", 23), 0,
                  "%s", drover_client_error (stranger));
    //  And keep failing at once.
    cr_assert_eq (drover_client_submit (stranger, "upper", "abc", 3, NULL, NULL), -1);
    cr_assert_eq (drover_client_error_code (stranger), DROVER_ERR_UNAUTHORIZED);
    drover_client_destroy (&stranger);

    drover_client_t *client = drover_client_new (drover_broker_clients_endpoint (broker));
    cr_assert_eq (drover_client_set_curve (client, keys.c1_secret, keys.broker), 0);
    cr_assert_eq (drover_client_apply (client, "upper", "abc", 3, NULL, S_BOUND_MS, &result), 0,
                  "%s", drover_client_error (client));
    cr_assert_str_eq ((char *) result->data, "ABC");
    drover_result_destroy (&result);
    //  Keys are set before talking, not after.
    cr_assert_eq (drover_client_set_curve (client, keys.c1_secret, keys.broker), -1);
    drover_client_destroy (&client);
    cr_assert_eq (drover_worker_wait (worker, 0), 0, "the listed worker stopped: %s",
                  drover_worker_error (worker));
    drover_worker_destroy (&worker);
    drover_broker_destroy (&broker);
}

Test (auth, setters_check_their_files)
{
    drover_broker_t *broker = drover_broker_new ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    //  A public certificate where the secret one belongs.
    cr_assert_eq (drover_broker_set_curve (broker, keys.broker, keys.clients, keys.workers), -1);
    cr_assert_neq (strstr (drover_broker_error (broker), "public certificate"), NULL, "%s",
                   drover_broker_error (broker));
    cr_assert_eq (drover_broker_set_curve (broker, "/nonexistent/key_secret", keys.clients,
                                           keys.workers),
                  -1);
    cr_assert_neq (strstr (drover_broker_error (broker), "cannot read /nonexistent/key_secret"),
                   NULL, "%s", drover_broker_error (broker));
    cr_assert_eq (drover_broker_set_curve (broker, keys.broker_secret, "/nonexistent",
                                           keys.workers),
                  -1);
    cr_assert_neq (strstr (drover_broker_error (broker), "--allow-clients"), NULL, "%s",
                   drover_broker_error (broker));
    //  Not a certificate at all.
    char junk [128];
    snprintf (junk, sizeof junk, "%s/junk", keys.dir);
    FILE *file = fopen (junk, "w");
    cr_assert_not_null (file);
    fputs ("hello\n", file);
    fclose (file);
    chmod (junk, 0600);
    cr_assert_eq (drover_broker_set_curve (broker, junk, keys.clients, keys.workers), -1);
    cr_assert_neq (strstr (drover_broker_error (broker), "not a CURVE certificate"), NULL, "%s",
                   drover_broker_error (broker));
    //  A secret others can read is refused.
    chmod (keys.broker_secret, 0644);
    cr_assert_eq (drover_broker_set_curve (broker, keys.broker_secret, keys.clients,
                                           keys.workers),
                  -1);
    cr_assert_neq (strstr (drover_broker_error (broker), "chmod 600"), NULL, "%s",
                   drover_broker_error (broker));
    chmod (keys.broker_secret, 0600);
    cr_assert_eq (drover_broker_set_curve (broker, keys.broker_secret, keys.clients,
                                           keys.workers),
                  0, "%s", drover_broker_error (broker));
    //  With CURVE the broker may listen beyond loopback.
    drover_broker_destroy (&broker);
    broker = drover_broker_new ("tcp://0.0.0.0:*", "tcp://127.0.0.1:*");
    cr_assert_eq (drover_broker_set_curve (broker, keys.broker_secret, keys.clients,
                                           keys.workers),
                  0);
    cr_assert_eq (drover_broker_start (broker), 0, "%s", drover_broker_error (broker));
    //  One CURVE broker per process: the second says why it cannot start.
    drover_broker_t *second = drover_broker_new ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    cr_assert_eq (drover_broker_set_curve (second, keys.broker_secret, keys.clients,
                                           keys.workers),
                  0);
    cr_assert_eq (drover_broker_start (second), -1);
    cr_assert_neq (strstr (drover_broker_error (second), "one CURVE broker per process"), NULL,
                   "%s", drover_broker_error (second));
    drover_broker_destroy (&second);
    drover_broker_destroy (&broker);

    drover_client_t *client = drover_client_new ("tcp://127.0.0.1:1");
    cr_assert_eq (drover_client_set_curve (client, keys.c1, keys.broker), -1);
    cr_assert_neq (strstr (drover_client_error (client), "--curve-secret"), NULL);
    cr_assert_eq (drover_client_set_curve (client, keys.c1_secret, "/nonexistent"), -1);
    cr_assert_neq (strstr (drover_client_error (client), "--broker-key"), NULL);
    drover_client_destroy (&client);
    drover_worker_t *worker = drover_worker_new ("tcp://127.0.0.1:1");
    cr_assert_eq (drover_worker_set_curve (worker, keys.w1, keys.broker), -1);
    cr_assert_neq (strstr (drover_worker_error (worker), "public certificate"), NULL);
    drover_worker_destroy (&worker);

    //  The programs want the flags together.
    const char *half_broker [] = {DRV_BROKER_BIN, "--clients", "tcp://127.0.0.1:1", "--workers",
                                  "tcp://127.0.0.1:2", "--curve-secret", keys.broker_secret, NULL};
    drv_test_output_t out = drv_test_run (half_broker, NULL, NULL, S_BOUND_MS);
    cr_assert_eq (out.status, 2);
    cr_assert_neq (strstr (out.err, "--allow-workers"), NULL, "%s", out.err);
    drv_test_output_free (&out);
    const char *half_worker [] = {DRV_WORKER_BIN, "--broker", "tcp://127.0.0.1:1", "--function",
                                  S_UPPER, "--broker-key", keys.broker, NULL};
    out = drv_test_run (half_worker, NULL, NULL, S_BOUND_MS);
    cr_assert_eq (out.status, 2);
    cr_assert_neq (strstr (out.err, "--curve-secret"), NULL, "%s", out.err);
    drv_test_output_free (&out);
}

//  A CURVE client DEALER to endpoint, watched; sends one frame.
static zsock_t *
s_curve_dealer (const char *endpoint, zcert_t *cert, zcert_t *server, drv_handshake_t **watch)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    char err [256];
    cr_assert_eq (drv_auth_client_apply (dealer, cert, server, err, sizeof err), 0, "%s", err);
    *watch = drv_handshake_new (dealer, "client", true, err, sizeof err);
    cr_assert_not_null (*watch, "%s", err);
    cr_assert_eq (zsock_connect (dealer, "%s", endpoint), 0);
    zstr_send (dealer, "let me in");
    return dealer;
}

Test (auth, fails_closed_when_no_zap_handler_answers)
{
    //  A CURVE server set up as the broker's are, with no ZAP handler in
    //  this process: libzmq would let any CURVE client in without
    //  ZMQ_ZAP_ENFORCE_DOMAIN.
    char err [256];
    zcert_t *server_cert = drv_auth_load_cert (keys.broker_secret, true, err, sizeof err);
    zcert_t *client_cert = drv_auth_load_cert (keys.c1_secret, true, err, sizeof err);
    cr_assert (server_cert && client_cert, "%s", err);
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    cr_assert_eq (drv_auth_server_apply (router, server_cert, DRV_AUTH_CLIENTS, err, sizeof err),
                  0, "%s", err);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    cr_assert_gt (port, 0);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);

    drv_handshake_t *watch;
    zsock_t *dealer = s_curve_dealer (endpoint, client_cert, server_cert, &watch);
    zpoller_t *poller = zpoller_new (router, drv_handshake_sock (watch), NULL);
    //  Wait for the client's verdict; the server must not see a message.
    int64_t deadline = zclock_mono () + S_BOUND_MS;
    while (drv_handshake_read (watch) == 0 && zclock_mono () < deadline) {
        void *which = zpoller_wait (poller, 100);
        cr_assert_neq (which, router, "a message got through without a ZAP handler");
    }
    cr_assert_neq (strstr (drv_handshake_reason (watch), "authentication failed: "), NULL,
                   "no verdict: %s", drv_handshake_reason (watch));
    cr_assert_eq (zsock_events (router) & ZMQ_POLLIN, 0);
    zpoller_destroy (&poller);
    drv_handshake_destroy (&watch);
    zsock_destroy (&dealer);

    //  With the handler listing the key, the same client gets through, so
    //  the refusal above was the missing handler's doing.
    drv_auth_t *auth = drv_auth_new (err, sizeof err);
    cr_assert_not_null (auth, "%s", err);
    size_t count = 0;
    cr_assert_eq (drv_auth_allow (auth, DRV_AUTH_CLIENTS, keys.clients, &count, err, sizeof err), 0,
                  "%s", err);
    cr_assert_eq (count, 1);
    dealer = s_curve_dealer (endpoint, client_cert, server_cert, &watch);
    zsock_set_rcvtimeo (router, S_BOUND_MS);
    zmsg_t *msg = zmsg_recv (router);
    cr_assert_not_null (msg, "the listed client did not get through");
    zframe_t *body = zmsg_last (msg);
    cr_assert (zframe_streq (body, "let me in"));
    //  The ZAP handler named the key as the User-Id.
    cr_assert_str_eq (zframe_meta (body, "User-Id"), zcert_public_txt (client_cert));
    zmsg_destroy (&msg);
    cr_assert_eq (drv_handshake_read (watch), 0);
    drv_handshake_destroy (&watch);
    zsock_destroy (&dealer);
    drv_auth_destroy (&auth);
    zsock_destroy (&router);
    zcert_destroy (&server_cert);
    zcert_destroy (&client_cert);
}

Test (auth, an_unread_handshake_watch_never_stalls_the_connections)
{
    //  libzmq sends monitor events blocking from its I/O thread. A client
    //  that is not called while its connection comes and goes must not
    //  fill the event pipe and stall every socket: 1,500 connections
    //  make 3,000 events, past the default pipe limit of 2,000.
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    cr_assert_gt (port, 0);
    zsock_set_rcvtimeo (router, S_BOUND_MS);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    char err [256];
    drv_handshake_t *watch = drv_handshake_new (dealer, "client", false, err, sizeof err);
    cr_assert_not_null (watch, "%s", err);
    for (int i = 0; i < 1500; i++) {
        cr_assert_eq (zsock_connect (dealer, "%s", endpoint), 0);
        zstr_send (dealer, "x");
        zmsg_t *msg = zmsg_recv (router);
        cr_assert_not_null (msg, "connection %d stalled", i);
        zmsg_destroy (&msg);
        zsock_disconnect (dealer, "%s", endpoint);
    }
    //  Every handshake succeeded: no verdict.
    cr_assert_eq (drv_handshake_read (watch), 0, "%s", drv_handshake_reason (watch));
    drv_handshake_destroy (&watch);
    zsock_destroy (&dealer);
    zsock_destroy (&router);
}
