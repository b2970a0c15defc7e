//! `cargo xtask build-ebpf`: build the kernel programs (`ebpf/programs`) with nightly for
//! `bpfel-unknown-none`, into `ebpf/programs/target/bpfel-unknown-none/release/netpol-ebpf`,
//! where the observer's build script embeds them from.
//!
//! The crate carries its own `rust-toolchain.toml` (nightly + rust-src) and `.cargo/config.toml`
//! (the target and `-Z build-std=core`); this task runs cargo there with a clean environment,
//! since the outer `cargo xtask` sets variables meant for the stable build.

use std::process::Command;

use anyhow::Result;

use crate::{process, workspace_root};

pub fn run() -> Result<()> {
    let dir = workspace_root().join("ebpf/programs");
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "build", "--release", "--locked"])
        .current_dir(&dir);
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    process::run(&mut cmd)?;
    println!(
        "built {}",
        dir.join("target/bpfel-unknown-none/release/netpol-ebpf")
            .display()
    );
    Ok(())
}
