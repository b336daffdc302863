// One rank throws while the others wait in a collective: the job must end (MPI_Abort through the
// std::terminate handler dist::Environment installs) with that rank's message, not hang.
#include <stdexcept>

#include "dist/dist.h"

int main(int argc, char** argv) {
  seqgrad::dist::Environment env(argc, argv);
  if (env.rank() == env.world_size() - 1) throw std::runtime_error("the last rank fails on purpose");
  seqgrad::dist::barrier();  // never completes: the last rank is gone
  return 0;
}
