/* SPDX-License-Identifier: MIT */
/* fs_methods.c - execd's fs.* internal methods (filled in by the file-methods work). */
#include "execd.h"

const DaemonMethod execd_fs_methods[] = { { NULL, 0, NULL } };
const size_t execd_fs_method_count = 0;
