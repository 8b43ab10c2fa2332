// The module is its header (`include/CPrefetch.h`, inline functions); SwiftPM wants a source file.
#include "CPrefetch.h"
