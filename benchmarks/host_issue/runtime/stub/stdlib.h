#pragma once
#include <stddef.h>
void exit(int);
void *malloc(size_t);
void free(void*);
int abs(int);
