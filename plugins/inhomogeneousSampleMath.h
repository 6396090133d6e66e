/*
 * Per-element math of FRPT's inhomogeneous sampling (docs/design.md §4), shared by the CUDA kernels and the host
 * build that CI checks against the PyTorch reference `frpt/sampling.py` on a CPU.
 *
 * Everything here is `__host__ __device__` inline when compiled by nvcc and plain `inline` under a host compiler,
 * so the host library `libfrpt_sampler_host.so` and the kernels run the very same coordinate and weight code.
 * All math is fp32. Layouts:
 *   saliency  [g, g]        fp32, one image, row-major (row = y)
 *   grid      [g, g, 2]     fp32, (x, y) in [-1, 1] on the coarse lattice
 *   image     [H, W]        one channel plane, any element type convertible to float
 */
#ifndef FRPT_INHOMOGENEOUS_SAMPLE_MATH_H
#define FRPT_INHOMOGENEOUS_SAMPLE_MATH_H

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define FRPT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FRPT_HOST_DEVICE inline
#endif

namespace frpt
{

//! Problem description shared by the kernels, the host build and the plugin (C layout, passed by value).
struct SampleParams
{
    int32_t n;    //!< batch
    int32_t c;    //!< channels
    int32_t h;    //!< image height
    int32_t w;    //!< image width
    int32_t g;    //!< coarse grid size (saliency is [n, 1, g, g])
    int32_t outH; //!< output height
    int32_t outW; //!< output width
    int32_t pad;  //!< replication padding in cells
    float fwhm;   //!< Gaussian full width at half maximum in cells
};

//! Shared memory of the one-block-per-image coarse-grid kernel: saliency and two row-pass planes ([g, g] each),
//! the Gaussian taps ([2 pad + 1]) and the padded-lattice coordinates ([g + 2 pad]).
inline int64_t coarseGridSharedBytes(int32_t g, int32_t pad)
{
    int64_t const g64 = g;
    int64_t const pad64 = pad;
    int64_t const floats = 3 * g64 * g64 + (2 * pad64 + 1) + (g64 + 2 * pad64);
    return floats * static_cast<int64_t>(sizeof(float));
}

//! Largest coarse-grid shared memory the kernels accept (the default per-block limit on every target GPU).
constexpr int64_t kMAX_COARSE_SHARED_BYTES{48 * 1024};

//! Largest batch: the sample kernel puts the batch on gridDim.y.
constexpr int32_t kMAX_BATCH{65535};

//! Whether `p` describes a problem the kernels handle (n == 0 is a valid empty batch).
inline bool isValid(SampleParams const& p)
{
    return p.n >= 0 && p.n <= kMAX_BATCH && p.c >= 1 && p.h >= 1 && p.w >= 1 && p.g >= 2 && p.outH >= 1 && p.outW >= 1
        && p.pad >= 0 && p.fwhm > 0.F && coarseGridSharedBytes(p.g, p.pad) <= kMAX_COARSE_SHARED_BYTES
        && static_cast<int64_t>(p.h) * p.w <= INT32_MAX && static_cast<int64_t>(p.outH) * p.outW <= INT32_MAX;
}

//! 4 ln 2: k(d) = exp(-4 ln2 d^2 / fwhm^2).
constexpr float kFOUR_LN2{2.772588722239781F};

FRPT_HOST_DEVICE int32_t clampIndex(int32_t i, int32_t n)
{
    return i < 0 ? 0 : (i >= n ? n - 1 : i);
}

//! torch.clamp(v, lo, hi): NaN stays NaN (fminf / fmaxf would return a bound for it).
FRPT_HOST_DEVICE float clampKeepNan(float v, float lo, float hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

//! Gaussian tap for offset d (cells) of a kernel with full width at half maximum `fwhm`.
FRPT_HOST_DEVICE float gaussianTap(int32_t d, float fwhm)
{
    float const df = static_cast<float>(d);
    return expf(-kFOUR_LN2 * df * df / (fwhm * fwhm));
}

//! Coordinate (j - pad) / (g - 1) of index j of the replication-padded [g + 2 pad] lattice.
FRPT_HOST_DEVICE float paddedCoordinate(int32_t j, int32_t g, int32_t pad)
{
    return static_cast<float>(j - pad) / static_cast<float>(g - 1);
}

//! First (horizontal) blur pass at row i, column j of the g x g result.
//!
//! Replication padding is folded into index clamping. `taps` holds k(-pad..pad) ([2 pad + 1]) and `coords` the
//! padded-lattice coordinates paddedCoordinate(0 .. g + 2 pad - 1).
//! Writes h0 = sum_t k_t A[i, clamp(j + t - pad)] and hx = sum_t k_t Px(j + t) A[i, clamp(j + t - pad)].
FRPT_HOST_DEVICE void blurRowEntry(float const* saliency, float const* taps, float const* coords, int32_t g,
    int32_t pad, int32_t i, int32_t j, float& h0, float& hx)
{
    float s0 = 0.F;
    float sx = 0.F;
    float const* row = saliency + i * g;
    for (int32_t t = 0; t <= 2 * pad; ++t)
    {
        float const ka = taps[t] * row[clampIndex(j + t - pad, g)];
        s0 += ka;
        sx += ka * coords[j + t];
    }
    h0 = s0;
    hx = sx;
}

//! Second (vertical) blur pass at (i, j) on the row-pass results h0, hx ([g, g] each), then the normalised
//! clamped grid point: gx = clamp(2 numx / den - 1), gy = clamp(2 numy / den - 1). As in the reference, a NaN
//! stays NaN: NaN / Inf saliency in the window, or den = 0 (all-zero saliency, or softmax underflow when g > 2 pad +
//! 1).
FRPT_HOST_DEVICE void blurColumnEntry(float const* h0, float const* hx, float const* taps, float const* coords,
    int32_t g, int32_t pad, int32_t i, int32_t j, float& gx, float& gy)
{
    float den = 0.F;
    float numx = 0.F;
    float numy = 0.F;
    for (int32_t t = 0; t <= 2 * pad; ++t)
    {
        int32_t const at = clampIndex(i + t - pad, g) * g + j;
        float const kd = taps[t] * h0[at];
        den += kd;
        numx += taps[t] * hx[at];
        numy += kd * coords[i + t];
    }
    gx = clampKeepNan(2.F * numx / den - 1.F, -1.F, 1.F);
    gy = clampKeepNan(2.F * numy / den - 1.F, -1.F, 1.F);
}

//! One axis of PyTorch's bilinear resize with align_corners=False (half-pixel centres, clamped at 0):
//! source indices i0, i1 and weight w1 of i1 for output index `o` when resizing `inSize` -> `outSize`.
struct LinearTap
{
    int32_t i0;
    int32_t i1;
    float w1;
};

FRPT_HOST_DEVICE LinearTap halfPixelTap(int32_t o, int32_t inSize, int32_t outSize)
{
    float const scale = static_cast<float>(inSize) / static_cast<float>(outSize);
    float const src = fmaxf(scale * (static_cast<float>(o) + 0.5F) - 0.5F, 0.F);
    int32_t const i0 = static_cast<int32_t>(src);
    int32_t const i1 = i0 + (i0 < inSize - 1 ? 1 : 0);
    return LinearTap{i0, i1, src - static_cast<float>(i0)};
}

//! Bilinear grid_sample (align_corners=True, zeros padding) footprint of one output pixel on an [H, W] plane.
//! As in PyTorch, the value of a corner outside the plane is never used: its offset is -1 and it contributes 0 x weight
//! (NaN only when the grid point is NaN), so a non-finite pixel cannot leak into the edges; a corner inside is always
//! used, even at weight 0.
struct SamplePoint
{
    int32_t offset[4];
    float weight[4];
};

//! Grid value (gx, gy) at output pixel (y, x): bilinear align_corners=False upsampling of the [g, g, 2] grid.
FRPT_HOST_DEVICE void upsampledGrid(
    float const* grid, int32_t g, int32_t outH, int32_t outW, int32_t y, int32_t x, float& gx, float& gy)
{
    LinearTap const ty = halfPixelTap(y, g, outH);
    LinearTap const tx = halfPixelTap(x, g, outW);
    float const wy0 = 1.F - ty.w1;
    float const wx0 = 1.F - tx.w1;
    float const* r0 = grid + 2 * ty.i0 * g;
    float const* r1 = grid + 2 * ty.i1 * g;
    gx = wy0 * (wx0 * r0[2 * tx.i0] + tx.w1 * r0[2 * tx.i1]) + ty.w1 * (wx0 * r1[2 * tx.i0] + tx.w1 * r1[2 * tx.i1]);
    gy = wy0 * (wx0 * r0[2 * tx.i0 + 1] + tx.w1 * r0[2 * tx.i1 + 1])
        + ty.w1 * (wx0 * r1[2 * tx.i0 + 1] + tx.w1 * r1[2 * tx.i1 + 1]);
}

//! Footprint of normalised point (gx, gy) on an [H, W] plane, as PyTorch's bilinear grid_sampler computes it.
FRPT_HOST_DEVICE SamplePoint samplePoint(float gx, float gy, int32_t h, int32_t w)
{
    float const ix = (gx + 1.F) / 2.F * static_cast<float>(w - 1);
    float const iy = (gy + 1.F) / 2.F * static_cast<float>(h - 1);
    float const fx = floorf(ix);
    float const fy = floorf(iy);
    // Outside [-1, size) (only a NaN grid point gets there) both corners of the axis are outside: no float -> int UB.
    int32_t const x0 = fx >= -1.F && fx < static_cast<float>(w) ? static_cast<int32_t>(fx) : -2;
    int32_t const y0 = fy >= -1.F && fy < static_cast<float>(h) ? static_cast<int32_t>(fy) : -2;
    float const ex = ix - fx;
    float const ey = iy - fy;
    float const corner[4] = {(1.F - ex) * (1.F - ey), ex * (1.F - ey), (1.F - ex) * ey, ex * ey};
    SamplePoint p{};
    for (int32_t k = 0; k < 4; ++k)
    {
        int32_t const cx = x0 + (k & 1);
        int32_t const cy = y0 + (k >> 1);
        bool const inside = cx >= 0 && cx < w && cy >= 0 && cy < h;
        p.offset[k] = inside ? cy * w + cx : -1;
        p.weight[k] = corner[k];
    }
    return p;
}

//! Bilinear value of one channel plane at footprint `p`, accumulated in fp32. A corner outside reads pixel 0 and
//! discards it (an unconditional load keeps the per-channel loop branch-free and the register count low), so it adds
//! exactly 0 x weight.
template <typename T>
FRPT_HOST_DEVICE float interpolate(T const* plane, SamplePoint const& p)
{
    float v = 0.F;
    for (int32_t k = 0; k < 4; ++k)
    {
        int32_t const offset = p.offset[k];
        float const value = static_cast<float>(plane[offset < 0 ? 0 : offset]);
        v += p.weight[k] * (offset < 0 ? 0.F : value);
    }
    return v;
}

} // namespace frpt

#endif // FRPT_INHOMOGENEOUS_SAMPLE_MATH_H
