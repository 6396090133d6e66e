// Stand-in for the CUDA toolkit's <cuda_fp16.h> in the CPU emulation harness (see cudaEmulation.h).
#include "cudaEmulation.h"
