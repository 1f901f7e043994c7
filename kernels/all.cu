// The one translation unit build.rs compiles: every kernel family, so one nvcc invocation
// produces one fatbin (SASS per architecture in parallel via --threads, plus PTX).
#include "dequant.cu"
#include "matvec.cu"
#include "matmul.cu"
#include "quantize.cu"
#include "norm.cu"
#include "attention.cu"
#include "elementwise.cu"
