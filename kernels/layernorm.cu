// Layer norm over the last dimension, as src/ops/layernorm.rs on the CPU: y = γ(x − μ)·rstd + β
// with μ and rstd = 1/√(σ² + ε) saved per row; σ² by a second pass over the row (no E[x²] − μ²
// cancellation). One block per row; the row is read from global memory (L1/L2 holds it) on
// each pass.
//
// Backward: dx = rstd·(dŷ − mean(dŷ) − x̂·mean(dŷ ⊙ x̂)) with dŷ = dy ⊙ γ, one block per row;
// dγ = Σ_rows dy ⊙ x̂ and dβ = Σ_rows dy go through per-chunk partials (`layer_norm_bwd_dgb_
// partial_f32`, then colsum_finish_f32 on 2C columns), deterministic.
#include "common.cuh"

extern "C" __global__ void layer_norm_fwd_f32(const float* __restrict__ x, const float* __restrict__ gamma,
                                              const float* __restrict__ beta, float* __restrict__ y,
                                              float* __restrict__ mu_out, float* __restrict__ rstd_out,
                                              int rows, int c, float eps) {
    __shared__ float scratch[32];
    const int r = blockIdx.x;
    if (r >= rows) return;
    const float* xr = x + (size_t)r * c;
    float s = 0.0f;
    for (int j = threadIdx.x; j < c; j += blockDim.x) s += xr[j];
    const float mu = block_sum(s, scratch) / (float)c;
    float v = 0.0f;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        const float d = xr[j] - mu;
        v += d * d;
    }
    const float var = block_sum(v, scratch) / (float)c;
    const float rstd = 1.0f / sqrtf(var + eps);
    float* yr = y + (size_t)r * c;
    for (int j = threadIdx.x; j < c; j += blockDim.x) yr[j] = (xr[j] - mu) * rstd * gamma[j] + beta[j];
    if (threadIdx.x == 0) {
        mu_out[r] = mu;
        rstd_out[r] = rstd;
    }
}

extern "C" __global__ void layer_norm_bwd_dx_f32(const float* __restrict__ x, const float* __restrict__ dy,
                                                 const float* __restrict__ gamma, const float* __restrict__ mu,
                                                 const float* __restrict__ rstd, float* __restrict__ dx, int rows,
                                                 int c) {
    __shared__ float scratch[32];
    const int r = blockIdx.x;
    if (r >= rows) return;
    const float* xr = x + (size_t)r * c;
    const float* dyr = dy + (size_t)r * c;
    const float m = mu[r], rs = rstd[r];
    float a = 0.0f, b = 0.0f;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        const float xh = (xr[j] - m) * rs;
        const float dyh = dyr[j] * gamma[j];
        a += dyh;
        b += dyh * xh;
    }
    a = block_sum(a, scratch) / (float)c;
    b = block_sum(b, scratch) / (float)c;
    float* dxr = dx + (size_t)r * c;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        const float xh = (xr[j] - m) * rs;
        dxr[j] = rs * (dyr[j] * gamma[j] - a - xh * b);
    }
}

// part (P, 2C): [Σ dy ⊙ x̂ | Σ dy] over each chunk of DL_COLSUM_ROWS rows. Grid
// (ceil(C / 32), P), block (32, 8).
extern "C" __global__ void layer_norm_bwd_dgb_partial_f32(const float* __restrict__ x, const float* __restrict__ dy,
                                                          const float* __restrict__ mu,
                                                          const float* __restrict__ rstd, float* __restrict__ part,
                                                          int rows, int c) {
    __shared__ float acc[2][8][33];
    const int j = blockIdx.x * 32 + threadIdx.x;
    const int r0 = blockIdx.y * DL_COLSUM_ROWS;
    const int r1 = min(rows, r0 + DL_COLSUM_ROWS);
    float sg = 0.0f, sb = 0.0f;
    if (j < c)
        for (int r = r0 + threadIdx.y; r < r1; r += 8) {
            const float d = dy[(size_t)r * c + j];
            sg += d * (x[(size_t)r * c + j] - mu[r]) * rstd[r];
            sb += d;
        }
    acc[0][threadIdx.y][threadIdx.x] = sg;
    acc[1][threadIdx.y][threadIdx.x] = sb;
    __syncthreads();
    if (threadIdx.y == 0 && j < c) {
        float tg = 0.0f, tb = 0.0f;
#pragma unroll
        for (int y = 0; y < 8; y++) {
            tg += acc[0][y][threadIdx.x];
            tb += acc[1][y][threadIdx.x];
        }
        part[(size_t)blockIdx.y * 2 * c + j] = tg;
        part[(size_t)blockIdx.y * 2 * c + c + j] = tb;
    }
}
