// SigpipeGuard: while alive, a write to a closed pipe (`tracehost run | head`) fails with EPIPE
// on this thread instead of killing the process with SIGPIPE, whatever the process-wide
// disposition is. Sinks wrap their writes in it, so a reader going away is a logged write error
// and the host still shuts down cleanly (detaching its probes, final flushes).
#pragma once

#include <pthread.h>
#include <signal.h>
#include <time.h>

namespace tracehost::host {

class SigpipeGuard {
 public:
  SigpipeGuard() noexcept {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SigpipeGuard() {
    // A SIGPIPE raised by our write is pending on this thread now: take it before unblocking,
    // unless it was already blocked (then it is the caller's business).
    if (sigismember(&old_, SIGPIPE) == 0) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec zero{};
        sigtimedwait(&set_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t set_{};
  sigset_t old_{};
};

}  // namespace tracehost::host
