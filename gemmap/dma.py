"""Gemmini's DMA as the RTL moves a tile (docs/model.md, "Memory path"): cycles per useful byte.

**Reads (mvin).** A mvin row is split into chunks of at most ``request_bytes`` (``dma_maxbytes``;
one mvin covers at most ``max_block_len`` DIM-wide blocks, 64 int8 columns at DIM 16:
Configs.scala ``dma_maxbytes = 64``, LoopMatmul.scala ``max_block_len = dma_max_bytes / (DIM ·
input_w / 8)``). Each chunk becomes TileLink requests (DMA.scala @67ca2f9 L180-201 reads, L420-470
writes): at each address the DMA picks, among the naturally aligned power-of-two sizes from
``beat_bytes`` to ``request_bytes`` (16, 32, 64), the one that moves the most of the bytes left (the
smallest on a tie), and a request of ``s`` bytes takes all its ``s / beat_bytes`` beats however few of
its bytes are wanted (:func:`packet_costs`). A 48-byte chunk 16 bytes into a line is one 64-byte
request of 4 beats; one 48 bytes into a line is a 16-byte request, then a 32-byte one. The tracker
holds at most ``max_in_flight`` requests (XactTracker.scala L67-84), each outstanding for the memory's
round trip ``latency_cycles``. A chunk of ``c`` bytes at offset ``o`` therefore costs the beats and
requests of that walk, at least ``⌊(o mod beat + c − 1) / beat⌋ + 1`` beats,
and a transfer of many rows takes ``max(Σ beats, Σ requests · latency / max_in_flight)`` cycles:
one beat per cycle on the bus, or the in-flight window, whichever binds. A tile's rows start at
``j·w + i·s`` bytes from the (aligned) base of a tensor whose DRAM rows are ``s`` bytes apart, for a
tile ``w`` bytes wide at column index ``j`` (tiles start at multiples of their width: gemmini.h
``tiled_conv`` ``input + … * in_channels + kch``, ``weights + … * out_channels + poch``;
``tiled_matmul_outer`` ``A + i * stride_A + k``), so their offsets are the multiples of
``gcd(s, w, req)``; the model averages over those offsets (a tile as wide as the tensor has ``w = s``).
A tensor whose base is only ``a`` bytes aligned (``software.tensor_align_bytes``: software that placed
it without a request's alignment) starts its rows at the multiples of ``gcd(s, w, req, a)`` instead:
the base's offset is unknown, so the walk is averaged over every offset it allows. A 16-byte row then
crosses a beat at half of the 8-byte offsets (2–4 beats, or two requests); an 8-byte row never does.

**Writes (mvout).** The StreamWriter gathers a row's beats and then sends them, one beat per cycle,
not accepting the next row while it sends (DMA.scala L402-403, L554-608): ``2b − 1`` cycles for a
chunk of ``b`` beats, at most ``max_in_flight`` writes outstanding.

**Write-allocate.** A mvout row narrower than a line goes out as Puts smaller than a line (full
``PutFullData`` of 16 or 32 bytes when aligned, else ``PutPartialData``; DMA.scala L420-491), and
Chipyard's inclusive L2 fetches the whole line before it takes a Put of less than a line that misses
(``size ≠ blockBytes``: rocket-chip-inclusive-cache @850e121 MSHR.scala L281-282), writing the dirty
line back later. For an output larger than the L2 (``l2.kib``) the model charges every line of it a
fetch and a write-back, each at the memory's serial rate (FASED's LLC model serves one line at a time,
docs/validation.md): ``2 / dram.bytes_per_cycle`` cycles per useful byte, a floor under the store
stream (the StreamWriter frees a write only on its acknowledgement, DMA.scala L390-397, L506, L548). It
is an estimate, not a bound: up to an L2's worth of the lines may still be there from the run before,
and the last dirty lines are written back after the layer. The fetched and written-back bytes are not
added to the memory bytes or the energy. Partial sums are not charged (their lines come back soon).
Only set-associative L2s (``l2.ways``: a hardware cache) do this; a conv's re-fetches of lines evicted
between the output-channel tiles that share them are :func:`gemmap.convmodel.refetch_store_floor`.

**Commands in flight.** The load and store controllers track at most ``max_in_flight // DIM + 1``
mvin / mvout commands (LoadController.scala L84, StoreController.scala L141; 5, 3, 2, 1, 1 at DIM 4,
8, 16, 32, 64), and a tracker entry is freed only when every byte of its command has come back
(DMACommandTracker.scala L66, L71-76, L92-94; LoadController.scala L99, L114). With one entry the
next command cannot send its first request before the previous command's last response: each
command's round trip ``latency_cycles`` is exposed, ``latency / (rows × columns)`` per useful byte
for commands of ``rows`` rows (at most DIM) of at most ``max(request_bytes, DIM · element)``
bytes (``max_block_len`` blocks, LoopConv.scala L1169-1170, LoopMatmul.scala ``max_block_len``).
With two or more entries the next command's requests overlap the round trip, which the in-flight
window above already counts. Only loads wait for memory: the store controller's tracker counts a
mvout row done when it is read out of the accumulator or scratchpad for the writer (Scratchpad.scala
@67ca2f9 L479-483, L695-699 raise ``dma.write.resp`` on the SRAM read; StoreController.scala
L185-187), never on the memory's acknowledgement, so a mvout command exposes no round trip.

Every function takes numpy arrays (or ints) of row widths and returns float64 cycles per useful
byte, the same for the scalar and the batched model.
"""

