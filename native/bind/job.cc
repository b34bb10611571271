#include "bind/job.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>
#include <exception>
#include <new>
#include <stdexcept>

#include "common/runtime.h"

namespace trainlarge::bind {

namespace {

std::atomic<int> g_intra_op{0}, g_blas{0};

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

class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, const char* name, Work work, const std::vector<Napi::Object>& keep_alive)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)) {
    for (const auto& o : keep_alive) refs_.push_back(Napi::Persistent(o));
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      apply_thread_settings();
      finish_ = work_();
    } catch (...) {
      failure_ = describe_current_exception();
      SetError(failure_.message);
    }
  }

  void OnOK() override {
    Napi::HandleScope scope(Env());
    try {
      deferred_.Resolve(finish_ ? finish_(Env()) : Env().Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(make_error(Env(), describe_current_exception()).Value());
    }
  }

  void OnError(const Napi::Error&) override {
    Napi::HandleScope scope(Env());
    deferred_.Reject(make_error(Env(), failure_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Finish finish_;
  Failure failure_;
  std::vector<Napi::ObjectReference> refs_;
};

}  // namespace

Napi::Promise run_async(Napi::Env env, const char* name, Work work, const std::vector<Napi::Object>& keep_alive) {
  auto* job = new Job(env, name, std::move(work), keep_alive);  // deletes itself after OnOK/OnError
  auto promise = job->promise();
  job->Queue();
  return promise;
}

Napi::Error to_js_error(Napi::Env env) { return make_error(env, describe_current_exception()); }

void set_thread_settings(int intra_op, int blas) {
  if (intra_op < 0 || blas < 0) throw std::invalid_argument("threads: counts must be >= 0 (0 keeps the current setting)");
  g_intra_op = intra_op;
  g_blas = blas;
}

std::pair<int, int> thread_settings() { return {g_intra_op.load(), g_blas.load()}; }

void apply_thread_settings() { set_threads(g_intra_op.load(), g_blas.load()); }

}  // namespace trainlarge::bind
