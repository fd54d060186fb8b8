/* SPDX-License-Identifier: MIT */
/* fdio.h - blocking writes to a file descriptor, whole or not at all. */
#ifndef AGENTD_FDIO_H
#define AGENTD_FDIO_H

#include <stddef.h>

/**
 * fd_write_all() - write all @len bytes of @data to @fd, retrying short writes and EINTR. For
 * regular files and blocking descriptors; a non-blocking one that fills fails with -EAGAIN.
 * Return: 0, or the negative errno of the failed write(2).
 */
int fd_write_all(int fd, const void *data, size_t len);

#endif
