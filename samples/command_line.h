#ifndef SLUICE_SAMPLES_COMMAND_LINE_H_
#define SLUICE_SAMPLES_COMMAND_LINE_H_

#include <string_view>

namespace sluice::samples {

// Parses a sample's flags. `usage` is what --help prints first: what the
// program does and an example command. --help lists the flags of every
// sample source (the program's own and the shared ones, such as
// --shutdown_timeout), not only those of the file holding main(). Makes
// stdout line-buffered, so that a test or a pipe sees each line at once.
void ParseCommandLine(int argc, char** argv, std::string_view usage);

}  // namespace sluice::samples

#endif  // SLUICE_SAMPLES_COMMAND_LINE_H_
