// seqgrad optimizers, gradient clipping and learning-rate schedulers, in one include.
// Everything lives in namespace seqgrad::optim, like torch::optim.
#pragma once

#include "optim/adagrad.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/optimizer.h"
#include "optim/rmsprop.h"
#include "optim/scheduler.h"
#include "optim/sgd.h"
