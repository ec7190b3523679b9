/* Tries the syscalls Docker's default confinement refuses, each in a child of its own
 * (so one that succeeds changes nothing for the next), and prints `name=RESULT` (`ok` or
 * the errno's name); then the capability and seccomp lines of /proc/self/status. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int try_unshare_user(void) { return unshare(CLONE_NEWUSER); }
static int try_unshare_mount(void) { return unshare(CLONE_NEWNS); }
static int try_unshare_net(void) { return unshare(CLONE_NEWNET); }
static int try_clone_newuser(void) {
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(pid, NULL, 0);
    return pid < 0 ? -1 : 0;
}
static int try_mount_tmpfs(void) { return mount("none", "/tmp", "tmpfs", 0, NULL); }
static int try_keyctl(void) {
    /* An anonymous session keyring: gone with this process if it is allowed. */
    return syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 ? -1 : 0;
}
static int try_add_key(void) {
    return syscall(SYS_add_key, "user", "pier-probe", "x", 1, KEY_SPEC_THREAD_KEYRING) < 0 ? -1 : 0;
}
static int try_bpf(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    return syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr) < 0 ? -1 : 0;
}
static int try_open_by_handle_at(void) {
    /* The "shocker" escape's syscall; the handle is junk, so only a refusal (EPERM) or
     * the kernel's verdict on the handle can come back. */
    struct { unsigned int bytes; int type; unsigned char h[8]; } fh = {8, 1, {0}};
    return syscall(SYS_open_by_handle_at, AT_FDCWD, &fh, O_RDONLY) < 0 ? -1 : 0;
}

static const struct { const char *name; int (*f)(void); } probes[] = {
    {"unshare-user", try_unshare_user},
    {"unshare-mount", try_unshare_mount},
    {"unshare-net", try_unshare_net},
    {"clone-newuser", try_clone_newuser},
    {"mount-tmpfs", try_mount_tmpfs},
    {"keyctl", try_keyctl},
    {"add_key", try_add_key},
    {"bpf", try_bpf},
    {"open_by_handle_at", try_open_by_handle_at},
};

int main(void) {
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            int r = probes[i].f();
            _exit(r == 0 ? 0 : (errno & 0xff) ? errno : 255);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        int e = WIFEXITED(status) ? WEXITSTATUS(status) : 254;
        printf("%s=%s\n", probes[i].name, e == 0 ? "ok" : strerrorname_np(e) ? strerrorname_np(e) : "?");
    }
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs:", 11) || !strncmp(line, "Seccomp:", 8))
            fputs(line, stdout);
    }
    return 0;
}
