// Flash-style multi-head self-attention read straight from the packed projection, as
// src/ops/attention_qkv.rs on the CPU: qkv (B, T, 3C) with [q | k | v] along the last dimension,
// H heads of Dh = C/H features each, to y (B, T, C) with the heads side by side, and the row
// logsumexp L (B, H, T) saved for the backward. s = 1/√Dh; causal: key j visible to query i iff
// j ≤ i.
//
// v1, f32, one thread per query row (forward, dQ) or key row (dK, dV), Dh ≤ 128 (templates on
// DMAX = 32, 64, 128 hold a row in registers):
// - forward: a block of BR query rows walks the keys in tiles of BC rows of K and V staged in
//   shared memory; each thread scores its row against the tile, then folds the tile into its
//   running max m, running sum l and unnormalised output with the online softmax (rescaling by
//   e^(m_old − m_new)). Writes O = acc / l and L = m + ln l. Causal: tiles past the block's last
//   row are skipped.
// - backward (FA2's split, no atomics, deterministic): D_i = rowsum(dO_i ⊙ O_i) first; then dQ
//   with one thread per query row over K, V tiles, and dK, dV with one thread per key row over
//   Q, dO tiles (and their L, D), each recomputing P = e^(S − L):
//   dV_j += P_ij dO_i, dP_ij = dO_i·V_j, dS_ij = P_ij (dP_ij − D_i), dQ_i += dS_ij K_j s,
//   dK_j += dS_ij Q_i s. dQ, dK, dV are written straight into dqkv's columns.
// The T×T scores never exist; extra memory is L and D (B·H·T floats each).
#include "common.cuh"

#define BR 64   // query rows per block (forward, dQ): one per thread
#define BC 32   // key rows per shared-memory tile (forward, dQ)
#define BKV 64  // key rows per block (dK, dV): one per thread
#define BQ 32   // query rows per shared-memory tile (dK, dV)

struct Dims {
    int b, t, c, h, d;
    float scale;
    int causal;
};

// Element e of row `ti` of head hh of batch bi in a (B, T, width) tensor at column `col`.
__device__ __forceinline__ size_t at(const Dims& p, int width, int bi, int ti, int hh, int col) {
    return ((size_t)bi * p.t + ti) * width + col + hh * p.d;
}

template <int DMAX>
__device__ void attn_fwd(const float* __restrict__ qkv, float* __restrict__ y, float* __restrict__ lse, Dims p) {
    extern __shared__ float sm[];
    float* ks = sm;              // (BC, d)
    float* vs = sm + BC * p.d;   // (BC, d)
    const int bh = blockIdx.y, bi = bh / p.h, hh = bh % p.h;
    const int i0 = blockIdx.x * BR, i = i0 + threadIdx.x;
    const int w3 = 3 * p.c;
    const bool live = i < p.t;
    float q[DMAX], o[DMAX];
#pragma unroll
    for (int e = 0; e < DMAX; e++) {
        q[e] = (live && e < p.d) ? qkv[at(p, w3, bi, i, hh, 0) + e] : 0.0f;
        o[e] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const int last = p.causal ? min(p.t, i0 + BR) : p.t;  // keys any row of this block sees
    for (int j0 = 0; j0 < last; j0 += BC) {
        const int nc = min(BC, p.t - j0);
        for (int idx = threadIdx.x; idx < nc * p.d; idx += blockDim.x) {
            const int r = idx / p.d, e = idx % p.d;
            ks[idx] = qkv[at(p, w3, bi, j0 + r, hh, p.c) + e];
            vs[idx] = qkv[at(p, w3, bi, j0 + r, hh, 2 * p.c) + e];
        }
        __syncthreads();
        if (live) {
            const int vis = p.causal ? max(0, min(nc, i + 1 - j0)) : nc;
            float sc[BC];
            float tmax = -INFINITY;
#pragma unroll
            for (int jj = 0; jj < BC; jj++) {
                float s = -INFINITY;
                if (jj < vis) {
                    s = 0.0f;
#pragma unroll
                    for (int e = 0; e < DMAX; e++)
                        if (e < p.d) s += q[e] * ks[jj * p.d + e];
                    s *= p.scale;
                }
                sc[jj] = s;
                tmax = fmaxf(tmax, s);
            }
            if (vis > 0) {
                const float mn = fmaxf(m, tmax);
                const float corr = expf(m - mn);  // 0 on the first tile (m = −∞)
                l *= corr;
#pragma unroll
                for (int e = 0; e < DMAX; e++) o[e] *= corr;
#pragma unroll
                for (int jj = 0; jj < BC; jj++) {
                    if (jj < vis) {
                        const float pj = expf(sc[jj] - mn);
                        l += pj;
#pragma unroll
                        for (int e = 0; e < DMAX; e++)
                            if (e < p.d) o[e] += pj * vs[jj * p.d + e];
                    }
                }
                m = mn;
            }
        }
        __syncthreads();
    }
    if (live) {
        const float inv = 1.0f / l;
#pragma unroll
        for (int e = 0; e < DMAX; e++)
            if (e < p.d) y[at(p, p.c, bi, i, hh, 0) + e] = o[e] * inv;
        lse[(size_t)bh * p.t + i] = m + logf(l);
    }
}

// D (B, H, T) = rowsum(dO ⊙ O) per head; one thread per (b, h, t).
extern "C" __global__ void attn_bwd_dot_f32(const float* __restrict__ y, const float* __restrict__ dy,
                                            float* __restrict__ dd, Dims p) {
    const size_t n = (size_t)p.b * p.h * p.t;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
        const int ti = (int)(k % p.t), bh = (int)(k / p.t), bi = bh / p.h, hh = bh % p.h;
        const size_t base = at(p, p.c, bi, ti, hh, 0);
        float s = 0.0f;
        for (int e = 0; e < p.d; e++) s += dy[base + e] * y[base + e];
        dd[k] = s;
    }
}

