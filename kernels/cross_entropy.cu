// Softmax + cross-entropy, as src/ops/cross_entropy.rs on the CPU: loss = mean_i (lse_i − x[i, t_i])
// with lse_i = log Σ_j exp(x[i, j]) saved for the backward. One block per row; the mean is one
// block summing the per-row losses in f64 in a fixed order (deterministic).
// Targets are u32 or i64; one out of [0, C) makes that row's loss NaN (the CPU op returns an
// error; a kernel cannot, and the NaN stops training at the step's finite check).
// Backward: dx = (exp(x − lse) − onehot(t)) · g / N, with g read from device memory.
#include "common.cuh"

template <typename T>
__device__ void ce_fwd_rows(const float* __restrict__ x, const T* __restrict__ t, float* __restrict__ lse,
                            float* __restrict__ row_loss, int n, int c) {
    __shared__ float scratch[32];
    const int r = blockIdx.x;
    if (r >= n) return;
    const float* xr = x + (size_t)r * c;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < c; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = block_max(m, scratch);
    float s = 0.0f;
    for (int j = threadIdx.x; j < c; j += blockDim.x) s += expf(xr[j] - m);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) {
        const float l = m + logf(s);
        lse[r] = l;
        const long long ti = (long long)t[r];
        row_loss[r] = (ti >= 0 && ti < c) ? l - xr[ti] : NAN;
    }
}

extern "C" __global__ void ce_fwd_rows_u32(const float* x, const uint32_t* t, float* lse, float* row_loss, int n,
                                           int c) {
    ce_fwd_rows<uint32_t>(x, t, lse, row_loss, n, c);
}

extern "C" __global__ void ce_fwd_rows_i64(const float* x, const int64_t* t, float* lse, float* row_loss, int n,
                                           int c) {
    ce_fwd_rows<int64_t>(x, t, lse, row_loss, n, c);
}

// loss[0] = (Σ_i row_loss[i]) / n, in f64; one block of 256 threads, each summing a strided
// share in index order, then a fixed tree.
extern "C" __global__ void ce_mean_f32(const float* __restrict__ row_loss, float* __restrict__ loss, int n) {
    __shared__ double part[256];
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += (double)row_loss[i];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) loss[0] = n == 0 ? NAN : (float)(part[0] / (double)n);
}

template <typename T>
__device__ void ce_bwd(const float* __restrict__ x, const T* __restrict__ t, const float* __restrict__ lse,
                       const float* __restrict__ g, float* __restrict__ dx, int n, int c) {
    const size_t total = (size_t)n * c;
    const float scale = g[0] / (float)n;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int r = (int)(i / c), j = (int)(i % c);
        float d = expf(x[i] - lse[r]) * scale;
        if ((long long)t[r] == (long long)j) d -= scale;
        dx[i] = d;
    }
}

extern "C" __global__ void ce_bwd_u32(const float* x, const uint32_t* t, const float* lse, const float* g, float* dx,
                                      int n, int c) {
    ce_bwd<uint32_t>(x, t, lse, g, dx, n, c);
}

extern "C" __global__ void ce_bwd_i64(const float* x, const int64_t* t, const float* lse, const float* g, float* dx,
                                      int n, int c) {
    ce_bwd<int64_t>(x, t, lse, g, dx, n, c);
}
