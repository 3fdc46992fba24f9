/*  drv_auth - CURVE keys and the broker's ZAP handler.

    Why not zcertstore's own disk loader: in czmq 4.2.1 it asserts when
    two files in the directory hold the same public key (a copied
    certificate would take the broker down at the next handshake), and it
    notices changes by the newest modification time in whole seconds, the
    file count and the total size, so a certificate replaced by another of
    the same size within the same second goes unnoticed. Here each
    domain's directory gets a fingerprint (path, inode, size and
    nanosecond modification time of every file) taken at every handshake;
    when it changed, the files are read again into a fresh in-memory
    zcertstore, skipping (and logging) files that are not certificates and
    keys seen twice. A directory that can no longer be read lets nobody
    in until it can.
*/

#include "drv_auth.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"

//  ZMQ_ZAP_ENFORCE_DOMAIN is behind ZMQ_BUILD_DRAFT_API in Debian's
//  zmq.h, but libzmq 4.3.4 honours it: without it, a CURVE handshake
//  succeeds when no ZAP handler answers.
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

//  Refusals logged per second at most; the rest are counted.
#define S_LOG_BUDGET 10

//  ---------------------------------------------------------------------
//  Certificates

zcert_t *
drv_auth_load_cert (const char *path, bool secret, char *err, size_t err_size)
{
    struct stat st;
    if (!path || !*path) {
        snprintf (err, err_size, "no certificate file given");
        return NULL;
    }
    int fd = open (path, O_RDONLY);
    if (fd == -1 || fstat (fd, &st) == -1) {
        snprintf (err, err_size, "cannot read %s: %s", path, strerror (errno));
        if (fd != -1)
            close (fd);
        return NULL;
    }
    close (fd);
    if (!S_ISREG (st.st_mode)) {
        snprintf (err, err_size, "%s is not a regular file", path);
        return NULL;
    }
    zconfig_t *root = zconfig_load (path);
    const char *public_txt = root ? zconfig_get (root, "/curve/public-key", NULL) : NULL;
    const char *secret_txt = root ? zconfig_get (root, "/curve/secret-key", NULL) : NULL;
    uint8_t public_key [32], secret_key [32] = {0};
    if (!public_txt || strlen (public_txt) != 40 || !zmq_z85_decode (public_key, public_txt)) {
        snprintf (err, err_size,
                  "%s is not a CURVE certificate: it has no valid curve/public-key (write one "
                  "with drover keygen)",
                  path);
        zconfig_destroy (&root);
        return NULL;
    }
    if (secret) {
        char derived [41];
        if (!secret_txt) {
            snprintf (err, err_size,
                      "%s holds no secret key: it is a public certificate; give the _secret "
                      "file that drover keygen wrote beside it",
                      path);
            zconfig_destroy (&root);
            return NULL;
        }
        if (strlen (secret_txt) != 40 || !zmq_z85_decode (secret_key, secret_txt)
            || zmq_curve_public (derived, secret_txt) != 0 || !streq (derived, public_txt)) {
            snprintf (err, err_size,
                      "%s: its secret key is not valid or does not match its public key", path);
            zconfig_destroy (&root);
            return NULL;
        }
        if (st.st_mode & (S_IROTH | S_IWOTH)) {
            snprintf (err, err_size,
                      "%s holds a secret key but others may read or write it: chmod 600 it "
                      "(or 640 for a group)",
                      path);
            zconfig_destroy (&root);
            return NULL;
        }
    }
    zconfig_destroy (&root);
    zcert_t *cert = zcert_new_from (public_key, secret_key);
    if (!cert)
        snprintf (err, err_size, "out of memory");
    return cert;
}

