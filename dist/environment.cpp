// Environment, the job-wide helpers (rank, abort, allreduce_mean) and the checked broadcasts.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>

#include <fmt/format.h>

#include "dist/dist.h"
#include "dist/internal.h"

namespace seqgrad::dist {

namespace {
bool g_active = false;
int g_rank = 0, g_size = 1;
MPI_Comm g_comm = MPI_COMM_NULL;
std::terminate_handler g_previous_terminate = nullptr;

// mpirun (Open MPI), other PMI launchers and Slurm's srun set these; a plain ./program sets none.
// Without them MPI is not initialised: Open MPI's singleton start costs about a second.
bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

[[noreturn]] void abort_job(int status, const std::string& why) {
  std::fflush(stdout);
  fmt::print(stderr, "seqgrad::dist: rank {} of {}: {}; aborting the job\n", g_rank, g_size, why);
  std::fflush(stderr);
  if (g_active) MPI_Abort(g_comm, status);
  std::_Exit(status);
}

[[noreturn]] void on_terminate() {
  std::string what = "std::terminate called without an active exception";
  if (std::exception_ptr e = std::current_exception()) try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = fmt::format("uncaught exception: {}", x.what());
    } catch (...) {
      what = "uncaught exception of a type not derived from std::exception";
    }
  abort_job(1, what);
}
}  // namespace

namespace detail {
bool active() { return g_active; }
MPI_Comm comm() { return g_comm; }

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  abort_job(1, fmt::format("{} failed: {}", call, std::string_view(text, size_t(len))));
}

void agree(const std::string& error, const char* what) {
  if (!g_active) {
    if (!error.empty()) throw std::invalid_argument(fmt::format("{}: {}", what, error));
    return;
  }
  std::vector<int> lengths(static_cast<size_t>(g_size));
  int mine = int(error.size());
  check_mpi(MPI_Allgather(&mine, 1, MPI_INT, lengths.data(), 1, MPI_INT, g_comm), "MPI_Allgather");
  std::vector<int> offsets(static_cast<size_t>(g_size));
  int total = 0;
  for (int r = 0; r < g_size; ++r) offsets[size_t(r)] = total, total += lengths[size_t(r)];
  if (total == 0) return;
  std::string all(size_t(total), '\0');
  check_mpi(MPI_Allgatherv(error.data(), mine, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, g_comm),
            "MPI_Allgatherv");
  for (int r = 0; r < g_size; ++r)
    if (lengths[size_t(r)])
      throw std::invalid_argument(
          fmt::format("{}: rank {}: {}", what, r, all.substr(size_t(offsets[size_t(r)]), size_t(lengths[size_t(r)]))));
}

void broadcast_string(std::string& s, int root) {
  uint64_t n = s.size();
  check_mpi(MPI_Bcast(&n, 1, MPI_UINT64_T, root, g_comm), "MPI_Bcast");
  s.resize(size_t(n));
  check_mpi(MPI_Bcast(s.data(), int(n), MPI_CHAR, root, g_comm), "MPI_Bcast");
}
}  // namespace detail

Environment::Environment(int& argc, char**& argv) : uncaught_at_start_(std::uncaught_exceptions()) {
  if (g_active) throw std::logic_error("dist::Environment: one per program (MPI is already initialised)");
  if (!launched_by_mpi()) return;  // alone: nothing changes, not even std::terminate's behaviour
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  if (provided < MPI_THREAD_FUNNELED) {
    MPI_Finalize();
    throw std::runtime_error("dist::Environment: this MPI library does not provide MPI_THREAD_FUNNELED");
  }
  // A communicator of our own: the user's MPI calls on MPI_COMM_WORLD cannot match ours.
  MPI_Comm_dup(MPI_COMM_WORLD, &g_comm);
  MPI_Comm_rank(g_comm, &g_rank);
  MPI_Comm_size(g_comm, &g_size);
  g_active = true;
  g_previous_terminate = std::set_terminate(on_terminate);
}

Environment::~Environment() {
  if (!g_active) return;
  // Leaving main by an exception with other ranks still inside collectives: finalising would hang.
  if (std::uncaught_exceptions() > uncaught_at_start_) abort_job(1, "exception unwinding through dist::Environment");
  std::set_terminate(g_previous_terminate);
  MPI_Comm_free(&g_comm);
  MPI_Finalize();
  g_active = false;
  g_rank = 0, g_size = 1;
}

int Environment::rank() const { return g_rank; }
int Environment::world_size() const { return g_size; }

int Environment::fail(int status) const {
  if (g_size > 1) abort_job(status, fmt::format("failed with status {}", status));
  return status;
}

int rank() { return g_rank; }
int world_size() { return g_size; }
void abort(int status) { abort_job(status, fmt::format("dist::abort({})", status)); }

void barrier() {
  if (g_active) detail::check_mpi(MPI_Barrier(g_comm), "MPI_Barrier");
}

double allreduce_mean(double value) {
  if (!g_active) return value;
  std::vector<double> all(static_cast<size_t>(g_size));
  detail::check_mpi(MPI_Allgather(&value, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, g_comm), "MPI_Allgather");
  double sum = 0;
  for (double v : all) sum += v;  // rank order: the same bits everywhere
  return sum / double(g_size);
}

}  // namespace seqgrad::dist
