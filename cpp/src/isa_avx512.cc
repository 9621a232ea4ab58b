// AVX-512 kernels (compiled with -mavx512f -mavx512vl -mavx512bw -mavx512dq -mfma):
// 12 x 32 float32 and 12 x 16 float64 micro-tiles = 24 zmm accumulators.
#define RNNKIT_ISA_NS avx512
#define RNNKIT_ISA_NAME "avx512"
#define RNNKIT_VBYTES 64
#define RNNKIT_MR_F32 12
#define RNNKIT_NV_F32 2
#define RNNKIT_MR_F64 12
#define RNNKIT_NV_F64 2
#define RNNKIT_MR_SMALL_F32 8
#define RNNKIT_MR_SMALL_F64 8
#include "isa_kernels.inc"