template <int DMAX>
__device__ void attn_bwd_dq(const float* __restrict__ qkv, const float* __restrict__ dy,
                            const float* __restrict__ lse, const float* __restrict__ dd, float* __restrict__ dqkv,
                            Dims p) {
    extern __shared__ float sm[];
    float* ks = sm;
    float* vs = sm + BC * p.d;
    const int bh = blockIdx.y, bi = bh / p.h, hh = bh % p.h;
    const int i0 = blockIdx.x * BR, i = i0 + threadIdx.x;
    const int w3 = 3 * p.c;
    const bool live = i < p.t;
    float q[DMAX], g[DMAX], dq[DMAX];
#pragma unroll
    for (int e = 0; e < DMAX; e++) {
        q[e] = (live && e < p.d) ? qkv[at(p, w3, bi, i, hh, 0) + e] : 0.0f;
        g[e] = (live && e < p.d) ? dy[at(p, p.c, bi, i, hh, 0) + e] : 0.0f;
        dq[e] = 0.0f;
    }
    const float li = live ? lse[(size_t)bh * p.t + i] : 0.0f;
    const float di = live ? dd[(size_t)bh * p.t + i] : 0.0f;
    const int last = p.causal ? min(p.t, i0 + BR) : p.t;
    for (int j0 = 0; j0 < last; j0 += BC) {
        const int nc = min(BC, p.t - j0);
        for (int idx = threadIdx.x; idx < nc * p.d; idx += blockDim.x) {
            const int r = idx / p.d, e = idx % p.d;
            ks[idx] = qkv[at(p, w3, bi, j0 + r, hh, p.c) + e];
            vs[idx] = qkv[at(p, w3, bi, j0 + r, hh, 2 * p.c) + e];
        }
        __syncthreads();
        if (live) {
            const int vis = p.causal ? max(0, min(nc, i + 1 - j0)) : nc;
            for (int jj = 0; jj < vis; jj++) {
                float s = 0.0f, dp = 0.0f;
#pragma unroll
                for (int e = 0; e < DMAX; e++)
                    if (e < p.d) {
                        s += q[e] * ks[jj * p.d + e];
                        dp += g[e] * vs[jj * p.d + e];
                    }
                const float pij = expf(s * p.scale - li);
                const float ds = pij * (dp - di);
#pragma unroll
                for (int e = 0; e < DMAX; e++)
                    if (e < p.d) dq[e] += ds * ks[jj * p.d + e];
            }
        }
        __syncthreads();
    }
    if (live) {
#pragma unroll
        for (int e = 0; e < DMAX; e++)
            if (e < p.d) dqkv[at(p, w3, bi, i, hh, 0) + e] = dq[e] * p.scale;
    }
}

