#ifndef CIMNBD_CNETLINK_H
#define CIMNBD_CNETLINK_H
// Small C shims for NBDKernel: variadic ioctl(2) is not callable from Swift.
int cnetlink_ioctl(int fd, unsigned long request, unsigned long arg);
#endif
