// seqgrad I/O: safetensors files, model files and training checkpoints, Keras weight import,
// the sequence CSV dataset and the DataLoader, in one include. Everything is in seqgrad::io.
#pragma once

#include "io/checkpoint.h"
#include "io/csv_dataset.h"
#include "io/dataloader.h"
#include "io/file.h"
#include "io/keras.h"
#include "io/safetensors.h"
