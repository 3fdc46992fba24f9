/*  drover-test-task - misbehaving exec: task programs for the limit
    tests. Built without sanitizers: they run under rlimits that a
    sanitizer's own reservations would not fit in.

    Usage: drover-test-task spin|hog|bomb|limits
      spin    burn CPU for ever
      hog     touch memory a MiB at a time until allocation fails; exit 1
      bomb    fork for ever, every child too (napping 10 ms after a
              failed fork, so that a contained bomb does not also burn CPU)
      limits  print the limits it runs under and its uid
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
    fprintf (stderr, "usage: drover-test-task spin|hog|bomb|limits\n");
    return 2;
}
