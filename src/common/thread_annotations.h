// Clang thread-safety annotations (-Wthread-safety), after LevelDB's port/thread_annotations.h
// and the attribute names in clang's documentation: GUARDED_BY(mu) on a member says which lock
// guards it, REQUIRES(mu) on a function that its caller holds it, EXCLUDES(mu) that it must
// not.  Under GCC they expand to nothing; the clang build of scripts/test checks them.
//
// libstdc++'s std::mutex carries no capability attribute, so annotated state is guarded by
// ordertrace::Mutex (a std::mutex that clang knows as a capability) held with
// ordertrace::MutexLock (a scoped lock).  A condition variable waits on it as
// std::condition_variable_any (`cv.wait(mu)` with `mu` held; call mu.AssertHeld() after, where
// the analysis needs to be told).
//
// Thread-safety: Mutex is a mutex; MutexLock is a scope guard owned by one thread.
#pragma once

#include <mutex>

#if defined(__clang__)
#define OT_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define OT_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) OT_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY OT_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) OT_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) OT_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) OT_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) OT_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) OT_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) OT_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RETURN_CAPABILITY(x) OT_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS OT_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace ordertrace {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  // Asserts to the analysis that the calling thread holds the lock (after a condition
  // variable wait, which the analysis cannot follow).
  void AssertHeld() const OT_THREAD_ANNOTATION(assert_capability(this)) {}

 private:
  std::mutex mu_;
};

class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

}  // namespace ordertrace
