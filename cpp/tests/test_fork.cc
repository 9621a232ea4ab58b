// ctest: fork() after multi-threaded regions (issue 10). GNU libgomp's pool of the forking thread
// would survive in the child without its workers, and the child's next region would wait for them
// forever; threading.cc releases that pool before fork(). Each child gets an alarm, so a hang
// ends as a failed child instead of a stuck test. Checked: the child's team really has 2 threads,
// a 2-thread GEMM in the child equals the parent's bit for bit, one generation further, a fork
// from a non-main thread that ran regions, and the parent's own regions after the fork.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "rnnkit/gemm.h"
#include "rnnkit/threading.h"
#include "test_util.h"

using namespace rnnkit;
using namespace rnnkit_test;

namespace {

constexpr unsigned kChildSeconds = 60;

// Threads that actually ran a parallel(nt) region (each reports once), or -1 if they disagree on
// the team size.
int team_size(int nt) {
  std::atomic<int> ran{0}, bad{0};
  parallel(nt, [&](int, int n) {
    ran.fetch_add(1);
    if (n != nt) bad.fetch_add(1);
  });
  return bad.load() ? -1 : ran.load();
}

// fn() in a forked child; true when it returned true before its alarm.
bool in_child(const std::function<bool()>& fn) {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    alarm(kChildSeconds);  // SIGALRM's default action ends a hung child
    _exit(fn() ? 0 : 1);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return false;
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
    std::printf("child hung (killed after %u s)\n", kChildSeconds);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

struct Product {
  static constexpr index_t M = 256, N = 512, K = 384;  // large enough to run on both threads
  std::vector<float> a, b;
  explicit Product(std::mt19937& g) : a(randn<float>(M * K, g)), b(randn<float>(K * N, g)) {}
  std::vector<float> run(int nt) const {
    std::vector<float> c(M * N);
    gemm(row_major<const float>(a.data(), M, K, K), row_major<const float>(b.data(), K, N, N),
         row_major(c.data(), M, N, N), false, nt);
    return c;
  }
};

}  // namespace

int main() {
  if (!have_openmp()) {
    std::printf("SKIP: built without OpenMP (nothing to inherit across fork)\n");
    return kSkip;
  }
  std::printf("rnnkit fork tests\n");
  std::mt19937 g(10);
  const Product p(g);
  const std::vector<float> want = p.run(2);  // the parent's pool now has a worker
  check(team_size(2) == 2, "parent team before fork");

  check(in_child([&] { return team_size(2) == 2; }), "child: 2-thread team after the parent's regions");
  check(in_child([&] { return p.run(2) == want; }), "child: 2-thread GEMM equals the parent's");
  check(team_size(2) == 2 && p.run(2) == want, "parent: regions after fork");

  // The child's main thread runs regions itself before forking the grandchild.
  check(in_child([&] {
          if (team_size(2) != 2 || p.run(2) != want) return false;
          return in_child([&] { return team_size(2) == 2 && p.run(2) == want; });
        }),
        "grandchild: 2-thread team and GEMM");

  // Fork from a thread other than main that ran regions (its own pool); main's pool stays.
  bool from_thread = false;
  std::thread t([&] {
    from_thread = p.run(2) == want && in_child([&] { return team_size(2) == 2 && p.run(2) == want; });
  });
  t.join();
  check(from_thread, "child forked from a non-main thread that ran regions");
  check(in_child([&] { return team_size(2) == 2; }), "child forked from main again");
  return finish();
}
