#include "cli/cli.h"

namespace sb {
int RunCli(int, char**) { return 0; }
}  // namespace sb
