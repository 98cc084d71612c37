// A host stand-in for the CUDA execution model, enough to run joulebench's
// kernels (src/ops/cuda/kernels.cu, src/train/cuda/kernels.cu) unchanged on
// a machine without a GPU: every CUDA thread of a block is an OS thread,
// blocks run one after another (so a function-static `__shared__` array is
// the block's shared memory), `__syncthreads` is a barrier over the block
// and `__shfl_xor_sync` an exchange through a barrier over the warp. It
// checks the kernels' arithmetic, indexing and synchronisation, not their
// speed; tools/cuda-emu/check.cpp drives it.
#pragma once
#include <barrier>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};
struct float2 {
    float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
template <typename T> inline T min(T a, T b) { return a < b ? a : b; }

namespace emu {
struct Warp {
    explicit Warp(int n) : bar(n) {}
    float buf[32];
    std::barrier<> bar;
};
struct Thread {
    dim3 thread, block;
    std::barrier<> *block_bar = nullptr;
    Warp *warp = nullptr;
    int lane = 0;
};
inline thread_local Thread self;
inline dim3 grid_dim, block_dim;
}  // namespace emu

#define threadIdx (emu::self.thread)
#define blockIdx (emu::self.block)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)

inline void __syncthreads() { emu::self.block_bar->arrive_and_wait(); }

inline float __shfl_xor_sync(unsigned int, float v, int offset) {
    emu::Warp &w = *emu::self.warp;
    w.buf[emu::self.lane] = v;
    w.bar.arrive_and_wait();
    float r = w.buf[emu::self.lane ^ offset];
    w.bar.arrive_and_wait();
    return r;
}

namespace emu {
// Runs `kernel` (a callable that calls the kernel with its arguments) over
// `grid` blocks of `block` threads. The block size must be a multiple of 32.
template <typename F>
void launch(dim3 grid, dim3 block, F kernel) {
    grid_dim = grid;
    block_dim = block;
    int n = block.x * block.y * block.z;
    for (unsigned int bz = 0; bz < grid.z; bz++)
        for (unsigned int by = 0; by < grid.y; by++)
            for (unsigned int bx = 0; bx < grid.x; bx++) {
                std::barrier<> block_bar(n);
                std::vector<std::unique_ptr<Warp>> warps;
                for (int w = 0; w < n; w += 32) warps.push_back(std::make_unique<Warp>(32));
                std::vector<std::thread> threads;
                for (int t = 0; t < n; t++) {
                    threads.emplace_back([&, t] {
                        self.thread = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                        self.block = {bx, by, bz};
                        self.block_bar = &block_bar;
                        self.warp = warps[t / 32].get();
                        self.lane = t % 32;
                        kernel();
                        // An exited thread no longer holds the others back.
                        block_bar.arrive_and_drop();
                        self.warp->bar.arrive_and_drop();
                    });
                }
                for (auto &th : threads) th.join();
            }
}
}  // namespace emu
