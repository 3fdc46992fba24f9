/*  drover-test-seccomp NUMBERS PROGRAM [ARG...] - run PROGRAM under the
    system call filter a systemd unit gives it.

    NUMBERS is a file of system call numbers, one per line: the calls
    the unit's SystemCallFilter= lines allow (tests/bin/unit-syscalls
    makes it). Every other call fails with EPERM, as under
    SystemCallErrorNumber=EPERM, and a call of another architecture
    kills the process (SystemCallArchitectures=native). The filter is a
    plain list of comparisons, as systemd's own is; the other hardening
    of the unit (users, mounts, capabilities) is not imitated.
*/

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#if defined(__x86_64__)
#define S_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define S_ARCH AUDIT_ARCH_AARCH64
#else
#error "drover-test-seccomp knows the audit architecture of x86-64 and arm64 only"
#endif

//  Two instructions a call, and six around them, within BPF_MAXINSNS.
#define S_CALLS_MAX ((BPF_MAXINSNS - 6) / 2)

int
main (int argc, char *argv [])
{
    if (argc < 3) {
        fprintf (stderr, "usage: drover-test-seccomp NUMBERS PROGRAM [ARG...]\n");
        return 2;
    }
    FILE *file = fopen (argv [1], "r");
    if (!file) {
        fprintf (stderr, "drover-test-seccomp: cannot read %s: %s\n", argv [1],
                 strerror (errno));
        return 2;
    }
    static struct sock_filter program [BPF_MAXINSNS];
    size_t length = 0;
    program [length++] = (struct sock_filter) BPF_STMT (
        BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, arch));
    program [length++] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, S_ARCH, 1, 0);
    program [length++] = (struct sock_filter) BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    program [length++] = (struct sock_filter) BPF_STMT (
        BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, nr));
    unsigned long number;
    size_t calls = 0;
    while (fscanf (file, "%lu", &number) == 1) {
        if (++calls > S_CALLS_MAX) {
            fprintf (stderr, "drover-test-seccomp: more than %d calls in %s\n", S_CALLS_MAX,
                     argv [1]);
            return 2;
        }
        //  This call: allowed; else on to the next comparison.
        program [length++]
            = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, number, 0, 1);
        program [length++] = (struct sock_filter) BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    }
    fclose (file);
    program [length++]
        = (struct sock_filter) BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & 0xffff));
    struct sock_fprog filter = {.len = (unsigned short) length, .filter = program};
    if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1
        || prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter) == -1) {
        fprintf (stderr, "drover-test-seccomp: cannot set the filter: %s\n", strerror (errno));
        return 2;
    }
    execv (argv [2], argv + 2);
    fprintf (stderr, "drover-test-seccomp: cannot run %s: %s\n", argv [2], strerror (errno));
    return 127;
}
