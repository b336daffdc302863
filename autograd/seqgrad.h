// seqgrad: everything a user needs, in one include.
#pragma once

#include "autograd/debug.h"
#include "autograd/gradcheck.h"
#include "autograd/matmul_precision.h"
#include "autograd/ops.h"
#include "autograd/tape.h"
#include "autograd/tensor.h"
