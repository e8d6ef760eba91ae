"""Architecture specs of a Gemmini-like accelerator (DESIGN §2).

The hierarchy is DRAM → (optional L2) → {scratchpad: A, B; accumulator: C} → DIM×DIM PE array.
Every number is a YAML field; ``arch/gemmini.yaml`` cites where Gemmini's defaults come from.

Per-access SRAM energy scales with the capacity of one bank by a power law
``e(C) = e_ref · (C / C_ref) ** exponent`` (:meth:`Energy.sram_pj_per_byte`). The default exponent
0.5 is what Horowitz's ISSCC 2014 45 nm cache figures imply (8 KB → 10 pJ, 32 KB → 20 pJ,
1 MB → 100 pJ per 64-bit read); SRAM area is linear in capacity.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from pydantic.dataclasses import dataclass

from gemmap import specio
from gemmap.errors import GemmapError
from gemmap.specio import SHIPPED, SPEC, Label, StrictBool, build, float_in, int_in, load_yaml, shipped

# every number of the arch has its physical range (the bounds and their reasons: gemmap/specio.py)
ArrayDim = int_in(specio.ARRAY_DIM)
SramKiB = int_in(specio.SRAM_KIB)
Banks = int_in(specio.BANKS)
ElemBytes = int_in(specio.ELEM_BYTES)
Bandwidth = float_in(specio.BANDWIDTH)
TransferBytes = int_in(specio.TRANSFER_BYTES)
Count = int_in(specio.COUNT)
IteratorBits = int_in(specio.ITERATOR_BITS)
Passes = int_in(specio.PASSES)
Cycles = float_in(specio.CYCLES)
CyclesInt = int_in(specio.CYCLES_POS)
EnergyPJ = float_in(specio.ENERGY_PJ)
Exponent = float_in(specio.EXPONENT)
RefKiB = float_in(specio.REF_KIB)
AreaMM2 = float_in(specio.AREA_MM2)
FrequencyMHz = float_in(specio.FREQUENCY_MHZ)

DEFAULT_ARCH = SHIPPED / "arch" / "gemmini.yaml"
#: the longest tag-queue window (``tag_queue − 1``) that can throttle the array: compute is counted in
#: ticks of 1 / lcm(1..window) cycle (gemmap.tagqueue), and the batched model divides them as float64,
#: exact below 2^53: 27,720 ticks a cycle at 12 keeps layers of up to 3·10^11 compute cycles exact
MAX_TAG_WINDOW = 12
#: the SoC of DOSA's FireSim measurements (../shared/validation), what ``gemmap validate`` predicts
FIRESIM_ARCH = DEFAULT_ARCH.parent / "gemmini-firesim.yaml"


@dataclass(config=SPEC)
class PEArray:
    """The systolic array: ``rows`` × ``cols`` int8 MACs with int32 accumulation."""

    rows: ArrayDim = 16
    cols: ArrayDim = 16
    dataflow: Literal["ws", "os", "both"] = "both"
    #: Gemmini's PEs double-buffer the stationary operand (weights in WS, partial sums in OS), so
    #: the preload / shift-out of one fold overlaps the streaming of its neighbour. SCALE-Sim's
    #: PEs do not: with ``False`` every fold pays preload, stream, fill and drain in series.
    stationary_overlap: StrictBool = True
    #: with stationary overlap, consecutive tiles stream through the array back to back: Gemmini's
    #: ExecuteController issues the next preload/compute without waiting for the previous results
    #: (ExecuteController.scala L405-415, L532-669), so the fill/drain skew is paid once per layer,
    #: not once per tile. ``False`` charges it per tile.
    pipelined_tiles: StrictBool = True
    #: the mesh's tag queue (MeshWithDelays.scala L48-56: tagqlen = 5 + 1): a compute request takes an
    #: entry until the next request's last row leaves the array, so request k + tag_queue − 1 starts no
    #: earlier than request k's rows plus the latency after request k (gemmap/tagqueue.py)
    tag_queue: Count = 6
    #: cycles from a row entering the array to its result leaving it (None: 2 × rows, Mesh.scala L59-66,
    #: L122-127: a register stage per PE row, one output delay, rows − 1 de-skew)
    latency_cycles: CyclesInt | None = None

    @property
    def window(self) -> int:
        """Compute requests the tag queue lets overlap the array's latency: ``tag_queue − 1``."""
        return max(self.tag_queue - 1, 1)

    @property
    def array_latency(self) -> int:
        """``latency_cycles``, or its default 2 × rows."""
        return 2 * self.rows if self.latency_cycles is None else self.latency_cycles

    @property
    def throttles(self) -> bool:
        """Whether the tag queue can ever hold a request back: ``window`` requests of at least 4 rows
        (ExecuteController's floor) can go in faster than one request's rows plus the latency."""
        return self.window == 1 or 4 * (self.window - 1) < self.array_latency


