/* stub: one RISC-V instruction that reads both operands, standing in for one RoCC custom instruction */
#define XCUSTOM_ACC 3
#define ROCC_INSTRUCTION_0_R_R(x, rs1, rs2, funct) \
  { uint64_t _a = (uint64_t)(rs1), _b = (uint64_t)(rs2); asm volatile("add x0, %0, %1" :: "r"(_a), "r"(_b)); }
#define ROCC_INSTRUCTION_R_R_R(x, rd, rs1, rs2, funct) (rd = 0)
#define ROCC_INSTRUCTION(x, rd, rs1, rs2, funct) rd = 0;
