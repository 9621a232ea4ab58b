// AVX2 + FMA kernels (compiled with -mavx2 -mfma): 6 x 16 float32, 6 x 8 float64 micro-tiles.
#define RNNKIT_ISA_NS avx2
#define RNNKIT_ISA_NAME "avx2"
#define RNNKIT_VBYTES 32
#define RNNKIT_MR_F32 6
#define RNNKIT_NV_F32 2
#define RNNKIT_MR_F64 6
#define RNNKIT_NV_F64 2
#define RNNKIT_MR_SMALL_F32 4
#define RNNKIT_MR_SMALL_F64 4
#include "isa_kernels.inc"
