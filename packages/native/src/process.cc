// Child processes with a pidfd. Spawning is one synchronous call (fork + exec, like libuv's
// uv_spawn); everything afterwards — waiting for the exit, reading and writing the pipes — goes
// through the ring on the JS side.
//
// spawn(file, args, env | null, cwd | null, stdio) -> { pid, pidfd, stdin, stdout, stderr }
//   - clone3(CLONE_PIDFD) (legacy clone(CLONE_PIDFD) where clone3 is refused, e.g. by an old
//     seccomp profile), fork semantics: the child gets a copy-on-write image and only makes
//     async-signal-safe calls (sigaction, sigprocmask, dup2, fcntl, chdir, execve, write, _exit).
//   - Every fd this creates is O_CLOEXEC; the child's stdio are dup2'ed into 0..2 (which clears
//     the flag there) and nothing else crosses the exec.
//   - Signals: the parent blocks every signal around the clone so no handler of this process can
//     run in the child; the child resets every disposition to SIG_DFL and unblocks all signals
//     just before execve.
//   - stdio[i] is "pipe" (a new pipe; the parent's end is returned), "inherit", "ignore"
//     (/dev/null) or a number (an fd of this process to hand over). Parent ends stay blocking:
//     io_uring reads/writes them without blocking anyway (it polls internally).
//   - A failure in the child after the clone (chdir, dup2, execve) travels back as
//     { step, errno } over a CLOEXEC pipe: EOF on it means execve succeeded. The failed child is
//     reaped before spawn throws, so nothing is left behind.
//   - The program is searched in PATH (of `env` when given, else of this process) unless `file`
//     contains a slash; EACCES wins over ENOENT, as in execvp.
// kill(pidfd, signal) -> undefined      pidfd_send_signal(2)
// reap(pidfd) -> { code, status } | null  waitid(P_PIDFD, WEXITED | WNOHANG): the fallback used
//   when the kernel has no IORING_OP_WAITID (code is CLD_EXITED/KILLED/DUMPED).
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "ring.h"

extern char** environ;