@dataclass(config=SPEC)
class DataTypes:
    """Bytes per element of each operand class."""

    input_bytes: ElemBytes = 1
    weight_bytes: ElemBytes = 1
    acc_bytes: ElemBytes = 4
    output_bytes: ElemBytes = 1


@dataclass(config=SPEC)
class Sram:
    """A banked on-chip SRAM of ``kib`` KiB."""

    kib: SramKiB
    banks: Banks = 1

    @property
    def bytes(self) -> int:
        return self.kib * 1024


@dataclass(config=SPEC)
class L2:
    """A shared L2 between DRAM and the local SRAMs, used as an explicit tiling level.

    ``ways``: set by a hardware cache (``line_bytes`` lines, ``kib · 1024 / (ways · line_bytes)``
    sets), whose set index limits what a strided tile can keep (gemmap/convmodel.py, "L2 sets");
    None for a buffer the software manages, any byte anywhere. ``write_allocate``: such a cache
    fetches a line before a write that covers only part of it (gemmap/dma.py, "Write-allocate";
    Chipyard's inclusive cache does: MSHR.scala L281-282). ``allocate_through_memory``: those fetches,
    and the extra write-backs of lines fetched again, are transactions of the memory behind the L2
    (FASED's LLC model serves one at a time), so they count in its time (gemmap/warm.py,
    "Write-allocate through the memory"); false: they only slow the store stream."""

    kib: SramKiB
    banks: Banks = 1
    #: bytes per cycle between the L2 and the scratchpad/accumulator (the DMA path)
    local_bytes_per_cycle: Bandwidth = 16.0
    ways: Count | None = None
    line_bytes: TransferBytes = 64
    write_allocate: StrictBool = True
    allocate_through_memory: StrictBool = True
    #: the run follows one over the same operands (a layer run twice on the same buffers, as
    #: ``gemmap validate``'s mapped runs follow Gemmini's tiler run): the first fills hit what the L2
    #: kept of them (gemmap/warm.py); false: every operand starts in memory
    warm_start: StrictBool = False
    #: a GEMM operand whose tile rows are narrower than a line, at a stride the sets index, misses the
    #: cache when the rows walked between two column tiles overflow the sets that stride reaches
    #: (gemmap/strips.py; only with ``ways``); false: GEMM operands are costed by their bytes alone
    gemm_strips: StrictBool = True

    @property
    def bytes(self) -> int:
        return self.kib * 1024

    @property
    def sets(self) -> int | None:
        """Sets of a set-associative cache (None for a software-managed buffer)."""
        return None if self.ways is None else max(self.bytes // (self.ways * self.line_bytes), 1)


@dataclass(config=SPEC)
class Dma:
    """Gemmini's DMA between the next level out and the scratchpad/accumulator (gemmap/dma.py).

    ``bytes_per_cycle``: the bus (``dma_buswidth`` bits / 8); ``beat_bytes``: one TileLink beat;
    ``request_bytes``: the largest request (``dma_maxbytes``), also the widest mvin row chunk;
    ``max_in_flight``: requests the tracker holds (``max_in_flight_mem_reqs``); ``write_gather``:
    the StreamWriter gathers a chunk's beats before sending them (2b − 1 cycles per chunk);
    ``commands_in_flight``: mvin / mvout commands the load and store controllers track (None: the
    RTL's ``max_in_flight // DIM + 1``, LoadController.scala L84, StoreController.scala L141);
    ``conv_loader_bits``: the width of LoopConv's input-loader iterators (16: LoopConv.scala L54-55,
    L266-267, L1166), which a tile whose window lies wholly in the padding wraps, walking all
    2^bits values (gemmap/conv_ring.py; None: a loader that never wraps); ``request_walk``: rows go out
    as aligned power-of-two requests of whole beats, each the size that moves the most bytes
    (DMA.scala L180-201, L420-470; False: only the beats and request-sized blocks the bytes touch).
    ``beat_bytes`` and ``request_bytes`` are powers of two, ``beat_bytes ≤ request_bytes``
    (:meth:`Arch.checked`).
    """

    bytes_per_cycle: Bandwidth = 16.0
    request_bytes: TransferBytes = 64
    beat_bytes: TransferBytes = 16
    max_in_flight: Count = 16
    write_gather: StrictBool = True
    commands_in_flight: Count | None = None
    conv_loader_bits: IteratorBits | None = 16
    request_walk: StrictBool = True


@dataclass(config=SPEC)
class Dram:
    """The memory behind the DMA: sustained bandwidth, per-byte energy, and the round-trip latency of
    one request as the DMA sees it (which, with ``dma.max_in_flight``, bounds the DMA's throughput)."""

    bytes_per_cycle: Bandwidth = 16.0
    pj_per_byte: EnergyPJ = 64.0
    latency_cycles: Cycles = 0.0
    #: the first tile's loads wait for the memory: with no compute before them to hide behind, the
    #: bytes of them a warm L2 does not hold take at least their time at ``bytes_per_cycle``
    #: (gemmap/model.py ``first_load_lift``); false: they take only the DMA's time
    first_load_from_memory: StrictBool = True
    #: a memory-side cache in front of the memory (FireSim's FASED last-level-cache model): its capacity
    #: and ways; ``miss_bytes_per_cycle`` is the memory's rate for the bytes that miss it. What it holds
    #: when a run starts follows ``l2.warm_start`` (gemmap/warm.py); a miss is charged at the slower of
    #: the two rates; null: none, every memory byte at ``bytes_per_cycle``
    cache_kib: SramKiB | None = None
    cache_ways: Count | None = None
    #: that cache's block: its set index is the address bits above it (FASED's LLC model: 128-byte
    #: blocks at its runtime defaults, firesim-dosa @eeb9fdb7 LastLevelCache.scala L79-80, L92-116);
    #: what a strided operand's rows reach of it (gemmap/strips.py)
    cache_block_bytes: TransferBytes = 128
    miss_bytes_per_cycle: Bandwidth | None = None
    #: the rate at which that cache writes a dirty victim back before a miss refills its way (FASED's
    #: LLC model sends the block's beats one a cycle on the memory's 8-byte channel); a miss then also
    #: costs the victim's bytes at this rate times the share of the cached lines that are dirty
    #: (gemmap/warm.py, "Dirty victims"); null: victims cost nothing
    victim_bytes_per_cycle: Bandwidth | None = None

    @property
    def cache_bytes(self) -> int:
        return 0 if self.cache_kib is None else self.cache_kib * 1024


@dataclass(config=SPEC)
class Energy:
    """Per-access energies in pJ (see ``arch/gemmini.yaml`` for the sources)."""

    mac_pj: EnergyPJ = 0.3
    reg_pj_per_byte: EnergyPJ = 0.072
    sram_ref_kib: RefKiB = 32.0
    sram_ref_pj_per_byte: EnergyPJ = 2.5
    sram_exponent: Exponent = 0.5
    leakage_pj_per_cycle: EnergyPJ = 0.0

    def sram_pj_per_byte(self, bank_kib: float) -> float:
        """Energy of one byte read or written in a bank of ``bank_kib`` KiB (power-law rule)."""
        return self.sram_ref_pj_per_byte * (bank_kib / self.sram_ref_kib) ** self.sram_exponent


@dataclass(config=SPEC)
class Area:
    sram_mm2_per_kib: AreaMM2 = 0.0041
    pe_mm2: AreaMM2 = 0.0012


@dataclass(config=SPEC)
class CpuCosts:
    """Host-CPU cost of each non-linear op kind, in accelerator cycles per element (assumptions
    for a scalar in-order core, stated in the arch YAML). The LLM kinds are derived from the
    others: RMSNorm is LayerNorm without its mean pass (2 of 3 passes: 20), SwiGLU is SiLU's
    exponential and division (as Softmax's, 40) plus the product (as an add, 2), RoPE is two
    multiplies and an add per element (3 adds' worth: 6)."""

    softmax: Cycles = 40.0
    layernorm: Cycles = 30.0
    gelu: Cycles = 30.0
    add: Cycles = 2.0
    rmsnorm: Cycles = 20.0
    swiglu: Cycles = 42.0
    rope: Cycles = 6.0

    def of(self, kind: str) -> float:
        return float(getattr(self, kind))


@dataclass(config=SPEC)
class Nonlinear:
    """Where Softmax / LayerNorm / GELU run and what they cost.

    ``norm_unit``: Gemmini's normalizer on the accumulator read path (I-BERT configs) reduces
    ``unit_elems_per_cycle`` elements per cycle per pass; Softmax and LayerNorm read each row
    ``norm_passes`` times (statistics, second statistic, apply). Without it the host CPU runs
    them at ``cpu_cycles_per_elem`` accelerator cycles per element and operation kind.
    """

    norm_unit: StrictBool = False
    #: Gemmini's ``has_nonlinear_activations`` (true by default): I-BERT's integer GELU applied on
    #: mvout by the accumulator's scale/activation path, so GELU fuses even without ``norm_unit``
    activation_unit: StrictBool = True
    unit_elems_per_cycle: Count = 16
    norm_passes: Passes = 3
    unit_pj_per_elem: EnergyPJ = 0.5
    cpu_cycles_per_elem: CpuCosts = dataclasses.field(default_factory=lambda: CpuCosts())
    cpu_pj_per_elem: EnergyPJ = 20.0


@dataclass(config=SPEC)
class Software:
    """How Gemmini's software drives the tiles (docs/model.md, "Gemmini's execution").

    ``reload_operands``: every iteration of the software tile loop issues one hardware loop
    (``gemmini_loop_ws``, gemmini-rocc-tests ``include/gemmini.h`` ``tiled_matmul_outer``), and
    ``LoopMatmul``'s ``LdA``/``LdB`` units move in the call's whole A and B tiles each time: an
    operand tile is not kept across calls, whatever the loop order. ``False`` is Timeloop's
    residency (a tile stays while the loops inside it do not index it), for software that skips
    redundant moves. Partial sums stay in the accumulator across consecutive k0 calls either way.
    """

    reload_operands: StrictBool = True
    #: ``a_reuse``/``b_reuse`` of upstream ``tiled_conv`` (gemmini.h @180c468 L2302-2318): an operand
    #: cut into at most two tiles stays in the two scratchpad halves and moves once (convs only here)
    reuse_small_operands: StrictBool = True
    #: ``HAS_FIRST_LAYER_OPTIMIZATIONS`` (gemmini_params.h): LoopConv packs up to DIM // kchs kernel
    #: columns into one weight block when a tile has few input channels
    first_layer_optimizations: StrictBool = True
    #: ``tiled_conv``'s downsample mode for 1×1 stride-2 convs (moves every other row and column)
    conv_downsample: StrictBool = True
    #: ``tiled_conv`` without a bias passes the dummy bias address 1 (gemmini.h @959b23f7 L2283-2286)
    #: on each output tile's first reduction tile, so LoopConvLdBias is not skipped (it skips only a
    #: null address, LoopConv.scala @67ca2f9 L108, L179) and zero-fills the tile's accumulator rows
    #: through the load path, one DIM-wide row per cycle (L119-122, L162-200; ZeroWriter.scala)
    conv_bias_zero_fill: StrictBool = True
    #: LoopConv runs ``tiled_conv``'s tiles in the loop order, two loops in flight: the layer takes at
    #: least the two-loop time of its real tile sequence, remainders and first visits from memory
    #: included (gemmap/convseq.py; LoopConv.scala @67ca2f9 L713-720, L1249-1261, L1496); mappings
    #: tiled in more than five dims are left to the summed core (3^m tile contexts a mapping)
    tile_sequence: StrictBool = True
    #: partial sums never leave the accumulator, whatever the loop order: DOSA's ``tiled_matmul_outer``
    #: runs its tiles in the mapping's order, loads no bias on a tile with k0 ≠ 0 and accumulates
    #: into the rows the tile before left, and writes C only on the last K tile (gemmini-rocc-tests
    #: @959b23f7 include/gemmini.h L843-870, L709-713: ``pre = NULL``, ``out`` only at k0 = K0 − 1,
    #: ``ex_accumulate``), so a K loop outside the others moves no partial sums (its results are only
    #: right with K innermost); false: the model spills them as a software that keeps results right must
    keep_partial_sums: StrictBool = False
    #: the alignment the software gives its tensors' base addresses (a power of two): a tile's rows start
    #: at ``base + j·w + i·s``, so with a base only this aligned the DMA's request walk is averaged over
    #: the base offsets it allows as well as the tile's own (gemmap/dma.py); None: bases at multiples of
    #: ``dma.request_bytes`` (tensors aligned to a request, the walk's own period)
    tensor_align_bytes: TransferBytes | None = None
    #: host-CPU cycles the software tile loop spends per tile (the tile's arguments, its RoCC
    #: commands and the innermost loop step) and per step of each loop around it. Counted, not
    #: fitted (docs/model.md, "Host issue"): gemmini-rocc-tests @959b23f7's data-collection
    #: templates built as its Makefile builds them (gcc -O2, rv64gc), traced under qemu-riscv64 with
    #: runtime tile arguments, each instruction timed with Rocket's interlocks (load-use, the
    #: iterative multiplier; RocketCore.scala / Multiplier.scala @f5ebf26), least squares over 40
    #: random layers and loop orders: 134 + 33 per ``tiled_matmul_outer`` tile and loop step, 263 + 38
    #: per ``tiled_conv`` tile (``sp_tiled_conv`` recomputes the window, padding and strides)
    matmul_tile_issue_cycles: Cycles = 134.0
    matmul_loop_issue_cycles: Cycles = 33.0
    conv_tile_issue_cycles: Cycles = 263.0
    conv_loop_issue_cycles: Cycles = 38.0
    #: host cycles of ``tiled_conv_auto``'s tile search (gemmap/conv_tiler.py), which runs on the
    #: host before the first tile: per candidate it sizes (two ``tiled_conv_total_spad_rows`` calls)
    #: while shrinking (also scanning the 7 args for the largest) and while growing. Counted like the
    #: issue cycles above, on the search alone (``print_tile = true``) over 40 random convs
    conv_tiler_shrink_check_cycles: Cycles = 167.0
    conv_tiler_grow_check_cycles: Cycles = 193.0
    #: the scratchpad / accumulator sizes the software's ``gemmini_params.h`` states, which Gemmini's
    #: own tilers size tiles for (None: the hardware's); a generated header always matches the RTL
    tiler_spad_kib: SramKiB | None = None
    tiler_acc_kib: SramKiB | None = None


@dataclass(config=SPEC)
class Arch:
    """A complete Gemmini-like accelerator configuration."""

    name: Label  # "" only for the optimal search's internal normalised arch (load_arch refuses it)
    pe_array: PEArray = dataclasses.field(default_factory=PEArray)
    datatypes: DataTypes = dataclasses.field(default_factory=DataTypes)
    scratchpad: Sram = dataclasses.field(default_factory=lambda: Sram(kib=256, banks=4))
    accumulator: Sram = dataclasses.field(default_factory=lambda: Sram(kib=64, banks=2))
    dma: Dma = dataclasses.field(default_factory=Dma)
    l2: L2 | None = None
    dram: Dram = dataclasses.field(default_factory=Dram)
    energy: Energy = dataclasses.field(default_factory=Energy)
    area: Area = dataclasses.field(default_factory=Area)
    nonlinear: Nonlinear = dataclasses.field(default_factory=Nonlinear)
    software: Software = dataclasses.field(default_factory=Software)
    frequency_mhz: FrequencyMHz = 1000.0

    # --- derived quantities -------------------------------------------------------------
    @property
    def dim_rows(self) -> int:
        return self.pe_array.rows

    @property
    def dim_cols(self) -> int:
        return self.pe_array.cols

    @property
    def dataflows(self) -> tuple[str, ...]:
        df = self.pe_array.dataflow
        return ("ws", "os") if df == "both" else (df,)

    @property
    def spad_rows(self) -> int:
        """Scratchpad rows; a row holds ``cols`` input elements (Gemmini's sp row width = DIM)."""
        return self.scratchpad.bytes // (self.dim_cols * self.datatypes.input_bytes)

    @property
    def acc_rows(self) -> int:
        """Accumulator rows; a row holds ``cols`` int32 partial sums."""
        return self.accumulator.bytes // (self.dim_cols * self.datatypes.acc_bytes)

    @property
    def local_bytes_per_cycle(self) -> float:
        """Bandwidth into the scratchpad/accumulator from the next level out."""
        if self.l2 is not None:
            return min(self.dma.bytes_per_cycle, self.l2.local_bytes_per_cycle)
        return min(self.dma.bytes_per_cycle, self.dram.bytes_per_cycle)

    @property
    def onchip_bytes(self) -> int:
        """Every byte of on-chip storage below DRAM (for the data-movement lower bound)."""
        l2 = self.l2.bytes if self.l2 else 0
        return self.scratchpad.bytes + self.accumulator.bytes + l2

    def spad_pj_per_byte(self) -> float:
        return self.energy.sram_pj_per_byte(self.scratchpad.kib / self.scratchpad.banks)

    def acc_pj_per_byte(self) -> float:
        return self.energy.sram_pj_per_byte(self.accumulator.kib / self.accumulator.banks)

    def l2_pj_per_byte(self) -> float:
        return 0.0 if self.l2 is None else self.energy.sram_pj_per_byte(self.l2.kib / self.l2.banks)

    def area_mm2(self) -> float:
        """Estimated area: SRAM linear in capacity plus the PE array."""
        kib = self.scratchpad.kib + self.accumulator.kib + (self.l2.kib if self.l2 else 0)
        return kib * self.area.sram_mm2_per_kib + self.dim_rows * self.dim_cols * self.area.pe_mm2

    @property
    def l2_cache(self) -> L2 | None:
        """The L2 when it is a set-associative cache (``l2.ways``), else None (none, or a buffer the
        software manages)."""
        return self.l2 if self.l2 is not None and self.l2.sets is not None else None

    def tiler_view(self) -> Arch:
        """The arch as Gemmini's own tilers (``tiled_matmul_auto``, ``tiled_conv_auto``) see it: the
        memory sizes the software's ``gemmini_params.h`` states (``software.tiler_spad_kib`` /
        ``tiler_acc_kib``; the hardware's when unset)."""
        sw = self.software
        return self.with_overrides(spad_kib=sw.tiler_spad_kib, acc_kib=sw.tiler_acc_kib)

    def with_overrides(
        self,
        *,
        spad_kib: int | None = None,
        acc_kib: int | None = None,
        pe_dim: int | None = None,
        dataflow: str | None = None,
        stationary_overlap: bool | None = None,
    ) -> Arch:
        """A copy with command-line overrides applied (and validated, :meth:`checked` included)."""
        arch = self
        for value, what, bound in (
            (spad_kib, "--spad-kib", specio.SRAM_KIB),
            (acc_kib, "--acc-kib", specio.SRAM_KIB),
            (pe_dim, "--pe-dim", specio.ARRAY_DIM),
        ):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise GemmapError(f"{what}: expected a whole number, got {value!r}")
            if value is not None:
                specio.check_value(value, bound, what)
        if spad_kib is not None:
            arch = dataclasses.replace(arch, scratchpad=dataclasses.replace(arch.scratchpad, kib=spad_kib))
        if acc_kib is not None:
            arch = dataclasses.replace(arch, accumulator=dataclasses.replace(arch.accumulator, kib=acc_kib))
        if pe_dim is not None and (pe_dim, pe_dim) != (arch.dim_rows, arch.dim_cols):
            arch = dataclasses.replace(arch, pe_array=dataclasses.replace(arch.pe_array, rows=pe_dim, cols=pe_dim))
        if dataflow is not None or stationary_overlap is not None:
            pe = arch.pe_array
            pe = dataclasses.replace(
                pe,
                dataflow=dataflow if dataflow is not None else pe.dataflow,
                stationary_overlap=pe.stationary_overlap if stationary_overlap is None else stationary_overlap,
            )
            arch = dataclasses.replace(arch, pe_array=pe)
        return arch.checked(arch.name)

    def checked(self, where: str) -> Arch:
        """``self`` if its DMA sizes, L2 line, memory-side cache block and tensor alignment are powers of
        two (beat ≤ request), its tag queue has at least 2
        entries and, when it can hold requests back, at most :data:`MAX_TAG_WINDOW` + 1, and its
        scratchpad holds one block of ``rows`` rows and its accumulator one row (what every dataflow
        needs to run at all), else one line naming ``where``. The one check
        behind ``load_arch``, every override (map, schedule, cdf, evaluate) and every sweep point."""
        beat, req = self.dma.beat_bytes, self.dma.request_bytes
        if beat & (beat - 1) or req & (req - 1) or beat > req:
            raise GemmapError(
                f"{where}: dma.beat_bytes ({beat}) and dma.request_bytes ({req}) must be powers of two, "
                "the beat no larger than the request"
            )
        if self.pe_array.tag_queue < 2:
            raise GemmapError(f"{where}: pe_array.tag_queue must be at least 2 (one request in the array, one waiting)")
        if self.pe_array.throttles and self.pe_array.window > MAX_TAG_WINDOW:
            raise GemmapError(
                f"{where}: pe_array.tag_queue ({self.pe_array.tag_queue}) can hold compute requests back at "
                f"this array latency; gemmap counts such a queue only up to {MAX_TAG_WINDOW + 1} entries"
            )
        d = self.dram
        if (d.cache_kib is None) != (d.miss_bytes_per_cycle is None):
            raise GemmapError(
                f"{where}: dram.cache_kib and dram.miss_bytes_per_cycle go together (a cache and its miss rate)"
            )
        if d.victim_bytes_per_cycle is not None and d.cache_kib is None:
            raise GemmapError(
                f"{where}: dram.victim_bytes_per_cycle needs dram.cache_kib (the victims of which cache?)"
            )
        if d.cache_ways is not None and d.cache_kib is None:
            raise GemmapError(f"{where}: dram.cache_ways needs dram.cache_kib (the ways of which cache?)")
        align = self.software.tensor_align_bytes
        if align is not None and align & (align - 1):
            raise GemmapError(f"{where}: software.tensor_align_bytes ({align}) must be a power of two")
        line = self.l2.line_bytes if self.l2 is not None and self.l2.ways is not None else 1  # a cache's only
        if line & (line - 1) or d.cache_block_bytes & (d.cache_block_bytes - 1):
            raise GemmapError(
                f"{where}: l2.line_bytes ({line}) and dram.cache_block_bytes ({d.cache_block_bytes}) must be "
                "powers of two (a cache's set index is the address bits above them)"
            )
        if self.spad_rows < self.dim_rows or self.acc_rows < 1:
            raise GemmapError(
                f"{where}: the scratchpad ({self.scratchpad.kib} KiB, {self.spad_rows} rows) or the accumulator "
                f"({self.accumulator.kib} KiB, {self.acc_rows} rows) is too small to hold one "
                f"{self.dim_rows}x{self.dim_cols} block"
            )
        return self

    def summary(self) -> dict[str, object]:
        """The ``arch`` record of the JSON output contract (DESIGN §8)."""
        return {
            "name": self.name,
            "pe_rows": self.dim_rows,
            "pe_cols": self.dim_cols,
            "spad_kib": self.scratchpad.kib,
            "acc_kib": self.accumulator.kib,
            "l2_kib": self.l2.kib if self.l2 else 0,
            "dataflow": self.pe_array.dataflow,
            "frequency_mhz": self.frequency_mhz,
            "dma_bytes_per_cycle": self.local_bytes_per_cycle,
            "dram_bytes_per_cycle": self.dram.bytes_per_cycle,
            "norm_unit": self.nonlinear.norm_unit,
            "area_mm2": round(self.area_mm2(), 4),
        }


def load_arch(path: str | Path = DEFAULT_ARCH) -> Arch:
    """Load and validate an architecture YAML file."""
    path = shipped(path, "arch")
    data = load_yaml(path)
    arch = build(Arch, data, str(path))
    if not arch.name:
        raise GemmapError(f"{specio.shown(str(path))}: 'name': must not be empty")
    return arch.checked(specio.shown(str(path)))


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
