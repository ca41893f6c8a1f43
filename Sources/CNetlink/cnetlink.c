#include "cnetlink.h"
#include <sys/ioctl.h>

int cnetlink_ioctl(int fd, unsigned long request, unsigned long arg) {
    return ioctl(fd, request, arg);
}
