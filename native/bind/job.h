// Runs engine work on the one engine thread (queued from the JS thread; the env's thread-safe function settles
// its Promise back on the JS thread) and I/O work on a libuv worker. Every C++ exception
// (c10::Error included) becomes a JS Error carrying the libtorch message and a `code`; none escapes to
// terminate the process. Also: Guard() for synchronous methods, with the same translation.
#pragma once

#include <napi.h>

#include <functional>
#include <string>
#include <vector>

namespace trainlarge::bind {

// Runs on the JS thread after the work finished: turns the work's result into a JS value.
using Finish = std::function<Napi::Value(Napi::Env)>;
// Runs on the worker thread; returns the finisher.
using Work = std::function<Finish()>;

// Starts `work` off the main thread; `keep_alive` objects (the wraps the work uses) are referenced until
// the promise settles, so the garbage collector cannot finalize them mid-job.
Napi::Promise run_async(Napi::Env env, const char* name, Work work, const std::vector<Napi::Object>& keep_alive = {});
// The same for work that never touches libtorch (file writes, SentencePiece): runs on the libuv worker
// itself, so it does not wait behind a training job.
Napi::Promise run_io(Napi::Env env, const char* name, Work work, const std::vector<Napi::Object>& keep_alive = {});

// Makes the env's completion channel for run_async (a thread-safe function in AddonData); call from the
// addon's init, after SetInstanceData.
void init_engine_jobs(Napi::Env env);

// Starts the engine thread (once per process) and holds the calling thread to one OpenMP thread. Call from
// the addon's init, before any tensor is made.
void start_engine_thread();
// The intra-op thread count the engine started with, and libtorch's parallel info as the engine thread sees it.
int engine_default_threads();
const std::string& engine_parallel_info();

// Translates the exception being handled into a JS Error (call inside catch (...)).
Napi::Error to_js_error(Napi::Env env);

// Runs a synchronous method body, turning any C++ exception into a thrown JS Error.
template <typename F>
Napi::Value Guard(const Napi::CallbackInfo& info, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw to_js_error(info.Env());
  }
}

// Applies the process-wide thread settings (setThreads) on the calling worker thread.
void apply_thread_settings();
void set_thread_settings(int intra_op, int blas);
std::pair<int, int> thread_settings();

}  // namespace trainlarge::bind
