/*  drv_guard - cut stuck connections when the heap is over its budget.

    Per connection (by file descriptor, checked against the socket's inode
    so a reused number starts afresh) the guard keeps a mark: the bytes
    the kernel had received on it when the broker last got a complete
    message from it. drv_guard_seen only flags the descriptor (one store,
    no system call per message); drv_guard_check moves the marks of the
    flagged ones forward. Bytes received past the mark are bytes libzmq
    holds for a message not yet complete, or bytes of messages waiting in
    the pipe; the second kind is delivered within a check interval unless
    the broker itself stalls, so a connection that delivered nothing in
    the interval and is past its mark by more than S_STUCK_BYTES is stuck.

    Only when the heap is over budget does the guard look at every
    connection (a walk of /proc/self/fd): the normal cost is one heap
    reading and one TCP_INFO per connection that delivered, per interval.
*/

#include "drv_guard.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#if defined(__SANITIZE_ADDRESS__)
#    define S_ASAN 1
#elif defined(__has_feature)
#    if __has_feature(address_sanitizer)
#        define S_ASAN 1
#    endif
#endif
#ifdef S_ASAN
//  From the sanitizer runtime (gcc's and clang's); gcc ships no header.
size_t __sanitizer_get_current_allocated_bytes (void);
#endif

//  Bytes past its mark that make a connection that delivered nothing stuck.
#define S_STUCK_BYTES (8 * 1024)
//  Listening ports watched at most (a broker has two).
#define S_PORTS_MAX 8
//  Descriptors tracked at most.
#define S_FDS_MAX (1 << 20)

//  Linux's tcp_info goes on past glibc's (which stops at total_retrans);
//  the kernel only ever appends to it.
typedef struct {
    struct tcp_info base;            //  what glibc declares
    uint64_t pacing_rate;            //  tcpi_pacing_rate
    uint64_t max_pacing_rate;        //  tcpi_max_pacing_rate
    uint64_t bytes_acked;            //  tcpi_bytes_acked (Linux 4.1)
    uint64_t bytes_received;         //  tcpi_bytes_received (Linux 4.1)
} s_tcp_info_t;

//  One connection as the guard knows it.
typedef struct {
    uint64_t inode;                  //  the socket's inode; 0: unused
    uint64_t mark;                   //  bytes received at its last delivery
    bool seen;                       //  delivered since the last check
} s_conn_t;

struct _drv_guard_t {
    size_t max_memory;               //  heap budget, bytes
    uint16_t ports [S_PORTS_MAX];    //  local TCP ports watched
    size_t nports;                   //  entries in ports
    s_conn_t *conns;                 //  indexed by descriptor
    size_t nconns;                   //  entries in conns
    int *seen;                       //  descriptors flagged since the check
    size_t nseen;                    //  entries in seen
    size_t seen_cap;                 //  room in seen
    bool trim;                       //  give freed memory back next check
};

size_t
drv_guard_heap (void)
{
#ifdef S_ASAN
    return __sanitizer_get_current_allocated_bytes ();
#else
    struct mallinfo2 info = mallinfo2 ();
    return info.uordblks + info.hblkhd;
#endif
}

drv_guard_t *
drv_guard_new (size_t max_memory)
{
    drv_guard_t *self = (drv_guard_t *) calloc (1, sizeof *self);
    if (self)
        self->max_memory = max_memory;
    return self;
}

void
drv_guard_destroy (drv_guard_t **self_p)
{
    assert (self_p);
    drv_guard_t *self = *self_p;
    if (self) {
        free (self->conns);
        free (self->seen);
        free (self);
        *self_p = NULL;
    }
}

int
drv_guard_watch (drv_guard_t *self, const char *endpoint)
{
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return 0;
    const char *colon = strrchr (endpoint, ':');
    long port = colon ? strtol (colon + 1, NULL, 10) : 0;
    if (port <= 0 || port > 65535)
        return 0;
    if (self->nports == S_PORTS_MAX)
        return -1;
    self->ports [self->nports++] = (uint16_t) port;
    return 0;
}

