// Column sums of a row-major (R, C) f32 matrix in two deterministic passes: partials over chunks
// of DL_COLSUM_ROWS rows, then their sum in chunk order (the bias gradients of linear and the
// gain and bias gradients of layer norm go through here).
#include "common.cuh"

extern "C" __global__ void colsum_partial_f32(const float* a, float* part, int rows, int cols) {
    colsum_partial(a, part, rows, cols);
}

// out[j] = sum_p part[p, j]; one thread per column.
extern "C" __global__ void colsum_finish_f32(const float* part, float* out, int parts, int cols) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    float s = 0.0f;
    for (int p = 0; p < parts; p++) s += part[(size_t)p * cols + j];
    out[j] = s;
}
