// What dist/*.cpp share: the MPI handle and the collective helpers built on it. Not installed
// for users (dist.h is the interface); the one place <mpi.h> is included.
#pragma once

#include <mpi.h>

#include <string>

namespace seqgrad::dist::detail {

// True between a launched Environment's MPI_Init_thread and MPI_Finalize (never when run alone).
bool active();
MPI_Comm comm();

// Aborts the job with MPI's message when an MPI call fails (MPI_ERRORS_ARE_FATAL normally does
// this first; this catches the rest).
void check_mpi(int rc, const char* call);

// Every rank passes its own error ("" if none). If any is non-empty, every rank throws
// std::invalid_argument("<what>: rank <r>: <error>") for the lowest failing rank r.
void agree(const std::string& error, const char* what);

// root's string on every rank.
void broadcast_string(std::string& s, int root);

}  // namespace seqgrad::dist::detail
