/* Stand-in for gemmini-rocc-tests' include/gemmini_testutils.h: only what the data-collection
   templates use (the headers and read_cycles, which is rdcycle as in the original). */
#ifndef GEMMAP_HOST_ISSUE_TESTUTILS_H
#define GEMMAP_HOST_ISSUE_TESTUTILS_H
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <math.h>
#include <limits.h>
#include <stdbool.h>
#include "include/gemmini_params.h"
#include "include/gemmini.h"
static uint64_t read_cycles() { uint64_t c; asm volatile ("rdcycle %0" : "=r" (c)); return c; }
#endif