namespace ringline {

namespace {

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

enum Step : int { kStepDup = 1, kStepChdir = 2, kStepExec = 3, kStepCloexec = 4 };

const char* StepName(int step) {
  switch (step) {
    case kStepDup: return "dup2";
    case kStepChdir: return "chdir";
    case kStepCloexec: return "fcntl";
    default: return "execve";
  }
}

struct ChildReport {
  int step;
  int err;
};

// Closes the fds it holds unless released; keeps every error path of spawn leak-free.
struct FdList {
  std::vector<int> fds;
  int Add(int fd) {
    fds.push_back(fd);
    return fd;
  }
  void Forget(int fd) {
    for (auto& f : fds) {
      if (f == fd) f = -1;
    }
  }
  ~FdList() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
};

std::vector<std::string> StringArray(const Napi::Value& v, const char* what) {
  std::vector<std::string> out;
  if (v.IsNull() || v.IsUndefined()) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (!e.IsString()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an array of strings");
    std::string s = e.As<Napi::String>().Utf8Value();
    if (s.find('\0') != std::string::npos) {
      throw Napi::TypeError::New(v.Env(), std::string(what) + " must not contain NUL bytes");
    }
    out.push_back(std::move(s));
  }
  return out;
}

// Where execve is tried, in order: the file itself when it names a path, else each PATH entry.
std::vector<std::string> Candidates(const std::string& file, const std::vector<std::string>* env) {
  std::vector<std::string> out;
  if (file.find('/') != std::string::npos) {
    out.push_back(file);
    return out;
  }
  std::string path;
  bool found = false;
  if (env != nullptr) {
    for (const auto& kv : *env) {
      if (kv.rfind("PATH=", 0) == 0) {
        path = kv.substr(5);
        found = true;
      }
    }
  } else if (const char* p = getenv("PATH")) {
    path = p;
    found = true;
  }
  if (!found) path = "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (true) {
    size_t end = path.find(':', start);
    std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (dir.empty()) dir = ".";
    out.push_back(dir + "/" + file);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

[[noreturn]] void ChildFail(int report_fd, int step, int err) {
  ChildReport r {step, err};
  ssize_t n;
  do {
    n = ::write(report_fd, &r, sizeof r);
  } while (n < 0 && errno == EINTR);
  _exit(127);
}

// Runs in the child between clone and execve: async-signal-safe calls only, no allocation.
[[noreturn]] void ChildMain(int report_fd, int src[3], const char* cwd, char* const* argv, char* const* envp,
                            const std::vector<const char*>& candidates) {
  // Dispositions back to default (SIGKILL/SIGSTOP and glibc's internal signals refuse: fine).
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; s++) {
    if (s == SIGKILL || s == SIGSTOP) continue;
    sigaction(s, &dfl, nullptr);
  }
  // Move sources that sit in 0..2 out of the way so the dup2 below cannot clobber them.
  for (int i = 0; i < 3; i++) {
    if (src[i] >= 0 && src[i] < 3 && src[i] != i) {
      int moved = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
      if (moved < 0) ChildFail(report_fd, kStepDup, errno);
      src[i] = moved;
    }
  }
  for (int i = 0; i < 3; i++) {
    if (src[i] < 0) {
      // Inherited: make sure it survives the exec.
      int fl = fcntl(i, F_GETFD);
      if (fl >= 0 && (fl & FD_CLOEXEC) && fcntl(i, F_SETFD, fl & ~FD_CLOEXEC) < 0) {
        ChildFail(report_fd, kStepCloexec, errno);
      }
    } else if (src[i] == i) {
      if (fcntl(i, F_SETFD, 0) < 0) ChildFail(report_fd, kStepCloexec, errno);
    } else if (dup2(src[i], i) < 0) {
      ChildFail(report_fd, kStepDup, errno);
    }
  }
  if (cwd != nullptr && chdir(cwd) < 0) ChildFail(report_fd, kStepChdir, errno);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  int err = ENOENT;
  bool eacces = false;
  for (const char* c : candidates) {
    execve(c, argv, envp);
    err = errno;
    if (err == EACCES) {
      eacces = true;
    } else if (err != ENOENT && err != ENOTDIR && err != ESTALE && err != ENODEV && err != ETIMEDOUT) {
      break;  // a real error for an existing program (ENOEXEC, E2BIG, ...): report it
    }
  }
  if (eacces && (err == ENOENT || err == ENOTDIR || err == ESTALE || err == ENODEV || err == ETIMEDOUT)) err = EACCES;
  // A signal that arrives now would run its default action, which is what the program would get.
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  ChildFail(report_fd, kStepExec, err);
}

// clone3(CLONE_PIDFD), or the legacy clone syscall with CLONE_PIDFD when clone3 is unavailable.
pid_t ClonePidfd(int* pidfd) {
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(pidfd);
  args.exit_signal = SIGCHLD;
  long r = syscall(SYS_clone3, &args, sizeof args);
  if (r < 0 && (errno == ENOSYS || errno == EPERM)) {
    // x86_64 / aarch64 argument order: flags, stack, parent_tid (pidfd here), child_tid, tls.
    r = syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, nullptr, pidfd, nullptr, 0);
  }
  return static_cast<pid_t>(r);
}

Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "spawn: file must be a string");
  const std::string file = info[0].As<Napi::String>().Utf8Value();
  if (file.empty()) throw Napi::TypeError::New(env, "spawn: file must not be empty");
  std::vector<std::string> args = StringArray(info[1], "spawn: args");
  const bool has_env = !(info[2].IsNull() || info[2].IsUndefined());
  std::vector<std::string> envs = StringArray(info[2], "spawn: env");
  const bool has_cwd = info[3].IsString();
  const std::string cwd = has_cwd ? info[3].As<Napi::String>().Utf8Value() : std::string();
  if (!info[4].IsArray() || info[4].As<Napi::Array>().Length() != 3) {
    throw Napi::TypeError::New(env, "spawn: stdio must be an array of 3 entries");
  }
  Napi::Array stdio = info[4].As<Napi::Array>();

  // argv[0] is `file` unless args already carries it: JS passes the full argv (args[0] = name).
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  if (argv.empty()) argv.push_back(const_cast<char*>(file.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (has_env) {
    for (auto& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
  std::vector<std::string> cand = Candidates(file, has_env ? &envs : nullptr);
  std::vector<const char*> cand_ptrs;
  for (auto& c : cand) cand_ptrs.push_back(c.c_str());

  FdList fds;
  int src[3] = {-1, -1, -1};     // what the child gets as fd i (-1: inherit)
  int parent[3] = {-1, -1, -1};  // the parent's pipe ends
  int devnull = -1;
  for (int i = 0; i < 3; i++) {
    Napi::Value s = stdio.Get(static_cast<uint32_t>(i));
    if (s.IsNumber()) {
      src[i] = s.As<Napi::Number>().Int32Value();
      if (src[i] < 0) throw Napi::RangeError::New(env, "spawn: stdio fd must be >= 0");
      continue;
    }
    const std::string mode = s.IsString() ? s.As<Napi::String>().Utf8Value() : std::string();
    if (mode == "pipe") {
      int p[2];
      if (pipe2(p, O_CLOEXEC) < 0) ThrowErrno(env, "pipe2", errno);
      fds.Add(p[0]);
      fds.Add(p[1]);
      // stdin: the child reads p[0], we write p[1]; stdout/stderr the other way round.
      src[i] = i == 0 ? p[0] : p[1];
      parent[i] = i == 0 ? p[1] : p[0];
    } else if (mode == "ignore") {
      if (devnull < 0) {
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0) ThrowErrno(env, "open(/dev/null)", errno);
        fds.Add(devnull);
      }
      src[i] = devnull;
    } else if (mode != "inherit") {
      throw Napi::TypeError::New(env, "spawn: stdio entries are \"pipe\", \"inherit\", \"ignore\" or an fd");
    }
  }

  int report[2];
  if (pipe2(report, O_CLOEXEC) < 0) ThrowErrno(env, "pipe2", errno);
  fds.Add(report[0]);
  fds.Add(report[1]);

  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  pid_t pid = ClonePidfd(&pidfd);
  if (pid == 0) {
    ChildMain(report[1], src, has_cwd ? cwd.c_str() : nullptr, argv.data(), has_env ? envp.data() : environ,
              cand_ptrs);
  }
  const int clone_err = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) ThrowErrno(env, "clone3", clone_err);
  fds.Add(pidfd);

  // Our copy of the write end must go, or the read below would never see EOF.
  ::close(report[1]);
  fds.Forget(report[1]);
  ChildReport r {0, 0};
  size_t got = 0;
  while (got < sizeof r) {
    ssize_t n = ::read(report[0], reinterpret_cast<char*>(&r) + got, sizeof r - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > 0) {
    // The child failed before execve and exited with 127: reap it, then report its errno.
    siginfo_t si;
    while (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &si, WEXITED) < 0 && errno == EINTR) {
    }
    ThrowErrno(env, StepName(r.step), got == sizeof r ? r.err : EIO);
  }

  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, pid));
  out.Set("pidfd", Napi::Number::New(env, pidfd));
  fds.Forget(pidfd);
  static const char* names[3] = {"stdin", "stdout", "stderr"};
  for (int i = 0; i < 3; i++) {
    out.Set(names[i], Napi::Number::New(env, parent[i]));
    if (parent[i] >= 0) fds.Forget(parent[i]);
  }
  // The child's ends, /dev/null and the report pipe are closed by ~FdList.
  return out;
}

Napi::Value Kill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int pidfd = info[0].As<Napi::Number>().Int32Value();
  const int sig = info[1].As<Napi::Number>().Int32Value();
  if (syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) < 0) ThrowErrno(env, "pidfd_send_signal", errno);
  return env.Undefined();
}

Napi::Value Reap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int pidfd = info[0].As<Napi::Number>().Int32Value();
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int r;
  do {
    r = waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &si, WEXITED | WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r < 0) ThrowErrno(env, "waitid", errno);
  if (si.si_pid == 0) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("code", Napi::Number::New(env, si.si_code));
  out.Set("status", Napi::Number::New(env, si.si_status));
  return out;
}

}  // namespace

Napi::Object InitProcess(Napi::Env env, Napi::Object exports) {
  exports.Set("spawn", Napi::Function::New<Spawn>(env, "spawn"));
  exports.Set("kill", Napi::Function::New<Kill>(env, "kill"));
  exports.Set("reap", Napi::Function::New<Reap>(env, "reap"));
  return exports;
}

}  // namespace ringline
