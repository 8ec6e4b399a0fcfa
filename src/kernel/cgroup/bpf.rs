//! The device cgroup on cgroup v2: a small BPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE`,
//! attached to the container's group. The kernel runs it on every `open` of a device node and
//! every `mknod` by a process in the group, with the node's type, numbers and the access asked
//! for; it answers 1 (allowed) or 0 (`EPERM`).
//!
//! cgroup v2 has no `devices.allow` file: the rules become code. `program` compiles a
//! `devices::Filter` into instructions (crun's `ebpf.c` and runc's `devicefilter.go` build the
//! same shape by hand), `load_and_attach` hands them to `bpf(2)`. It is attached with
//! `BPF_F_ALLOW_MULTI`, as runc does, before any process joins the group; the kernel detaches
//! it when the group is removed. No crate for this: the program is a dozen instructions of
//! four kinds, and a BPF library would be most of the binary's size.
//!
//! The program, for a filter whose default is `D` (0 deny, 1 allow):
//!
//! ```text
//!     r2 = ctx.access_type & 0xffff      the node's type (1 block, 2 char)
//!     r3 = ctx.access_type >> 16         the access asked for (1 mknod, 2 read, 4 write)
//!     r4 = ctx.major; r5 = ctx.minor
//!   per exception:
//!     if r2 != TYPE goto next
//!     r1 = r3 & ACCESS; if not covered goto next    (left out for rwm)
//!     if r4 != MAJOR goto next                      (left out for *)
//!     if r5 != MINOR goto next                      (left out for *)
//!     return !D
//!   next: ...
//!     return D
//! ```
//!
//! "Covered" is what the v1 controller checks: for an allow (a deny-all default), all of the
//! access asked for (`r1 == r3`); for a deny (an allow-all default), any of it (`r1 != 0`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};

use super::devices::{Access, Filter, Kind};

/// One BPF instruction, `struct bpf_insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

/// The opcodes the program uses: instruction class | operation | operand source.
mod op {
    pub const LDX_MEM_W: u8 = 0x01 | 0x60; // BPF_LDX | BPF_MEM | BPF_W
    pub const ALU32_AND_K: u8 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K
    pub const ALU32_RSH_K: u8 = 0x04 | 0x70; // BPF_ALU | BPF_RSH | BPF_K
    pub const ALU32_MOV_K: u8 = 0x04 | 0xb0; // BPF_ALU | BPF_MOV | BPF_K
    pub const ALU32_MOV_X: u8 = 0x04 | 0xb0 | 0x08; // BPF_ALU | BPF_MOV | BPF_X
    pub const JEQ_K: u8 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
    pub const JNE_K: u8 = 0x05 | 0x50; // BPF_JMP | BPF_JNE | BPF_K
    pub const JNE_X: u8 = 0x05 | 0x50 | 0x08; // BPF_JMP | BPF_JNE | BPF_X
    pub const EXIT: u8 = 0x05 | 0x90; // BPF_JMP | BPF_EXIT
}

/// `struct bpf_cgroup_dev_ctx`'s fields, and the values in them.
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The 8 bytes the kernel reads: code, src and dst registers in one byte, offset, immediate.
    pub fn encode(&self) -> [u8; 8] {
        let [o0, o1] = self.off.to_le_bytes();
        let [i0, i1, i2, i3] = self.imm.to_le_bytes();
        [
            self.code,
            (self.src << 4) | (self.dst & 0x0f),
            o0,
            o1,
            i0,
            i1,
            i2,
            i3,
        ]
    }
}

fn load_u32(dst: u8, offset: i16) -> Insn {
    Insn::new(op::LDX_MEM_W, dst, 1, offset, 0)
}

fn exit_with(value: bool) -> [Insn; 2] {
    [
        Insn::new(op::ALU32_MOV_K, 0, 0, 0, value as i32),
        Insn::new(op::EXIT, 0, 0, 0, 0),
    ]
}