template <int DMAX>
__device__ void attn_bwd_dkv(const float* __restrict__ qkv, const float* __restrict__ dy,
                             const float* __restrict__ lse, const float* __restrict__ dd, float* __restrict__ dqkv,
                             Dims p) {
    extern __shared__ float sm[];
    float* qs = sm;               // (BQ, d)
    float* gs = sm + BQ * p.d;    // (BQ, d): dO
    float* ls = sm + 2 * BQ * p.d;  // (BQ): L
    float* ds_ = ls + BQ;           // (BQ): D
    const int bh = blockIdx.y, bi = bh / p.h, hh = bh % p.h;
    const int j0b = blockIdx.x * BKV, j = j0b + threadIdx.x;
    const int w3 = 3 * p.c;
    const bool live = j < p.t;
    float k[DMAX], v[DMAX], dk[DMAX], dv[DMAX];
#pragma unroll
    for (int e = 0; e < DMAX; e++) {
        k[e] = (live && e < p.d) ? qkv[at(p, w3, bi, j, hh, p.c) + e] : 0.0f;
        v[e] = (live && e < p.d) ? qkv[at(p, w3, bi, j, hh, 2 * p.c) + e] : 0.0f;
        dk[e] = 0.0f;
        dv[e] = 0.0f;
    }
    // causal: queries before this block's first key see none of its keys
    const int first = p.causal ? (j0b / BQ) * BQ : 0;
    for (int i0 = first; i0 < p.t; i0 += BQ) {
        const int nr = min(BQ, p.t - i0);
        for (int idx = threadIdx.x; idx < nr * p.d; idx += blockDim.x) {
            const int r = idx / p.d, e = idx % p.d;
            qs[idx] = qkv[at(p, w3, bi, i0 + r, hh, 0) + e];
            gs[idx] = dy[at(p, p.c, bi, i0 + r, hh, 0) + e];
        }
        for (int r = threadIdx.x; r < nr; r += blockDim.x) {
            ls[r] = lse[(size_t)bh * p.t + i0 + r];
            ds_[r] = dd[(size_t)bh * p.t + i0 + r];
        }
        __syncthreads();
        if (live) {
            const int from = p.causal ? max(0, j - i0) : 0;  // query i sees key j iff i ≥ j
            for (int ii = from; ii < nr; ii++) {
                float s = 0.0f, dp = 0.0f;
#pragma unroll
                for (int e = 0; e < DMAX; e++)
                    if (e < p.d) {
                        s += qs[ii * p.d + e] * k[e];
                        dp += gs[ii * p.d + e] * v[e];
                    }
                const float pij = expf(s * p.scale - ls[ii]);
                const float dsij = pij * (dp - ds_[ii]);
#pragma unroll
                for (int e = 0; e < DMAX; e++)
                    if (e < p.d) {
                        dv[e] += pij * gs[ii * p.d + e];
                        dk[e] += dsij * qs[ii * p.d + e];
                    }
            }
        }
        __syncthreads();
    }
    if (live) {
#pragma unroll
        for (int e = 0; e < DMAX; e++)
            if (e < p.d) {
                dqkv[at(p, w3, bi, j, hh, p.c) + e] = dk[e] * p.scale;
                dqkv[at(p, w3, bi, j, hh, 2 * p.c) + e] = dv[e];
            }
    }
}

#define INSTANCES(DM)                                                                                             \
    extern "C" __global__ void __launch_bounds__(BR) attn_fwd_f32_d##DM(const float* qkv, float* y, float* lse,   \
                                                                        Dims p) {                                 \
        attn_fwd<DM>(qkv, y, lse, p);                                                                             \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(BR) attn_bwd_dq_f32_d##DM(                                       \
        const float* qkv, const float* dy, const float* lse, const float* dd, float* dqkv, Dims p) {              \
        attn_bwd_dq<DM>(qkv, dy, lse, dd, dqkv, p);                                                               \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(BKV) attn_bwd_dkv_f32_d##DM(                                     \
        const float* qkv, const float* dy, const float* lse, const float* dd, float* dqkv, Dims p) {              \
        attn_bwd_dkv<DM>(qkv, dy, lse, dd, dqkv, p);                                                              \
    }

INSTANCES(32)
INSTANCES(64)
INSTANCES(128)
