// joulebench's CUDA layer kernels (built to PTX by build.rs under the `cuda`
// feature and loaded by src/ops/cuda/mod.rs). Each is self-checked against
// candle's reference ops on the user's device before the first trial
// (src/ops/selfcheck.rs); `fault` != 0 makes the first output wrong on
// purpose (JOULEBENCH_FAULTY_KERNEL, for tests). Every sum is taken in a
// fixed order, so results do not depend on scheduling.
#include <cuda_bf16.h>

__device__ __forceinline__ float widen(float v) { return v; }
__device__ __forceinline__ float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T narrow(float v);
template <> __device__ __forceinline__ float narrow<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 narrow<__nv_bfloat16>(float v) {
    return __float2bfloat16(v);
}

// ---- bias + activation: the epilogue of a linear layer -------------------

// y = act(z + b) for z (rows, cols) row-major and b (cols). ReLU follows the
// CPU op: max(v, 0), so a NaN becomes 0.
template <typename T>
__device__ void bias_act(const T *z, const T *b, T *y, unsigned long long rows,
                         unsigned int cols, int relu, int fault) {
    unsigned long long n = rows * cols;
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)blockDim.x * gridDim.x) {
        float v = widen(z[i]) + widen(b[i % cols]);
        if (relu) v = fmaxf(v, 0.0f);
        if (fault && i == 0) v += 1.0f;
        y[i] = narrow<T>(v);
    }
}

// The backward's first pass over a (32 columns) x (one slice of rows) tile,
// blockDim (32, 8): the masked gradient gz = g where y > 0 (ReLU; the CPU
// op's rule: zero where y <= 0) written when `gz` is not null, and each
// column's sum over the slice into partial[slice * cols + c], the 8 row
// groups added in order.
template <typename T>
__device__ void bias_act_bwd(const T *g, const T *y, T *gz, float *partial,
                             unsigned long long rows, unsigned int cols,
                             unsigned long long rows_per_slice, int relu) {
    __shared__ float acc[8][33];
    unsigned int c = blockIdx.x * 32 + threadIdx.x;
    unsigned long long r0 = blockIdx.y * rows_per_slice;
    unsigned long long r1 = min(rows, r0 + rows_per_slice);
    float s = 0.0f;
    if (c < cols) {
        for (unsigned long long r = r0 + threadIdx.y; r < r1; r += 8) {
            unsigned long long i = r * cols + c;
            float v = widen(g[i]);
            if (relu && widen(y[i]) <= 0.0f) v = 0.0f;
            if (gz) gz[i] = narrow<T>(v);
            s += v;
        }
    }
    acc[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float t = 0.0f;
        for (int k = 0; k < 8; k++) t += acc[k][threadIdx.x];
        partial[blockIdx.y * (unsigned long long)cols + c] = t;
    }
}

// The bias gradient: each column's slice sums added in slice order.
template <typename T>
__device__ void column_total(const float *partial, T *db, unsigned int slices,
                             unsigned int cols, int fault) {
    unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float t = 0.0f;
    for (unsigned int k = 0; k < slices; k++) t += partial[k * (unsigned long long)cols + c];
    if (fault && c == 0) t += 1.0f;
    db[c] = narrow<T>(t);
}

// ---- softmax cross-entropy -------------------------------------------------

// One warp per row of (rows, cols) logits: (max, ln sum exp(x - max)).
template <typename T>
__device__ float2 row_lse(const T *row, unsigned int cols) {
    unsigned int lane = threadIdx.x & 31;
    float m = -INFINITY;
    for (unsigned int j = lane; j < cols; j += 32) m = fmaxf(m, widen(row[j]));
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffff, m, o));
    float s = 0.0f;
    for (unsigned int j = lane; j < cols; j += 32) s += expf(widen(row[j]) - m);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
    return make_float2(m, logf(s));
}

