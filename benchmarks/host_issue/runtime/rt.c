/* A bare runtime for qemu-riscv64 user mode: the libc calls the templates make, as no-ops. */
#include <stddef.h>
#include <stdint.h>
int printf(const char *fmt, ...) { return 0; }
int puts(const char *s) { return 0; }
void exit(int c) { register long a0 asm("a0") = c; register long a7 asm("a7") = 93; asm volatile("ecall" :: "r"(a0), "r"(a7)); for (;;); }
void *malloc(size_t n) { return 0; }
void free(void *p) {}
void perror(const char *s) {}
int abs(int x) { return x < 0 ? -x : x; }
double sqrt(double x) { return x; } float sqrtf(float x) { return x; } double exp(double x) { return x; }
double log(double x) { return x; } double pow(double a, double b) { return a; }
double round(double x) { return x; } float roundf(float x) { return x; } double floor(double x) { return x; } double ceil(double x) { return x; }
void *memset(void *d, int c, size_t n) { char *p = d; while (n--) *p++ = c; return d; }
void *memcpy(void *d, const void *s, size_t n) { char *p = d; const char *q = s; while (n--) *p++ = *q++; return d; }
int main(void);
void cstart(void) { exit(main()); }
void __attribute__((naked)) _start(void) { asm volatile(".option push\n.option norelax\nla gp, __global_pointer$\n.option pop\ncall cstart"); }
