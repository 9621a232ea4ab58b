// Portable kernels: 16-byte vectors (SSE2 on x86-64, whatever the compiler maps them to elsewhere).
#define RNNKIT_ISA_NS generic
#define RNNKIT_ISA_NAME "generic"
#define RNNKIT_VBYTES 16
#define RNNKIT_MR_F32 4
#define RNNKIT_NV_F32 2
#define RNNKIT_MR_F64 4
#define RNNKIT_NV_F64 2
#define RNNKIT_MR_SMALL_F32 4
#define RNNKIT_MR_SMALL_F64 4
#include "isa_kernels.inc"