void
drv_guard_seen (drv_guard_t *self, zframe_t *frame)
{
    const char *text = zframe_meta (frame, "__fd");
    int fd = text ? atoi (text) : -1;
    if (fd < 0 || (size_t) fd >= S_FDS_MAX)
        return;
    if ((size_t) fd < self->nconns && self->conns [fd].seen)
        return;
    if ((size_t) fd >= self->nconns) {
        size_t count = self->nconns ? self->nconns : 64;
        while (count <= (size_t) fd)
            count *= 2;
        s_conn_t *conns = (s_conn_t *) realloc (self->conns, count * sizeof *conns);
        if (!conns)
            return;
        memset (conns + self->nconns, 0, (count - self->nconns) * sizeof *conns);
        self->conns = conns;
        self->nconns = count;
    }
    if (self->nseen == self->seen_cap) {
        size_t cap = self->seen_cap ? self->seen_cap * 2 : 64;
        int *seen = (int *) realloc (self->seen, cap * sizeof *seen);
        if (!seen)
            return;
        self->seen = seen;
        self->seen_cap = cap;
    }
    self->conns [fd].seen = true;
    self->seen [self->nseen++] = fd;
}

//  Is fd an accepted TCP connection on a watched port? Fills its inode,
//  bytes received, and the peer's address for the log.
static bool
s_watched (drv_guard_t *self, int fd, uint64_t *inode, uint64_t *received, char *peer,
           size_t peer_size)
{
    struct stat st;
    if (fstat (fd, &st) == -1 || !S_ISSOCK (st.st_mode))
        return false;
    struct sockaddr_storage local, remote;
    socklen_t length = sizeof local;
    if (getsockname (fd, (struct sockaddr *) &local, &length) == -1)
        return false;
    uint16_t port;
    if (local.ss_family == AF_INET)
        port = ntohs (((struct sockaddr_in *) &local)->sin_port);
    else
    if (local.ss_family == AF_INET6)
        port = ntohs (((struct sockaddr_in6 *) &local)->sin6_port);
    else
        return false;
    size_t i = 0;
    while (i < self->nports && self->ports [i] != port)
        i++;
    int listening = 0;
    length = sizeof listening;
    if (i == self->nports
        || getsockopt (fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == -1 || listening)
        return false;
    s_tcp_info_t info;
    length = sizeof info;
    if (getsockopt (fd, IPPROTO_TCP, TCP_INFO, &info, &length) == -1 || length < sizeof info)
        return false;
    *inode = (uint64_t) st.st_ino;
    *received = info.bytes_received;
    if (peer) {
        length = sizeof remote;
        peer [0] = 0;
        if (getpeername (fd, (struct sockaddr *) &remote, &length) == 0) {
            char host [INET6_ADDRSTRLEN] = "";
            bool v4 = remote.ss_family == AF_INET;
            inet_ntop (remote.ss_family,
                       v4 ? (void *) &((struct sockaddr_in *) &remote)->sin_addr
                          : (void *) &((struct sockaddr_in6 *) &remote)->sin6_addr,
                       host, sizeof host);
            snprintf (peer, peer_size, "%s:%u", host,
                      ntohs (v4 ? ((struct sockaddr_in *) &remote)->sin_port
                                : ((struct sockaddr_in6 *) &remote)->sin6_port));
        }
    }
    return true;
}

//  Move the marks of the connections that delivered since the last check.
static void
s_refresh (drv_guard_t *self)
{
    for (size_t i = 0; i < self->nseen; i++) {
        int fd = self->seen [i];
        s_conn_t *conn = &self->conns [fd];
        uint64_t inode, received;
        if (conn->seen && s_watched (self, fd, &inode, &received, NULL, 0)) {
            conn->inode = inode;
            conn->mark = received;
        }
        conn->seen = false;
    }
    self->nseen = 0;
}

size_t
drv_guard_check (drv_guard_t *self)
{
    size_t heap = drv_guard_heap ();
    if (heap <= self->max_memory || self->nports == 0) {
        if (self->trim) {
            //  libzmq freed what the connections cut held: give the
            //  pages back, so that the resident size comes down too.
            malloc_trim (0);
            self->trim = false;
        }
        s_refresh (self);
        return 0;
    }
    //  Over budget: look at every connection on the watched ports.
    size_t cut = 0;
    DIR *dir = opendir ("/proc/self/fd");
    struct dirent *entry;
    while (dir && (entry = readdir (dir))) {
        int fd = atoi (entry->d_name);
        if (fd <= 2 || fd == dirfd (dir) || (size_t) fd >= S_FDS_MAX)
            continue;
        uint64_t inode, received;
        char peer [INET6_ADDRSTRLEN + 8];
        //  A connection already shut down has no peer name: libzmq is
        //  closing it.
        if (!s_watched (self, fd, &inode, &received, peer, sizeof peer) || !*peer)
            continue;
        bool known = (size_t) fd < self->nconns && self->conns [fd].inode == inode;
        if (known && self->conns [fd].seen)
            continue;               //  delivered in this interval
        //  Never delivered anything: every byte it sent is held.
        uint64_t held = known ? received - self->conns [fd].mark : received;
        if (held <= S_STUCK_BYTES)
            continue;
        zsys_warning ("guard: heap over budget heap=%zu max_memory=%zu; cutting peer=%s "
                      "held_bytes=%" PRIu64 " with no complete message",
                      heap, self->max_memory, peer, held);
        //  Reset, not close politely: with linger 0, libzmq's close of
        //  the socket sends RST, so the peer learns at once and no
        //  orphaned socket lingers in FIN-WAIT-2 with its data.
        struct linger reset = {.l_onoff = 1, .l_linger = 0};
        setsockopt (fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        if (shutdown (fd, SHUT_RDWR) == 0)
            cut++;
    }
    if (dir)
        closedir (dir);
    s_refresh (self);
    self->trim = self->trim || cut > 0;
    return cut;
}

//  Is fd a unix-domain connection accepted on the socket bound at path
//  (as ipc:// names it: a file, or "@name" in the abstract namespace)?
//  An accepted socket has its listener's address.
static bool
s_accepted_at (int fd, const char *path)
{
    struct stat st;
    if (fstat (fd, &st) == -1 || !S_ISSOCK (st.st_mode))
        return false;
    struct sockaddr_un local;
    socklen_t length = sizeof local;
    if (getsockname (fd, (struct sockaddr *) &local, &length) == -1
        || local.sun_family != AF_UNIX || length <= offsetof (struct sockaddr_un, sun_path))
        return false;
    size_t size = length - offsetof (struct sockaddr_un, sun_path);
    const char *name = local.sun_path;
    if (*path == '@') {
        //  Abstract: a NUL, then the name, not NUL-terminated.
        if (name [0] != 0)
            return false;
        path++;
        name++;
        size--;
    }
    else
        size = strnlen (name, size);
    if (size != strlen (path) || memcmp (name, path, size) != 0)
        return false;
    int listening = 0;
    length = sizeof listening;
    return getsockopt (fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0 && !listening;
}

size_t
drv_guard_connections (drv_guard_t *self, const char *endpoint)
{
    const char *colon = strncmp (endpoint, "tcp://", 6) == 0 ? strrchr (endpoint, ':') : NULL;
    const char *path = strncmp (endpoint, "ipc://", 6) == 0 ? endpoint + 6 : NULL;
    long port = colon ? strtol (colon + 1, NULL, 10) : 0;
    if (!path && (port <= 0 || port > 65535))
        return 0;
    size_t count = 0;
    DIR *dir = opendir ("/proc/self/fd");
    struct dirent *entry;
    while (dir && (entry = readdir (dir))) {
        int fd = atoi (entry->d_name);
        if (fd <= 2 || fd == dirfd (dir))
            continue;
        if (path) {
            count += s_accepted_at (fd, path);
            continue;
        }
        uint64_t inode, received;
        char peer [INET6_ADDRSTRLEN + 8];
        struct sockaddr_storage local;
        socklen_t length = sizeof local;
        //  Accepted on a watched port and not shut down (it has a peer),
        //  and on this endpoint's port.
        if (!s_watched (self, fd, &inode, &received, peer, sizeof peer) || !*peer
            || getsockname (fd, (struct sockaddr *) &local, &length) == -1)
            continue;
        uint16_t local_port = local.ss_family == AF_INET6
                                  ? ntohs (((struct sockaddr_in6 *) &local)->sin6_port)
                                  : ntohs (((struct sockaddr_in *) &local)->sin_port);
        count += local_port == port;
    }
    if (dir)
        closedir (dir);
    return count;
}
