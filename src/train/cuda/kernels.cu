// joulebench's CUDA kernels (built to PTX by build.rs under the `cuda`
// feature). Every kernel here is self-checked against candle's reference
// ops on the user's device before the first trial (src/ops/selfcheck.rs).

// One fused AdamW step over a whole parameter tensor: the moments and the
// weight updated in place in one pass, exactly as the CPU fused optimizer
// (src/train/fused_optim.rs, Coefs::update). `fault` != 0 makes the first
// weight wrong on purpose (JOULEBENCH_FAULTY_KERNEL, for tests).
extern "C" __global__ void joulebench_adamw(
    float *w, const float *g, float *m, float *v, unsigned int n,
    float decay, float b1, float b2, float scale_m, float scale_v,
    float lr, float eps, int fault)
{
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += blockDim.x * gridDim.x) {
        float gi = g[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float wi = w[i] * decay - lr * ((mi * scale_m) / (sqrtf(vi * scale_v) + eps));
        if (fault != 0 && i == 0) {
            wi += 1.0f;
        }
        w[i] = wi;
    }
}
