//! The `netpol` command line: all the work is in the library (`netpol_compiler::cli`).

/// Reports allocate and free many small strings and sets per flow: mimalloc does that about a
/// fifth faster than the system allocator on large flow files (`cargo xtask bench-suggest`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    netpol_compiler::cli::main()
}
