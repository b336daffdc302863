// Trains the tests' small LSTM model for a few steps and writes its parameters (rank 0):
//   mpirun -np N dist_train OUT       data-parallel over the N ranks
//   dist_train OUT --simulate N       one process, the N micro-batches in rank order
// Equal output files mean the distributed run reproduced the one-process run bit for bit
// (tests/dist/CMakeLists.txt, tests/dist/two_hosts.sh).
#include <cstdlib>
#include <string>

#include "io/checkpoint.h"
#include "tests/dist/common.h"

using namespace seqgrad;

int main(int argc, char** argv) {
  dist::Environment env(argc, argv);
  if (argc != 2 && !(argc == 4 && std::string(argv[2]) == "--simulate")) {
    fmt::print(stderr, "usage: dist_train OUT [--simulate N]\n");
    return env.fail(2);
  }
  dist_test::Net net(DType::f32);
  if (argc == 4) dist_test::train_reference(net, std::atoi(argv[3]), 5, 4, DType::f32);
  else dist_test::train_parallel(net, 5, 4, DType::f32);
  if (env.rank() == 0) io::save(net, argv[1]);
  fmt::print("rank {} of {}: trained\n", env.rank(), env.world_size());
  return 0;
}
