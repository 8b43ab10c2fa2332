// Nothing to compile: the driver is in libFuzzer's runtime (see include/CLibFuzzer.h).
#include "CLibFuzzer.h"
