/*
 * Host (CPU) build of the kernels' per-element math, as libfrpt_sampler_host.so with a C ABI.
 *
 * It runs the same inhomogeneousSampleMath.h functions as the CUDA kernels, in the same per-element order,
 * so CI proves the kernel math against the PyTorch reference without a GPU (tests/test_kernel_host_math.py),
 * and the contract harness uses it as the expected values of a GPU enqueue. fp32 only.
 */
#include "inhomogeneousSampleMath.h"

#include <vector>

extern "C"
{
    //! saliency [n, 1, g, g] fp32 -> grid [n, g, g, 2] fp32. Returns 0, or 1 for invalid params.
    int32_t frptHostCoarseGrid(frpt::SampleParams params, float const* saliency, float* grid)
    {
        if (!frpt::isValid(params))
        {
            return 1;
        }
        int32_t const gg = params.g * params.g;
        int32_t const nbTaps = 2 * params.pad + 1;
        int32_t const nbCoords = params.g + 2 * params.pad;
        std::vector<float> tapStore(static_cast<size_t>(nbTaps));
        std::vector<float> coordStore(static_cast<size_t>(nbCoords));
        std::vector<float> h0Store(static_cast<size_t>(gg));
        std::vector<float> hxStore(static_cast<size_t>(gg));
        float* taps = tapStore.data();
        float* coords = coordStore.data();
        float* h0 = h0Store.data();
        float* hx = hxStore.data();
        for (int32_t t = 0; t < nbTaps; ++t)
        {
            taps[t] = frpt::gaussianTap(t - params.pad, params.fwhm);
        }
        for (int32_t j = 0; j < nbCoords; ++j)
        {
            coords[j] = frpt::paddedCoordinate(j, params.g, params.pad);
        }
        for (int32_t n = 0; n < params.n; ++n)
        {
            float const* sal = saliency + static_cast<int64_t>(n) * gg;
            for (int32_t e = 0; e < gg; ++e)
            {
                frpt::blurRowEntry(sal, taps, coords, params.g, params.pad, e / params.g, e % params.g, h0[e], hx[e]);
            }
            float* dst = grid + static_cast<int64_t>(n) * 2 * gg;
            for (int32_t e = 0; e < gg; ++e)
            {
                frpt::blurColumnEntry(
                    h0, hx, taps, coords, params.g, params.pad, e / params.g, e % params.g, dst[2 * e], dst[2 * e + 1]);
            }
        }
        return 0;
    }

    //! image [n, c, h, w] fp32 + grid [n, g, g, 2] fp32 -> output [n, c, outH, outW] fp32. Returns 0, or 1.
    int32_t frptHostSampleImage(frpt::SampleParams params, float const* image, float const* grid, float* output)
    {
        if (!frpt::isValid(params))
        {
            return 1;
        }
        int64_t const inPlane = static_cast<int64_t>(params.h) * params.w;
        int64_t const outPlane = static_cast<int64_t>(params.outH) * params.outW;
        for (int64_t n = 0; n < params.n; ++n)
        {
            float const* nGrid = grid + n * 2 * params.g * params.g;
            for (int32_t y = 0; y < params.outH; ++y)
            {
                for (int32_t x = 0; x < params.outW; ++x)
                {
                    float gx;
                    float gy;
                    frpt::upsampledGrid(nGrid, params.g, params.outH, params.outW, y, x, gx, gy);
                    frpt::SamplePoint const footprint = frpt::samplePoint(gx, gy, params.h, params.w);
                    for (int64_t c = 0; c < params.c; ++c)
                    {
                        output[(n * params.c + c) * outPlane + y * params.outW + x]
                            = frpt::interpolate(image + (n * params.c + c) * inPlane, footprint);
                    }
                }
            }
        }
        return 0;
    }
}
