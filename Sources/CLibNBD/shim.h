/* libnbd, the NBD client library, for the NBDServer tests (Debian: libnbd-dev). */
#include <libnbd.h>
