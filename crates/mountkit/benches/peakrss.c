/* Peak RSS of a command, as GNU time's %M: fork, exec, wait4, print ru_maxrss (KiB).
 * A small C parent matters: the kernel keeps the pre-exec RSS high-water mark of the forked copy
 * in ru_maxrss, so measuring from the (large) benchmark process itself would report its size.
 * usage: peakrss CMD [ARGS...]  -> prints the KiB on stdout, exits with the command's status.
 */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: peakrss CMD [ARGS...]\n"); return 2; }
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 125; }
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        perror("exec");
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) { perror("wait4"); return 125; }
    printf("%ld\n", ru.ru_maxrss);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