from __future__ import annotations

import functools

import numpy as np

from gemmap.arch import Arch


def _sizes(beat: int, req: int) -> list[int]:
    """The request sizes: the powers of two from ``beat`` to ``req`` (both powers of two, ``beat ≤ req``:
    ``Arch.checked``)."""
    return [beat << k for k in range((req // beat).bit_length())]


def _walk(beat: int, req: int, at: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(beats, requests) of ``left`` bytes from offset ``at`` (arrays, broadcast): the DMA's request walk
    (module docstring; DMA.scala L180-201, L420-470). Each request takes, among the sizes of
    :func:`_sizes`, the one that moves the most bytes left, the smallest on a tie (the RTL's reduce keeps
    the earlier, smaller packet unless a later one moves strictly more), and fetches all its beats."""
    at, left = (np.array(x, dtype=np.int64) for x in np.broadcast_arrays(at, left))
    beats, reqs = np.zeros_like(at), np.zeros_like(at)
    while (left > 0).any():
        size, moved = np.full_like(at, beat), np.zeros_like(at)
        for s in _sizes(beat, req):  # ascending: a larger size must move strictly more
            m = np.minimum(s - at % s, left)
            size, moved = np.where(m > moved, s, size), np.maximum(m, moved)
        live = left > 0
        beats += np.where(live, size // beat, 0)
        reqs += live
        at, left = at + moved, left - moved
    return beats, reqs


def packet_costs(beat: int, req: int, offset: int, width: int) -> tuple[int, int]:
    """(beats, requests) of ``width`` bytes from ``offset`` bytes into a ``req``-aligned block
    (:func:`_walk` of one row)."""
    beats, reqs = _walk(beat, req, np.array(offset), np.array(width))
    return int(beats), int(reqs)


@functools.lru_cache(maxsize=64)
def _chunk_table(beat: int, req: int, walk: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Flat tables (index ``g·(req + 1) + c``) of the mean beats and requests of a chunk of ``c`` bytes
    (0 ≤ c ≤ req) whose start offset mod ``req`` is a multiple of ``g`` (a divisor of ``req``; other rows
    unused), each such offset equally likely: the request walk (:func:`_walk`) of every offset and chunk
    at once; without ``walk`` (``dma.request_walk`` off) only the beats and ``req``-byte blocks the bytes
    touch."""
    at = np.arange(req, dtype=np.int64)[:, None]
    left = np.arange(req + 1, dtype=np.int64)[None, :]
    if walk:
        beats, reqs = _walk(beat, req, at, left)
    else:
        touched = left > 0
        beats = np.where(touched, (at % beat + left - 1) // beat + 1, 0)
        reqs = np.where(touched, (at + left - 1) // req + 1, 0)
    table = np.zeros((req + 1, req + 1, 2))
    for g in range(1, req + 1):
        if req % g == 0:
            table[g, :, 0], table[g, :, 1] = beats[::g].mean(axis=0), reqs[::g].mean(axis=0)
    flat_beats, flat_reqs = table[:, :, 0].ravel(), table[:, :, 1].ravel()
    flat_beats.setflags(write=False)
    flat_reqs.setflags(write=False)
    return flat_beats, flat_reqs


def _chunk_costs(arch: Arch, width: np.ndarray, stride_bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean beats, mean requests, chunks) to move one row of ``width`` useful bytes (chunks of ≤
    request_bytes) of a tile ``width`` bytes wide in rows ``stride_bytes`` apart (module docstring)."""
    beat, req = arch.dma.beat_bytes, arch.dma.request_bytes
    w = np.asarray(width, dtype=np.int64)
    full, rem = w // req, w % req
    x = np.asarray(stride_bytes, dtype=np.int64) | w | req  # gcd(s, w, req) of a power-of-two req (Arch.checked):
    if arch.software.tensor_align_bytes is not None:  # and of the tensor's base alignment (a power of two)
        x = x | arch.software.tensor_align_bytes
    g = x & -x  # the lowest set bit of s | w | req (| align)
    beats_t, reqs_t = _chunk_table(beat, req, arch.dma.request_walk)
    row = g * (req + 1)
    beats = full * beats_t.take(row + req) + beats_t.take(row + rem)
    reqs = full * reqs_t.take(row + req) + reqs_t.take(row + rem)
    return beats, reqs, full + (rem > 0)


def commands_in_flight(arch: Arch) -> int:
    """mvin / mvout commands the load and store controllers track at once (module docstring;
    ``dma.commands_in_flight`` when the arch states it)."""
    if arch.dma.commands_in_flight is not None:
        return arch.dma.commands_in_flight
    return arch.dma.max_in_flight // arch.dim_rows + 1


def rows_per_command(arch: Arch, rows) -> np.ndarray:
    """Mean rows of the commands that move ``rows`` rows in chunks of at most DIM."""
    r = np.maximum(np.asarray(rows, dtype=np.int64), 1)
    return r / -(-r // arch.dim_rows)


def _command_cycles(arch: Arch, w: np.ndarray, rows, element_bytes: int) -> np.ndarray | float:
    """The exposed round trip per useful byte with one command in flight, else 0 (module docstring)."""
    if commands_in_flight(arch) > 1:
        return 0.0
    columns = np.minimum(w, max(arch.dma.request_bytes, arch.dim_rows * element_bytes))
    return arch.dram.latency_cycles / (rows_per_command(arch, rows) * columns)


def read_cycles_per_byte(arch: Arch, width_bytes, stride_bytes: int, *, rows, element_bytes: int) -> np.ndarray:
    """Cycles per useful byte of a mvin whose rows carry ``width_bytes`` of ``element_bytes``-byte
    elements, a tile moving ``rows`` rows (module docstring, Reads and Commands in flight)."""
    w = np.maximum(np.asarray(width_bytes, dtype=np.int64), 1)
    beats, reqs, _ = _chunk_costs(arch, w, stride_bytes)
    bus = beats * arch.dma.beat_bytes / arch.local_bytes_per_cycle
    window = reqs * arch.dram.latency_cycles / arch.dma.max_in_flight
    return np.maximum(bus, window) / w + _command_cycles(arch, w, rows, element_bytes)


def write_allocates(arch: Arch) -> bool:
    """Whether the L2 is a set-associative cache (``l2.ways``) that fetches a line before a write of
    less than a line (``l2.write_allocate``; module docstring, Write-allocate)."""
    return arch.l2_cache is not None and arch.l2_cache.write_allocate


def _allocates(arch: Arch, tensor_bytes: int) -> bool:
    """Whether the L2 write-allocates a ``tensor_bytes`` output's lines: :func:`write_allocates`, and an
    output larger than the L2."""
    return write_allocates(arch) and tensor_bytes > arch.l2.bytes  # type: ignore[union-attr]


def _allocate_rate(arch: Arch, w: np.ndarray) -> np.ndarray:
    """``2 / dram.bytes_per_cycle`` per useful byte for rows narrower than a line, else 0."""
    return np.where(w < arch.l2.line_bytes, 2 / arch.dram.bytes_per_cycle, 0.0)  # type: ignore[union-attr]


def write_allocate_cycles_per_byte(arch: Arch, width_bytes, tensor_bytes: int) -> np.ndarray:
    """Cycles per useful byte of the L2's write-allocate of a ``tensor_bytes`` output written in rows of
    ``width_bytes`` (module docstring, Write-allocate): ``2 / dram.bytes_per_cycle`` for rows narrower
    than a line, 0 for rows at least a line wide or where :func:`_allocates` says no. Broadcasts."""
    w = np.asarray(width_bytes, dtype=np.int64)
    return _allocate_rate(arch, w) if _allocates(arch, tensor_bytes) else np.zeros(w.shape)


def allocate_fetch_lines(arch: Arch, width_bytes, tensor_bytes: int) -> np.ndarray:
    """Lines the L2 fetches to write a ``tensor_bytes`` output once in rows of ``width_bytes`` (module
    docstring, Write-allocate): every line of it for rows narrower than a line where :func:`_allocates`
    says yes, else 0. Broadcasts."""
    w = np.asarray(width_bytes, dtype=np.int64)
    if not _allocates(arch, tensor_bytes):
        return np.zeros(w.shape)
    line = arch.l2.line_bytes  # type: ignore[union-attr]
    return np.where(w < line, float(-(-tensor_bytes // line)), 0.0)


def write_cycles_per_byte(arch: Arch, width_bytes, stride_bytes: int, *, tensor_bytes: int) -> np.ndarray:
    """Cycles per useful byte of a mvout whose rows carry ``width_bytes`` (module docstring, Writes;
    a mvout command exposes no round trip: Commands in flight), at least the L2's write-allocate of
    the ``tensor_bytes`` output they belong to (0: a tensor whose lines it never fetches)."""
    w = np.maximum(np.asarray(width_bytes, dtype=np.int64), 1)
    beats, reqs, chunks = _chunk_costs(arch, w, stride_bytes)
    per_beat = arch.dma.beat_bytes / arch.local_bytes_per_cycle
    send = (2 * beats - chunks) * per_beat if arch.dma.write_gather else beats * per_beat
    window = reqs * arch.dram.latency_cycles / arch.dma.max_in_flight
    rate = np.maximum(send, window) / w
    return np.maximum(rate, _allocate_rate(arch, w)) if _allocates(arch, tensor_bytes) else rate
