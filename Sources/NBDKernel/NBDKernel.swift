// Kernel attach through netlink and ioctl lives here (issue 5).
