// LSNs live in common/ (the repository layer needs them too); kept for includes.
#pragma once
#include "common/lsn.h"
