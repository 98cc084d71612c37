//! Intel AMX tile products for the bf16 layers (`tdpbf16ps`: a 16 × 16 f32
//! tile += a 16 × 32 bf16 tile times a 32 × 16 bf16 tile, 8,192
//! multiply-adds per instruction).
//!
//! The operands come packed by `bf16_gemm`: A as row-major bf16 pairs (kp
//! pairs a row), B as panels of 16 columns (one 64-byte line of 16 pairs per
//! k pair), which are exactly AMX's A and B tile layouts. One block computes
//! a 32 × 32 output from two A tiles and two B tiles per 32 values of k, in
//! four accumulator tiles. Linux grants a process the tile state only on
//! request (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`);
//! `available()` asks once. Rust has no stable AMX intrinsics, so the tile
//! instructions are inline assembly; tiles are named registers that no
//! compiled code touches.

/// Rows (and columns) of an output block; k steps of 32 values (16 pairs).
pub(super) const BLOCK: usize = 32;
pub(super) const K_PAIRS: usize = 16;

/// True where the CPU has AMX-BF16 and Linux granted this process the tile
/// state.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OK.get_or_init(|| {
            const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
            const XFEATURE_XTILEDATA: libc::c_long = 18;
            // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE (the
            // standard library's detection of them is not stable yet).
            #[allow(unused_unsafe)]
            // SAFETY: CPUID leaf 7 exists on every x86-64 CPU that runs this.
            let edx = unsafe { std::arch::x86_64::__cpuid_count(7, 0) }.edx;
            edx & (1 << 22) != 0
                && edx & (1 << 24) != 0
                // SAFETY: a plain system call; it changes only this
                // process's permitted extended state.
                && unsafe {
                    libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)
                } == 0
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The tile configuration: tiles 0–3 are 16 × 16 f32 accumulators, 4–5 the
/// A tiles and 6–7 the B tiles, each 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new() -> Self {
        let mut c = [0u8; 64];
        c[0] = 1; // palette 1
        for t in 0..8 {
            c[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes());
            c[48 + t] = 16;
        }
        TileConfig(c)
    }
}

/// Computes output rows i0..i0+32, columns of panels 2s and 2s+1 (32
/// columns) over all kp pairs, into `out` (32 × 32 f32, row-major).
///
/// # Safety
/// `available()` is true and the tile configuration is loaded on this
/// thread ([`with_tiles`]); `pa` holds at least (i0 + 32) rows of `kp`
/// pairs and `pb` at least 2s + 2 panels of kp × 16 pairs; kp is a multiple
/// of 16.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn block(
    pa: &[u32],
    pb: &[u32],
    kp: usize,
    i0: usize,
    s: usize,
    out: &mut [f32; BLOCK * BLOCK],
) {
    use std::arch::asm;
    let a_stride = kp * 4;
    let b_stride = 64usize;
    // SAFETY (the whole body): the caller's contract bounds every tile load
    // (16 rows of 64 bytes at the given stride) inside `pa` and `pb`, and
    // `out` holds 32 rows of 128 bytes.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        for p0 in (0..kp).step_by(K_PAIRS) {
            let a0 = pa.as_ptr().add(i0 * kp + p0);
            let a1 = pa.as_ptr().add((i0 + 16) * kp + p0);
            let b0 = pb.as_ptr().add((2 * s) * kp * 16 + p0 * 16);
            let b1 = pb.as_ptr().add((2 * s + 1) * kp * 16 + p0 * 16);
            asm!(
                "tileloadd tmm4, [{a0} + {sa}*1]",
                "tileloadd tmm5, [{a1} + {sa}*1]",
                "tileloadd tmm6, [{b0} + {sb}*1]",
                "tileloadd tmm7, [{b1} + {sb}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a0 = in(reg) a0,
                a1 = in(reg) a1,
                b0 = in(reg) b0,
                b1 = in(reg) b1,
                sa = in(reg) a_stride,
                sb = in(reg) b_stride,
                options(nostack, readonly)
            );
        }
        let o = out.as_mut_ptr();
        let so = BLOCK * 4;
        asm!(
            "tilestored [{c0} + {so}*1], tmm0",
            "tilestored [{c1} + {so}*1], tmm1",
            "tilestored [{c2} + {so}*1], tmm2",
            "tilestored [{c3} + {so}*1], tmm3",
            c0 = in(reg) o,
            c1 = in(reg) o.add(16),
            c2 = in(reg) o.add(16 * BLOCK),
            c3 = in(reg) o.add(16 * BLOCK + 16),
            so = in(reg) so,
            options(nostack)
        );
    }
}

/// Runs `f` with the tile configuration loaded on this thread, releasing
/// the tiles afterwards.
///
/// # Safety
/// `available()` is true.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn with_tiles<R>(f: impl FnOnce() -> R) -> R {
    let cfg = TileConfig::new();
    // SAFETY: the CPU has AMX and the process holds the tile state (the
    // caller checked `available()`); the configuration is 64 valid bytes.
    unsafe {
        std::arch::asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
    }
    let r = f();
    // SAFETY: as above; releases this thread's tile state.
    unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
    r
}
