# SPDX-License-Identifier: MIT
"""sandboxd: placeholder."""
