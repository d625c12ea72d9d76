//! Asks the running kernel's verifier whether an XDP program may call a helper, for the
//! tests whose peer (Knot DNS's XDP mode) depends on one that some kernels refuse.
//!
//! Knot's XDP program calls `bpf_xdp_adjust_meta`; a kernel that refuses it makes
//! knotd log only "program not loaded". A test that meets that must tell this kernel's
//! refusal (not our failure, and not Knot's) from anything else, so it loads the
//! smallest program that calls the helper and reads the verifier's own words.

/// `bpf_xdp_adjust_meta`'s number in the kernel's helper table (include/uapi/linux/bpf.h).
const BPF_FUNC_XDP_ADJUST_META: i32 = 54;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TYPE_XDP: u32 = 6;

/// One eBPF instruction as the kernel reads it.
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD; the rest is zero.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    rest: [u8; 80],
}

/// What the verifier said of an XDP program that calls `bpf_xdp_adjust_meta`:
/// `Some(its message)` when it refused the helper itself (the line the kernel prints,
/// `program of this type cannot use helper bpf_xdp_adjust_meta#54`), `None` when it
/// loaded the program or refused it for any other reason (then the helper is not what
/// stops an XDP program here).
pub fn kernel_refuses_xdp_adjust_meta() -> Option<String> {
    const ALU64_MOV_K: u8 = 0xb7;
    const CALL: u8 = 0x85;
    const EXIT: u8 = 0x95;
    let insns = [
        // r2 = -4 (grow the metadata by four bytes), r1 is still the context.
        Insn {
            code: ALU64_MOV_K,
            regs: 2,
            off: 0,
            imm: -4,
        },
        Insn {
            code: CALL,
            regs: 0,
            off: 0,
            imm: BPF_FUNC_XDP_ADJUST_META,
        },
        // return XDP_PASS
        Insn {
            code: ALU64_MOV_K,
            regs: 0,
            off: 0,
            imm: 2,
        },
        Insn {
            code: EXIT,
            regs: 0,
            off: 0,
            imm: 0,
        },
    ];
    let license = c"GPL";
    let mut log = vec![0u8; 64 * 1024];
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        kern_version: 0,
        prog_flags: 0,
        rest: [0; 80],
    };
    // SAFETY: attr points at valid instructions, licence and log buffer that outlive the
    // call, and its size is what the kernel is told.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if fd >= 0 {
        // SAFETY: the descriptor the kernel just gave us.
        unsafe { libc::close(fd as i32) };
        return None;
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    text.lines()
        .find(|l| l.contains("cannot use helper bpf_xdp_adjust_meta"))
        .map(|l| l.trim().to_string())
}
