/*
 * The pod sandbox's process (containerd's sandbox_image): it holds the pod's namespaces and does nothing else.
 *
 * It waits for signals forever: as the init of a pod that shares its process namespace it reaps every child
 * that ends (SIGCHLD), and it exits 0 on SIGINT or SIGTERM (the runtime's stop). `--version` prints its
 * version, `--help` what it is. Built static (scripts/images), so that its image holds this file alone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef VERSION
#define VERSION "unknown"
#endif

static void reap(void) {
  /* Every child that has ended, without blocking: several may end before one SIGCHLD is taken. */
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0)) {
    printf("pause %s\n", VERSION);
    return 0;
  }
  if (argc > 1) {
    printf("usage: %s [--version]\n"
           "Holds a pod's namespaces: waits for signals, reaps the children that end (SIGCHLD), exits 0 on\n"
           "SIGINT or SIGTERM.\n",
           argv[0]);
    return strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ? 0 : 2;
  }

  /* The signals are taken synchronously with sigwait: blocked here, so none is lost between two waits. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
    perror("pause: sigprocmask");
    return 1;
  }
  if (getpid() != 1) {
    fprintf(stderr, "pause: not the first process of its namespace: it reaps only its own children\n");
  }
  for (;;) {
    int sig = 0;
    int err = sigwait(&set, &sig);
    if (err != 0) {
      if (err == EINTR) {
        continue;
      }
      fprintf(stderr, "pause: sigwait: %s\n", strerror(err));
      return 1;
    }
    if (sig == SIGCHLD) {
      reap();
    } else {
      /* SIGINT or SIGTERM: the sandbox is stopped. */
      reap();
      return 0;
    }
  }
}
