/*
 * Test inputs shared by the C++ harnesses (pluginContractTest.cpp, kernelEmulationCheck.cpp): images smooth at the
 * pixel scale and peaked softmax saliency, both fp32, deterministic for a given generator state.
 */
#ifndef FRPT_SAMPLE_TEST_INPUTS_H
#define FRPT_SAMPLE_TEST_INPUTS_H

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace frptTest
{

//! Random images [n, c, h, w] in [0, 1], smooth at the pixel scale: uniform noise on a 9 x 9 lattice, bilinearly
//! interpolated (output error is grid error x image gradient, so tolerances of 1e-5 need smooth images).
inline std::vector<float> smoothImage(int32_t n, int32_t c, int32_t h, int32_t w, std::mt19937& rng)
{
    std::uniform_real_distribution<float> u(0.F, 1.F);
    std::vector<float> img(
        static_cast<size_t>(n) * static_cast<size_t>(c) * static_cast<size_t>(h) * static_cast<size_t>(w));
    constexpr int32_t kCELLS{8};
    float* out = img.data();
    for (int64_t plane = 0; plane < static_cast<int64_t>(n) * c; ++plane)
    {
        float lattice[kCELLS + 1][kCELLS + 1];
        for (auto& row : lattice)
        {
            for (float& v : row)
            {
                v = u(rng);
            }
        }
        for (int32_t y = 0; y < h; ++y)
        {
            for (int32_t x = 0; x < w; ++x)
            {
                float const sy = h > 1 ? static_cast<float>(y * kCELLS) / static_cast<float>(h - 1) : 0.F;
                float const sx = w > 1 ? static_cast<float>(x * kCELLS) / static_cast<float>(w - 1) : 0.F;
                int32_t const y0 = std::min(static_cast<int32_t>(sy), kCELLS - 1);
                int32_t const x0 = std::min(static_cast<int32_t>(sx), kCELLS - 1);
                float const ey = sy - static_cast<float>(y0);
                float const ex = sx - static_cast<float>(x0);
                out[(plane * h + y) * w + x] = (1 - ey) * ((1 - ex) * lattice[y0][x0] + ex * lattice[y0][x0 + 1])
                    + ey * ((1 - ex) * lattice[y0 + 1][x0] + ex * lattice[y0 + 1][x0 + 1]);
            }
        }
    }
    return img;
}

//! Softmax-normalised saliency [n, 1, g, g] with three random peaks on normal noise.
inline std::vector<float> peakedSaliency(int32_t n, int32_t g, std::mt19937& rng)
{
    std::normal_distribution<float> noise(0.F, 1.F);
    std::uniform_int_distribution<int32_t> cell(0, g * g - 1);
    int32_t const gg = g * g;
    std::vector<float> sal(static_cast<size_t>(n) * static_cast<size_t>(gg));
    for (int32_t i = 0; i < n; ++i)
    {
        float* s = sal.data() + static_cast<int64_t>(i) * gg;
        for (int32_t e = 0; e < gg; ++e)
        {
            s[e] = noise(rng);
        }
        for (int32_t k = 0; k < 3; ++k)
        {
            s[cell(rng)] += 8.F;
        }
        float const top = *std::max_element(s, s + gg);
        double total = 0.0;
        for (int32_t e = 0; e < gg; ++e)
        {
            s[e] = std::exp(s[e] - top);
            total += s[e];
        }
        for (int32_t e = 0; e < gg; ++e)
        {
            s[e] = static_cast<float>(s[e] / total);
        }
    }
    return sal;
}

} // namespace frptTest

#endif // FRPT_SAMPLE_TEST_INPUTS_H
