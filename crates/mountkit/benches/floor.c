/* The floor for `mountkit run --rm IMAGE true`: the same kernel work with nothing else.
 * A fresh upper/work, an overlay of the given lowers, new mount/pid/uts/ipc namespaces, /proc,
 * pivot_root, then the confinement mountkit does by default (a new session, the seccomp filter, the
 * bounding set and one capset down to Docker's default capabilities), exec, wait, remove the upper.
 * Built and run by crates/mountkit/benches/run.rs.
 * usage: floor [-C DIR] [-S FILTER] LOWERDIR_OPTION SCRATCH_DIR CMD [ARGS...]
 *        (FILTER: a file of BPF programs as mountkit-ns-runner's `Filter::to_bytes` writes them: per
 *        program a u16 instruction count, two zero bytes, the instructions. The benchmark writes
 *        mountkit's own default filter there, so both arms load the same programs.
 *        LOWERDIR_OPTION is the top-first, colon-separated lowerdir string, as mount(2) wants it;
 *        -C: change to DIR first, for relative lower paths. The floor changes directory itself so that
 *        the benchmark starts both programs the same way: Rust's Command with a working directory
 *        falls back from posix_spawn to a fork of the whole benchmark process in a static build.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

/* Docker's default capabilities (CHOWN ... AUDIT_WRITE), as mountkit's default. */
#define DOCKER_CAPS 0xa80425fbULL

static struct sock_fprog progs[8];
static int nprogs;

static void die(const char *what) { perror(what); _exit(125); }

/* Cleanup as a program would do it: a depth-first walk that stays on one filesystem (no shell). */
static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)ftw;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static int rm_rf(const char *path) { return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT); }

/* Reads the filter file into `progs` (before the clone: the child only loads). */
static void read_filter(const char *path) {
    static unsigned char buf[1 << 16];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open filter");
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n <= 0) die("read filter");
    for (ssize_t off = 0; off + 4 <= n && nprogs < 8; nprogs++) {
        unsigned short len;
        memcpy(&len, buf + off, 2);
        progs[nprogs].len = len;
        progs[nprogs].filter = (struct sock_filter *)(buf + off + 4);
        off += 4 + (ssize_t)len * 8;
    }
}

/* mountkit's confinement steps, in its order: session, filter (while CAP_SYS_ADMIN is held), bounding
 * set, one capset of the three sets, ambient cleared. */
static void confine(void) {
    if (setsid() < 0) die("setsid");
    for (int i = 0; i < nprogs; i++)
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &progs[i])) die("seccomp");
    for (int cap = 0; cap < 64; cap++) {
        if (DOCKER_CAPS & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)) {
            if (errno == EINVAL) break;
            die("PR_CAPBSET_DROP");
        }
    }
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {
        {(unsigned)DOCKER_CAPS, (unsigned)DOCKER_CAPS, (unsigned)DOCKER_CAPS},
        {(unsigned)(DOCKER_CAPS >> 32), (unsigned)(DOCKER_CAPS >> 32), (unsigned)(DOCKER_CAPS >> 32)},
    };
    if (syscall(SYS_capset, &hdr, data)) die("capset");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)) die("ambient");
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "-C") == 0) {
        if (chdir(argv[2])) die("chdir");
        argv += 2;
        argc -= 2;
    }
    if (argc > 2 && strcmp(argv[1], "-S") == 0) {
        read_filter(argv[2]);
        argv += 2;
        argc -= 2;
    }
    if (argc < 4) { fprintf(stderr, "usage: floor [-C DIR] [-S FILTER] LOWERS SCRATCH CMD...\n"); return 2; }
    char dir[4096], upper[4200], work[4200], merged[4200], opts[8192];
    snprintf(dir, sizeof dir, "%s/floorXXXXXX", argv[2]);
    if (!mkdtemp(dir)) die("mkdtemp");
    snprintf(upper, sizeof upper, "%s/u", dir);
    snprintf(work, sizeof work, "%s/w", dir);
    snprintf(merged, sizeof merged, "%s/m", dir);
    if (mkdir(upper, 0755) || mkdir(work, 0755) || mkdir(merged, 0755)) die("mkdir");
    snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", argv[1], upper, work);
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) die("clone");
    if (pid == 0) {
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) die("make-rprivate");
        if (mount("overlay", merged, "overlay", 0, opts)) die("mount overlay");
        char proc[4300];
        snprintf(proc, sizeof proc, "%s/proc", merged);
        if (mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) die("mount proc");
        if (chdir(merged)) die("chdir");
        if (syscall(SYS_pivot_root, ".", ".")) die("pivot_root");
        if (umount2(".", MNT_DETACH)) die("umount old root");
        if (chdir("/")) die("chdir /");
        confine();
        execvp(argv[3], argv + 3);
        die("exec");
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) die("waitpid");
    rm_rf(dir);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
