#include "bind/job.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <future>
#include <mutex>
#include <new>
#include <stdexcept>
#include <thread>

#include "bind/addon.h"
#include "common/runtime.h"

namespace trainlarge::bind {

namespace {

std::atomic<int> g_intra_op{0}, g_blas{0};

// The one thread that runs every libtorch job, in the order they were queued.
//
// libgomp gives each thread that opens a parallel region a team of its own, and once the teams' threads
// outnumber the CPUs every barrier spins 100 times and then sleeps on a futex. Jobs spread over libuv's
// four workers (plus the JS thread, which ran the copies of createMlmData) made four teams: a medium
// training step then ran 15-20% slower inside Node than the same engine from a C++ main, with 14,800
// context switches in 22 steps against 330. One thread, and a JS thread held to one OpenMP thread,
// keep a single team.
class EngineThread {
 public:
  static EngineThread& get() {
    static auto* engine = new EngineThread();  // never destroyed: at exit it may be in the middle of a job
    return *engine;
  }

  // Runs `task` on the engine thread and waits for it; its exception is rethrown here.
  void run(std::function<void()> task) {
    std::packaged_task<void()> packaged(std::move(task));
    auto done = packaged.get_future();
    post(std::move(packaged));
    done.get();
  }

  // Queues `task` and returns at once (it must not throw: nobody waits for it).
  void post(std::packaged_task<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(task));
    }
    ready_.notify_one();
  }

 private:
  EngineThread() : thread_([this] { loop(); }) { thread_.detach(); }

  void loop() {
    for (;;) {
      std::packaged_task<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return !queue_.empty(); });
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::packaged_task<void()>> queue_;
  std::thread thread_;
};

std::once_flag g_engine_started;
int g_default_threads = 1;
std::string g_parallel_info;

struct Failure {
  std::string message, code;
};

// Names the failure by kind so callers can tell a bad argument from a libtorch failure.
Failure describe_current_exception() {
  try {
    throw;
  } catch (const c10::Error& e) {
    // TRAINLARGE_BACKTRACE=1 keeps libtorch's C++ backtrace in the message, for bug reports.
    static const bool backtrace = std::getenv("TRAINLARGE_BACKTRACE") != nullptr;
    return {backtrace ? e.what() : e.what_without_backtrace(), "ERR_TRAINLARGE_TORCH"};
  } catch (const std::invalid_argument& e) {
    return {e.what(), "ERR_TRAINLARGE_INVALID_ARGUMENT"};
  } catch (const std::out_of_range& e) {
    return {e.what(), "ERR_TRAINLARGE_INVALID_ARGUMENT"};
  } catch (const std::bad_alloc&) {
    return {"out of memory", "ERR_TRAINLARGE_OUT_OF_MEMORY"};
  } catch (const std::exception& e) {
    return {e.what(), "ERR_TRAINLARGE_ENGINE"};
  } catch (...) {
    return {"unknown C++ exception", "ERR_TRAINLARGE_ENGINE"};
  }
}

Napi::Error make_error(Napi::Env env, const Failure& f) {
  auto error = Napi::Error::New(env, f.message);
  error.Set("code", Napi::String::New(env, f.code));
  return error;
}

// Resolves `deferred` with the finisher's value (undefined without one); a finisher that throws rejects it.
void resolve_with(Napi::Env env, Napi::Promise::Deferred& deferred, const Finish& finish) {
  try {
    deferred.Resolve(finish ? finish(env) : env.Undefined());
  } catch (const Napi::Error& e) {
    deferred.Reject(e.Value());
  } catch (...) {
    deferred.Reject(make_error(env, describe_current_exception()).Value());
  }
}

