// Stand-in for the CUDA toolkit's <cuda_runtime_api.h> in the CPU emulation harness (see cudaEmulation.h).
#include "cudaEmulation.h"
