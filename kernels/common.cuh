// Shared by the dlhist kernels: block-wide sums and maxima, and the deterministic column sum of a
// row-major (R, C) matrix (per-row-chunk partials, then a second kernel adds them in chunk order,
// so a gradient's value does not depend on scheduling). f32 throughout.
#pragma once
#include <stdint.h>
#include <math.h>

#define DL_WARP 32

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = DL_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
    for (int o = DL_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = DL_WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// The sum of v over the block (blockDim.x a multiple of 32, at most 1024), returned to every
// thread. `scratch` holds 32 floats of shared memory; the call ends with a barrier, so it may
// be reused by the next call.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x % DL_WARP, warp = threadIdx.x / DL_WARP;
    const int nwarps = blockDim.x / DL_WARP;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < nwarps ? scratch[lane] : 0.0f;
    t = warp_sum(t);
    __syncthreads();
    return t;
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x % DL_WARP, warp = threadIdx.x / DL_WARP;
    const int nwarps = blockDim.x / DL_WARP;
    v = warp_max(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < nwarps ? scratch[lane] : -INFINITY;
    t = warp_max(t);
    __syncthreads();
    return t;
}

// Rows of each partial in the column sums below.
#define DL_COLSUM_ROWS 64

// part[p, j] = sum over rows p*DL_COLSUM_ROWS .. (p+1)*DL_COLSUM_ROWS of a[r, j], for
// a (R, C). Grid: (ceil(C / 32), ceil(R / DL_COLSUM_ROWS)); block (32, 8).
__device__ __forceinline__ void colsum_partial(const float* a, float* part, int rows, int cols) {
    __shared__ float acc[8][33];
    const int j = blockIdx.x * 32 + threadIdx.x;
    const int r0 = blockIdx.y * DL_COLSUM_ROWS;
    const int r1 = min(rows, r0 + DL_COLSUM_ROWS);
    float s = 0.0f;
    if (j < cols)
        for (int r = r0 + threadIdx.y; r < r1; r += 8) s += a[(size_t)r * cols + j];
    acc[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < cols) {
        float t = 0.0f;
#pragma unroll
        for (int y = 0; y < 8; y++) t += acc[y][threadIdx.x];
        part[(size_t)blockIdx.y * cols + j] = t;
    }
}