class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, const char* name, Work work, const std::vector<Napi::Object>& keep_alive, bool on_engine)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)), on_engine_(on_engine) {
    for (const auto& o : keep_alive) refs_.push_back(Napi::Persistent(o));
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      if (on_engine_) {
        EngineThread::get().run([this] {
          apply_thread_settings();
          finish_ = work_();
        });
      } else {
        finish_ = work_();
      }
    } catch (...) {
      failure_ = describe_current_exception();
      SetError(failure_.message);
    }
  }

  void OnOK() override {
    Napi::HandleScope scope(Env());
    resolve_with(Env(), deferred_, finish_);
  }

  void OnError(const Napi::Error&) override {
    Napi::HandleScope scope(Env());
    deferred_.Reject(make_error(Env(), failure_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  bool on_engine_;
  Finish finish_;
  Failure failure_;
  std::vector<Napi::ObjectReference> refs_;
};

// A job for the engine thread queued straight from the JS thread, its promise settled through the env's one
// thread-safe function: two thread hand-offs (JS -> engine -> JS) where an AsyncWorker takes four (JS -> libuv
// worker -> engine -> worker -> JS), each a futex wake-up of a sleeping thread.
}  // namespace

// The env's thread-safe function that settles engine jobs on its JS thread, referenced while jobs run.
struct EngineChannel {
  Napi::ThreadSafeFunction done;
  int jobs = 0;  // touched on the JS thread only
};

namespace {

struct EngineJob {
  std::shared_ptr<EngineChannel> channel;
  Napi::Promise::Deferred deferred;
  Work work;
  Finish finish;
  Failure failure;
  bool failed = false;
  std::vector<Napi::ObjectReference> refs;
};

// Runs on the JS thread (env null only when the env is being torn down: then nothing may call into it).
void settle(Napi::Env env, Napi::Function, EngineJob* job) {
  if (env == nullptr) {
    for (auto& r : job->refs) r.SuppressDestruct();
    delete job;
    return;
  }
  {
    Napi::HandleScope scope(env);
    if (job->failed)
      job->deferred.Reject(make_error(env, job->failure).Value());
    else
      resolve_with(env, job->deferred, job->finish);
  }
  auto channel = std::move(job->channel);
  delete job;
  if (--channel->jobs == 0) channel->done.Unref(env);
}

Napi::Promise queue_engine_job(Napi::Env env, Work work, const std::vector<Napi::Object>& keep_alive) {
  const auto& channel = addon_data(env).engine;
  auto* job = new EngineJob{channel, Napi::Promise::Deferred::New(env), std::move(work), {}, {}, false, {}};
  for (const auto& o : keep_alive) job->refs.push_back(Napi::Persistent(o));
  auto promise = job->deferred.Promise();
  if (channel->jobs++ == 0) channel->done.Ref(env);  // the event loop stays alive while a job runs
  auto done = channel->done;
  EngineThread::get().post(std::packaged_task<void()>([job, done]() mutable {
    try {
      apply_thread_settings();
      job->finish = job->work();
    } catch (...) {
      job->failure = describe_current_exception();
      job->failed = true;
    }
    job->work = nullptr;  // its captures die here, on the engine thread, as they would have in an AsyncWorker
    // Fails only while the env closes (the process or worker is exiting): then the job is never settled.
    (void)done.NonBlockingCall(job, settle);
  }));
  return promise;
}

Napi::Promise queue_job(Napi::Env env, const char* name, Work work, const std::vector<Napi::Object>& keep_alive, bool on_engine) {
  auto* job = new Job(env, name, std::move(work), keep_alive, on_engine);  // deletes itself after OnOK/OnError
  auto promise = job->promise();
  job->Queue();
  return promise;
}

}  // namespace

// The libuv worker only waits for the engine thread, so JS never blocks and libtorch runs on one thread.
Napi::Promise run_async(Napi::Env env, const char* name, Work work, const std::vector<Napi::Object>& keep_alive) {
  // TRAINLARGE_JOB_HANDOFF=worker: the AsyncWorker path (four hand-offs), as before 2026-12-07, to compare.
  static const bool worker = [] {
    const char* e = std::getenv("TRAINLARGE_JOB_HANDOFF");
    return e != nullptr && std::string(e) == "worker";
  }();
  if (worker) return queue_job(env, name, std::move(work), keep_alive, true);
  return queue_engine_job(env, std::move(work), keep_alive);
}

void init_engine_jobs(Napi::Env env) {
  auto channel = std::make_shared<EngineChannel>();
  // No JS function: settle() does the work. Unreferenced while no job runs, so an idle addon never holds the
  // event loop open.
  channel->done = Napi::ThreadSafeFunction::New(env, Napi::Function(), "trainlarge.engine", 0, 1);
  channel->done.Unref(env);
  addon_data(env).engine = std::move(channel);
}

Napi::Promise run_io(Napi::Env env, const char* name, Work work, const std::vector<Napi::Object>& keep_alive) {
  return queue_job(env, name, std::move(work), keep_alive, false);
}

void start_engine_thread() {
  std::call_once(g_engine_started, [] {
    // The thread that loads the addon keeps one OpenMP thread for the small tensors it builds synchronously,
    // so it never opens a team; the engine thread gets the count this one started with.
    const int threads = at::get_num_threads();
    at::set_num_threads(1);
    EngineThread::get().run([threads] {
      at::set_num_threads(threads);
      g_parallel_info = at::get_parallel_info();
    });
    g_default_threads = threads;
  });
}

int engine_default_threads() { return g_default_threads; }

const std::string& engine_parallel_info() { return g_parallel_info; }

Napi::Error to_js_error(Napi::Env env) { return make_error(env, describe_current_exception()); }

void set_thread_settings(int intra_op, int blas) {
  if (intra_op < 0 || blas < 0) throw std::invalid_argument("threads: counts must be >= 0 (0 keeps the current setting)");
  g_intra_op = intra_op;
  g_blas = blas;
}

std::pair<int, int> thread_settings() { return {g_intra_op.load(), g_blas.load()}; }

void apply_thread_settings() { set_threads(g_intra_op.load(), g_blas.load()); }

}  // namespace trainlarge::bind
