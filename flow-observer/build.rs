//! Embeds the kernel programs, which `cargo xtask build-ebpf` builds with nightly for
//! `bpfel-unknown-none` (they cannot be built by this stable build). `NETPOL_EBPF_OBJECT`
//! overrides where the object file is read from.

use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-env-changed=NETPOL_EBPF_OBJECT");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let object = std::env::var_os("NETPOL_EBPF_OBJECT").map_or_else(
        || manifest.join("../ebpf/programs/target/bpfel-unknown-none/release/netpol-ebpf"),
        PathBuf::from,
    );
    println!("cargo::rerun-if-changed={}", object.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("netpol-ebpf");
    if let Err(e) = std::fs::copy(&object, &out) {
        println!(
            "cargo::error=the eBPF object `{}` is missing ({e}): run `cargo xtask build-ebpf` first (it needs the toolchain `cargo xtask setup` installs)",
            object.display()
        );
    }
}
