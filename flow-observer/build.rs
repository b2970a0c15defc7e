//! Builds the kernel programs and embeds them in the agent.
//!
//! `ebpf/programs` is its own workspace: it builds only with nightly for `bpfel-unknown-none`
//! (with `bpf-linker`), so this stable build runs that build through `aya-build`, the way
//! aya's project template does, into `OUT_DIR`; `src/ebpf.rs` includes the object from there.
//! The toolchain is what `cargo xtask setup` installs; when part of it is missing, the build
//! stops with what is missing and how to install it.
//!
//! `NETPOL_EBPF_OBJECT=PATH` embeds an object built elsewhere instead (for packagers).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The kernel programs' package, and its binary (the object file's name in `OUT_DIR`).
const PACKAGE: &str = "netpol-ebpf";

fn main() {
    if let Err(problems) = run() {
        for problem in problems {
            // One `cargo::error` per line: cargo prints each as its own error.
            for line in problem.lines() {
                println!("cargo::error={line}");
            }
        }
    }
}

fn run() -> Result<(), Vec<String>> {
    let out_dir = PathBuf::from(
        std::env::var_os("OUT_DIR")
            .ok_or_else(|| vec!["OUT_DIR is not set (run through cargo)".to_owned()])?,
    );
    println!("cargo::rerun-if-env-changed=NETPOL_EBPF_OBJECT");
    if let Some(object) = std::env::var_os("NETPOL_EBPF_OBJECT") {
        let object = PathBuf::from(object);
        println!("cargo::rerun-if-changed={}", object.display());
        return std::fs::copy(&object, out_dir.join(PACKAGE))
            .map(drop)
            .map_err(|e| {
                vec![format!(
                    "cannot read the kernel programs' object `{}` (NETPOL_EBPF_OBJECT): {e}",
                    object.display()
                )]
            });
    }

    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let ebpf = manifest_dir.join("../ebpf");
    let programs = ebpf.join("programs");
    let common = ebpf.join("common");
    if !programs.join("Cargo.toml").is_file() {
        return Err(vec![format!(
            "the kernel programs' sources are not at `{}`: build netpol-observer from a clone of the netpol repository, or give a prebuilt object with NETPOL_EBPF_OBJECT",
            programs.display()
        )]);
    }
    check_toolchain()?;

    // The programs use the shared types too; aya-build watches the programs' folder itself.
    for path in [common.join("src"), common.join("Cargo.toml")] {
        println!("cargo::rerun-if-changed={}", path.display());
    }
    let root_dir = programs
        .canonicalize()
        .map_err(|e| vec![format!("cannot open `{}`: {e}", programs.display())])?;
    let root_dir_text = root_dir.to_str().ok_or_else(|| {
        vec![format!(
            "the path `{}` is not UTF-8, which aya-build needs",
            root_dir.display()
        )]
    })?;
    // aya-build runs `cargo build --package netpol-ebpf` in the current directory: the
    // programs' own workspace (with its lockfile and `.cargo/config.toml`) is found from there.
    std::env::set_current_dir(&root_dir)
        .map_err(|e| vec![format!("cannot enter `{}`: {e}", root_dir.display())])?;
    let package = aya_build::Package {
        name: PACKAGE,
        root_dir: root_dir_text,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default()).map_err(|e| {
        vec![format!(
            "building the kernel programs (`{}`) failed: {e:#}\nthe compiler's messages are above, as warnings; `cargo xtask setup` installs the toolchain they need",
            root_dir.display()
        )]
    })
}

/// Everything the kernel programs' build needs, checked up front so that a missing piece is
/// named with its fix rather than surfacing as a linker or `-Z build-std` failure. All
/// problems are reported, not just the first.
fn check_toolchain() -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if find_on_path("rustup").is_none() {
        problems.push(
            "`rustup` is not on PATH: the kernel programs build with a nightly toolchain that rustup runs\nhelp: install rustup (https://rustup.rs), then run `cargo xtask setup`".to_owned(),
        );
    } else {
        match nightly_sysroot() {
            None => problems.push(
                "no nightly toolchain: the kernel programs build with nightly (`-Z build-std=core` for `bpfel-unknown-none`)\nhelp: `rustup toolchain install nightly --component rust-src`, or run `cargo xtask setup`".to_owned(),
            ),
            Some(sysroot) => {
                if !sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
                    problems.push(format!(
                        "the nightly toolchain at `{}` has no `rust-src`, which `-Z build-std=core` needs\nhelp: `rustup component add rust-src --toolchain nightly`, or run `cargo xtask setup`",
                        sysroot.display()
                    ));
                }
            }
        }
    }
    if find_on_path("bpf-linker").is_none() {
        problems.push(
            "`bpf-linker` is not on PATH: it links the kernel programs\nhelp: run `cargo xtask setup` (it installs LLVM 22 and `cargo install bpf-linker --no-default-features --features llvm-22`)".to_owned(),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn nightly_sysroot() -> Option<PathBuf> {
    let output = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(PathBuf::from(text.trim()))
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
