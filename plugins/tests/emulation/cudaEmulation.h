/*
 * Host emulation of the part of CUDA that inhomogeneousSampleKernel.cu uses, so the CPU emulation harness compiles
 * the real kernels with a host C++20 compiler and runs them (tests/test_kernel_emulation.py). Test code only: the
 * harness puts this folder first on the include path, where its cuda_runtime.h, cuda_runtime_api.h and cuda_fp16.h
 * stand in for the toolkit's; the device build never sees it.
 *
 *  - cudaLaunchKernelEx checks the configuration as the runtime does (1..1024 threads per block, grid limits, dynamic
 *    shared memory <= 48 KiB), records it, then runs the grid synchronously, one block after another; in dry-run mode
 *    it only records (frptEmulation::setDryRun), so tests can check launch geometry of problems too big to run.
 *  - Each CUDA thread of a block is a std::thread with its own threadIdx / blockIdx / blockDim / gridDim (one thread
 *    per thread of a block, started once per launch and reused for each block).
 *  - __syncthreads() is one std::barrier per block; a thread that returns leaves it (arrive_and_drop), as exited
 *    threads stop counting on the GPU.
 *  - Dynamic shared memory is one buffer (the harness translation unit defines the kernels' `extern __shared__` array
 *    and hands it over with useSharedStorage). Before every block it is filled with 0xFF bytes, so a float read before
 *    it is written is NaN and shows in the output; after the block the bytes past the launch's dynamicSmemBytes must
 *    still be 0xFF (a write there fails the launch); under AddressSanitizer they are also poisoned, so any access past
 *    the exact size is reported where it happens.
 *  - __half is a host half type (_Float16: round-to-nearest-even conversions, like __float2half_rn).
 */
#ifndef FRPT_CUDA_EMULATION_H
#define FRPT_CUDA_EMULATION_H

#include <barrier>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#define __global__
#define __host__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__

struct uint3
{
    unsigned int x;
    unsigned int y;
    unsigned int z;
};

struct dim3
{
    unsigned int x;
    unsigned int y;
    unsigned int z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
        : x(vx)
        , y(vy)
        , z(vz)
    {
    }
};

struct alignas(8) float2
{
    float x;
    float y;
};

struct __half
{
    _Float16 value;
    __half() = default;
    __half(float f)
        : value(static_cast<_Float16>(f))
    {
    }
    operator float() const
    {
        return static_cast<float>(value);
    }
};
static_assert(sizeof(__half) == 2, "__half must be 2 bytes, like the device type");

struct CUstream_st;
using cudaStream_t = CUstream_st*;

enum cudaError
{
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorLaunchFailure = 719,
};
using cudaError_t = cudaError;

struct cudaLaunchAttribute;

struct cudaLaunchConfig_t
{
    dim3 gridDim;
    dim3 blockDim;
    size_t dynamicSmemBytes;
    cudaStream_t stream;
    cudaLaunchAttribute* attrs;
    unsigned int numAttrs;
};

inline thread_local uint3 threadIdx{};
inline thread_local uint3 blockIdx{};
inline thread_local dim3 blockDim{};
inline thread_local dim3 gridDim{};

