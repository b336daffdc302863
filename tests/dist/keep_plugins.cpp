// Sanitizer builds only (tests/dist/CMakeLists.txt): Open MPI unloads its plugins (dlclose) in
// MPI_Finalize, after which LeakSanitizer cannot name the library that made their remaining
// allocations, so lsan.supp could not match them. This definition takes the place of libc's for
// the whole process: the plugins stay loaded until exit, and their leaks stay attributable.
extern "C" int dlclose(void*) { return 0; }