/// The program that enforces `filter` (see the module's notes).
pub fn program(filter: &Filter) -> Vec<Insn> {
    let mut insns = vec![
        load_u32(2, CTX_ACCESS_TYPE),
        Insn::new(op::ALU32_AND_K, 2, 0, 0, 0xffff),
        load_u32(3, CTX_ACCESS_TYPE),
        Insn::new(op::ALU32_RSH_K, 3, 0, 0, 16),
        load_u32(4, CTX_MAJOR),
        load_u32(5, CTX_MINOR),
    ];
    for (nodes, access) in &filter.exceptions {
        let kind = match nodes.kind {
            Kind::Block => DEV_BLOCK,
            Kind::Char => DEV_CHAR,
            // A filter holds no `a` exception: such a rule resets it.
            Kind::All => continue,
        };
        // Each test jumps to the next block when it fails: offsets are filled in once the
        // block's length is known (`off` = instructions to skip after this one).
        let mut block = vec![Insn::new(op::JNE_K, 2, 0, 0, kind)];
        if *access != Access::ALL {
            block.push(Insn::new(op::ALU32_MOV_X, 1, 3, 0, 0));
            block.push(Insn::new(op::ALU32_AND_K, 1, 0, 0, access.bits().into()));
            block.push(if filter.default_allow {
                Insn::new(op::JEQ_K, 1, 0, 0, 0)
            } else {
                Insn::new(op::JNE_X, 1, 3, 0, 0)
            });
        }
        // Numbers fit: `Rule::new` keeps them within 12 and 20 bits.
        if let Some(major) = nodes.major {
            block.push(Insn::new(op::JNE_K, 4, 0, 0, major as i32));
        }
        if let Some(minor) = nodes.minor {
            block.push(Insn::new(op::JNE_K, 5, 0, 0, minor as i32));
        }
        block.extend(exit_with(!filter.default_allow));
        let len = block.len();
        for (i, insn) in block.iter_mut().enumerate() {
            if matches!(insn.code, op::JNE_K | op::JNE_X | op::JEQ_K) {
                insn.off = (len - i - 1) as i16;
            }
        }
        insns.extend(block);
    }
    insns.extend(exit_with(filter.default_allow));
    insns
}

// bpf(2): the commands, types and flags used, from <linux/bpf.h>.
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The name the program has in `bpftool prog`.
const PROG_NAME: &[u8; 16] = b"minibox_devices\0";
const LICENSE: &[u8] = b"MIT\0";

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type` (no padding).
#[repr(C)]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_PROG_ATTACH`.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `union bpf_attr` for `BPF_PROG_QUERY`, up to `prog_cnt` (the padding made a field).
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

/// `union bpf_attr` for `BPF_PROG_GET_FD_BY_ID`.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `struct bpf_prog_info`, up to `xlated_prog_insns` (the kernel fills what we give room for).
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    typ: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
}

/// The structs above, and only they, are what `bpf` passes to the kernel.
trait BpfAttr {}
impl BpfAttr for LoadAttr {}
impl BpfAttr for AttachAttr {}
impl BpfAttr for QueryAttr {}
impl BpfAttr for GetFdAttr {}
impl BpfAttr for InfoAttr {}

/// One `bpf(2)` call with one of the attribute structs above.
fn bpf<T: BpfAttr>(cmd: libc::c_int, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is one of the `#[repr(C)]` structs above, a prefix of `union bpf_attr`
    // for `cmd` without uninitialised bytes; it is valid for reads and writes of its size
    // for the whole call, and the pointers inside it point at live buffers of the sizes given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Loads the program; on a refusal, it is loaded again with the verifier's log, whose last
/// line goes into the error.
fn load(insns: &[Insn]) -> Result<OwnedFd> {
    let code: Vec<u8> = insns.iter().flat_map(Insn::encode).collect();
    let try_load = |log: Option<&mut [u8]>| {
        let (log_level, log_size, log_buf) = match log {
            Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
            None => (0, 0, 0),
        };
        let mut attr = LoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: insns.len() as u32,
            insns: code.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            log_level,
            log_size,
            log_buf,
            prog_name: *PROG_NAME,
            ..LoadAttr::default()
        };
        // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor that nothing else owns.
        bpf(BPF_PROG_LOAD, &mut attr).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    };
    let e = match try_load(None) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            return Err(e).context(
                "loading the device cgroup's BPF program (bpf(BPF_PROG_LOAD) needs \
                 CAP_SYS_ADMIN or CAP_BPF)",
            )
        }
        Err(e) => e,
    };
    let mut log = vec![0u8; 64 << 10];
    let _ = try_load(Some(&mut log));
    let said = String::from_utf8_lossy(&log);
    // The last line is the verifier's statistics; the one before it says what went wrong.
    let said = said
        .trim_end_matches('\0')
        .lines()
        .rfind(|l| !l.trim().is_empty() && !l.starts_with("processed "))
        .unwrap_or("");
    Err(e).with_context(|| format!("loading the device cgroup's BPF program (verifier: {said:?})"))
}

/// Opens a group's directory, the handle `bpf(2)` attaches programs to.
fn open_group(group: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        group,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("opening cgroup {}", group.display()))?;
    Ok(fd)
}

