/* Line-level simulation of the FireSim SoC's memory path behind Gemmini's DMA (run by hand; see trace.py).
 *
 * L2: Chipyard's inclusive cache, 1024 sets x 8 ways of 64-B lines, set = line bits [9:0]; the victim is
 *     pseudo-random and taken even when a way is invalid (rocket-chip-inclusive-cache @850e121
 *     Directory.scala L112-121, L127-136); a Put covering a whole line acquires it without data, any other
 *     write miss fetches the line first (MSHR.scala L281-282); a dirty victim is written back.
 * LLC: FASED's last-level-cache model, 4096 sets x 8 ways of 128-B blocks, set = address bits [18:7]; the
 *     lowest empty way first, otherwise random (firesim-dosa @eeb9fdb7 LastLevelCache.scala L83-84,
 *     L212-228); it allocates on writes (L236-242).
 * Trace: int64 line index (address >> 6) and uint8 flags (bit 0 write, bit 1 the write covers the line).
 * Counters (k[16]): 0 accesses, 1 L2 hits, 2 L2 read misses, 3 L2 full-line write misses (no fetch),
 * 4 L2 partial write misses (fetch), 5 L2 dirty write-backs, 6 LLC read hits, 7 LLC read misses,
 * 8 LLC write hits, 9 LLC write misses, 10 LLC dirty evictions, 11 L2 reads, 12 L2 writes.
 */
#include <stdint.h>
#include <string.h>

#define L2_SETS 1024
#define L2_WAYS 8
#define LLC_SETS 4096
#define LLC_WAYS 8

typedef struct { int64_t tag[L2_SETS * L2_WAYS]; uint8_t valid[L2_SETS * L2_WAYS], dirty[L2_SETS * L2_WAYS]; } Cache2;
typedef struct { int64_t tag[LLC_SETS * LLC_WAYS]; uint8_t valid[LLC_SETS * LLC_WAYS], dirty[LLC_SETS * LLC_WAYS]; } CacheL;

static Cache2 l2;
static CacheL llc;
static uint64_t state = 88172645463325252ULL;

static inline uint32_t random_way(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (uint32_t)(state >> 32) & 7;
}

static void llc_access(int64_t line, int write, int64_t *k) {
    int64_t block = line >> 1;
    int base = (int)(block & (LLC_SETS - 1)) * LLC_WAYS;
    int64_t tag = block >> 12;
    for (int w = 0; w < LLC_WAYS; w++)
        if (llc.valid[base + w] && llc.tag[base + w] == tag) {
            if (write) { llc.dirty[base + w] = 1; k[8]++; } else k[6]++;
            return;
        }
    int way = -1;
    for (int w = 0; w < LLC_WAYS; w++)
        if (!llc.valid[base + w]) { way = w; break; }
    if (way < 0) {
        way = (int)random_way();
        if (llc.dirty[base + way]) k[10]++;
    }
    llc.valid[base + way] = 1;
    llc.tag[base + way] = tag;
    llc.dirty[base + way] = (uint8_t)write;
    k[write ? 9 : 7]++;
}

void reset(uint64_t seed) {
    memset(&l2, 0, sizeof l2);
    memset(&llc, 0, sizeof llc);
    state = seed * 2654435761ULL + 12345;
    if (!state) state = 1;
}

void run(const int64_t *lines, const uint8_t *flags, int64_t n, int64_t *k) {
    for (int64_t i = 0; i < n; i++) {
        int64_t line = lines[i];
        int write = flags[i] & 1, full = (flags[i] >> 1) & 1;
        int set = (int)(line & (L2_SETS - 1)), base = set * L2_WAYS;
        int64_t tag = line >> 10;
        k[0]++;
        k[write ? 12 : 11]++;
        int hit = -1;
        for (int w = 0; w < L2_WAYS; w++)
            if (l2.valid[base + w] && l2.tag[base + w] == tag) { hit = w; break; }
        if (hit >= 0) {
            k[1]++;
            if (write) l2.dirty[base + hit] = 1;
            continue;
        }
        int way = (int)random_way();
        if (l2.valid[base + way] && l2.dirty[base + way]) {
            k[5]++;
            llc_access((l2.tag[base + way] << 10) | set, 1, k);
        }
        if (!write) { k[2]++; llc_access(line, 0, k); }
        else if (full) k[3]++;
        else { k[4]++; llc_access(line, 0, k); }
        l2.valid[base + way] = 1;
        l2.tag[base + way] = tag;
        l2.dirty[base + way] = (uint8_t)write;
    }
}
