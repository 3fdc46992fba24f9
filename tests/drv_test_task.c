/*  drover-test-task - misbehaving exec: task programs for the limit
    tests. Built without sanitizers: they run under rlimits that a
    sanitizer's own reservations would not fit in.

    Usage: drover-test-task spin|hog|bomb|limits|progress
      spin    burn CPU for ever
      hog     touch memory a MiB at a time until allocation fails; exit 1
      bomb    fork for ever, every child too (napping 10 ms after a
              failed fork, so that a contained bomb does not also burn CPU)
      limits  print the limits it runs under and its uid
      progress  read "N MS" on stdin; write "i N step i" lines on the
              descriptor $DROVER_PROGRESS_FD names, napping MS between,
              with a line that does not parse and a long one in the
              middle; then print "done N" (exit 3 without the variable)
*/

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static long long
s_limit (int resource)
{
    struct rlimit limit;
    if (getrlimit (resource, &limit) == -1 || limit.rlim_cur == RLIM_INFINITY)
        return -1;
    return (long long) limit.rlim_cur;
}

int
main (int argc, char *argv [])
{
    const char *mode = argc > 1 ? argv [1] : "";
    if (strcmp (mode, "spin") == 0)
        for (volatile unsigned long i = 0;; i++)
            ;
    if (strcmp (mode, "hog") == 0) {
        for (size_t total = 0;; total += 1 << 20) {
            char *block = malloc (1 << 20);
            if (!block) {
                fprintf (stderr, "cannot allocate more than %zu MiB\n", total >> 20);
                return 1;
            }
            memset (block, 1, 1 << 20);
        }
    }
    if (strcmp (mode, "bomb") == 0) {
        while (1)
            if (fork () == -1)
                usleep (10000);
    }
    if (strcmp (mode, "limits") == 0) {
        printf ("files=%lld cpu=%lld memory=%lld procs=%lld uid=%d\n", s_limit (RLIMIT_NOFILE),
                s_limit (RLIMIT_CPU), s_limit (RLIMIT_AS), s_limit (RLIMIT_NPROC),
                (int) getuid ());
        return 0;
    }
    if (strcmp (mode, "progress") == 0) {
        const char *fd_text = getenv ("DROVER_PROGRESS_FD");
        if (!fd_text) {
            fprintf (stderr, "DROVER_PROGRESS_FD is not set\n");
            return 3;
        }
        int fd = atoi (fd_text);
        long steps = 0, ms = 0;
        if (scanf ("%ld %ld", &steps, &ms) < 1)
            return 2;
        for (long i = 1; i <= steps; i++) {
            if (i == 2)
                dprintf (fd, "not a progress line\n");
            if (i == 3) {
                //  Longer than a report carries: cut, not refused.
                static char text [70001];
                memset (text, 'x', sizeof text - 1);
                dprintf (fd, "%ld %ld %s\n", i, steps, text);
            }
            else
                dprintf (fd, "%ld %ld step %ld\n", i, steps, i);
            usleep ((useconds_t) ms * 1000);
        }
        printf ("done %ld\n", steps);
        return 0;
    }
    fprintf (stderr, "usage: drover-test-task spin|hog|bomb|limits|progress\n");
    return 2;
}