int
drover_keygen (const char *path, char *err, size_t err_size)
{
    if (!path || !*path) {
        snprintf (err, err_size, "no path given for the certificate");
        return -1;
    }
    char *secret_path = zsys_sprintf ("%s_secret", path);
    if (!secret_path) {
        snprintf (err, err_size, "out of memory");
        return -1;
    }
    //  Claim both names first, so that nothing is overwritten, not even
    //  by a keygen running at the same time.
    int rc = -1;
    bool made_public = false, made_secret = false;
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd == -1)
        snprintf (err, err_size, "cannot create %s: %s%s", path, strerror (errno),
                  errno == EEXIST ? " (not overwriting a certificate)" : "");
    else {
        close (fd);
        made_public = true;
        fd = open (secret_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd == -1)
            snprintf (err, err_size, "cannot create %s: %s%s", secret_path, strerror (errno),
                      errno == EEXIST ? " (not overwriting a secret key)" : "");
        else {
            close (fd);
            made_secret = true;
        }
    }
    zcert_t *cert = made_secret ? zcert_new () : NULL;
    if (made_secret && !cert)
        snprintf (err, err_size, "cannot make a key pair");
    if (cert) {
        const char *name = strrchr (path, '/');
        zcert_set_meta (cert, "name", "%s", name ? name + 1 : path);
        zcert_set_meta (cert, "created-by", "drover keygen");
        //  zcert_save writes both files; the secret keeps the 0600 it was
        //  created with, and chmod makes sure of it.
        if (zcert_save (cert, path) != 0)
            snprintf (err, err_size, "cannot write %s: %s", path, strerror (errno));
        else
        if (chmod (secret_path, 0600) != 0 || chmod (path, 0644) != 0)
            snprintf (err, err_size, "cannot set the mode of %s: %s", secret_path,
                      strerror (errno));
        else
            rc = 0;
        zcert_destroy (&cert);
    }
    if (rc == -1) {
        if (made_secret)
            unlink (secret_path);
        if (made_public)
            unlink (path);
    }
    zstr_free (&secret_path);
    return rc;
}

//  Set one socket option and say which failed.
static int
s_setopt (zsock_t *sock, int option, const char *name, const void *value, size_t size,
          char *err, size_t err_size)
{
    if (zmq_setsockopt (zsock_resolve (sock), option, value, size) == 0)
        return 0;
    snprintf (err, err_size, "cannot set %s on a socket: %s", name, zmq_strerror (zmq_errno ()));
    return -1;
}

static int
s_require_curve (char *err, size_t err_size)
{
    if (zmq_has ("curve"))
        return 0;
    snprintf (err, err_size, "this libzmq was built without CURVE support");
    return -1;
}