// Each row's loss max + lse - x[label]; NaN for a label outside 0..cols, so
// a bad label surfaces as a non-finite loss rather than a wild read.
template <typename T, typename L>
__device__ void ce_rows(const T *x, const L *labels, float *loss, unsigned int rows,
                        unsigned int cols) {
    unsigned int r = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (r >= rows) return;
    const T *row = x + (unsigned long long)r * cols;
    float2 ml = row_lse(row, cols);
    if ((threadIdx.x & 31) == 0) {
        long long y = (long long)labels[r];
        loss[r] = (y < 0 || y >= (long long)cols) ? NAN : ml.x + ml.y - widen(row[y]);
    }
}

// The mean of the row losses: one block of 256 threads, each summing a
// strided share in double, then a tree in shared memory.
__device__ void ce_mean(const float *loss, float *out, unsigned int rows, int fault) {
    __shared__ double part[256];
    double s = 0.0;
    for (unsigned int r = threadIdx.x; r < rows; r += blockDim.x) s += loss[r];
    part[threadIdx.x] = s;
    __syncthreads();
    for (unsigned int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        float mean = rows == 0 ? 0.0f : (float)(part[0] / rows);
        out[0] = fault ? mean + 1.0f : mean;
    }
}

// d = (softmax(x) - one_hot(label)) * g / rows, g the loss's gradient (a
// device scalar, so no host round trip).
template <typename T, typename L>
__device__ void ce_grad(const T *x, const L *labels, const float *g, T *d, unsigned int rows,
                        unsigned int cols, int fault) {
    unsigned int r = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (r >= rows) return;
    const T *row = x + (unsigned long long)r * cols;
    T *out = d + (unsigned long long)r * cols;
    float2 ml = row_lse(row, cols);
    float scale = g[0] / (float)rows;
    long long y = (long long)labels[r];
    for (unsigned int j = threadIdx.x & 31; j < cols; j += 32) {
        float v = expf(widen(row[j]) - ml.x - ml.y) * scale;
        if ((long long)j == y) v -= scale;
        if (fault && r == 0 && j == 0) v += 1.0f;
        out[j] = narrow<T>(v);
    }
}

// ---- entry points, one per element type ----------------------------------

#define BIAS_ACT(S, T)                                                                        \
    extern "C" __global__ void joulebench_bias_act_##S(const T *z, const T *b, T *y,           \
                                                      unsigned long long rows,                \
                                                      unsigned int cols, int relu, int fault) { \
        bias_act<T>(z, b, y, rows, cols, relu, fault);                                        \
    }                                                                                         \
    extern "C" __global__ void joulebench_bias_act_bwd_##S(                                   \
        const T *g, const T *y, T *gz, float *partial, unsigned long long rows,               \
        unsigned int cols, unsigned long long rows_per_slice, int relu) {                     \
        bias_act_bwd<T>(g, y, gz, partial, rows, cols, rows_per_slice, relu);                 \
    }                                                                                         \
    extern "C" __global__ void joulebench_column_total_##S(const float *partial, T *db,       \
                                                          unsigned int slices,                \
                                                          unsigned int cols, int fault) {     \
        column_total<T>(partial, db, slices, cols, fault);                                    \
    }

BIAS_ACT(f32, float)
BIAS_ACT(bf16, __nv_bfloat16)

#define CROSS_ENTROPY(S, T, LS, L)                                                            \
    extern "C" __global__ void joulebench_ce_rows_##S##_##LS(                                 \
        const T *x, const L *labels, float *loss, unsigned int rows, unsigned int cols) {     \
        ce_rows<T, L>(x, labels, loss, rows, cols);                                           \
    }                                                                                         \
    extern "C" __global__ void joulebench_ce_grad_##S##_##LS(                                 \
        const T *x, const L *labels, const float *g, T *d, unsigned int rows,                 \
        unsigned int cols, int fault) {                                                       \
        ce_grad<T, L>(x, labels, g, d, rows, cols, fault);                                    \
    }

CROSS_ENTROPY(f32, float, u32, unsigned int)
CROSS_ENTROPY(f32, float, i64, long long)
CROSS_ENTROPY(bf16, __nv_bfloat16, u32, unsigned int)
CROSS_ENTROPY(bf16, __nv_bfloat16, i64, long long)

extern "C" __global__ void joulebench_ce_mean(const float *loss, float *out, unsigned int rows,
                                              int fault) {
    ce_mean(loss, out, rows, fault);
}