namespace frptEmulation
{

//! One launch as the runtime saw it.
struct Launch
{
    dim3 grid;
    dim3 block;
    size_t sharedBytes;
};

constexpr size_t kMAX_DYNAMIC_SHARED{48 * 1024};
constexpr unsigned char kPOISON{0xFF};

inline thread_local std::barrier<>* tBlockBarrier{nullptr};
inline std::vector<Launch> gLaunches;
inline bool gDryRun{false};
inline unsigned char* gShared{nullptr};
inline size_t gSharedCapacity{0};
inline cudaError_t gLastError{cudaSuccess};

//! The buffer behind the kernels' `extern __shared__` array (defined by the harness translation unit).
inline void useSharedStorage(void* storage, size_t bytes)
{
    gShared = static_cast<unsigned char*>(storage);
    gSharedCapacity = bytes;
}

//! With `on`, launches are checked and recorded but not run.
inline void setDryRun(bool on)
{
    gDryRun = on;
}

inline void poisonTail(size_t used)
{
#if defined(__SANITIZE_ADDRESS__)
    ASAN_POISON_MEMORY_REGION(gShared + used, gSharedCapacity - used);
#else
    (void)used;
#endif
}

inline void unpoisonAll()
{
#if defined(__SANITIZE_ADDRESS__)
    ASAN_UNPOISON_MEMORY_REGION(gShared, gSharedCapacity);
#endif
}

inline cudaError_t fail(cudaError_t status)
{
    gLastError = status;
    return status;
}

//! Bytes past the launch's dynamic shared memory must still hold the poison; reports the first that does not.
inline cudaError_t checkTail(Launch const& launch, uint3 block)
{
    for (size_t i = launch.sharedBytes; i < gSharedCapacity; ++i)
    {
        if (gShared[i] != kPOISON)
        {
            std::fprintf(stderr,
                "[emulation] block (%u, %u, %u) wrote shared memory at byte %zu, past the %zu bytes the launch asked "
                "for\n",
                block.x, block.y, block.z, i, launch.sharedBytes);
            return fail(cudaErrorLaunchFailure);
        }
    }
    return cudaSuccess;
}

//! Runs `body` on every block of `launch`, one block after another, with one std::thread per CUDA thread of a block
//! (created once per launch and reused for each block). Between blocks the calling thread poisons the shared memory,
//! gives the block a fresh barrier and checks what the previous block left past its shared-memory size.
template <typename Body>
cudaError_t runGrid(Launch const& launch, Body const& body)
{
    dim3 const b = launch.block;
    size_t const nbThreads = static_cast<size_t>(b.x) * b.y * b.z;
    std::barrier<> phase(static_cast<std::ptrdiff_t>(nbThreads + 1)); // workers + this thread: block start, block end
    std::optional<std::barrier<>> blockBarrier;
    uint3 current{};
    bool done = false;
    std::vector<std::thread> workers;
    workers.reserve(nbThreads);
    auto const worker = [&](uint3 id)
    {
        threadIdx = id;
        blockDim = launch.block;
        gridDim = launch.grid;
        for (;;)
        {
            phase.arrive_and_wait();
            if (done)
            {
                return;
            }
            blockIdx = current;
            tBlockBarrier = &*blockBarrier;
            body();
            blockBarrier->arrive_and_drop();
            phase.arrive_and_wait();
        }
    };
    auto const stop = [&]
    {
        done = true;
        for (size_t missing = workers.size(); missing < nbThreads; ++missing)
        {
            phase.arrive_and_drop();
        }
        phase.arrive_and_wait();
        for (std::thread& t : workers)
        {
            t.join();
        }
    };
    try
    {
        for (unsigned int z = 0; z < b.z; ++z)
        {
            for (unsigned int y = 0; y < b.y; ++y)
            {
                for (unsigned int x = 0; x < b.x; ++x)
                {
                    workers.emplace_back(worker, uint3{x, y, z});
                }
            }
        }
    }
    catch (std::exception const& e)
    {
        std::fprintf(stderr, "[emulation] cannot start %zu threads: %s\n", nbThreads, e.what());
        stop();
        return fail(cudaErrorLaunchFailure);
    }
    dim3 const g = launch.grid;
    for (unsigned int z = 0; z < g.z; ++z)
    {
        for (unsigned int y = 0; y < g.y; ++y)
        {
            for (unsigned int x = 0; x < g.x; ++x)
            {
                unpoisonAll();
                std::memset(gShared, kPOISON, gSharedCapacity);
                poisonTail(launch.sharedBytes);
                current = uint3{x, y, z};
                blockBarrier.emplace(static_cast<std::ptrdiff_t>(nbThreads));
                phase.arrive_and_wait(); // the block runs
                phase.arrive_and_wait(); // ... and is done
                unpoisonAll();
                cudaError_t const status = checkTail(launch, current);
                if (status != cudaSuccess)
                {
                    stop();
                    return status;
                }
            }
        }
    }
    stop();
    return cudaSuccess;
}

} // namespace frptEmulation

inline void __syncthreads()
{
    frptEmulation::tBlockBarrier->arrive_and_wait();
}

inline cudaError_t cudaGetLastError()
{
    cudaError_t const status = frptEmulation::gLastError;
    frptEmulation::gLastError = cudaSuccess;
    return status;
}

//! The runtime's launch entry point: checks, records and (unless in dry-run mode) runs the grid synchronously.
template <typename... Params, typename... Args>
cudaError_t cudaLaunchKernelEx(cudaLaunchConfig_t const* config, void (*kernel)(Params...), Args&&... args)
{
    using namespace frptEmulation;
    dim3 const g = config->gridDim;
    dim3 const b = config->blockDim;
    uint64_t const nbThreads = static_cast<uint64_t>(b.x) * b.y * b.z;
    bool const shapeOk = nbThreads >= 1 && nbThreads <= 1024 && b.z <= 64 && g.x >= 1 && g.x <= 2147483647U && g.y >= 1
        && g.y <= 65535 && g.z >= 1 && g.z <= 65535;
    if (!shapeOk)
    {
        return fail(cudaErrorInvalidConfiguration);
    }
    if (config->dynamicSmemBytes > kMAX_DYNAMIC_SHARED || config->dynamicSmemBytes > gSharedCapacity)
    {
        return fail(cudaErrorInvalidValue);
    }
    Launch const launch{g, b, config->dynamicSmemBytes};
    gLaunches.push_back(launch);
    if (gDryRun)
    {
        return cudaSuccess;
    }
    std::tuple<Params...> const params(std::forward<Args>(args)...); // copied, as kernel parameters are
    return runGrid(launch, [&params, kernel] { std::apply(kernel, params); });
}

#endif // FRPT_CUDA_EMULATION_H