int
drv_auth_server_apply (zsock_t *sock, zcert_t *cert, const char *domain, char *err,
                       size_t err_size)
{
    int on = 1;
    if (s_require_curve (err, err_size) == -1
        || s_setopt (sock, ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER", &on, sizeof on, err, err_size)
        || s_setopt (sock, ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", zcert_secret_key (cert), 32,
                     err, err_size)
        || s_setopt (sock, ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", zcert_public_key (cert), 32,
                     err, err_size)
        || s_setopt (sock, ZMQ_ZAP_DOMAIN, "ZMQ_ZAP_DOMAIN", domain, strlen (domain), err,
                     err_size)
        || s_setopt (sock, ZMQ_ZAP_ENFORCE_DOMAIN, "ZMQ_ZAP_ENFORCE_DOMAIN", &on, sizeof on, err,
                     err_size))
        return -1;
    //  Read it back: a libzmq that ignored the option would let anyone in.
    int value = 0;
    size_t size = sizeof value;
    if (zmq_getsockopt (zsock_resolve (sock), ZMQ_ZAP_ENFORCE_DOMAIN, &value, &size) != 0
        || value != 1) {
        snprintf (err, err_size, "ZMQ_ZAP_ENFORCE_DOMAIN did not take: refusing to serve CURVE "
                                 "without it (unlisted keys could get in)");
        return -1;
    }
    return 0;
}

int
drv_auth_client_apply (zsock_t *sock, zcert_t *cert, zcert_t *server, char *err,
                       size_t err_size)
{
    if (s_require_curve (err, err_size) == -1
        || s_setopt (sock, ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY", zcert_public_key (server),
                     32, err, err_size)
        || s_setopt (sock, ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", zcert_public_key (cert), 32,
                     err, err_size)
        || s_setopt (sock, ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", zcert_secret_key (cert), 32,
                     err, err_size))
        return -1;
    return 0;
}

//  ---------------------------------------------------------------------
//  The ZAP handler actor

//  The allow list of one ZAP domain.
typedef struct {
    char *name;                      //  ZAP domain
    char *dir;                       //  where its certificates are
    zcertstore_t *store;             //  keys let in, in memory
    uint64_t fingerprint;            //  of dir as last read
    bool readable;                   //  dir could be read last time
    size_t keys;                     //  keys in store
    uint64_t allowed;                //  handshakes let in
    uint64_t refused;                //  handshakes refused
} s_domain_t;

typedef struct {
    zsock_t *pipe;                   //  to the owner
    zsock_t *handler;                //  REP on the ZAP endpoint
    zlistx_t *domains;               //  s_domain_t, owned
    int64_t log_second;              //  the second the log budget is for
    int log_budget;                  //  refusals that may still be logged in it
    uint64_t unlogged;               //  refusals not logged since the last one logged
} s_handler_t;

static void
s_domain_destroy (void **item)
{
    s_domain_t *domain = (s_domain_t *) *item;
    if (domain) {
        zcertstore_destroy (&domain->store);
        free (domain->name);
        free (domain->dir);
        free (domain);
        *item = NULL;
    }
}

static uint64_t
s_fnv (uint64_t hash, const void *data, size_t size)
{
    const uint8_t *bytes = (const uint8_t *) data;
    for (size_t i = 0; i < size; i++)
        hash = (hash ^ bytes [i]) * 1099511628211ull;
    return hash;
}

//  The fingerprint of a directory's files; false if it cannot be read.
static bool
s_fingerprint (const char *path, uint64_t *print)
{
    zdir_t *dir = zdir_new (path, NULL);
    if (!dir)
        return false;
    uint64_t hash = 14695981039346656037ull;
    zfile_t **files = zdir_flatten (dir);
    for (size_t i = 0; files && files [i]; i++) {
        const char *name = zfile_filename (files [i], NULL);
        struct stat st;
        if (stat (name, &st) != 0)
            continue;
        int64_t fields [5] = {(int64_t) st.st_ino, (int64_t) st.st_size,
                              (int64_t) st.st_mtim.tv_sec, (int64_t) st.st_mtim.tv_nsec,
                              (int64_t) st.st_ctim.tv_nsec};
        hash = s_fnv (hash, name, strlen (name) + 1);
        hash = s_fnv (hash, fields, sizeof fields);
    }
    zdir_flatten_free (&files);
    zdir_destroy (&dir);
    *print = hash;
    return true;
}

static bool
s_ends_with (const char *text, const char *suffix)
{
    size_t length = strlen (text), suffix_length = strlen (suffix);
    return length >= suffix_length && streq (text + length - suffix_length, suffix);
}

//  Read a domain's directory into a fresh store. False if it cannot be
//  read; then the store is empty and nobody gets in.
static bool
s_domain_load (s_domain_t *self)
{
    zcertstore_t *store = zcertstore_new (NULL);
    if (!store)
        return false;
    size_t keys = 0;
    uint64_t print = 0;
    bool readable = s_fingerprint (self->dir, &print);
    zdir_t *dir = readable ? zdir_new (self->dir, NULL) : NULL;
    zfile_t **files = dir ? zdir_flatten (dir) : NULL;
    for (size_t i = 0; files && files [i]; i++) {
        const char *name = zfile_filename (files [i], NULL);
        if (!zfile_is_regular (files [i]))
            continue;
        if (s_ends_with (name, "_secret")) {
            zsys_warning ("auth: skipping %s: a secret key has no place in an allow list; "
                          "copy the public certificate there instead",
                          name);
            continue;
        }
        char err [512];
        zcert_t *cert = drv_auth_load_cert (name, false, err, sizeof err);
        if (!cert) {
            zsys_warning ("auth: skipping %s", err);
            continue;
        }
        if (zcertstore_lookup (store, zcert_public_txt (cert))) {
            zsys_warning ("auth: skipping %s: its key is in another file of %s already", name,
                          self->dir);
            zcert_destroy (&cert);
            continue;
        }
        zcertstore_insert (store, &cert);
        keys++;
    }
    zdir_flatten_free (&files);
    zdir_destroy (&dir);
    if (!readable && self->readable)
        zsys_error ("auth: cannot read %s: nobody gets in on domain %s until it can be read",
                    self->dir, self->name);
    else
    if (readable && self->store)
        zsys_info ("auth: %s changed; domain %s now allows %zu key%s", self->dir, self->name, keys,
                   keys == 1 ? "" : "s");
    zcertstore_destroy (&self->store);
    self->store = store;
    self->keys = keys;
    self->fingerprint = print;
    self->readable = readable;
    return readable;
}

//  Is the key (Z85) in the domain's list? Reads the directory again if
//  it changed since.
static bool
s_domain_lookup (s_domain_t *self, const char *key)
{
    uint64_t print = 0;
    bool readable = s_fingerprint (self->dir, &print);
    if (readable != self->readable || print != self->fingerprint)
        s_domain_load (self);
    return self->store && zcertstore_lookup (self->store, key) != NULL;
}

static s_domain_t *
s_find_domain (s_handler_t *self, const char *name)
{
    for (s_domain_t *domain = (s_domain_t *) zlistx_first (self->domains); domain;
         domain = (s_domain_t *) zlistx_next (self->domains))
        if (streq (domain->name, name))
            return domain;
    return NULL;
}

//  "ALLOW" domain dir: answers "OK" keys, or "ERROR" reason.
static void
s_allow (s_handler_t *self, const char *name, const char *path)
{
    DIR *handle = opendir (path);
    if (!handle) {
        char *reason = zsys_sprintf ("cannot read the allow list %s: %s", path, strerror (errno));
        zstr_sendx (self->pipe, "ERROR", reason, NULL);
        zstr_free (&reason);
        return;
    }
    closedir (handle);
    s_domain_t *domain = s_find_domain (self, name);
    if (!domain) {
        domain = (s_domain_t *) calloc (1, sizeof *domain);
        if (domain && (!(domain->name = strdup (name)) || !zlistx_add_end (self->domains, domain))) {
            void *item = domain;
            s_domain_destroy (&item);
            domain = NULL;
        }
    }
    if (domain) {
        free (domain->dir);
        domain->dir = strdup (path);
        zcertstore_destroy (&domain->store);
        domain->readable = true;
    }
    if (!domain || !domain->dir || !s_domain_load (domain)) {
        zstr_sendx (self->pipe, "ERROR", domain ? "cannot read the allow list" : "out of memory",
                    NULL);
        return;
    }
    char keys [32];
    snprintf (keys, sizeof keys, "%zu", domain->keys);
    zstr_sendx (self->pipe, "OK", keys, NULL);
}

//  Log a refusal unless this second's budget is spent.
static void
s_log_refusal (s_handler_t *self, const char *domain, const char *address, const char *key,
               const char *why)
{
    int64_t second = zclock_mono () / 1000;
    if (second != self->log_second) {
        self->log_second = second;
        self->log_budget = S_LOG_BUDGET;
    }
    if (self->log_budget == 0) {
        self->unlogged++;
        return;
    }
    self->log_budget--;
    if (self->unlogged)
        zsys_warning ("auth: refused domain=%s address=%s key=%s: %s (and %" PRIu64
                      " more refused, not logged)",
                      domain, address, key, why, self->unlogged);
    else
        zsys_warning ("auth: refused domain=%s address=%s key=%s: %s", domain, address, key, why);
    self->unlogged = 0;
}

//  Answer one ZAP request (RFC 27). Every request gets a reply, or the
//  REP socket would stop.
static void
s_handle (s_handler_t *self)
{
    zmsg_t *request = zmsg_recv (self->handler);
    if (!request)
        return;
    char *version = zmsg_popstr (request);
    zframe_t *request_id = zmsg_pop (request);
    char *domain_name = zmsg_popstr (request);
    char *address = zmsg_popstr (request);
    zframe_t *identity = zmsg_pop (request);
    char *mechanism = zmsg_popstr (request);
    zframe_t *credentials = zmsg_pop (request);
    const char *status = "400", *text = "key not allowed";
    char key [41] = "";
    s_domain_t *domain = domain_name ? s_find_domain (self, domain_name) : NULL;
    if (!version || !streq (version, "1.0") || !request_id || !mechanism || !address) {
        status = "500";
        text = "malformed ZAP request";
        zsys_error ("auth: malformed ZAP request");
    }
    else
    if (!streq (mechanism, "CURVE") || !credentials || zframe_size (credentials) != 32) {
        text = "CURVE required";
        s_log_refusal (self, domain_name ? domain_name : "", address, "-",
                       "not a CURVE handshake");
    }
    else {
        zmq_z85_encode (key, zframe_data (credentials), 32);
        if (!domain) {
            text = "unknown ZAP domain";
            s_log_refusal (self, domain_name ? domain_name : "", address, key,
                           "no allow list for this domain");
        }
        else
        if (s_domain_lookup (domain, key)) {
            status = "200";
            text = "OK";
            domain->allowed++;
        }
        else {
            domain->refused++;
            //  Say so when the key is listed for the other socket.
            const char *other = NULL;
            for (s_domain_t *d = (s_domain_t *) zlistx_first (self->domains); d && !other;
                 d = (s_domain_t *) zlistx_next (self->domains))
                if (d != domain && s_domain_lookup (d, key))
                    other = d->name;
            char why [512];
            if (other)
                snprintf (why, sizeof why, "not in %s (it is allowed on %s only)", domain->dir,
                          other);
            else
                snprintf (why, sizeof why, "not in %s", domain->dir);
            s_log_refusal (self, domain->name, address, key, why);
        }
    }
    zmsg_t *reply = zmsg_new ();
    if (reply) {
        zmsg_addstr (reply, "1.0");
        if (request_id)
            zmsg_append (reply, &request_id);
        else
            zmsg_addstr (reply, "");
        zmsg_addstr (reply, status);
        zmsg_addstr (reply, text);
        zmsg_addstr (reply, streq (status, "200") ? key : "");
        zmsg_addmem (reply, NULL, 0);
        if (zmsg_send (&reply, self->handler) == -1)
            zmsg_destroy (&reply);
    }
    zstr_free (&version);
    zstr_free (&domain_name);
    zstr_free (&address);
    zstr_free (&mechanism);
    zframe_destroy (&request_id);
    zframe_destroy (&identity);
    zframe_destroy (&credentials);
    zmsg_destroy (&request);
}

//  Serve ZAP requests and ALLOW commands until $TERM.
static void
s_serve (s_handler_t *self)
{
    zpoller_t *poller = zpoller_new (self->pipe, self->handler, NULL);
    while (poller) {
        void *which = zpoller_wait (poller, -1);
        if (which == self->handler) {
            s_handle (self);
            continue;
        }
        if (which != self->pipe)
            break;                  //  interrupted
        zmsg_t *command = zmsg_recv (self->pipe);
        char *verb = command ? zmsg_popstr (command) : NULL;
        bool end = !verb || streq (verb, "$TERM");
        if (verb && streq (verb, "ALLOW")) {
            char *name = zmsg_popstr (command);
            char *dir = zmsg_popstr (command);
            if (name && dir)
                s_allow (self, name, dir);
            else
                zstr_sendx (self->pipe, "ERROR", "ALLOW wants a domain and a directory", NULL);
            zstr_free (&name);
            zstr_free (&dir);
        }
        zstr_free (&verb);
        zmsg_destroy (&command);
        if (end)
            break;
    }
    zpoller_destroy (&poller);
    for (s_domain_t *domain = (s_domain_t *) zlistx_first (self->domains); domain;
         domain = (s_domain_t *) zlistx_next (self->domains))
        zsys_info ("auth: stopping domain=%s allowed=%" PRIu64 " refused=%" PRIu64, domain->name,
                   domain->allowed, domain->refused);
}

static void
s_actor (zsock_t *pipe, void *args)
{
    (void) args;
    s_handler_t handler = {.pipe = pipe};
    s_handler_t *self = &handler;
    zsock_signal (pipe, 0);
    self->domains = zlistx_new ();
    self->handler = zsock_new (ZMQ_REP);
    if (!self->domains || !self->handler)
        zstr_sendx (pipe, "ERROR", "out of memory", NULL);
    else {
        zlistx_set_destructor (self->domains, s_domain_destroy);
        zsock_set_linger (self->handler, 0);
        if (zsock_bind (self->handler, S_ZAP_ENDPOINT) == -1) {
            char *reason = zsys_sprintf (
                "cannot bind the ZAP handler to " S_ZAP_ENDPOINT ": %s (one CURVE broker per "
                "process, and no zauth beside it)",
                zmq_strerror (zmq_errno ()));
            zstr_sendx (pipe, "ERROR", reason, NULL);
            zstr_free (&reason);
        }
        else {
            zstr_sendx (pipe, "OK", NULL);
            s_serve (self);
        }
    }
    zsock_destroy (&self->handler);
    zlistx_destroy (&self->domains);
}

struct _drv_auth_t {
    zactor_t *actor;                 //  the handler thread
};

drv_auth_t *
drv_auth_new (char *err, size_t err_size)
{
    drv_auth_t *self = (drv_auth_t *) calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, err_size, "out of memory");
        return NULL;
    }
    self->actor = zactor_new (s_actor, NULL);
    char *status = NULL, *reason = NULL;
    if (self->actor)
        zstr_recvx (self->actor, &status, &reason, NULL);
    if (!status || !streq (status, "OK")) {
        snprintf (err, err_size, "%s", reason ? reason : "cannot start the ZAP handler");
        drv_auth_destroy (&self);
    }
    zstr_free (&status);
    zstr_free (&reason);
    return self;
}

void
drv_auth_destroy (drv_auth_t **self_p)
{
    assert (self_p);
    drv_auth_t *self = *self_p;
    if (self) {
        zactor_destroy (&self->actor);
        free (self);
        *self_p = NULL;
    }
}

int
drv_auth_allow (drv_auth_t *self, const char *domain, const char *dir, size_t *keys, char *err,
                size_t err_size)
{
    if (zstr_sendx (self->actor, "ALLOW", domain, dir, NULL) == -1) {
        snprintf (err, err_size, "the ZAP handler is gone");
        return -1;
    }
    char *status = NULL, *text = NULL;
    zstr_recvx (self->actor, &status, &text, NULL);
    int rc = status && streq (status, "OK") ? 0 : -1;
    if (rc == -1)
        snprintf (err, err_size, "%s", text ? text : "the ZAP handler did not answer");
    else
    if (keys)
        *keys = (size_t) strtoull (text ? text : "0", NULL, 10);
    zstr_free (&status);
    zstr_free (&text);
    return rc;
}
