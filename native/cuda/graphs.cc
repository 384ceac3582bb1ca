// CUDA graph capture and replay of a Context's stream (see src/backends/cuda/graph-backend.ts for how
// decode steps use them). Graphs bake in device pointers: anything that reallocates memory they may use
// (meta buffer growth, graph-mode scratch growth, freeing an object) drops them all.
#include <string>

#include "context.h"

namespace loom_cuda {

// ---------------------------------------------------------------------------------------------------------
// CUDA graphs

void Context::beginCapture() {
  if (capturing_) throw CudaError("beginCapture(): already capturing");
  LOOM_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
}

void Context::endCapture(long long key) {
  if (!capturing_) throw CudaError("endCapture(): not capturing");
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  LOOM_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  check(e, "cudaGraphInstantiate");
  auto it = graphs_.find(key);
  if (it != graphs_.end()) cudaGraphExecDestroy(it->second);
  graphs_[key] = exec;
}

void Context::abortCapture() {
  if (!capturing_) return;
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  cudaStreamEndCapture(stream, &graph);
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();
}

void Context::replay(long long key) {
  auto it = graphs_.find(key);
  if (it == graphs_.end()) throw CudaError("replay(): no graph captured under key " + std::to_string(key));
  LOOM_CHECK(cudaGraphLaunch(it->second, stream));
}

void Context::dropGraphs() {
  for (auto& kv : graphs_) cudaGraphExecDestroy(kv.second);
  graphs_.clear();
}

}  // namespace loom_cuda