/// Compiles `filter`, loads it and attaches it to the group at `group`. The group holds the
/// program from then on (our descriptor closes on return); it goes with the group.
pub fn load_and_attach(group: &Path, filter: &Filter) -> Result<()> {
    let program = load(&program(filter))?;
    let dir = open_group(group)?;
    attach(dir.as_fd(), program.as_fd()).with_context(|| {
        format!(
            "attaching the device filter to cgroup {} (bpf(BPF_PROG_ATTACH), BPF_CGROUP_DEVICE)",
            group.display()
        )
    })
}

fn attach(group: BorrowedFd, program: BorrowedFd) -> std::io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: group.as_raw_fd() as u32,
        attach_bpf_fd: program.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..AttachAttr::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// The ids of the device programs attached to the group itself (not those it inherits).
pub fn attached(group: &Path) -> Result<Vec<u32>> {
    let dir = open_group(group)?;
    let mut ids = [0u32; 16];
    let mut attr = QueryAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..QueryAttr::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)
        .with_context(|| format!("querying the device programs of {}", group.display()))?;
    Ok(ids[..(attr.prog_cnt as usize).min(ids.len())].to_vec())
}

/// What an attached device program enforces, read back from the kernel: its instructions
/// (as the kernel holds them), one exit per exception and one for the default, which the last
/// `r0 = D` before that exit holds: `(default allows, exceptions)`. An error for a program
/// that is not of that shape.
pub fn describe(id: u32) -> Result<(bool, usize)> {
    let mut get = GetFdAttr {
        prog_id: id,
        ..GetFdAttr::default()
    };
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut get)
        .with_context(|| format!("opening BPF program {id}"))?;
    // SAFETY: a successful BPF_PROG_GET_FD_BY_ID returns a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut code = vec![0u8; 8 * 4096];
    let mut info = ProgInfo {
        xlated_prog_len: code.len() as u32,
        xlated_prog_insns: code.as_mut_ptr() as u64,
        ..ProgInfo::default()
    };
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfo>() as u32,
        info: &mut info as *mut ProgInfo as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).with_context(|| format!("reading BPF program {id}"))?;
    let len = (info.xlated_prog_len as usize).min(code.len()) / 8;
    let insns: Vec<&[u8]> = code[..len * 8].chunks(8).collect();
    let exits = insns.iter().filter(|i| i[0] == op::EXIT).count();
    match insns.len().checked_sub(2).map(|i| insns[i]) {
        Some(last) if exits >= 1 && last[0] == op::ALU32_MOV_K => Ok((last[4] == 1, exits - 1)),
        _ => anyhow::bail!("BPF program {id} is not a device filter of minibox's shape"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::devices::{DeviceRules, Rule};
    use super::*;

    fn filter(list: &[&str]) -> Filter {
        let rules: Vec<Rule> = list.iter().map(|r| Rule::parse(r).unwrap()).collect();
        Filter::build(&rules).unwrap()
    }

    /// Runs a program on one request, as the kernel would: only the instructions `program`
    /// emits are known, and every jump must land inside the program.
    fn run(insns: &[Insn], kind: i32, access: u8, major: u32, minor: u32) -> u64 {
        let ctx = [((access as u32) << 16) | kind as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = insns[pc];
            let (dst, src) = (i.dst as usize, i.src as usize);
            let imm = i.imm as i64 as u64;
            let jump = |taken: bool| if taken { i.off as usize } else { 0 };
            pc += 1;
            match i.code {
                op::LDX_MEM_W => {
                    assert_eq!(src, 1, "loads read the context");
                    r[dst] = ctx[(i.off / 4) as usize] as u64;
                }
                op::ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                op::ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                op::ALU32_MOV_K => r[dst] = i.imm as u32 as u64,
                op::ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
                op::JEQ_K => pc += jump(r[dst] == imm),
                op::JNE_K => pc += jump(r[dst] != imm),
                op::JNE_X => pc += jump(r[dst] != r[src]),
                op::EXIT => return r[0],
                other => panic!("unknown opcode {other:#x}"),
            }
            assert!(pc < insns.len(), "jumped out of the program");
        }
    }

    #[test]
    fn instructions_encode_as_the_kernel_reads_them() {
        assert_eq!(
            load_u32(4, CTX_MAJOR).encode(),
            [0x61, 0x14, 4, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::new(op::JNE_K, 2, 0, 3, DEV_CHAR).encode(),
            [0x55, 0x02, 3, 0, 2, 0, 0, 0]
        );
        assert_eq!(
            Insn::new(op::JNE_X, 1, 3, 1, 0).encode(),
            [0x5d, 0x31, 1, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::new(op::ALU32_AND_K, 2, 0, 0, 0xffff).encode(),
            [0x54, 0x02, 0, 0, 0xff, 0xff, 0, 0]
        );
        assert_eq!(exit_with(true)[0].encode(), [0xb4, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(exit_with(true)[1].encode(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_filter_compiles_to_one_block_per_exception() {
        use crate::kernel::cgroup::devices::Nodes;
        let f = Filter {
            default_allow: false,
            exceptions: vec![
                (
                    Nodes {
                        kind: Kind::Char,
                        major: Some(1),
                        minor: Some(3),
                    },
                    Access::ALL,
                ),
                (
                    Nodes {
                        kind: Kind::Block,
                        major: Some(8),
                        minor: None,
                    },
                    Access::parse("rw").unwrap(),
                ),
            ],
        };
        let hex: Vec<String> = program(&f)
            .iter()
            .map(|i| i.encode().iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        assert_eq!(
            hex,
            [
                "6112000000000000", // r2 = ctx->access_type
                "54020000ffff0000", // w2 &= 0xffff         (type)
                "6113000000000000", // r3 = ctx->access_type
                "7403000010000000", // w3 >>= 16            (access)
                "6114040000000000", // r4 = ctx->major
                "6115080000000000", // r5 = ctx->minor
                "5502040002000000", // c 1:3 rwm: if r2 != char goto +4
                "5504030001000000", //   if r4 != 1 goto +3
                "5505020003000000", //   if r5 != 3 goto +2
                "b400000001000000", //   r0 = 1 (allow)
                "9500000000000000", //   exit
                "5502060001000000", // b 8:* rw: if r2 != block goto +6
                "bc31000000000000", //   w1 = w3
                "5401000006000000", //   w1 &= rw
                "5d31030000000000", //   if r1 != r3 goto +3 (asks for more than rw)
                "5504020008000000", //   if r4 != 8 goto +2
                "b400000001000000", //   r0 = 1
                "9500000000000000", //   exit
                "b400000000000000", // r0 = 0 (deny the rest)
                "9500000000000000", // exit
            ]
        );
    }

    #[test]
    fn the_program_decides_as_the_model_does() {
        let lists: [&[&str]; 6] = [
            &crate::kernel::cgroup::devices::DOCKER_DEFAULT,
            &[
                "deny a",
                "allow c 1:5 r",
                "deny c 1:3 rwm",
                "allow b 8:* rw",
            ],
            &["deny b 8:* w", "deny c 4:* rwm"],
            &["deny a", "deny c *:* m", "allow b 7:0 m"],
            &[],
            &["allow a", "deny c 1:3 rwm"],
        ];
        let kinds = [(Kind::Char, DEV_CHAR), (Kind::Block, DEV_BLOCK)];
        let numbers = [
            (1, 3),
            (1, 5),
            (1, 7),
            (5, 2),
            (8, 0),
            (8, 1),
            (7, 0),
            (4, 1),
            (136, 9),
            (10, 229),
            (254, 0),
        ];
        for list in lists {
            let f = filter(list);
            let p = program(&f);
            for (kind, code) in kinds {
                for (major, minor) in numbers {
                    for bits in 1..=7u8 {
                        let access = Access::parse(
                            &[(2, 'r'), (4, 'w'), (1, 'm')]
                                .iter()
                                .filter(|(b, _)| bits & b != 0)
                                .map(|(_, c)| *c)
                                .collect::<String>(),
                        )
                        .unwrap();
                        let want = f.allows(kind, major, minor, access) as u64;
                        assert_eq!(
                            run(&p, code, bits, major, minor),
                            want,
                            "{list:?}: {kind:?} {major}:{minor} {access}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn access_tests_follow_the_default() {
        // Deny-all: an allow covers a request only in full (r1 == r3).
        let p = program(&filter(&[
            "deny a",
            "deny c *:* m",
            "deny b *:* m",
            "allow b 8:0 r",
        ]));
        assert!(p.iter().any(|i| i.code == op::JNE_X));
        assert_eq!(run(&p, DEV_BLOCK, 2, 8, 0), 1, "r");
        assert_eq!(run(&p, DEV_BLOCK, 6, 8, 0), 0, "rw");
        // Allow-all: a deny matches any part (r1 != 0).
        let p = program(&filter(&["deny b 8:0 w"]));
        assert!(p.iter().any(|i| i.code == op::JEQ_K));
        assert_eq!(run(&p, DEV_BLOCK, 2, 8, 0), 1, "r");
        assert_eq!(run(&p, DEV_BLOCK, 6, 8, 0), 0, "rw");
        // Docker's list: the host's disk cannot be opened, /dev/null can.
        let p = program(&DeviceRules::docker().filter().unwrap());
        assert_eq!(run(&p, DEV_BLOCK, 2, 254, 0), 0);
        assert_eq!(run(&p, DEV_BLOCK, 1, 254, 0), 1, "mknod");
        assert_eq!(run(&p, DEV_CHAR, 6, 1, 3), 1);
    }
}
