// joulebench's CUDA optimizer kernel (built to PTX by build.rs under the
// `cuda` feature). It is self-checked against candle_nn's AdamW on the
// user's device before the first trial (src/train/mod.rs, self_check).

// One fused AdamW step over every parameter tensor in one launch: the
// moments and the weights updated in place in one pass, exactly as the CPU
// fused optimizer (src/train/fused_optim.rs, Coefs::update); 1 - beta
// comes in from the host, taken in f64 as candle_nn does.
//
// `table` holds, for the T tensors in this step, T weight pointers, T
// gradient pointers, T offsets into the flat moment buffers m and v, then
// T + 1 starts: tensor j covers elements start[j]..start[j+1] of the
// `total` this launch updates. `fault` != 0 makes the first weight wrong on
// purpose (JOULEBENCH_FAULTY_KERNEL, for tests).
extern "C" __global__ void joulebench_adamw_multi(
    const unsigned long long *table, int tensors, float *m, float *v,
    unsigned long long total, float decay, float b1, float b2, float one_minus_b1,
    float one_minus_b2, float scale_m,
    float scale_v, float lr, float eps, int fault)
{
    const unsigned long long *wp = table;
    const unsigned long long *gp = table + tensors;
    const unsigned long long *mo = table + 2 * tensors;
    const unsigned long long *start = table + 3 * tensors;
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
         i < total; i += (unsigned long long)blockDim.x * gridDim.x) {
        // The last tensor whose start is <= i (empty tensors are skipped).
        int lo = 0, hi = tensors - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) / 2;
            if (start[mid] <= i) lo = mid; else hi = mid - 1;
        }
        unsigned long long k = i - start[lo];
        float *w = (float *)wp[lo] + k;
        float gi = ((const float *)gp[lo])[k];
        unsigned long long j = mo[lo] + k;
        float mi = b1 * m[j] + one_minus_b1 * gi;
        float vi = b2 * v[j] + one_minus_b2 * gi * gi;
        m[j] = mi;
        v[j] = vi;
        float wi = *w * decay - lr * ((mi * scale_m) / (sqrtf(vi * scale_v) + eps));
        if (fault != 0 && i == 0) wi += 1.0f;
        *w = wi;
    }
}
