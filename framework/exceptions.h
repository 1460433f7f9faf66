#ifndef SLUICE_FRAMEWORK_EXCEPTIONS_H_
#define SLUICE_FRAMEWORK_EXCEPTIONS_H_

// Whether this build has C++ exceptions. sluice never throws across its
// API; with exceptions on, it catches what a user callback throws and
// reports it as kInternal. Many monorepos build with -fno-exceptions
// (./bazelw build --config=noexcept): the catching is then compiled out,
// and a callback cannot throw in the first place.
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#define SLUICE_HAS_EXCEPTIONS 1
#else
#define SLUICE_HAS_EXCEPTIONS 0
#endif

#endif  // SLUICE_FRAMEWORK_EXCEPTIONS_H_
