// seqgrad layers: every module, cell and sequence layer, and the helpers around them, in one include.
#pragma once

#include "layers/activation.h"
#include "layers/dropout.h"
#include "layers/embedding.h"
#include "layers/gru.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "layers/lstm.h"
#include "layers/masking.h"
#include "layers/module.h"
#include "layers/quantize.h"
#include "layers/recurrent.h"
#include "layers/rnn.h"
#include "layers/sequential.h"
