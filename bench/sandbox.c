/* SPDX-License-Identifier: MIT */
/* bench/sandbox - placeholder until the benchmark lands. */
int main(void)
{
	return 0;
}
