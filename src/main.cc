#include "cli/cli.h"

int main(int argc, char** argv) { return sb::RunCli(argc, argv); }
